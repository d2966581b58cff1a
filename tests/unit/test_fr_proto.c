/* test_fr_proto: the device side of docs/display-protocol.md (the reference M5Stack sketch's
 * fr_proto.c), fed the bytes a real frMhs sent (tests/unit/fixtures/m5stack/, made by
 * capture.sh there), cut at every size and at every byte for a replug, and the protocol's rules
 * one by one: line endings, lines that are not ours, rejected lines, escapes, the 512-byte
 * bound, frames and their numbers, the heartbeat silence, bye, garbage. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "fr_proto.h"

static struct fr_proto p;   /* 4 KiB of state: static, as on the device */

#define capture(name) fixture_read("m5stack/" name)

/* Lines of the capture starting with prefix, counted without the parser. */
static unsigned count_lines(const struct fixture *f, const char *prefix)
{
	unsigned n = 0;
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < f->n; i++)
		if ((i == 0 || f->b[i - 1] == '\n') && i + pl <= f->n && !memcmp(f->b + i, prefix, pl))
			n++;
	return n;
}

static unsigned feed(const char *s) { return fr_proto_feed(&p, s, strlen(s), 0); }

/* The defaults of docs/display-protocol.md: home empty, broker down, 0/0, cmd and text empty. */
static void assert_defaults(const struct fr_proto_state *s)
{
	ck_assert_str_eq(s->home, "");
	ck_assert(!s->broker_up);
	ck_assert_int_eq(s->online, 0);
	ck_assert_int_eq(s->total, 0);
	ck_assert_str_eq(s->cmd, "");
	ck_assert_str_eq(s->text, "");
	ck_assert(!s->stopped);
}

START_TEST(defaults)
{
	fr_proto_init(&p);
	assert_defaults(&p.shown);
	ck_assert(fr_proto_silent(&p, 0));   /* nothing heard yet: "no home server" */
	ck_assert(fr_proto_silent(&p, 100000));
}
END_TEST

/* What the device showed at each end of session 1, consecutive repeats collapsed. */
#define SEEN_MAX 64
struct seen {
	char text[SEEN_MAX][FR_PROTO_LINE_MAX];
	char cmd[SEEN_MAX][FR_PROTO_LINE_MAX];
	long counts[SEEN_MAX][2];
	bool broker[SEEN_MAX];
	unsigned ntext, ncmd, ncounts, nbroker;
};

static void seen_add(struct seen *s, const struct fr_proto_state *st)
{
	if ((s->ntext == 0 || strcmp(s->text[s->ntext - 1], st->text)) && s->ntext < SEEN_MAX)
		strcpy(s->text[s->ntext++], st->text);
	if ((s->ncmd == 0 || strcmp(s->cmd[s->ncmd - 1], st->cmd)) && s->ncmd < SEEN_MAX)
		strcpy(s->cmd[s->ncmd++], st->cmd);
	if ((s->ncounts == 0 || s->counts[s->ncounts - 1][0] != st->online ||
	     s->counts[s->ncounts - 1][1] != st->total) && s->ncounts < SEEN_MAX) {
		s->counts[s->ncounts][0] = st->online;
		s->counts[s->ncounts++][1] = st->total;
	}
	if ((s->nbroker == 0 || s->broker[s->nbroker - 1] != st->broker_up) && s->nbroker < SEEN_MAX)
		s->broker[s->nbroker++] = st->broker_up;
}

