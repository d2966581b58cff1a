/* history: sensor history in SQLite, the file and the recording; see history.h (the reading
 * is historyq.c). */
#include "history.h"
#include "history_int.h"

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

int64_t history_series_id(struct history *h, const struct qpoint *e, bool create)
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

int64_t history_bucket_of(const struct history *h, int64_t ts)
{
	int64_t step = (int64_t)h->o.step_ms;
	int64_t r = ts % step;
	return ts - (r < 0 ? r + step : r);
}

static int write_point(struct history *h, const struct qpoint *e)
{
	int64_t id = history_series_id(h, e, true);
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
	sqlite3_bind_int64(st, 2, history_bucket_of(h, e->ts));
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
