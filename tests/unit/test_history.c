/* test_history: frAroundWeb's sensor history on a real SQLite file: what a state payload must
 * look like (garbage refused with a logged reason), that numbers and strings are recorded, that
 * a point seen again (same sensor, same ts: a broker reconnect) counts once in both series, the
 * 5-minute buckets (count, mean, min, max), how answers pick raw points or buckets for a range
 * and max_points, retention, a restart (close and reopen) losing nothing, the batching of
 * writes (flush_max, flush_ms on a running loop), and the JSON number formatting. */
#include "history.h"
#include "log.h"
#include "logcapture.h"
#include "loop.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_MS 60000LL
#define DAY_MS (24LL * 3600 * 1000)
/* A fixed "now": 2025-11-25 09:00:00 UTC, on a 5-minute boundary. */
#define NOW 1764061200000LL

static char dir[64], path[128];
static struct history *h;

static void open_h(struct loop *loop, uint64_t step_ms)
{
	struct history_opts o;
	history_defaults(&o);
	o.path = path;
	o.step_ms = step_ms;
	h = history_open(loop, &o);
	ck_assert_ptr_nonnull(h);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/fr-test-history-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/history.db", dir);
	open_h(NULL, 300000);
}

static void teardown(void)
{
	history_close(h);
	h = NULL;
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int put_at(const char *sensor, const char *value, int64_t ts, int64_t now)
{
	char topic[128], payload[512];
	snprintf(topic, sizeof topic, "fr/home1/ctl/kitchen/state/%s", sensor);
	snprintf(payload, sizeof payload, "{\"value\":%s,\"ts\":%lld}", value, (long long)ts);
	return history_on_message(h, topic, payload, strlen(payload), (uint64_t)now);
}

static int put(const char *sensor, const char *value, int64_t ts)
{
	return put_at(sensor, value, ts, NOW);
}

/* The whole answer for sensor over [from, to] as "[...]", with its resolution. */
static char *ask_now(const char *sensor, int64_t from, int64_t to, size_t max, int64_t now,
		     enum history_res *res, int64_t *step)
{
	struct history_query q = { "home1", "kitchen", sensor, from, to, max };
	struct history_cursor *c = history_query(h, &q, (uint64_t)now);
	ck_assert_ptr_nonnull(c);
	if (res)
		*res = history_cursor_res(c);
	if (step)
		*step = history_cursor_step(c);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	long n;
	/* Small parts, by count and by bytes: the answer must not depend on how it is cut. */
	for (int i = 0; !history_cursor_done(c); i++) {
		n = history_cursor_next(c, 3, i % 2 ? 1 << 20 : 20, &buf, &len, &cap);
		ck_assert_int_ge(n, 0);
		ck_assert_int_lt(i, 10000);
	}
	ck_assert_int_eq(history_cursor_next(c, 3, 1 << 20, &buf, &len, &cap), 0);
	char *out = malloc(len + 3);
	snprintf(out, len + 3, "[%.*s]", (int)len, buf ? buf : "");
	free(buf);
	history_cursor_free(c);
	return out;
}

static char *ask(const char *sensor, int64_t from, int64_t to, size_t max, enum history_res *res,
		 int64_t *step)
{
	return ask_now(sensor, from, to, max, NOW, res, step);
}

#define ck_answer(got, want)                                                                     \
	do {                                                                                     \
		char *g_ = (got);                                                                \
		ck_assert_str_eq(g_, want);                                                      \
		free(g_);                                                                        \
	} while (0)

START_TEST(parse_state)
{
	struct history_point p;
	void *root;
	char why[128];
	const char *good = "{\"value\": 21.5, \"ts\": 1764061260456, \"extra\": [1]}";
	ck_assert_int_eq(history_parse_state(good, strlen(good), &p, &root, why, sizeof why), 0);
	ck_assert(p.is_num);
	ck_assert(p.num == 21.5);
	ck_assert_int_eq(p.ts, 1764061260456LL);
	cJSON_Delete(root);
	const char *text = "{\"ts\":5,\"value\":\"open\"} \n";
	ck_assert_int_eq(history_parse_state(text, strlen(text), &p, &root, why, sizeof why), 0);
	ck_assert(!p.is_num);
	ck_assert_str_eq(p.text, "open");
	cJSON_Delete(root);

	static const struct { const char *payload, *why; } bad[] = {
		{ "", "not JSON" },
		{ "21.5", "not a JSON object" },
		{ "{\"value\":1,\"ts\":5} x", "junk after" },
		{ "{\"value\":1}", "'ts'" },
		{ "{\"value\":1,\"ts\":\"5\"}", "'ts'" },
		{ "{\"value\":1,\"ts\":5.5}", "'ts'" },
		{ "{\"value\":1,\"ts\":0}", "'ts'" },
		{ "{\"value\":1,\"ts\":-5}", "'ts'" },
		{ "{\"value\":1,\"ts\":9007199254740994}", "'ts'" },
		{ "{\"ts\":5}", "'value'" },
		{ "{\"value\":null,\"ts\":5}", "'value'" },
		{ "{\"value\":true,\"ts\":5}", "'value'" },
		{ "{\"value\":{\"a\":1},\"ts\":5}", "'value'" },
		{ "{\"value\":1e999,\"ts\":5}", "'value'" },
		{ "{\"value\":\"a\\u0000b\",\"ts\":5}", "NUL" },
		{ "{\"value\":1,\"ts\":5", "not JSON" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ck_assert_msg(history_parse_state(bad[i].payload, strlen(bad[i].payload), &p, &root, why,
						  sizeof why) == -EINVAL, "accepted %s", bad[i].payload);
		ck_assert_ptr_null(root);
		ck_assert_msg(strstr(why, bad[i].why), "%s: reason '%s'", bad[i].payload, why);
	}
	char longs[400];
	snprintf(longs, sizeof longs, "{\"ts\":5,\"value\":\"%0257d\"}", 0);
	ck_assert_int_eq(history_parse_state(longs, strlen(longs), &p, &root, why, sizeof why), -EINVAL);
}
END_TEST

START_TEST(garbage_logged_and_skipped)
{
	capture_start();
	ck_assert_int_eq(history_on_message(h, "fr/home1/ctl/kitchen/state/temp", "21 degrees", 10,
					    NOW), -EINVAL);
	const char *log = capture_end();
	ck_assert_ptr_nonnull(strstr(log, "fr/home1/ctl/kitchen/state/temp: not recorded: junk after"));
	/* A ts a week ahead of the clock is a broken clock. */
	ck_assert_int_eq(put("temp", "1", NOW + 7 * DAY_MS), -EINVAL);
	/* Not state topics: ignored, not errors. */
	ck_assert_int_eq(history_on_message(h, "fr/home1/ctl/kitchen/info", "{}", 2, NOW), 0);
	ck_assert_int_eq(history_on_message(h, "fr/home1/ctl/kitchen/state/a/b", "x", 1, NOW), 0);
	ck_assert_int_eq(history_on_message(h, "other/home1/ctl/kitchen/state/t", "x", 1, NOW), 0);
	ck_assert_int_eq(history_on_message(h, "fr/home1/ctl/kitchen/state/temp", "", 0, NOW), 0);
	/* The good ones around them are recorded. */
	ck_assert_int_eq(put("temp", "20", NOW - 1000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	ck_answer(ask("temp", NOW - DAY_MS, NOW, 100, NULL, NULL), "[[1764061199000,20]]");
	struct history_stats st;
	history_stats(h, &st);
	ck_assert_uint_eq(st.bad, 2);
	ck_assert_uint_eq(st.written, 1);
}
END_TEST

START_TEST(numbers_and_strings_raw)
{
	ck_assert_int_eq(put("temp", "21.5", NOW - 3000), 1);
	ck_assert_int_eq(put("temp", "-0.25", NOW - 2000), 1);
	ck_assert_int_eq(put("door", "\"open\"", NOW - 2500), 1);
	ck_assert_int_eq(put("door", "\"say \\\"hi\\\"\"", NOW - 1500), 1);
	ck_assert_int_eq(put("temp", "\"error\"", NOW - 1000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	enum history_res res;
	ck_answer(ask("temp", NOW - DAY_MS, NOW, 100, &res, NULL),
		  "[[1764061197000,21.5],[1764061198000,-0.25],[1764061199000,\"error\"]]");
	ck_assert_int_eq(res, HISTORY_RAW);
	ck_answer(ask("door", NOW - DAY_MS, NOW, 100, NULL, NULL),
		  "[[1764061197500,\"open\"],[1764061198500,\"say \\\"hi\\\"\"]]");
	/* from and to are inclusive. */
	ck_answer(ask("temp", NOW - 2000, NOW - 2000, 100, NULL, NULL), "[[1764061198000,-0.25]]");
	/* A sensor never seen, another controller, another home: empty. */
	ck_answer(ask("nothing", NOW - DAY_MS, NOW, 100, NULL, NULL), "[]");
	struct history_query q = { "home2", "kitchen", "temp", NOW - DAY_MS, NOW, 100 };
	struct history_cursor *c = history_query(h, &q, NOW);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ck_assert_int_eq(history_cursor_next(c, 10, 1 << 20, &buf, &len, &cap), 0);
	history_cursor_free(c);
	free(buf);
}
END_TEST

/* The same points again (a reconnect re-delivers the retained state), in the same batch and in
 * a later one, and after a restart: one raw point, one count in its bucket. */
START_TEST(dedupe_by_ts)
{
	int64_t t0 = NOW - 20 * MIN_MS;   /* a bucket boundary */
	ck_assert_int_eq(put("temp", "10", t0 + 1000), 1);
	ck_assert_int_eq(put("temp", "10", t0 + 1000), 1);
	ck_assert_int_eq(put("temp", "30", t0 + 2000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	ck_assert_int_eq(put("temp", "30", t0 + 2000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	history_close(h);
	open_h(NULL, 300000);
	ck_assert_int_eq(put("temp", "30", t0 + 2000), 1);
	/* A different value under a ts already recorded is the same point re-delivered. */
	ck_assert_int_eq(put("temp", "99", t0 + 1000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	ck_answer(ask("temp", t0, NOW, 100, NULL, NULL), "[[1764060001000,10],[1764060002000,30]]");
	/* Buckets: asked with max_points 1 over one bucket's time. */
	enum history_res res;
	int64_t step;
	ck_answer(ask("temp", t0, t0 + 5 * MIN_MS - 1, 1, &res, &step), "[[1764060000000,20,10,30]]");
	ck_assert_int_eq(res, HISTORY_BUCKETS);
	ck_assert_int_eq(step, 300000);
}
END_TEST

/* One point a minute for an hour: 5-minute buckets with their count, mean, min and max, and
 * answers that pick raw points, buckets made from the raw points, stored buckets or buckets of
 * stored buckets. */
START_TEST(downsampling)
{
	int64_t t0 = NOW - 60 * MIN_MS;
	for (int i = 0; i < 60; i++) {
		char v[16];
		snprintf(v, sizeof v, "%d", i);
		ck_assert_int_eq(put("temp", v, t0 + i * MIN_MS), 1);
	}
	ck_assert_int_eq(history_flush(h), 0);
	enum history_res res;
	int64_t step;
	/* 60 points fit in 60. */
	char *a = ask("temp", t0, NOW, 60, &res, &step);
	ck_assert_int_eq(res, HISTORY_RAW);
	ck_assert_ptr_nonnull(strstr(a, "[1764057600000,0],[1764057660000,1],"));
	ck_assert_ptr_nonnull(strstr(a, ",[1764061140000,59]]"));
	free(a);
	/* 12 points for the hour: the stored 5-minute buckets. */
	a = ask("temp", t0, NOW - 1, 12, &res, &step);
	ck_assert_int_eq(res, HISTORY_BUCKETS);
	ck_assert_int_eq(step, 300000);
	ck_assert_str_eq(a, "[[1764057600000,2,0,4],[1764057900000,7,5,9],[1764058200000,12,10,14],"
			 "[1764058500000,17,15,19],[1764058800000,22,20,24],[1764059100000,27,25,29],"
			 "[1764059400000,32,30,34],[1764059700000,37,35,39],[1764060000000,42,40,44],"
			 "[1764060300000,47,45,49],[1764060600000,52,50,54],[1764060900000,57,55,59]]");
	free(a);
	/* 30 points: 2-minute buckets made from the raw points (finer than the stored ones). */
	a = ask("temp", t0, NOW - 1, 30, &res, &step);
	ck_assert_int_eq(res, HISTORY_BUCKETS);
	ck_assert_int_eq(step, 120000);
	ck_assert_ptr_nonnull(strstr(a, "[[1764057600000,0.5,0,1],[1764057720000,2.5,2,3],"));
	ck_assert_ptr_nonnull(strstr(a, ",[1764061080000,58.5,58,59]]"));
	free(a);
	/* 4 points: 15-minute buckets of the stored ones. */
	a = ask("temp", t0, NOW - 1, 4, &res, &step);
	ck_assert_int_eq(step, 900000);
	ck_assert_str_eq(a, "[[1764057600000,7,0,14],[1764058500000,22,15,29],"
			 "[1764059400000,37,30,44],[1764060300000,52,45,59]]");
	free(a);
	/* Once the raw points are past their 7 days, only buckets answer, however many asked. */
	a = ask_now("temp", t0, NOW - 1, 1000, NOW + 8 * DAY_MS, &res, &step);
	ck_assert_int_eq(res, HISTORY_BUCKETS);
	ck_assert_int_eq(step, 300000);
	free(a);
	/* Non-numeric values take no part in buckets. */
	ck_assert_int_eq(put("temp", "\"error\"", t0 + 30 * 1000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	ck_answer(ask("temp", t0, t0 + 5 * MIN_MS - 1, 1, NULL, NULL), "[[1764057600000,2,0,4]]");
	/* max_points bounds every answer. */
	a = ask("temp", t0, NOW, 5, &res, &step);
	int n = 0;
	for (const char *p = a; (p = strstr(p, "[17")); p++)
		n++;
	ck_assert_int_le(n, 5);
	free(a);
}
END_TEST

START_TEST(retention)
{
	/* Older than the raw retention when it comes: not recorded (it would count twice in its
	 * bucket once its raw row is gone). */
	ck_assert_int_eq(put("temp", "1", NOW - 8 * DAY_MS), 0);
	ck_assert_int_eq(put("temp", "2", NOW - 6 * DAY_MS), 1);
	ck_assert_int_eq(put("temp", "3", NOW - 1000), 1);
	ck_assert_int_eq(history_flush(h), 0);
	ck_answer(ask("temp", NOW - 6 * DAY_MS, NOW, 100, NULL, NULL),
		  "[[1763542800000,2],[1764061199000,3]]");
	/* Two days later: the first raw point is gone, its bucket stays. */
	ck_assert_int_eq(history_purge(h, NOW + 2 * DAY_MS), 0);
	ck_answer(ask_now("temp", NOW - 6 * DAY_MS, NOW, 2000, NOW + 2 * DAY_MS, NULL, NULL),
		  "[[1763542800000,2,2,2],[1764060900000,3,3,3]]");
	ck_answer(ask_now("temp", NOW - 1000, NOW, 100, NOW + 2 * DAY_MS, NULL, NULL),
		  "[[1764061199000,3]]");
	/* A year later only the last bucket is left; after that nothing. */
	ck_assert_int_eq(history_purge(h, NOW - 6 * DAY_MS + 365 * DAY_MS + 10 * MIN_MS), 0);
	ck_answer(ask_now("temp", NOW - 6 * DAY_MS, NOW, 2000, NOW + 400 * DAY_MS, NULL, NULL),
		  "[[1764060900000,3,3,3]]");
	ck_assert_int_eq(history_purge(h, NOW + 366 * DAY_MS), 0);
	ck_answer(ask_now("temp", NOW - 6 * DAY_MS, NOW, 2000, NOW + 400 * DAY_MS, NULL, NULL), "[]");
}
END_TEST

START_TEST(restart_keeps_everything)
{
	ck_assert_int_eq(put("temp", "21.5", NOW - 2000), 1);
	ck_assert_int_eq(put("door", "\"open\"", NOW - 1000), 1);
	/* Not flushed: closing writes the queue. */
	history_close(h);
	open_h(NULL, 300000);
	ck_answer(ask("temp", NOW - DAY_MS, NOW, 100, NULL, NULL), "[[1764061198000,21.5]]");
	ck_answer(ask("door", NOW - DAY_MS, NOW, 100, NULL, NULL), "[[1764061199000,\"open\"]]");
	/* A file made with 5-minute buckets does not open with 1-minute ones. */
	history_close(h);
	h = NULL;
	struct history_opts o;
	history_defaults(&o);
	o.path = path;
	o.step_ms = 60000;
	capture_start();
	ck_assert_ptr_null(history_open(NULL, &o));
	ck_assert_ptr_nonnull(strstr(capture_end(), "made with step 300 s, configured 60 s"));
	open_h(NULL, 300000);
	ck_answer(ask("temp", NOW - DAY_MS, NOW, 100, NULL, NULL), "[[1764061198000,21.5]]");
}
END_TEST

START_TEST(queue_bound)
{
	history_close(h);
	struct history_opts o;
	history_defaults(&o);
	o.path = path;
	o.queue_max = 3;
	h = history_open(NULL, &o);
	ck_assert_ptr_nonnull(h);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(put("temp", "1", NOW - 10000 + i), 1);
	capture_start();
	ck_assert_int_eq(put("temp", "1", NOW - 5000), -ENOBUFS);
	ck_assert_int_eq(put("temp", "1", NOW - 4000), -ENOBUFS);
	const char *log = capture_end();
	/* Once per fill. */
	ck_assert_ptr_nonnull(strstr(log, "dropping new ones"));
	ck_assert_ptr_null(strstr(strstr(log, "dropping new ones") + 1, "dropping new ones"));
	struct history_stats st;
	history_stats(h, &st);
	ck_assert_uint_eq(st.queued, 3);
	ck_assert_uint_eq(st.dropped, 2);
	ck_assert_int_eq(history_flush(h), 0);
	history_stats(h, &st);
	ck_assert_uint_eq(st.written, 3);
	ck_assert_uint_eq(st.queued, 0);
}
END_TEST

/* With a loop, points are written flush_max at a time, or flush_ms after the first. */
static struct history *lh;
static struct loop_timer poll_t;

static void poll_written(void *arg)
{
	struct loop *loop = arg;
	struct history_stats st;
	history_stats(lh, &st);
	if (st.written > 0)
		loop_stop(loop);
	else
		loop_timer_start(loop, &poll_t, 10);
}

static void stop_loop(void *arg)
{
	loop_stop(arg);
}

START_TEST(batching)
{
	history_close(h);
	h = NULL;
	struct loop *loop = loop_new();
	ck_assert_ptr_nonnull(loop);
	struct history_opts o;
	history_defaults(&o);
	o.path = path;
	o.flush_max = 5;
	o.flush_ms = 50;
	h = lh = history_open(loop, &o);
	ck_assert_ptr_nonnull(h);
	struct history_stats st;
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(put_at("temp", "1", (int64_t)loop_wall_ms() - 10000 + i,
					(int64_t)loop_wall_ms()), 1);
	history_stats(h, &st);
	ck_assert_uint_eq(st.written, 0);
	ck_assert_uint_eq(st.queued, 4);
	/* The fifth fills the batch: written at once, in one transaction. */
	ck_assert_int_eq(put_at("temp", "1", (int64_t)loop_wall_ms() - 5000,
				(int64_t)loop_wall_ms()), 1);
	history_stats(h, &st);
	ck_assert_uint_eq(st.written, 5);
	ck_assert_uint_eq(st.queued, 0);
	/* One more waits for the timer. */
	ck_assert_int_eq(put_at("temp", "2", (int64_t)loop_wall_ms() - 4000,
				(int64_t)loop_wall_ms()), 1);
	history_stats(h, &st);
	ck_assert_uint_eq(st.queued, 1);
	history_close(h);   /* counts restart from 0 */
	h = lh = history_open(loop, &o);
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(put_at("temp", "3", (int64_t)loop_wall_ms() - 3000,
				(int64_t)loop_wall_ms()), 1);
	struct loop_timer bound;
	loop_timer_init(&poll_t, poll_written, loop);
	loop_timer_start(loop, &poll_t, 10);
	loop_timer_init(&bound, stop_loop, loop);
	loop_timer_start(loop, &bound, 20000);
	ck_assert_int_eq(loop_run(loop), 0);
	loop_timer_stop(loop, &bound);
	loop_timer_stop(loop, &poll_t);
	history_stats(h, &st);
	ck_assert_uint_eq(st.written, 1);
	ck_assert_uint_eq(st.queued, 0);
	int64_t now = (int64_t)loop_wall_ms();
	char *a = ask_now("temp", now - DAY_MS, now, 100, now, NULL, NULL);
	int n = 0;
	for (const char *p = a; (p = strchr(p, '[')); p++)
		n++;
	ck_assert_int_eq(n - 1, 7);   /* 5 + 1 + 1 points */
	free(a);
	history_close(h);
	h = lh = NULL;
	loop_free(loop);
}
END_TEST

START_TEST(number_format)
{
	static const struct { double v; const char *s; } exact[] = {
		{ 0, "0" }, { -0.0, "0" }, { 1, "1" }, { -1, "-1" }, { 21.5, "21.5" }, { 0.1, "0.1" },
		{ -0.25, "-0.25" }, { 0.05, "0.05" }, { 123456.789, "123456.789" },
		{ 1764061200000.0, "1764061200000" }, { 0.000001, "0.000001" }, { 1e20, "1e20" },
		{ 21.55, "21.55" }, { 100, "100" }, { 1.5e-7, "1.5e-7" },
		{ 2.0 / 3.0, "0.666666666666667" }, { 64.0 / 3.0, "21.3333333333333" },
		{ -1e300, "-1e300" }, { 9007199254740993.0, "9.00719925474099e15" },
		{ -1.7976931348623157e308, "-1.79769313486231e308" }, { 5e-324, "4.94065645841247e-324" },
	};
	char buf[32];
	for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
		size_t n = history_fmt_num(buf, exact[i].v);
		ck_assert_msg(strcmp(buf, exact[i].s) == 0, "%.17g -> %s, want %s", exact[i].v, buf,
			      exact[i].s);
		ck_assert_uint_eq(n, strlen(buf));
	}
	/* Any double: valid JSON, and within 15 significant digits of the value. */
	srand(7);
	for (int i = 0; i < 200000; i++) {
		uint64_t bits = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
		double v;
		memcpy(&v, &bits, sizeof v);
		if (!isfinite(v))
			continue;
		if (i % 2)
			v = (rand() % 2000000 - 1000000) / 1000.0 / (1 + rand() % 7);
		size_t n = history_fmt_num(buf, v);
		ck_assert_uint_le(n, 25);
		cJSON *j = cJSON_Parse(buf);
		ck_assert_msg(cJSON_IsNumber(j), "%.17g -> %s: not a JSON number", v, buf);
		double back = j->valuedouble;
		cJSON_Delete(j);
		ck_assert_msg(back == v || fabs(back - v) <= 1e-14 * fabs(v), "%.17g -> %s", v, buf);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("history");
	TCase *t = tcase_create("history");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, parse_state);
	tcase_add_test(t, garbage_logged_and_skipped);
	tcase_add_test(t, numbers_and_strings_raw);
	tcase_add_test(t, dedupe_by_ts);
	tcase_add_test(t, downsampling);
	tcase_add_test(t, retention);
	tcase_add_test(t, restart_keeps_everything);
	tcase_add_test(t, queue_bound);
	tcase_add_test(t, batching);
	tcase_add_test(t, number_format);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	log_init("test_history", true, 0);
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