START_TEST(real_session)
{
	static struct seen s;
	struct fixture f = capture("session1.bin");
	unsigned draws = 0;
	fr_proto_init(&p);
	memset(&s, 0, sizeof s);
	/* Byte by byte, as Serial.read() delivers it; the screen as drawn at each end. */
	for (size_t i = 0; i < f.n; i++) {
		unsigned r = fr_proto_feed(&p, f.b + i, 1, (uint32_t)i);
		ck_assert_msg(!(r & FR_PROTO_SEND_SYNC), "sync request at byte %zu", i);
		if (r & FR_PROTO_DRAW) {
			draws++;
			seen_add(&s, &p.shown);
		}
	}
	ck_assert_msg(p.rejected == 0, "rejected a line of frMhs: %s", p.why);
	ck_assert_uint_eq(p.syncs, 0);
	ck_assert_uint_eq(p.frames, count_lines(&f, "FR1 end="));
	ck_assert_uint_eq(draws, p.frames);
	ck_assert_uint_eq(p.pings, count_lines(&f, "FR1 ping="));
	ck_assert_uint_eq(p.ignored, 1);   /* the newline that starts a session */
	ck_assert(count_lines(&f, "FR1 hello=") == 2);   /* the opening, the sync request */

	/* The scenario of capture.sh, in order. */
	static const char *texts[] = {
		"", "hello", "two\nlines\\ tab\there caf\xc3\xa9",
		"\xe5\x8f\xb0\xe6\x89\x80\xe3\x81\xae\xe9\x9b\xbb\xe6\xb0\x97\xe3\x82\x92\xe6\xb6\x88"
		"\xe3\x81\x97\xe3\x81\xbe\xe3\x81\x97\xe3\x81\x9f",   /* 台所の電気を消しました */
		"\xff\xfe caf\xc3", NULL /* 125 x \x01, cut before あいう */, "",
	};
	ck_assert_uint_eq(s.ntext, sizeof texts / sizeof texts[0]);
	for (unsigned i = 0; i < s.ntext; i++) {
		if (texts[i]) {
			ck_assert_str_eq(s.text[i], texts[i]);
			continue;
		}
		/* "FR1 text=" + 125 x "\x01" is 509 bytes: "あ" would make the line 513. */
		ck_assert_uint_eq(strlen(s.text[i]), 125);
		ck_assert_uint_eq(strspn(s.text[i], "\x01"), 125);
	}
	ck_assert_uint_eq(s.ncmd, 3);
	ck_assert_str_eq(s.cmd[0], "");
	ck_assert_str_eq(s.cmd[1], "c2/rec ok");
	ck_assert_str_eq(s.cmd[2], "c2/fail failed");
	ck_assert_uint_eq(s.ncounts, 3);
	ck_assert(s.counts[0][0] == 0 && s.counts[0][1] == 0);
	ck_assert(s.counts[1][0] == 1 && s.counts[1][1] == 1);
	ck_assert(s.counts[2][0] == 0 && s.counts[2][1] == 1);
	ck_assert_uint_eq(s.nbroker, 2);
	ck_assert(!s.broker[0] && s.broker[1]);
	ck_assert_str_eq(p.shown.home, "home1");
	ck_assert_msg(!strncmp(p.shown.server, "frMhs ", 6), "server %s", p.shown.server);
	ck_assert(!fr_proto_silent(&p, (uint32_t)f.n));
	free(f.b);
}
END_TEST

static void assert_session2_end(void)
{
	ck_assert_str_eq(p.shown.home, "home1");
	ck_assert(!p.shown.broker_up);
	ck_assert_int_eq(p.shown.online, 0);
	ck_assert_int_eq(p.shown.total, 1);
	ck_assert_str_eq(p.shown.cmd, "c2/fail failed");
	ck_assert_str_eq(p.shown.text, "while unplugged");
	ck_assert(p.shown.stopped);
}

START_TEST(session_in_chunks)
{
	struct fixture f = capture("session2.bin");
	for (size_t chunk = 1; chunk <= f.n; chunk++) {
		fr_proto_init(&p);
		for (size_t i = 0; i < f.n; i += chunk)
			fr_proto_feed(&p, f.b + i, i + chunk <= f.n ? chunk : f.n - i, 0);
		ck_assert_uint_eq(p.rejected, 0);
		ck_assert_uint_eq(p.frames, count_lines(&f, "FR1 end="));
		assert_session2_end();
	}
	free(f.b);
}
END_TEST

