/* history: sensor history in SQLite; see history.h. */
#include "history.h"

#include "command.h"
#include "log.h"
#include "loop.h"
#include "topic.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HISTORY_SCHEMA 1
#define HISTORY_TEXT_MAX 256
#define HISTORY_PURGE_EVERY_MS (3600 * 1000)
/* At most one line per this many ms about garbage payloads (a broken home could send many). */
#define HISTORY_LOG_EVERY_MS 60000
/* A ts this far ahead of our clock is a broken clock, not a reading. */
#define HISTORY_FUTURE_MS (24LL * 3600 * 1000)
#define HISTORY_TS_MAX 9007199254740992LL

struct qpoint {
	char home[TOPIC_NAME_MAX + 1], ctl[TOPIC_NAME_MAX + 1], sensor[TOPIC_NAME_MAX + 1];
	int64_t ts;
	bool is_num;
	double num;
	char *text;   /* owned; !is_num */
};

enum stmt {
	S_SERIES_GET, S_SERIES_ADD, S_RAW_ADD, S_AGG_ADD, S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_SERIES_ALL, S_RAW_PURGE, S_AGG_PURGE, S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_SERIES_GET] = "SELECT id FROM series WHERE home = ?1 AND ctl = ?2 AND sensor = ?3",
	[S_SERIES_ADD] = "INSERT INTO series(home, ctl, sensor) VALUES (?1, ?2, ?3)",
	[S_RAW_ADD] = "INSERT OR IGNORE INTO raw(series, ts, value) VALUES (?1, ?2, ?3)",
	[S_AGG_ADD] = "INSERT INTO agg(series, ts, n, sum, min, max) VALUES (?1, ?2, 1, ?3, ?3, ?3) "
		      "ON CONFLICT(series, ts) DO UPDATE SET n = n + 1, sum = sum + excluded.sum, "
		      "min = min(min, excluded.min), max = max(max, excluded.max)",
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SERIES_ALL] = "SELECT id FROM series",
	[S_RAW_PURGE] = "DELETE FROM raw WHERE series = ?1 AND ts < ?2",
	[S_AGG_PURGE] = "DELETE FROM agg WHERE series = ?1 AND ts < ?2",
};

struct history {
	struct history_opts o;
	char *path, *prefix;
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	struct loop *loop;
	struct loop_timer flush_timer, purge_timer;
	struct qpoint *q;
	size_t qlen, qcap;
	bool full_logged;
	uint64_t written, dropped, bad, slowest_us;
	uint64_t bad_logged_at, bad_quiet;
};

struct history_cursor {
	struct history *h;
	enum history_res res;
	int64_t series;          /* 0: no such sensor (an empty answer) */
	int64_t step;            /* bucket width; 0 raw */
	bool from_raw;           /* buckets computed from the raw points */
	int64_t next, to;        /* the next ts / bucket start to read, the end */
	int64_t base;            /* bucket grid origin */
	size_t left, count;
	sqlite3_stmt *st;
};

void history_defaults(struct history_opts *o)
{
	memset(o, 0, sizeof *o);
	o->prefix = "fr";
	o->raw_keep_ms = 7ULL * 24 * 3600 * 1000;
	o->agg_keep_ms = 365ULL * 24 * 3600 * 1000;
	o->step_ms = 300 * 1000;
	o->flush_ms = 1000;
	o->flush_max = 1000;
	o->queue_max = 100000;
}

/* --- the file --- */

static int db_exec(struct history *h, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(h->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_warnx("history %s: %s: %s", h->path, sql, err ? err : sqlite3_errmsg(h->db));
		sqlite3_free(err);
		return -EIO;
	}
	return 0;
}

