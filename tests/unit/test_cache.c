/* test_cache: frAroundWeb's state cache: which topics it keeps, that only retained messages are
 * state, the per-home budgets (topics and bytes) that keep one home from crowding out another,
 * the overall limit, deletion by an empty retained payload, listing one home, and that each
 * refusal is counted and logged once per fill; liveness: a home is stale once stale_after
 * heartbeats were missed, never without a first beat, and a beat clears it. */
#include "cache.h"
#include "log.h"
#include "logcapture.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct cache *c;

static int put(const char *topic, const char *payload, bool retained)
{
	return cache_put(c, topic, payload, strlen(payload), retained, 1000);
}

static void make(size_t total, size_t per_home, size_t bytes)
{
	struct cache_limits lim = { total, per_home, bytes, 3 };
	cache_free(c);
	c = cache_new("fr", &lim);
	ck_assert_ptr_nonnull(c);
}

static void teardown(void)
{
	cache_free(c);
	c = NULL;
}

START_TEST(state_topics_only)
{
	make(100, 100, 1 << 20);
	static const char *const yes[] = { "fr/h/status", "fr/h/ctl/k/status", "fr/h/ctl/k/info",
					   "fr/h/ctl/k/state/temp" };
	static const char *const no[] = { "fr/h", "fr/h/display", "fr/h/ctl/k/cmd", "fr/h/ctl/k/event",
					  "fr/h/ctl/k/result", "fr/h/reply/web-x", "fr/h/ctl/k/state",
					  "fr/h/ctl/k/state/t/x", "fr//status", "fr/h/ctl//status",
					  "other/h/status", "fr/h/ctl/k/status/", "frx/h/status" };
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		ck_assert_msg(cache_wants(c, yes[i]), "%s not wanted", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
		ck_assert_msg(!cache_wants(c, no[i]), "%s wanted", no[i]);
		ck_assert_int_eq(put(no[i], "x", true), -EINVAL);
	}
	ck_assert_uint_eq(cache_count(c), 0);
}
END_TEST

START_TEST(only_retained_is_state)
{
	make(100, 100, 1 << 20);
	ck_assert_int_eq(put("fr/h/ctl/k/status", "online", true), 0);
	capture_start();
	/* A reply or an event sent to a state topic (reply_to naming one) is not state. */
	ck_assert_int_eq(put("fr/h/ctl/k/status", "{\"type\":\"result\"}", false), -EINVAL);
	ck_assert_int_eq(put("fr/h/ctl/ghost/status", "x", false), -EINVAL);
	const char *log = capture_end();
	ck_assert_ptr_nonnull(strstr(log, "fr/h/ctl/k/status: not retained"));
	ck_assert_ptr_null(strstr(log, "ghost"));   /* one line a minute, not one per message */
	const struct cache_entry *e = cache_get(c, "fr/h/ctl/k/status");
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->payload, "online");
	ck_assert(e->retained);
	ck_assert_ptr_null(cache_get(c, "fr/h/ctl/ghost/status"));
	ck_assert_uint_eq(cache_refused(c, CACHE_NOT_RETAINED), 2);
	/* An empty retained payload deletes. */
	ck_assert_int_eq(put("fr/h/ctl/k/status", "", true), 0);
	ck_assert_ptr_null(cache_get(c, "fr/h/ctl/k/status"));
	ck_assert_uint_eq(cache_count(c), 0);
}
END_TEST

START_TEST(home_topic_budget)
{
	make(1000, 10, 1 << 20);
	char t[64];
	ck_assert_int_eq(put("fr/b/status", "online", true), 0);
	capture_start();
	for (int i = 0; i < 50; i++) {
		snprintf(t, sizeof t, "fr/a/ctl/ghost%d/status", i);
		ck_assert_int_eq(put(t, "online", true), i < 10 ? 0 : -EDQUOT);
	}
	const char *log = capture_end();
	ck_assert_ptr_nonnull(strstr(log, "home a over its budget"));
	ck_assert_ptr_null(strstr(strstr(log, "over its budget") + 1, "over its budget"));
	ck_assert_uint_eq(cache_refused(c, CACHE_HOME_TOPICS), 40);
	/* Home a's flood costs home b nothing: its topics still come in and stay. */
	for (int i = 0; i < 10; i++) {
		snprintf(t, sizeof t, "fr/b/ctl/k%d/status", i);
		ck_assert_int_eq(put(t, "online", i < 9), i < 9 ? 0 : -EINVAL);
	}
	ck_assert_str_eq(cache_get(c, "fr/b/status")->payload, "online");
	/* Updates of known topics still go in at the budget; a deletion makes room again. */
	ck_assert_int_eq(put("fr/a/ctl/ghost3/status", "offline", true), 0);
	ck_assert_int_eq(put("fr/a/ctl/ghost3/status", "", true), 0);
	ck_assert_int_eq(put("fr/a/ctl/new/status", "online", true), 0);
	ck_assert_uint_eq(cache_count(c), 10 + 10);
}
END_TEST