/* The cable pulled at every byte of session 1, then plugged back without the device
 * resetting: whatever partial line it holds, session 2 (which starts with a newline) gives the
 * right screen, and at most the partial line is lost. */
START_TEST(replug_mid_line)
{
	struct fixture a = capture("session1.bin"), b = capture("session2.bin");
	for (size_t cut = 0; cut <= a.n; cut++) {
		fr_proto_init(&p);
		fr_proto_feed(&p, a.b, cut, 0);
		unsigned long rejected = p.rejected;
		bool mid_line = cut > 0 && a.b[cut - 1] != '\n';
		fr_proto_feed(&p, b.b, b.n, 1);
		ck_assert_msg(p.rejected - rejected <= (mid_line ? 1u : 0u), "cut at %zu: %s", cut, p.why);
		assert_session2_end();
	}
	free(a.b);
	free(b.b);
}
END_TEST

/* session 2 as a restarted frMhs would send it: frames numbered from 1 again. */
static char *renumbered(const struct fixture *b, size_t *n)
{
	char *s = malloc(b->n + 1);
	ck_assert(s != NULL);
	memcpy(s, b->b, b->n + 1);
	char *e14 = strstr(s, "FR1 end=14\n"), *e15 = strstr(s, "FR1 end=15\n");
	ck_assert(e14 && e15);
	/* Same length: "end=14" -> "end=01" keeps the byte count; a device reads 01 as 1. */
	memcpy(e14, "FR1 end=01", 10);
	memcpy(e15, "FR1 end=02", 10);
	*n = b->n;
	return s;
}

/* Why a session starts with a newline: a partial line left by the last frMhs would otherwise
 * swallow "hello", and the restarted frMhs's frame numbers would look like lost lines. */
START_TEST(newline_saves_hello)
{
	struct fixture a = capture("session1.bin"), b = capture("session2.bin");
	size_t n;
	char *s = renumbered(&b, &n);
	ck_assert_int_eq(s[0], '\n');
	fr_proto_init(&p);
	fr_proto_feed(&p, a.b, a.n, 0);
	feed("FR1 text=cut of");                     /* the old frMhs's last, partial line */
	ck_assert(!(fr_proto_feed(&p, s, n, 1) & FR_PROTO_SEND_SYNC));
	ck_assert_uint_eq(p.syncs, 0);
	assert_session2_end();

	fr_proto_init(&p);
	fr_proto_feed(&p, a.b, a.n, 0);
	feed("FR1 text=cut of");
	ck_assert(fr_proto_feed(&p, s + 1, n - 1, 1) & FR_PROTO_SEND_SYNC);   /* no newline */
	ck_assert_uint_eq(p.syncs, 1);
	free(s);
	free(a.b);
	free(b.b);
}
END_TEST

START_TEST(line_endings)
{
	fr_proto_init(&p);
	ck_assert_uint_eq(feed("FR1 home=crlf\r\nFR1 end=1\r\n"), FR_PROTO_DRAW);
	ck_assert_str_eq(p.shown.home, "crlf");
	feed("FR1 home=a\rb\nFR1 end=2\n");             /* a \r inside is a raw control byte */
	ck_assert_str_eq(p.why, "raw control byte");
	ck_assert_str_eq(p.shown.home, "crlf");
	ck_assert_uint_eq(p.rejected, 1);
}
END_TEST

START_TEST(not_ours)
{
	fr_proto_init(&p);
	/* ESP32 boot noise, another protocol version, the wrong case, an empty line. */
	static const char noise[] = "\x00rst:0x1 (POWERON_RESET),boot:0x13\r\nFR2 hello=1\n"
				    "fr1 home=x\n\nFR1home=x\n";
	unsigned r = fr_proto_feed(&p, noise, sizeof noise - 1, 0);
	ck_assert_uint_eq(r, 0);
	ck_assert_uint_eq(p.ignored, 5);
	ck_assert_uint_eq(p.rejected, 0);
	ck_assert(fr_proto_silent(&p, 0));              /* none of it is frMhs talking */
	feed("FR1 end=1\n");
	assert_defaults(&p.shown);
}
END_TEST