/* The meta value of key as an integer; -1 if absent. */
static int64_t meta_get(struct history *h, const char *key)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	if (sqlite3_prepare_v2(h->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int meta_set(struct history *h, const char *key, int64_t v)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(h->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int history_schema(struct history *h)
{
	/* WAL: readers (shim answers) never wait for the writer and a commit is one sequential
	 * append; synchronous=NORMAL: no fsync per commit (the WAL is synced at checkpoints), so a
	 * power cut may lose the last second of points but never corrupts the file. */
	/* Reads through mmap: no copy from the page cache for every page of a year's answer
	 * (measured: a third of the answer's time went to read() copies). */
	if (db_exec(h, "PRAGMA journal_mode = WAL") || db_exec(h, "PRAGMA synchronous = NORMAL") ||
	    db_exec(h, "PRAGMA mmap_size = 268435456") ||
	    db_exec(h, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) ") ||
	    db_exec(h, "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, "
		       "home TEXT NOT NULL, ctl TEXT NOT NULL, sensor TEXT NOT NULL, "
		       "UNIQUE (home, ctl, sensor))") ||
	    /* value: REAL for a number, TEXT for a string (no column affinity: kept as bound). */
	    db_exec(h, "CREATE TABLE IF NOT EXISTS raw (series INTEGER NOT NULL, ts INTEGER NOT NULL, "
		       "value, PRIMARY KEY (series, ts)) WITHOUT ROWID") ||
	    db_exec(h, "CREATE TABLE IF NOT EXISTS agg (series INTEGER NOT NULL, ts INTEGER NOT NULL, "
		       "n INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, "
		       "PRIMARY KEY (series, ts)) WITHOUT ROWID"))
		return -EIO;
	int64_t schema = meta_get(h, "schema"), step = meta_get(h, "step_ms");
	if (schema > HISTORY_SCHEMA) {
		log_warnx("history %s: schema %" PRId64 " is newer than this frAroundWeb's (%d)",
			  h->path, schema, HISTORY_SCHEMA);
		return -EINVAL;
	}
	if (step >= 0 && step != (int64_t)h->o.step_ms) {
		/* Buckets of two widths cannot be merged; refusing beats a silently wrong chart. */
		log_warnx("history %s: made with step %" PRId64 " s, configured %" PRIu64 " s: set "
			  "history.step back or move the file away", h->path, step / 1000,
			  h->o.step_ms / 1000);
		return -EINVAL;
	}
	if ((schema < 0 && meta_set(h, "schema", HISTORY_SCHEMA) < 0) ||
	    (step < 0 && meta_set(h, "step_ms", (int64_t)h->o.step_ms) < 0))
		return -EIO;
	return 0;
}

static void history_on_flush(void *arg)
{
	history_flush(arg);
}

static void history_on_purge(void *arg)
{
	struct history *h = arg;
	history_purge(h, loop_wall_ms());
	loop_timer_start(h->loop, &h->purge_timer, HISTORY_PURGE_EVERY_MS);
}

struct history *history_open(struct loop *loop, const struct history_opts *o)
{
	struct history *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->o = *o;
	h->loop = loop;
	h->path = strdup(o->path);
	h->prefix = strdup(o->prefix);
	if (!h->path || !h->prefix)
		goto fail;
	h->o.path = h->path;
	h->o.prefix = h->prefix;
	int rc = sqlite3_open_v2(h->path, &h->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_warnx("history %s: cannot open: %s", h->path,
			  h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
		goto fail;
	}
	/* Another process holding the file (a backup, sqlite3 by hand) may lock it for a moment;
	 * longer than this and the batch waits for the next flush. */
	sqlite3_busy_timeout(h->db, 100);
	if (history_schema(h) < 0)
		goto fail;
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(h->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &h->st[i],
				       NULL) != SQLITE_OK) {
			log_warnx("history %s: %s: %s", h->path, stmt_sql[i], sqlite3_errmsg(h->db));
			goto fail;
		}
	}
	if (loop) {
		loop_timer_init(&h->flush_timer, history_on_flush, h);
		loop_timer_init(&h->purge_timer, history_on_purge, h);
		history_purge(h, loop_wall_ms());
		loop_timer_start(loop, &h->purge_timer, HISTORY_PURGE_EVERY_MS);
	}
	return h;
fail:
	history_close(h);
	return NULL;
}

static void queue_clear(struct history *h)
{
	for (size_t i = 0; i < h->qlen; i++)
		free(h->q[i].text);
	h->qlen = 0;
}

void history_close(struct history *h)
{
	if (!h)
		return;
	if (h->db && h->st[S_COUNT - 1])
		history_flush(h);
	if (h->loop) {
		loop_timer_stop(h->loop, &h->flush_timer);
		loop_timer_stop(h->loop, &h->purge_timer);
	}
	queue_clear(h);
	free(h->q);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(h->st[i]);
	if (h->db)
		sqlite3_close(h->db);
	free(h->path);
	free(h->prefix);
	free(h);
}

/* --- recording --- */

int history_parse_state(const void *payload, size_t len, struct history_point *p, void **root,
			char *why, size_t whylen)
{
	*root = NULL;
	memset(p, 0, sizeof *p);
	const char *end = NULL;
	cJSON *o = len ? cJSON_ParseWithLengthOpts(payload, len, &end, false) : NULL;
	if (!o) {
		snprintf(why, whylen, "not JSON");
		return -EINVAL;
	}
	/* The whole payload is the object: "{...} junk" is not a state. */
	for (; end < (const char *)payload + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
			snprintf(why, whylen, "junk after the JSON object");
			goto fail;
		}
	}
	if (!cJSON_IsObject(o)) {
		snprintf(why, whylen, "not a JSON object");
		goto fail;
	}
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
	if (!cJSON_IsNumber(ts) || !(ts->valuedouble >= 1) ||
	    ts->valuedouble > (double)HISTORY_TS_MAX || ts->valuedouble != floor(ts->valuedouble)) {
		snprintf(why, whylen, "'ts' must be an integer of 1..2^53 (ms)");
		goto fail;
	}
	p->ts = (int64_t)ts->valuedouble;
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		p->is_num = true;
		p->num = v->valuedouble;
	} else if (cJSON_IsString(v) && strlen(v->valuestring) <= HISTORY_TEXT_MAX) {
		p->text = v->valuestring;
		/* cJSON stops a string at an escaped NUL: "a\u0000b" would be recorded as "a". */
		if (command_json_nul(payload, len) >= 0) {
			snprintf(why, whylen, "'value' contains NUL");
			goto fail;
		}
	} else {
		snprintf(why, whylen, "'value' must be a number or a string of at most %d bytes",
			 HISTORY_TEXT_MAX);
		goto fail;
	}
	*root = o;
	return 0;
fail:
	cJSON_Delete(o);
	return -EINVAL;
}

