/* history: every sensor state change of every home (the retained <prefix>/<home>/ctl/<ctl>/
 * state/<sensor> topics of docs/topics.md), recorded in one SQLite file (WAL) and read back for
 * the shim's "history" op (docs/shim.md). Two files: history.c the file and the recording,
 * historyq.c the queries.
 *
 * Two series per sensor: the raw points (every value, numbers and strings, kept raw_keep), and
 * step-wide buckets (default 5 minutes) of the numeric values with count, sum, min and max,
 * kept agg_keep (default a year). A bucket is updated in the same transaction as the raw point
 * that feeds it, so both series always agree and a restart loses nothing that was committed.
 * A point is identified by its sensor and its ts: a value seen again (a broker reconnect
 * re-delivers every retained state) is recorded once; a point older than raw_keep is not
 * recorded at all (its raw row would be gone, and it would count twice in its bucket).
 *
 * Writes are batched on the loop thread: history_record only queues the point in memory; the
 * queue is written in one transaction when it holds flush_max points or flush_ms after its
 * first point, whichever comes first (docs/frAroundWeb.conf.example says why, with figures).
 * Reads answer in chunks (struct history_cursor), so one large answer never holds the loop long
 * nor needs more memory than a chunk.
 *
 * Ownership: struct history is owned by the caller (history_close, which writes what is
 * queued). A struct history_cursor is owned by the caller (history_cursor_free) and must be
 * freed before the history. Strings passed in are copied. */
#ifndef WEB_HISTORY_H
#define WEB_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct history;
struct history_cursor;

struct history_opts {
	const char *path;        /* the SQLite file (created if missing) */
	const char *prefix;      /* topic prefix, "fr" */
	uint64_t raw_keep_ms;    /* raw points older than this are deleted */
	uint64_t agg_keep_ms;    /* buckets older than this are deleted */
	uint64_t step_ms;        /* bucket width; fixed for the life of a file */
	uint64_t flush_ms;       /* a queued point is written at most this late */
	size_t flush_max;        /* ... or as soon as this many are queued */
	size_t queue_max;        /* points queued beyond this are dropped (logged) */
};

/* The defaults: raw 7 days, buckets 5 minutes for 365 days, flush 1 s or 1000 points,
 * queue 100000. */
void history_defaults(struct history_opts *o);

/* Opens (creates) the file. loop may be NULL: then nothing is written until history_flush
 * (tests, tools). NULL on error (logged), e.g. a file made with another step_ms. */
struct history *history_open(struct loop *loop, const struct history_opts *o);
/* Writes what is queued, then closes. */
void history_close(struct history *h);

/* A parsed state payload. */
struct history_point {
	int64_t ts;              /* ms */
	bool is_num;
	double num;              /* is_num */
	const char *text;        /* !is_num: borrowed from the parsed payload's root */
};

/* Parses a state payload {"value": <finite number or string of at most 256 bytes>, "ts": <ms,
 * integer, 1..2^53>} (other members ignored). Returns 0, or -EINVAL with the reason in why.
 * On success *root owns the parsed document that p->text borrows from (cJSON_Delete it). */
int history_parse_state(const void *payload, size_t len, struct history_point *p, void **root,
			char *why, size_t whylen);

/* A message from the broker: if topic is a state topic, queues its point. A retained-store
 * delete (empty payload) is not a point. Returns 1 when queued (a point recorded before is
 * skipped when the queue is written), 0 when the topic is not a state topic or the point is
 * older than raw_keep, -EINVAL for a payload that is not a state
 * (logged with the reason, at most one line a minute), -ENOBUFS when the queue is full (logged
 * once per fill). */
int history_on_message(struct history *h, const char *topic, const void *payload, size_t len,
		       uint64_t now_ms);

/* Writes the queue now (one transaction). Returns 0 or -EIO (logged; the points are kept
 * for the next try unless the queue overflows). */
int history_flush(struct history *h);
/* Deletes what is past its retention, as of now_ms. Runs by itself hourly with a loop. */
int history_purge(struct history *h, uint64_t now_ms);
/* Since open: points written, dropped (queue full) and refused (not a state); queued now; the
 * slowest write transaction. */
struct history_stats {
	uint64_t written, dropped, bad, slowest_flush_us;
	size_t queued;
};
void history_stats(const struct history *h, struct history_stats *st);

/* A query: [from, to] in ms (both included), at most max_points points. */
struct history_query {
	const char *home, *ctl, *sensor;
	int64_t from, to;
	size_t max_points;
};

/* How an answer is made (docs/shim.md "history"). */
enum history_res {
	HISTORY_RAW,        /* every point: [ts, value] */
	HISTORY_BUCKETS,    /* numeric buckets of step ms: [ts, mean, min, max] */
};

/* Plans the answer (which series, which bucket width) as of now_ms and returns a cursor over
 * it; NULL on error (logged). */
struct history_cursor *history_query(struct history *h, const struct history_query *q,
				     uint64_t now_ms);
enum history_res history_cursor_res(const struct history_cursor *c);
/* The bucket width in ms (0 for raw). */
int64_t history_cursor_step(const struct history_cursor *c);
/* Appends up to n more points as JSON array elements ("[..],[..]", no brackets around the
 * whole) to *buf (malloc'd, grown as needed; *len and *cap updated), stopping after the point
 * that makes them max_bytes or more. Returns how many were appended, or -EIO / -ENOMEM. */
long history_cursor_next(struct history_cursor *c, size_t n, size_t max_bytes, char **buf,
			 size_t *len, size_t *cap);
/* True once every point of the answer was handed out. */
bool history_cursor_done(const struct history_cursor *c);
/* Points handed out so far. */
size_t history_cursor_count(const struct history_cursor *c);
void history_cursor_free(struct history_cursor *c);

/* A double as a JSON number: exact when it has at most 6 decimals (every sensor reading seen
 * so far), else 15 significant digits. Writes at most 25 bytes and a NUL; returns the length. */
size_t history_fmt_num(char *out, double v);

#endif