START_TEST(rejected_lines)
{
#define BAD(line, why) { line, sizeof line - 1, why }   /* the length: past a NUL */
	static const struct {
		const char *line;
		size_t n;
		const char *why;
	} bad[] = {
		BAD("FR1 home\n", "no key=value"),
		BAD("FR1 =x\n", "no key=value"),
		BAD("FR1 Home=x\n", "key is not [a-z]+"),
		BAD("FR1 ho-me=x\n", "key is not [a-z]+"),
		BAD("FR1 home=a\\qb\n", "bad escape"),
		BAD("FR1 home=a\\x4\n", "bad escape"),
		BAD("FR1 home=a\\xg0\n", "bad escape"),
		BAD("FR1 home=ab\\\n", "bad escape"),
		BAD("FR1 home=a\tb\n", "raw control byte"),
		BAD("FR1 home=a\x7f" "b\n", "raw control byte"),
		BAD("FR1 home=a\0b\n", "raw control byte"),
		BAD("FR1 online=-1\n", "count is not a decimal number"),
		BAD("FR1 online=1a\n", "count is not a decimal number"),
		BAD("FR1 total=\n", "count is not a decimal number"),
		BAD("FR1 total=1234567890\n", "count is not a decimal number"),
		BAD("FR1 broker=UP\n", "broker is neither up nor down"),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fr_proto_init(&p);
		feed("FR1 home=h\nFR1 online=2\nFR1 total=3\nFR1 broker=up\nFR1 end=1\n");
		const char *l = bad[i].line;
		ck_assert_uint_eq(fr_proto_feed(&p, l, bad[i].n, 0), 0);
		ck_assert_msg(p.rejected == 1, "%s not rejected", l);
		ck_assert_str_eq(p.why, bad[i].why);
		feed("FR1 end=2\n");                     /* the frame still ends, unchanged */
		ck_assert_str_eq(p.shown.home, "h");
		ck_assert(p.shown.online == 2 && p.shown.total == 3 && p.shown.broker_up);
		ck_assert_uint_eq(p.syncs, 0);
	}
}
END_TEST

START_TEST(escapes)
{
	fr_proto_init(&p);
	feed("FR1 text=a\\\\b\\nc\\rd\\te\\x1bf\\x7fg\\x00h\\x41\\x1B=\n"
	     "FR1 cmd=key=value=more\nFR1 end=1\n");
	ck_assert_str_eq(p.shown.text, "a\\b\nc\rd\te\x1b" "f\x7fg?hA\x1b=");
	ck_assert_str_eq(p.shown.cmd, "key=value=more");   /* the value: after the first '=' */
	ck_assert_uint_eq(p.rejected, 0);
}
END_TEST

START_TEST(ascii_font)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "caf\xc3\xa9", "caf?" },
		{ "\xe5\x8f\xb0\xe6\x89\x80", "??" },                /* 台所 */
		{ "\xf0\x9f\x98\x80!", "?!" },                      /* U+1F600 */
		{ "\xff\xfe caf\xc3", "?? caf?" },                  /* invalid: one ? per byte */
		{ "\xe0\x80\x80", "???" },                          /* overlong */
		{ "\xed\xa0\x80", "???" },                          /* surrogate */
		{ "\xf4\x90\x80\x80", "????" },                     /* above U+10FFFF */
		{ "\xe3\x81", "??" },                               /* cut short */
		{ "a\tb\rc\x01\x7f\nd", "a b c ?\nd" },
	};
	char out[64];
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		ck_assert_uint_eq(fr_proto_ascii(out, sizeof out, t[i].in), strlen(t[i].out));
		ck_assert_str_eq(out, t[i].out);
	}
	ck_assert_uint_eq(fr_proto_ascii(out, 4, "abcdef"), 3);
	ck_assert_str_eq(out, "abc");
	ck_assert_uint_eq(fr_proto_ascii(out, 0, "abc"), 0);
}
END_TEST