static void history_bad(struct history *h, const char *topic, const char *why, uint64_t now)
{
	h->bad++;
	if (h->bad_logged_at && now - h->bad_logged_at < HISTORY_LOG_EVERY_MS) {
		h->bad_quiet++;
		return;
	}
	log_warnx("history: %s: not recorded: %s%s", topic, why,
		  h->bad_quiet ? " (and more bad states since the last line)" : "");
	h->bad_logged_at = now ? now : 1;
	h->bad_quiet = 0;
}

int history_on_message(struct history *h, const char *topic, const void *payload, size_t len,
		       uint64_t now)
{
	struct topic t;
	if (topic_parse(h->prefix, topic, &t) != TOPIC_CTL || strncmp(t.leaf, "state/", 6) != 0)
		return 0;
	const char *sensor = t.leaf + 6;
	if (!*sensor || strlen(sensor) > TOPIC_NAME_MAX || strchr(sensor, '/'))
		return 0;
	if (len == 0)
		return 0;   /* a retained state removed: nothing happened to the sensor */
	struct history_point p;
	void *root;
	char why[128];
	if (history_parse_state(payload, len, &p, &root, why, sizeof why) < 0) {
		history_bad(h, topic, why, now);
		return -EINVAL;
	}
	int rc = 0;
	if (p.ts > (int64_t)now + HISTORY_FUTURE_MS) {
		history_bad(h, topic, "'ts' more than a day ahead of this clock", now);
		rc = -EINVAL;
		goto out;
	}
	if (p.ts < (int64_t)now - (int64_t)h->o.raw_keep_ms)
		goto out;   /* past retention (see history.h): an old value re-delivered */
	if (h->qlen >= h->o.queue_max) {
		h->dropped++;
		if (!h->full_logged)
			log_warnx("history %s: %zu points waiting to be written: dropping new ones",
				  h->path, h->qlen);
		h->full_logged = true;
		rc = -ENOBUFS;
		goto out;
	}
	if (h->qlen == h->qcap) {
		size_t cap = h->qcap ? h->qcap * 2 : 64;
		struct qpoint *q = realloc(h->q, cap * sizeof *q);
		if (!q) {
			rc = -ENOMEM;
			goto out;
		}
		h->q = q;
		h->qcap = cap;
	}
	struct qpoint *e = &h->q[h->qlen];
	memset(e, 0, sizeof *e);
	if (!p.is_num && !(e->text = strdup(p.text))) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(e->home, t.home, sizeof e->home);
	memcpy(e->ctl, t.ctl, sizeof e->ctl);
	memcpy(e->sensor, sensor, strlen(sensor) + 1);
	e->ts = p.ts;
	e->is_num = p.is_num;
	e->num = p.num;
	h->qlen++;
	rc = 1;
	if (h->loop && h->qlen >= h->o.flush_max)
		history_flush(h);
	else if (h->loop && !loop_timer_armed(&h->flush_timer))
		loop_timer_start(h->loop, &h->flush_timer, h->o.flush_ms);
out:
	cJSON_Delete(root);
	return rc;
}

