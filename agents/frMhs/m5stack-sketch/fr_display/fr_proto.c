/* fr_proto: the device side of the serial display protocol; see fr_proto.h. */
#include "fr_proto.h"

#include <string.h>

static const struct fr_proto_state fr_proto_defaults;   /* all empty, down, 0/0 */

void fr_proto_init(struct fr_proto *p)
{
	memset(p, 0, sizeof *p);
	p->why = "";
}

static int fr_proto_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undoes the escapes of a value into out (cap >= strlen(v) + 1). Returns false on an escape
 * the protocol does not define. */
static bool fr_proto_unescape(char *out, const char *v)
{
	size_t n = 0;
	for (const char *s = v; *s; s++) {
		if (*s != '\\') {
			out[n++] = *s;
			continue;
		}
		switch (*++s) {
		case '\\': out[n++] = '\\'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'x': {
			int hi = fr_proto_hex(s[1]), lo = hi < 0 ? -1 : fr_proto_hex(s[2]);
			if (lo < 0)
				return false;
			out[n++] = hi || lo ? (char)(hi * 16 + lo) : '?';
			s += 2;
			break;
		}
		default:   /* an unknown escape, or a lone backslash at the end */
			return false;
		}
	}
	out[n] = '\0';
	return true;
}

/* A decimal number of at most 9 digits (counts and frame numbers; no sign, no blanks). */
static bool fr_proto_number(const char *v, unsigned long *out)
{
	unsigned long n = 0;
	size_t i;
	for (i = 0; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 9)
			return false;
		n = n * 10 + (unsigned long)(v[i] - '0');
	}
	*out = n;
	return i > 0;
}

static unsigned fr_proto_reject(struct fr_proto *p, const char *why)
{
	p->rejected++;
	p->why = why;
	return 0;
}

/* The end of a frame: what arrived since the last one becomes what is drawn. A number that
 * does not follow the last one means lines were lost (or frMhs restarted without a hello
 * reaching us): ask for the full state. */
static unsigned fr_proto_end(struct fr_proto *p, const char *v)
{
	unsigned long n = 0;
	unsigned r = FR_PROTO_DRAW;
	bool ok = fr_proto_number(v, &n);
	if (!ok || (p->have_frame && n != p->last_end + 1)) {
		p->syncs++;
		r |= FR_PROTO_SEND_SYNC;
	}
	p->have_frame = ok;
	p->last_end = n;
	p->frames++;
	p->shown = p->cur;
	return r;
}

/* One line, without its newline (NUL-terminated in p->line, len bytes). */
static unsigned fr_proto_line(struct fr_proto *p, uint32_t now_ms)
{
	char *l = p->line, *key, *eq, val[FR_PROTO_LINE_MAX];
	size_t len = p->len;
	if (len && l[len - 1] == '\r')
		l[--len] = '\0';
	if (strncmp(l, "FR1 ", 4) != 0) {   /* boot messages, other programs: not ours */
		p->ignored++;
		return 0;
	}
	/* frMhs escapes every control byte: a raw one means the line was corrupted. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)l[i] < 0x20 || l[i] == 0x7f)
			return fr_proto_reject(p, "raw control byte");
	key = l + 4;
	eq = strchr(key, '=');
	if (!eq || eq == key)
		return fr_proto_reject(p, "no key=value");
	for (char *k = key; k < eq; k++)
		if (*k < 'a' || *k > 'z')
			return fr_proto_reject(p, "key is not [a-z]+");
	*eq = '\0';
	if (!fr_proto_unescape(val, eq + 1))
		return fr_proto_reject(p, "bad escape");

	p->heard = true;
	p->last_heard_ms = now_ms;

	struct fr_proto_state *c = &p->cur;
	unsigned long n;
	if (!strcmp(key, "hello")) {
		/* Any value: an incompatible version would not be "FR1". */
		*c = fr_proto_defaults;
		p->have_frame = false;
	} else if (!strcmp(key, "server")) {
		memcpy(c->server, val, strlen(val) + 1);
	} else if (!strcmp(key, "home")) {
		memcpy(c->home, val, strlen(val) + 1);
	} else if (!strcmp(key, "broker")) {
		if (strcmp(val, "up") && strcmp(val, "down"))
			return fr_proto_reject(p, "broker is neither up nor down");
		c->broker_up = !strcmp(val, "up");
	} else if (!strcmp(key, "online") || !strcmp(key, "total")) {
		if (!fr_proto_number(val, &n))
			return fr_proto_reject(p, "count is not a decimal number");
		*(key[0] == 'o' ? &c->online : &c->total) = (long)n;
	} else if (!strcmp(key, "cmd")) {
		memcpy(c->cmd, val, strlen(val) + 1);
	} else if (!strcmp(key, "text")) {
		memcpy(c->text, val, strlen(val) + 1);
	} else if (!strcmp(key, "end")) {
		return fr_proto_end(p, val);
	} else if (!strcmp(key, "ping")) {
		p->pings++;
	} else if (!strcmp(key, "bye")) {
		/* Not part of a frame: shown at once, until the next hello. */
		c->stopped = p->shown.stopped = true;
		return FR_PROTO_DRAW;
	} else {
		p->ignored++;   /* a newer frMhs's field: compatible additions keep "FR1" */
	}
	return 0;
}

unsigned fr_proto_feed(struct fr_proto *p, const char *buf, size_t n, uint32_t now_ms)
{
	unsigned r = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = buf[i];
		if (ch == '\n') {
			if (p->skipping) {
				p->rejected++;
				p->why = "line longer than 512 bytes";
			} else {
				p->line[p->len] = '\0';
				r |= fr_proto_line(p, now_ms);
			}
			p->len = 0;
			p->skipping = false;
		} else if (!p->skipping) {
			/* Room for the byte and the NUL: 511 bytes + the newline = 512. */
			if (p->len + 1 >= sizeof p->line)
				p->skipping = true;
			else
				p->line[p->len++] = ch;
		}
	}
	return r;
}

bool fr_proto_silent(const struct fr_proto *p, uint32_t now_ms)
{
	return !p->heard || (uint32_t)(now_ms - p->last_heard_ms) > FR_PROTO_SILENCE_MS;
}

/* Length of the valid UTF-8 sequence at s (2 to 4 bytes), 0 if it is not one. */
static size_t fr_proto_utf8(const unsigned char *s)
{
	size_t need = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 :
		      s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	for (size_t i = 1; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong 3- and 4-byte forms, surrogates and code points above U+10FFFF. */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return need;
}

size_t fr_proto_ascii(char *out, size_t cap, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = 0;
	if (cap == 0)
		return 0;
	while (*u && n + 1 < cap) {
		size_t k;
		if (*u == '\n' || (*u >= 0x20 && *u < 0x7f))
			out[n++] = (char)*u, k = 1;
		else if (*u < 0x20)
			out[n++] = ' ', k = 1;
		else if (*u < 0x80 || !(k = fr_proto_utf8(u)))
			out[n++] = '?', k = 1;   /* DEL, or a byte of invalid UTF-8 */
		else
			out[n++] = '?';          /* one character the font does not have */
		u += k;
	}
	out[n] = '\0';
	return n;
}