START_TEST(home_byte_budget)
{
	make(1000, 1000, 4096);
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_int_eq(put("fr/a/ctl/k/info", big, true), 0);
	ck_assert_int_eq(put("fr/a/ctl/j/info", big, true), -EDQUOT);
	ck_assert_uint_eq(cache_refused(c, CACHE_HOME_BYTES), 1);
	ck_assert_int_eq(put("fr/b/ctl/j/info", big, true), 0);
	/* An update that no longer fits removes the old value: none is better than a stale one. */
	char bigger[4200];
	memset(bigger, 'y', sizeof bigger - 1);
	bigger[sizeof bigger - 1] = '\0';
	ck_assert_int_eq(put("fr/a/ctl/k/info", bigger, true), -EDQUOT);
	ck_assert_ptr_null(cache_get(c, "fr/a/ctl/k/info"));
	ck_assert_int_eq(put("fr/a/ctl/j/info", big, true), 0);
	ck_assert_str_eq(cache_get(c, "fr/b/ctl/j/info")->payload, big);
}
END_TEST

START_TEST(overall_limit)
{
	make(16, 100, 1 << 20);
	char t[64];
	for (int i = 0; i < 20; i++) {
		snprintf(t, sizeof t, "fr/h%d/status", i);
		ck_assert_int_eq(put(t, "online", true), i < 16 ? 0 : -ENOSPC);
	}
	ck_assert_uint_eq(cache_refused(c, CACHE_FULL), 4);
	ck_assert_int_eq(put("fr/h0/status", "", true), 0);
	ck_assert_int_eq(put("fr/h19/status", "online", true), 0);
	ck_assert_uint_eq(cache_count(c), 16);
}
END_TEST

static void collect(void *arg, const struct cache_entry *e)
{
	char *out = arg;
	strcat(out, e->topic);
	strcat(out, " ");
}

START_TEST(listing_one_home)
{
	make(100, 100, 1 << 20);
	ck_assert_int_eq(put("fr/a/status", "online", true), 0);
	ck_assert_int_eq(put("fr/a/ctl/k/state/temp", "{\"value\":1}", true), 0);
	ck_assert_int_eq(put("fr/ab/ctl/k/status", "online", true), 0);
	ck_assert_int_eq(put("fr/b/ctl/k/status", "online", true), 0);
	char out[512] = "";
	cache_foreach_home(c, "a", collect, out);
	ck_assert_ptr_nonnull(strstr(out, "fr/a/status "));
	ck_assert_ptr_nonnull(strstr(out, "fr/a/ctl/k/state/temp "));
	ck_assert_ptr_null(strstr(out, "fr/ab/"));
	ck_assert_ptr_null(strstr(out, "fr/b/"));
	out[0] = '\0';
	cache_foreach_home(c, "nobody", collect, out);
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(cache_refusal_name(CACHE_HOME_BYTES), "home_bytes");
}
END_TEST

START_TEST(stale_after_missed_beats)
{
	make(100, 100, 1 << 20);
	uint64_t silent = 0;
	ck_assert_int_eq(put("fr/old/status", "online", true), 0);
	/* A home that never beat (an frMhs from before heartbeats) is never stale. */
	ck_assert(!cache_stale(c, "old", 1000000000, &silent));
	ck_assert(!cache_stale(c, "nobody", 1000000000, &silent));
	ck_assert_uint_eq(cache_heartbeat_interval(c, "old"), 0);
	ck_assert_int_eq(cache_heartbeat(c, "a", 1000, 10000), 0);
	ck_assert_uint_eq(cache_heartbeat_interval(c, "a"), 1000);
	ck_assert(!cache_stale(c, "a", 10000, &silent));
	ck_assert(!cache_stale(c, "a", 13000, &silent));   /* three periods: not yet missed */
	ck_assert(cache_stale(c, "a", 13001, &silent));
	ck_assert_uint_eq(silent, 3001);
	ck_assert_uint_eq(cache_stale_count(c, 95000), 1);
	/* The interval is the home's own, from its last beat. */
	ck_assert_int_eq(cache_heartbeat(c, "a", 30000, 95000), 0);
	ck_assert(!cache_stale(c, "a", 95000 + 90000, &silent));
	ck_assert(cache_stale(c, "a", 95000 + 90001, &silent));
	ck_assert_uint_eq(silent, 90001);
	ck_assert_uint_eq(cache_stale_count(c, 95000 + 90001), 1);
	ck_assert_uint_eq(cache_stale_count(c, 95000), 0);
	/* A home known by its beat alone holds no topic, and its topics come and go apart. */
	ck_assert_uint_eq(cache_count(c), 1);
	ck_assert_int_eq(put("fr/a/status", "online", true), 0);
	ck_assert_int_eq(cache_put(c, "fr/a/status", "", 0, true, 1000), 0);
	ck_assert(cache_stale(c, "a", 95000 + 90001, &silent));
}
END_TEST

START_TEST(heartbeat_homes_bounded)
{
	make(16, 100, 1 << 20);
	char home[16];
	for (int i = 0; i < 16; i++) {
		snprintf(home, sizeof home, "h%d", i);
		ck_assert_int_eq(cache_heartbeat(c, home, 1000, 1), 0);
	}
	ck_assert_int_eq(cache_heartbeat(c, "h16", 1000, 1), -ENOSPC);
	ck_assert_int_eq(cache_heartbeat(c, "h3", 1000, 2), 0);   /* a known home still beats */
	ck_assert_uint_eq(cache_refused(c, CACHE_FULL), 1);
}
END_TEST

int main(void)
{
	log_init("test_cache", true, 0);
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, state_topics_only);
	tcase_add_test(tc, only_retained_is_state);
	tcase_add_test(tc, home_topic_budget);
	tcase_add_test(tc, home_byte_budget);
	tcase_add_test(tc, overall_limit);
	tcase_add_test(tc, listing_one_home);
	tcase_add_test(tc, stale_after_missed_beats);
	tcase_add_test(tc, heartbeat_homes_bounded);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