static int64_t series_id(struct history *h, const struct qpoint *e, bool create)
{
	sqlite3_stmt *st = h->st[S_SERIES_GET];
	int64_t id = 0;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, e->home, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->ctl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->sensor, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	if (id || !create)
		return id;
	st = h->st[S_SERIES_ADD];
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, e->home, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->ctl, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->sensor, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? sqlite3_last_insert_rowid(h->db) : -1;
}

static int step_done(struct history *h, enum stmt s)
{
	int rc = sqlite3_step(h->st[s]);
	sqlite3_reset(h->st[s]);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int64_t bucket_of(const struct history *h, int64_t ts)
{
	int64_t step = (int64_t)h->o.step_ms;
	int64_t r = ts % step;
	return ts - (r < 0 ? r + step : r);
}

static int write_point(struct history *h, const struct qpoint *e)
{
	int64_t id = series_id(h, e, true);
	if (id < 0)
		return -EIO;
	sqlite3_stmt *st = h->st[S_RAW_ADD];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, e->ts);
	if (e->is_num)
		sqlite3_bind_double(st, 3, e->num);
	else
		sqlite3_bind_text(st, 3, e->text, -1, SQLITE_STATIC);
	if (step_done(h, S_RAW_ADD) < 0)
		return -EIO;
	/* Seen before (same sensor, same ts): neither series counts it again. */
	if (sqlite3_changes(h->db) == 0 || !e->is_num)
		return 0;
	st = h->st[S_AGG_ADD];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, bucket_of(h, e->ts));
	sqlite3_bind_double(st, 3, e->num);
	return step_done(h, S_AGG_ADD);
}

static uint64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

int history_flush(struct history *h)
{
	if (h->loop)
		loop_timer_stop(h->loop, &h->flush_timer);
	if (h->qlen == 0)
		return 0;
	uint64_t t0 = mono_us();
	if (step_done(h, S_BEGIN) < 0)
		goto fail;
	for (size_t i = 0; i < h->qlen; i++)
		if (write_point(h, &h->q[i]) < 0)
			goto rollback;
	if (step_done(h, S_COMMIT) < 0)
		goto rollback;
	h->written += h->qlen;
	queue_clear(h);
	h->full_logged = false;
	uint64_t us = mono_us() - t0;
	if (us > h->slowest_us)
		h->slowest_us = us;
	return 0;
rollback:
	log_warnx("history %s: write failed: %s", h->path, sqlite3_errmsg(h->db));
	step_done(h, S_ROLLBACK);
	goto retry;
fail:
	log_warnx("history %s: cannot start a write: %s", h->path, sqlite3_errmsg(h->db));
retry:
	/* Kept for the next flush (the file may be locked for a moment or the disk full). */
	if (h->loop)
		loop_timer_start(h->loop, &h->flush_timer, h->o.flush_ms);
	return -EIO;
}

