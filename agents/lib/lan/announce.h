/* announce: codec of the UDP announce datagram of LAN protocol v1 (see docs/lan-protocol.md):
 * "fr1 " + hex HMAC-SHA256(announce key, BODY) + " " + BODY, BODY a JSON object; plus the
 * receiver's clock-window check and a bounded per-controller replay guard. */
#ifndef FR_ANNOUNCE_H
#define FR_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ANNOUNCE_MAX 8192          /* largest datagram, framing included */
#define ANNOUNCE_PROTO_VERSION 1   /* the "v" this code speaks */
#define ANNOUNCE_MAC_HEX 64
#define ANNOUNCE_HEADER_LEN (4 + ANNOUNCE_MAC_HEX + 1)  /* "fr1 " + mac + " " */
/* JSON numbers travel as doubles: seq and |ts| stay within the exactly representable range. */
#define ANNOUNCE_INT_MAX 9007199254740991LL             /* 2^53 - 1 */

struct announce {
	int v;
	char id[64];          /* [A-Za-z0-9_-]{1,63} */
	char name[128];       /* 1..127 bytes */
	uint16_t port;        /* link TCP port, 1..65535 */
	char boot[33];        /* 32 lowercase hex chars, random per process start */
	uint64_t seq;         /* 1..ANNOUNCE_INT_MAX, +1 per announce within a boot */
	int64_t ts;           /* unix seconds when sent, |ts| <= ANNOUNCE_INT_MAX */
	char version[32];     /* software version, 1..31 bytes */
	cJSON *actions;       /* array of objects with a string "name"; owned, announce_clear frees */
	cJSON *sensors;       /* array of objects with a string "name"; owned, announce_clear frees */
};

enum {
	ANNOUNCE_OK = 0,
	ANNOUNCE_ETOOBIG = -1,
	ANNOUNCE_EFORMAT = -2,   /* not "fr1 <mac> <body>" */
	ANNOUNCE_EMAC = -3,
	ANNOUNCE_EJSON = -4,
	ANNOUNCE_EFIELD = -5,    /* missing or bad field */
	ANNOUNCE_EVERSION = -6,
	ANNOUNCE_ETIME = -7,
	ANNOUNCE_EREPLAY = -8,
	ANNOUNCE_ENOMEM = -9,
};

/* Static string, never NULL ("bad mac", "timestamp outside window", ...). */
const char *announce_strerror(int err);

/* Serialises a into buf as one datagram of *len bytes, followed by a NUL that is not part of it
 * (so cap must be >= *len + 1). "v" is always ANNOUNCE_PROTO_VERSION (a->v is ignored);
 * a->actions / a->sensors are borrowed (NULL is sent as []). Every field is checked as
 * announce_parse would: ANNOUNCE_EFIELD if one is bad, ANNOUNCE_ETOOBIG if the datagram does
 * not fit in cap or exceeds ANNOUNCE_MAX, ANNOUNCE_ENOMEM, or -EIO if HMAC failed. */
int announce_build(const struct announce *a, const uint8_t key[32], char *buf, size_t cap,
		   size_t *len);

/* Checks size, then framing and MAC (cheap: garbage and spoofs never reach the JSON parser),
 * then parses "v" (EVERSION unless 1) and every other field. out is overwritten without being
 * freed first; on ANNOUNCE_OK the caller owns out->actions/sensors (announce_clear), on error
 * out holds nothing to free. why (may be NULL) gets a one-line detail for the log, such as
 * "missing field 'port'"; its content may quote at most a few bytes of the datagram, sanitised. */
int announce_parse(const void *buf, size_t len, const uint8_t key[32], struct announce *out,
		   char *why, size_t whylen);

/* ANNOUNCE_OK if |a->ts - now_s| <= window_s, else ANNOUNCE_ETIME (also for window_s < 0). */
int announce_check_time(const struct announce *a, int64_t now_s, int window_s);

/* Frees actions/sensors and zeroes a; safe on a zeroed or already-cleared struct. */
void announce_clear(struct announce *a);

/* Replay guard. Per controller id it keeps the current boot, last seq and last ts.
 * Same boot: seq must be > last seq. Other boot: accepted only if ts >= last ts (a restarted
 * controller), and it becomes the current boot. Unknown ids are accepted; when max_ids ids are
 * known the least recently updated one is forgotten. Only announces that passed
 * announce_parse (MAC checked) should be fed to it. */
struct announce_replay;
/* NULL on max_ids == 0 (errno EINVAL) or out of memory. Caller owns; announce_replay_free. */
struct announce_replay *announce_replay_new(size_t max_ids);
void announce_replay_free(struct announce_replay *r);
/* ANNOUNCE_OK (and records a) or ANNOUNCE_EREPLAY (state unchanged). */
int announce_replay_check(struct announce_replay *r, const struct announce *a);

/* A receiver's whole check in its order: announce_parse, announce_check_time(now_s,
 * window_s), announce_replay_check(r). On ANNOUNCE_OK the caller owns out's arrays
 * (announce_clear); on error out holds nothing to free. */
int announce_receive(const void *buf, size_t len, const uint8_t key[32], int64_t now_s,
		     int window_s, struct announce_replay *r, struct announce *out, char *why,
		     size_t whylen);

#endif