/* "FR1 text=" + n bytes of 'a' + end, newline included: 10 + n bytes. */
static void feed_text_line(size_t n, const char *eol)
{
	static char l[200000];
	memcpy(l, "FR1 text=", 9);
	memset(l + 9, 'a', n);
	strcpy(l + 9 + n, eol);
	feed(l);
}

START_TEST(line_bound)
{
	fr_proto_init(&p);
	feed_text_line(502, "\n");                   /* 512 bytes: the largest line */
	feed("FR1 end=1\n");
	ck_assert_uint_eq(strlen(p.shown.text), 502);
	ck_assert_uint_eq(p.rejected, 0);
	feed_text_line(503, "\n");                   /* 513: dropped, the next line is read */
	ck_assert_uint_eq(p.rejected, 1);
	ck_assert_str_eq(p.why, "line longer than 512 bytes");
	feed_text_line(501, "\r\n");                 /* 512 with the \r */
	feed_text_line(502, "\r\n");                 /* 513 */
	ck_assert_uint_eq(p.rejected, 2);
	feed_text_line(150000, "");                  /* no newline for a long time */
	feed("\nFR1 text=short\nFR1 end=2\n");
	ck_assert_uint_eq(p.rejected, 3);
	ck_assert_str_eq(p.shown.text, "short");
	ck_assert_uint_eq(p.syncs, 0);
}
END_TEST

START_TEST(frames)
{
	fr_proto_init(&p);
	ck_assert_uint_eq(feed("FR1 hello=1\nFR1 home=h\nFR1 online=1\n"), 0);
	ck_assert_str_eq(p.shown.home, "");          /* applied, not drawn before the end */
	ck_assert_uint_eq(feed("FR1 ping=1\nFR1 colour=red\n"), 0);   /* unknown key ignored */
	ck_assert_uint_eq(feed("FR1 end=7\n"), FR_PROTO_DRAW);
	ck_assert_str_eq(p.shown.home, "h");
	ck_assert_uint_eq(feed("FR1 total=2\nFR1 end=8\n"), FR_PROTO_DRAW);
	ck_assert_int_eq(p.shown.total, 2);
	/* end=10 after 8: a frame was lost. */
	ck_assert_uint_eq(feed("FR1 cmd=x\nFR1 end=10\n"), FR_PROTO_DRAW | FR_PROTO_SEND_SYNC);
	ck_assert_str_eq(p.shown.cmd, "x");
	/* The answer: a full-state frame, numbering continues (no new gap). */
	ck_assert_uint_eq(feed("FR1 hello=1\nFR1 home=h\nFR1 end=11\nFR1 text=t\nFR1 end=12\n"),
			  FR_PROTO_DRAW);
	ck_assert_str_eq(p.shown.cmd, "");           /* hello reset it to its default */
	ck_assert_int_eq(p.shown.total, 0);
	/* A restarted frMhs: hello, then numbers from 1 are no gap. */
	ck_assert_uint_eq(feed("FR1 hello=1\nFR1 end=1\n"), FR_PROTO_DRAW);
	/* A damaged number asks for the full state too. */
	ck_assert_uint_eq(feed("FR1 end=x\n"), FR_PROTO_DRAW | FR_PROTO_SEND_SYNC);
	ck_assert_uint_eq(feed("FR1 end=5\n"), FR_PROTO_DRAW);   /* no frame to compare with */
	ck_assert_uint_eq(p.syncs, 2);
	ck_assert_uint_eq(p.frames, 8);
	ck_assert_uint_eq(p.pings, 1);
}
END_TEST

