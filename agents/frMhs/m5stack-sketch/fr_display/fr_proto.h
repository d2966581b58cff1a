/* fr_proto: the device side of frMhs's serial display protocol, version 1
 * (docs/display-protocol.md): line framing, escapes, frames, the frame-number check that asks
 * for a sync, the heartbeat silence and the goodbye. Plain C with no Arduino or M5Stack header,
 * so the sketch (fr_display.ino) and the host tests (tests/unit/test_fr_proto.c, the fuzz target
 * tests/fuzz/fuzz_fr_proto.c) compile this very file. No allocation: the caller owns the
 * struct (the sketch has one static instance). */
#ifndef FR_PROTO_H
#define FR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FR_PROTO_LINE_MAX 512       /* bytes of a line, newline included */
#define FR_PROTO_SILENCE_MS 6000    /* no line for this long: "no home server" */
#define FR_PROTO_SYNC "FR1 sync\n"  /* the request for a full-state frame */

/* What the screen shows: the fields of docs/display-protocol.md, unescaped. Strings are
 * UTF-8 as published (possibly invalid); escaped control bytes are kept as bytes, except
 * \x00, which a C string cannot hold and becomes '?'. */
struct fr_proto_state {
	char server[FR_PROTO_LINE_MAX];
	char home[FR_PROTO_LINE_MAX];
	bool broker_up;
	long online, total;
	char cmd[FR_PROTO_LINE_MAX];
	char text[FR_PROTO_LINE_MAX];
	bool stopped;                 /* frMhs said bye (clean exit); cleared by hello */
};

struct fr_proto {
	struct fr_proto_state cur;    /* fields applied as they arrive */
	struct fr_proto_state shown;  /* cur as of the last end (or bye): what to draw */
	char line[FR_PROTO_LINE_MAX];
	size_t len;
	bool skipping;                /* inside a line longer than the protocol allows */
	bool have_frame;              /* an end seen since the last hello: numbers are checked */
	unsigned long last_end;
	bool heard;                   /* a protocol line arrived since start */
	uint32_t last_heard_ms;
	/* Counters (for tests and a debug view); rejected lines also leave their reason. */
	unsigned long frames, pings, syncs, rejected, ignored;
	const char *why;              /* reason of the last rejected line, static string */
};

/* What fr_proto_feed asks the caller to do (bits). */
enum {
	FR_PROTO_DRAW = 1,            /* redraw from p->shown (a frame ended, or bye) */
	FR_PROTO_SEND_SYNC = 2,       /* write FR_PROTO_SYNC to the port (bytes were lost) */
};

/* The state of a device that has just started: every field at its default. */
void fr_proto_init(struct fr_proto *p);
/* Feeds n received bytes, at millis() now_ms. Returns FR_PROTO_* bits for all of them. Any
 * byte sequence is accepted: lines that are not the protocol are ignored (not "FR1 ") or
 * rejected (bad key, escape, number, raw control byte; p->why says which), lines longer than
 * FR_PROTO_LINE_MAX are dropped, and none of them changes what is shown. */
unsigned fr_proto_feed(struct fr_proto *p, const char *buf, size_t n, uint32_t now_ms);
/* No protocol line for FR_PROTO_SILENCE_MS (or none yet): frMhs is gone (wraps with millis). */
bool fr_proto_silent(const struct fr_proto *p, uint32_t now_ms);
/* For a font with ASCII only: s with each UTF-8 character outside ASCII (and each byte of
 * invalid UTF-8) as '?', control bytes other than '\n' as ' '. Writes at most cap bytes
 * including the NUL; returns the length. */
size_t fr_proto_ascii(char *out, size_t cap, const char *s);

#ifdef __cplusplus
}
#endif

#endif
