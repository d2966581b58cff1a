/* mqttws: the WebSocket side of mqtttunnel -- the HTTP upgrade and the framing of RFC 6455
 * (client frames masked, control frames answered, the broker's frames checked); see
 * mqtttunnel_int.h. */
#include "mqtttunnel_int.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int mqttws_b64(const unsigned char *in, size_t n, char *out, size_t cap)
{
	if (cap < 4 * ((n + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return 0;
}

int mqttws_frame(struct mqtttunnel *t, int op, const void *p, size_t n)
{
	unsigned char *h = t->up + t->up_len, mask[4];
	size_t hl = 2, i;

	if (RAND_bytes(mask, sizeof mask) != 1)
		return -1;
	h[0] = (unsigned char)(0x80 | op);
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, mask, 4);
	hl += 4;
	for (i = 0; i < n; i++)
		h[hl + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
	t->up_len += hl + n;
	return 0;
}

bool mqttws_deframe(struct mqtttunnel *t)
{
	bool moved = false;

	while (t->st == TUN_OPEN) {
		if (!t->in_frame) {
			size_t need = 2, i;
			uint64_t len;
			if (t->in_len < 2)
				break;
			if (t->in[1] & 0x80) {
				mqtttunnel_fail(t, "the broker sent a masked WebSocket frame");
				break;
			}
			len = t->in[1] & 0x7f;
			need += len == 126 ? 2 : len == 127 ? 8 : 0;
			if (t->in_len < need)
				break;
			if (len == 126)
				len = (uint64_t)t->in[2] << 8 | t->in[3];
			else if (len == 127)
				for (len = 0, i = 0; i < 8; i++)
					len = len << 8 | t->in[2 + i];
			t->frame_op = t->in[0] & 0x0f;
			if ((t->frame_op & 0x08) && (len > 125 || !(t->in[0] & 0x80))) {
				mqtttunnel_fail(t, "bad WebSocket control frame from the broker");
				break;
			}
			if (t->frame_op != 0 && t->frame_op != 1 && t->frame_op != 2 &&
			    t->frame_op != 8 && t->frame_op != 9 && t->frame_op != 10) {
				mqtttunnel_fail(t, "unknown WebSocket opcode %d from the broker", t->frame_op);
				break;
			}
			memmove(t->in, t->in + need, t->in_len - need);
			t->in_len -= need;
			t->frame_left = len;
			t->ctl_len = 0;
			t->in_frame = true;
			moved = true;
		}
		if (t->frame_op & 0x08) {
			size_t k = t->in_len < t->frame_left ? t->in_len : (size_t)t->frame_left;
			memcpy(t->ctl + t->ctl_len, t->in, k);
			t->ctl_len += k;
			t->frame_left -= k;
			memmove(t->in, t->in + k, t->in_len - k);
			t->in_len -= k;
			if (t->frame_left)
				break;
			if (TUN_BUF + 16 - t->up_len < t->ctl_len + 14)
				break;   /* no room for the answer yet: keep the frame */
			t->in_frame = false;
			moved = true;
			if (t->frame_op == 9) {
				mqttws_frame(t, 10, t->ctl, t->ctl_len);
			} else if (t->frame_op == 8) {
				if (!t->close_sent)
					mqttws_frame(t, 8, t->ctl, t->ctl_len < 2 ? t->ctl_len : 2);
				t->close_sent = true;
				mqtttunnel_fail(t, "the broker closed the WebSocket");
			}
			continue;
		}
		{
			size_t room = sizeof t->down - t->down_len;
			size_t k = t->in_len < t->frame_left ? t->in_len : (size_t)t->frame_left;
			if (k > room)
				k = room;
			if (k == 0 && t->frame_left)
				break;
			memcpy(t->down + t->down_len, t->in, k);
			t->down_len += k;
			t->frame_left -= k;
			memmove(t->in, t->in + k, t->in_len - k);
			t->in_len -= k;
			if (!t->frame_left)
				t->in_frame = false;
			moved = true;
		}
	}
	return moved;
}

int mqttws_upgrade_request(struct mqtttunnel *t)
{
	unsigned char raw[16];
	bool v6 = strchr(t->host, ':') != NULL;
	char host[300], port[8] = "";
	int n;

	if (RAND_bytes(raw, sizeof raw) != 1 || mqttws_b64(raw, sizeof raw, t->key, sizeof t->key) < 0)
		return -1;
	if (t->port != (t->tls ? 443 : 80))
		snprintf(port, sizeof port, ":%u", t->port);
	snprintf(host, sizeof host, "%s%s%s%s", v6 ? "[" : "", t->host, v6 ? "]" : "", port);
	n = snprintf((char *)t->up, sizeof t->up,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		     "Sec-WebSocket-Protocol: mqtt\r\n\r\n", t->path, host, t->key);
	if (n < 0 || (size_t)n >= sizeof t->up)
		return -1;
	t->up_len = (size_t)n;
	return 0;
}

/* A header's value in the response head (NUL-terminated), or NULL. */
static const char *mqttws_header(const char *head, const char *name, char *val, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && p[2]) {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if (!end)
			break;
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			size_t k;
			while (*v == ' ' || *v == '\t')
				v++;
			k = (size_t)(end - v);
			while (k && (v[k - 1] == ' ' || v[k - 1] == '\t'))
				k--;
			if (k >= cap)
				k = cap - 1;
			memcpy(val, v, k);
			val[k] = '\0';
			return val;
		}
		p = end;
	}
	return NULL;
}

void mqttws_upgrade_response(struct mqtttunnel *t)
{
	char head[TUN_HTTP_MAX + 1], val[256], want[64], cat[96];
	unsigned char sha[20];
	unsigned int sl = 0;
	char *end;
	size_t hl;

	memcpy(head, t->in, t->in_len);
	head[t->in_len] = '\0';
	end = strstr(head, "\r\n\r\n");
	if (!end) {
		if (t->in_len >= sizeof t->in)
			mqtttunnel_fail(t, "WebSocket upgrade: response headers too long");
		return;
	}
	hl = (size_t)(end - head) + 4;
	end[2] = '\0';
	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		char *nl = strstr(head, "\r\n");
		if (nl)
			*nl = '\0';
		mqtttunnel_fail(t, "WebSocket upgrade refused: %.80s", head);
		return;
	}
	snprintf(cat, sizeof cat, "%s%s", t->key, TUN_WS_GUID);
	if (!EVP_Digest(cat, strlen(cat), sha, &sl, EVP_sha1(), NULL) ||
	    mqttws_b64(sha, sl, want, sizeof want) < 0) {
		mqtttunnel_fail(t, "WebSocket upgrade: cannot compute the accept key");
		return;
	}
	if (!mqttws_header(head, "Sec-WebSocket-Accept", val, sizeof val) || strcmp(val, want) != 0) {
		mqtttunnel_fail(t, "WebSocket upgrade: wrong or missing Sec-WebSocket-Accept");
		return;
	}
	if (!mqttws_header(head, "Upgrade", val, sizeof val) || strcasecmp(val, "websocket") != 0) {
		mqtttunnel_fail(t, "WebSocket upgrade: no 'Upgrade: websocket'");
		return;
	}
	if (mqttws_header(head, "Sec-WebSocket-Protocol", val, sizeof val) &&
	    strcasecmp(val, "mqtt") != 0) {
		mqtttunnel_fail(t, "WebSocket upgrade: subprotocol '%s', not mqtt", val);
		return;
	}
	memmove(t->in, t->in + hl, t->in_len - hl);
	t->in_len -= hl;
	t->st = TUN_OPEN;
	t->reached = true;
}