START_TEST(silence)
{
	fr_proto_init(&p);
	fr_proto_feed(&p, "FR1 ping=1\n", 11, 1000);
	ck_assert(!fr_proto_silent(&p, 1000));
	ck_assert(!fr_proto_silent(&p, 7000));       /* 6 s without a line */
	ck_assert(fr_proto_silent(&p, 7001));
	fr_proto_feed(&p, "garbage\nFR1 x\n", 14, 5000);   /* not frMhs talking */
	ck_assert(fr_proto_silent(&p, 7001));
	fr_proto_feed(&p, "FR1 ping=2\n", 11, 8000);
	ck_assert(!fr_proto_silent(&p, 8000));
	/* millis() wraps after 49.7 days. */
	fr_proto_feed(&p, "FR1 ping=3\n", 11, 0xfffff000u);
	ck_assert(!fr_proto_silent(&p, 0x00000100u));
	ck_assert(fr_proto_silent(&p, 0x00002000u));
}
END_TEST

START_TEST(bye)
{
	fr_proto_init(&p);
	feed("FR1 hello=1\nFR1 home=h\nFR1 end=1\n");
	ck_assert_uint_eq(feed("FR1 bye=stopped\n"), FR_PROTO_DRAW);   /* at once, no frame */
	ck_assert(p.shown.stopped);
	ck_assert_str_eq(p.shown.home, "h");
	feed("FR1 hello=1\nFR1 home=h\n");
	ck_assert(p.shown.stopped);                  /* until the next frame is drawn */
	feed("FR1 end=1\n");
	ck_assert(!p.shown.stopped);
}
END_TEST

/* Random bytes (with a bias to the protocol's own characters) in random chunks: nothing shown
 * changes without an end, no crash, and a valid frame afterwards is read exactly. */
START_TEST(garbage)
{
	static char junk[1 << 20];
	static const char alphabet[] = "FR1 =\\\nxnrt0123456789abcdefhelloendtext\r\x01\x80\xff";
	uint32_t seed = 12345;
	for (size_t i = 0; i < sizeof junk; i++) {
		seed = seed * 1103515245u + 12345u;
		uint32_t r = seed >> 8;
		junk[i] = r % 3 ? alphabet[r / 3 % (sizeof alphabet - 1)] : (char)(r >> 8);
	}
	fr_proto_init(&p);
	for (size_t i = 0; i < sizeof junk;) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 700;
		if (n > sizeof junk - i)
			n = sizeof junk - i;
		fr_proto_feed(&p, junk + i, n, 0);
		i += n;
	}
	ck_assert_uint_gt(p.rejected + p.ignored, 1000);
	feed("\nFR1 hello=1\nFR1 home=after\nFR1 broker=up\nFR1 online=1\nFR1 total=2\n"
	     "FR1 cmd=c/a ok\nFR1 text=fine\nFR1 end=1\n");
	ck_assert_str_eq(p.shown.home, "after");
	ck_assert(p.shown.broker_up && p.shown.online == 1 && p.shown.total == 2);
	ck_assert_str_eq(p.shown.cmd, "c/a ok");
	ck_assert_str_eq(p.shown.text, "fine");
	ck_assert(!p.shown.stopped);
}
END_TEST

static Suite *fr_proto_suite(void)
{
	Suite *s = suite_create("fr_proto");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, real_session);
	tcase_add_test(tc, session_in_chunks);
	tcase_add_test(tc, replug_mid_line);
	tcase_add_test(tc, newline_saves_hello);
	tcase_add_test(tc, line_endings);
	tcase_add_test(tc, not_ours);
	tcase_add_test(tc, rejected_lines);
	tcase_add_test(tc, escapes);
	tcase_add_test(tc, ascii_font);
	tcase_add_test(tc, line_bound);
	tcase_add_test(tc, frames);
	tcase_add_test(tc, silence);
	tcase_add_test(tc, bye);
	tcase_add_test(tc, garbage);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fr_proto_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