int history_purge(struct history *h, uint64_t now)
{
	int64_t raw_before = (int64_t)now - (int64_t)h->o.raw_keep_ms;
	int64_t agg_before = (int64_t)now - (int64_t)h->o.agg_keep_ms;
	if (step_done(h, S_BEGIN) < 0) {
		log_warnx("history %s: purge: %s", h->path, sqlite3_errmsg(h->db));
		return -EIO;
	}
	/* Per series: each delete is a range of the primary key, never a scan of the table. */
	sqlite3_stmt *all = h->st[S_SERIES_ALL];
	int rc;
	sqlite3_reset(all);
	while ((rc = sqlite3_step(all)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(all, 0);
		sqlite3_bind_int64(h->st[S_RAW_PURGE], 1, id);
		sqlite3_bind_int64(h->st[S_RAW_PURGE], 2, raw_before);
		sqlite3_bind_int64(h->st[S_AGG_PURGE], 1, id);
		sqlite3_bind_int64(h->st[S_AGG_PURGE], 2, agg_before);
		if (step_done(h, S_RAW_PURGE) < 0 || step_done(h, S_AGG_PURGE) < 0) {
			rc = SQLITE_ERROR;
			break;
		}
	}
	sqlite3_reset(all);
	if (rc != SQLITE_DONE || step_done(h, S_COMMIT) < 0) {
		log_warnx("history %s: purge: %s", h->path, sqlite3_errmsg(h->db));
		step_done(h, S_ROLLBACK);
		return -EIO;
	}
	return 0;
}

void history_stats(const struct history *h, struct history_stats *st)
{
	st->written = h->written;
	st->dropped = h->dropped;
	st->bad = h->bad;
	st->slowest_flush_us = h->slowest_us;
	st->queued = h->qlen;
}

/* --- reading --- */

/* Rows in ts order; buckets are summed up here while reading (a GROUP BY on a computed bucket
 * would sort every row first: measured 1.5x slower for a year of 5-minute buckets). */
static const char *const cursor_sql[3] = {
	[0] = "SELECT ts, value FROM raw WHERE series = ?1 AND ts >= ?2 AND ts <= ?3 "
	      "ORDER BY ts LIMIT ?4",
	[1] = "SELECT ts, 1, value, value, value FROM raw WHERE series = ?1 AND ts >= ?2 "
	      "AND ts <= ?3 AND typeof(value) = 'real' ORDER BY ts",
	[2] = "SELECT ts, n, sum, min, max FROM agg WHERE series = ?1 AND ts >= ?2 AND ts <= ?3 "
	      "ORDER BY ts",
};

static int64_t ceil_div(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/* How many raw points [from, to] holds, counting no further than limit. */
static long raw_count(struct history *h, int64_t series, int64_t from, int64_t to, size_t limit)
{
	sqlite3_stmt *st;
	long n = -1;
	if (sqlite3_prepare_v2(h->db, "SELECT count(*) FROM (SELECT 1 FROM raw WHERE series = ?1 "
			       "AND ts >= ?2 AND ts <= ?3 LIMIT ?4)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, series);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	sqlite3_bind_int64(st, 4, (int64_t)limit);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

struct history_cursor *history_query(struct history *h, const struct history_query *q,
				     uint64_t now)
{
	struct history_cursor *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->h = h;
	c->res = HISTORY_RAW;
	c->to = q->to;
	c->next = q->from;
	c->left = q->max_points;
	struct qpoint key = { 0 };
	snprintf(key.home, sizeof key.home, "%s", q->home);
	snprintf(key.ctl, sizeof key.ctl, "%s", q->ctl);
	snprintf(key.sensor, sizeof key.sensor, "%s", q->sensor);
	c->series = series_id(h, &key, false);
	if (c->series < 0)
		goto fail;
	if (c->series == 0 || q->to < q->from || q->max_points == 0)
		return c;   /* nothing recorded: an empty answer */
	int64_t span = q->to - q->from + 1, step = (int64_t)h->o.step_ms;
	int64_t width = ceil_div(span, (int64_t)q->max_points);
	bool raw_covers = q->from >= (int64_t)now - (int64_t)h->o.raw_keep_ms;
	if (raw_covers) {
		long n = raw_count(h, c->series, q->from, q->to, q->max_points + 1);
		if (n < 0)
			goto fail;
		if ((size_t)n <= q->max_points)
			return c;   /* every point fits */
		if (width < step) {
			/* Finer than the stored buckets: buckets of the raw numbers, made now. */
			c->res = HISTORY_BUCKETS;
			c->from_raw = true;
			c->step = width;
			c->base = q->from;
			return c;
		}
	}
	c->res = HISTORY_BUCKETS;
	c->step = ceil_div(width, step) * step;
	/* Stored buckets start on multiples of step; the answer's grid is aligned on them too. */
	c->base = bucket_of(h, q->from);
	c->next = c->base;
	return c;
fail:
	log_warnx("history %s: query: %s", h->path, sqlite3_errmsg(h->db));
	free(c);
	return NULL;
}

enum history_res history_cursor_res(const struct history_cursor *c)
{
	return c->res;
}

int64_t history_cursor_step(const struct history_cursor *c)
{
	return c->step;
}

size_t history_cursor_count(const struct history_cursor *c)
{
	return c->count;
}

void history_cursor_free(struct history_cursor *c)
{
	if (!c)
		return;
	sqlite3_finalize(c->st);
	free(c);
}

static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
			      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

static const char digits2[] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* The digits of m with a '.' before the last point of them (point 0: none; zero-padded to at
 * least point + 1 digits), trailing zeros of the fraction dropped. Returns the length. */
static size_t put_digits(char *out, uint64_t m, int point)
{
	char tmp[24];
	char *e = tmp + sizeof tmp, *p = e;
	while (m >= 100) {
		p -= 2;
		memcpy(p, digits2 + 2 * (m % 100), 2);
		m /= 100;
	}
	if (m >= 10) {
		p -= 2;
		memcpy(p, digits2 + 2 * m, 2);
	} else {
		*--p = (char)('0' + m);
	}
	while (e - p <= point)
		*--p = '0';
	size_t n = (size_t)(e - p);
	if (point <= 0) {
		memcpy(out, p, n);
		return n;
	}
	/* "2.50" -> "2.5", "3.0" -> "3" */
	int frac = point;
	while (frac > 0 && e[-1] == '0') {
		e--;
		frac--;
	}
	size_t ip = n - (size_t)point;
	memcpy(out, p, ip);
	if (!frac)
		return ip;
	out[ip] = '.';
	memcpy(out + ip + 1, p + ip, (size_t)frac);
	return ip + 1 + (size_t)frac;
}

/* v * 10^k, for any k a double's exponent may need (subnormals need more than 10^308). */
static double scale10(double v, int k)
{
	for (; k > 22; k -= 22)
		v *= 1e22;
	for (; k < -22; k += 22)
		v /= 1e22;
	return k >= 0 ? v * p10[k] : v / p10[-k];
}

static size_t fmt_num(char *out, double v)
{
	char *p = out;
	if (!isfinite(v)) {
		memcpy(out, "null", 5);
		return 4;
	}
	if (v == 0) {
		memcpy(out, "0", 2);
		return 1;
	}
	if (v < 0) {
		*p++ = '-';
		v = -v;
	}
	/* Exact: v is the double nearest to m / 10^k, which is what reading "m with k decimals"
	 * gives back. v * 10^k is then within a few ulps of m: anything farther is not worth the
	 * division. */
	if (v < 1e15) {
		for (int k = 0; k <= 6; k++) {
			double s = v * p10[k];
			if (s >= 9007199254740991.0)
				break;
			double m = (double)(int64_t)(s + 0.5);
			if (fabs(s - m) <= s * 1e-15 && m / p10[k] == v)
				return (size_t)(p - out) + put_digits(p, (uint64_t)m, k);
		}
	}
	/* 15 significant digits, d.dddde<exp> or plain when the exponent is small. */
	int e = (int)floor(log10(v));
	double s = scale10(v, 14 - e);
	if (s >= 1e15) {
		e++;
		s = scale10(v, 14 - e);
	} else if (s < 1e14) {
		e--;
		s = scale10(v, 14 - e);
	}
	uint64_t m = (uint64_t)llround(s);
	if (m >= 1000000000000000ULL) {   /* 999999999999999.5 rounded up */
		m /= 10;
		e++;
	}
	/* Rounded up past the largest double, it would read back as infinity. */
	if (e == 308 && m > 179769313486231ULL)
		m = 179769313486231ULL;
	if (e >= -5 && e < 15) {
		if (e >= 0)
			return (size_t)(p - out) + put_digits(p, m, 14 - e);
		/* 0.000ddd */
		*p++ = '0';
		*p++ = '.';
		for (int i = -1; i > e; i--)
			*p++ = '0';
		size_t n = put_digits(p, m, 0);
		while (n > 1 && p[n - 1] == '0')
			n--;
		return (size_t)(p - out) + n;
	}
	size_t n = put_digits(p, m, 14);
	p += n;
	return (size_t)(p - out) + (size_t)sprintf(p, "e%d", e);
}

size_t history_fmt_num(char *out, double v)
{
	size_t n = fmt_num(out, v);
	out[n] = '\0';
	return n;
}

static int buf_reserve(char **buf, size_t *len, size_t *cap, size_t more)
{
	if (*len + more <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 4096;
	while (ncap < *len + more)
		ncap *= 2;
	char *b = realloc(*buf, ncap);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = ncap;
	return 0;
}

/* A string value as a JSON string, by cJSON (strings are rare: timelines). */
static int put_text(const char *t, char **buf, size_t *len, size_t *cap)
{
	cJSON *s = cJSON_CreateString(t);
	char *j = s ? cJSON_PrintUnformatted(s) : NULL;
	cJSON_Delete(s);
	if (!j)
		return -ENOMEM;
	size_t n = strlen(j);
	int rc = buf_reserve(buf, len, cap, n + 8);
	if (rc == 0) {
		memcpy(*buf + *len, j, n);
		*len += n;
	}
	free(j);
	return rc;
}

/* Room for one more point: "[ts,v]" or "[ts,mean,min,max]" is at most 1 + 20 + 3 * 26 + 2
 * bytes and a comma; a string is added by put_text. */
#define POINT_MAX 128

static char *point_start(char **buf, size_t *len, int64_t ts)
{
	char *p = *buf + *len;
	if (*len > 0 && p[-1] == ']')
		*p++ = ',';
	*p++ = '[';
	p += put_digits(p, (uint64_t)ts, 0);
	*p++ = ',';
	return p;
}

static long cursor_raw(struct history_cursor *c, sqlite3_stmt *st, size_t n, size_t max_bytes,
		       char **buf, size_t *len, size_t *cap)
{
	long got = 0;
	int rc;
	size_t start = *len;
	sqlite3_bind_int64(st, 4, (int64_t)n);
	while (*len - start < max_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (buf_reserve(buf, len, cap, POINT_MAX) < 0)
			return -ENOMEM;
		int64_t ts = sqlite3_column_int64(st, 0);
		char *p = point_start(buf, len, ts);
		if (sqlite3_column_type(st, 1) == SQLITE_TEXT) {
			*len = (size_t)(p - *buf);
			if (put_text((const char *)sqlite3_column_text(st, 1), buf, len, cap) < 0)
				return -ENOMEM;
			p = *buf + *len;
		} else {
			p += fmt_num(p, sqlite3_column_double(st, 1));
		}
		*p++ = ']';
		*len = (size_t)(p - *buf);
		got++;
		c->next = ts + 1;
	}
	if (*len - start >= max_bytes)
		return got;   /* full: more may follow */
	if (rc != SQLITE_DONE)
		return -EIO;
	if ((size_t)got < n)
		c->left = got;   /* the range is exhausted: this is the last part */
	return got;
}

struct bucket {
	int64_t start, n;
	double sum, min, max;
};

static int bucket_put(const struct bucket *b, char **buf, size_t *len, size_t *cap)
{
	if (buf_reserve(buf, len, cap, POINT_MAX) < 0)
		return -ENOMEM;
	char *p = point_start(buf, len, b->start);
	p += fmt_num(p, b->sum / (double)b->n);
	*p++ = ',';
	p += fmt_num(p, b->min);
	*p++ = ',';
	p += fmt_num(p, b->max);
	*p++ = ']';
	*len = (size_t)(p - *buf);
	return 0;
}

static long cursor_buckets(struct history_cursor *c, sqlite3_stmt *st, size_t n, size_t max_bytes,
			   char **buf, size_t *len, size_t *cap)
{
	struct bucket b = { .n = 0 };
	long got = 0;
	int rc;
	size_t begin = *len;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t ts = sqlite3_column_int64(st, 0);
		int64_t start = c->base + (ts - c->base) / c->step * c->step;
		if (b.n && start != b.start) {
			if (bucket_put(&b, buf, len, cap) < 0)
				return -ENOMEM;
			if ((size_t)++got == n || *len - begin >= max_bytes) {
				c->next = start;   /* this row's bucket comes first next time */
				return got;
			}
			b.n = 0;
		}
		int64_t rn = sqlite3_column_int64(st, 1);
		double sum = sqlite3_column_double(st, 2), mn = sqlite3_column_double(st, 3),
		       mx = sqlite3_column_double(st, 4);
		if (!b.n) {
			b = (struct bucket){ start, rn, sum, mn, mx };
			continue;
		}
		b.n += rn;
		b.sum += sum;
		b.min = mn < b.min ? mn : b.min;
		b.max = mx > b.max ? mx : b.max;
	}
	if (rc != SQLITE_DONE)
		return -EIO;
	if (b.n) {
		if (bucket_put(&b, buf, len, cap) < 0)
			return -ENOMEM;
		got++;
	}
	c->left = got;   /* the range is exhausted: this is the last part */
	return got;
}

bool history_cursor_done(const struct history_cursor *c)
{
	return c->series == 0 || c->left == 0 || c->next > c->to;
}

long history_cursor_next(struct history_cursor *c, size_t n, size_t max_bytes, char **buf,
			 size_t *len, size_t *cap)
{
	struct history *h = c->h;
	if (c->series == 0 || c->left == 0 || c->next > c->to)
		return 0;
	if (n > c->left)
		n = c->left;
	int which = c->res == HISTORY_RAW ? 0 : c->from_raw ? 1 : 2;
	if (!c->st && sqlite3_prepare_v3(h->db, cursor_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
					 &c->st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_stmt *st = c->st;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, c->series);
	sqlite3_bind_int64(st, 2, c->next);
	sqlite3_bind_int64(st, 3, c->to);
	long got = which == 0 ? cursor_raw(c, st, n, max_bytes, buf, len, cap)
			      : cursor_buckets(c, st, n, max_bytes, buf, len, cap);
	sqlite3_reset(st);
	if (got == -EIO)
		goto fail;
	if (got < 0)
		return got;
	c->count += (size_t)got;
	c->left -= (size_t)got;
	return got;
fail:
	log_warnx("history %s: read: %s", h->path, sqlite3_errmsg(h->db));
	return -EIO;
}