size_t mqtttunnel_parse_broker(const uint8_t *p, size_t n, size_t chunk, uint8_t *out,
			       size_t cap, bool *closed)
{
	/* One scratch tunnel, kept: a fresh 140 KiB allocation per call is most of a fuzz run. */
	static struct mqtttunnel *t;
	size_t total = 0, off = 0;
	static char host[] = "fuzz";

	*closed = true;
	if (!t && !(t = malloc(sizeof *t)))
		return 0;
	memset(t, 0, sizeof *t);
	t->lfd = t->cfd = t->rfd = -1;
	t->ws = true;
	t->host = host;
	t->st = TUN_UPGRADE;
	snprintf(t->key, sizeof t->key, "dGhlIHNhbXBsZSBub25jZQ==");
	if (!chunk)
		chunk = 1;
	for (;;) {
		size_t k = n - off < chunk ? n - off : chunk;
		bool moved = false;
		if (k > sizeof t->in - t->in_len)
			k = sizeof t->in - t->in_len;
		memcpy(t->in + t->in_len, p + off, k);
		t->in_len += k;
		off += k;
		if (t->st == TUN_UPGRADE)
			mqttws_upgrade_response(t);
		if (t->st == TUN_OPEN)
			moved = mqttws_deframe(t);
		if (t->down_len) {
			size_t c = total < cap ? cap - total : 0;
			memcpy(out + total, t->down, t->down_len < c ? t->down_len : c);
			total += t->down_len;
			t->down_len = 0;
			moved = true;
		}
		t->up_len = 0;   /* pongs and close answers would go to the broker */
		if (t->st == TUN_CLOSED || (!k && !moved))
			break;
	}
	*closed = t->st == TUN_CLOSED;
	return total;
}
