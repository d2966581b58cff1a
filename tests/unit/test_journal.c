/* test_journal: frMhc's durable journal of command ids: results survive a reopen, an unfinished
 * run reads back as lost, a torn tail is skipped without harm, and compaction bounds the file. */
#include <check.h>

#include "logcapture.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "lanmsg.h"
#include "loop.h"

#include <errno.h>

static char dir[64];
static char jpath[128];
static struct loop *lp;

/* What on_durable saw: its calls, the last rc, and how many flushes had been made by then. */
static int durable_calls, durable_rc;
static unsigned long syncs_at_durable;
static unsigned long flushes;   /* through the seam */

static void on_durable(void *arg, int rc)
{
	durable_calls++;
	durable_rc = rc;
	syncs_at_durable = flushes;
	(void)arg;
}

static int counting_fdatasync(int fd)
{
	flushes++;
	return fdatasync(fd);
}

static int failing_fdatasync(int fd)
{
	(void)fd;
	flushes++;
	errno = EIO;
	return -1;
}

/* The end of a loop iteration: the deferred group commit runs. */
static void end_iteration(void)
{
	loop_defer_flush(lp);
}

static void setup(void)
{
	strcpy(dir, "/tmp/fr-tst-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(jpath, sizeof jpath, "%s/journal", dir);
	lp = loop_new();
	ck_assert_ptr_nonnull(lp);
	durable_calls = 0;
	durable_rc = 1;
	syncs_at_durable = 0;
	flushes = 0;
	journal_fdatasync = counting_fdatasync;
}

static void teardown(void)
{
	char p[160];

	loop_free(lp);
	journal_fdatasync = fdatasync;
	journal_pread = pread;
	unlink(jpath);
	snprintf(p, sizeof p, "%s/journal.tmp", dir);
	unlink(p);
	rmdir(dir);
}


static struct journal *open_quiet(size_t max_ids, const char **log)
{
	struct journal *j;

	capture_start();
	j = journal_open(dir, max_ids, lp, on_durable, NULL);
	*log = capture_end();
	ck_assert_ptr_nonnull(j);
	return j;
}

/* A result as frMhc sends it (lanmsg), as text; caller frees. */
static char *result_of(const char *id, const char *status, int code)
{
	struct lanmsg_result lr = { .id = id, .status = status, .run = true, .exited = true,
				    .exit_code = code };
	cJSON *r = lanmsg_result_new(&lr);
	char *text = cJSON_PrintUnformatted(r);

	cJSON_Delete(r);
	ck_assert_ptr_nonnull(text);
	return text;
}

static void finish(struct journal *j, const char *id, int code)
{
	char *r = result_of(id, "ok", code);

	ck_assert_int_eq(journal_finished(j, id, r), 0);
	free(r);
}

/* id started, and its iteration ended: durable. */
static void start(struct journal *j, const char *id)
{
	ck_assert_int_eq(journal_started(j, id), 0);
	end_iteration();
	ck_assert_int_eq(durable_rc, 0);
}

static void run(struct journal *j, const char *id, int code)
{
	start(j, id);
	finish(j, id, code);
}

/* id is done, with the status (and exit code, if code >= 0) given. */
static void assert_done(struct journal *j, const char *id, const char *status, int code)
{
	const char *text = NULL;
	struct lanmsg m;
	struct lanmsg_result r;
	char why[200];

	ck_assert_msg(journal_lookup(j, id, &text) == JOURNAL_DONE, "id '%s' not done", id);
	ck_assert_ptr_nonnull(text);
	/* Kept as the link message it was sent as. */
	ck_assert_msg(lanmsg_decode(&m, text, strlen(text), why, sizeof why) == 0, "%s", why);
	ck_assert_msg(lanmsg_result(&m, &r, why, sizeof why) == 0, "%s: %s", text, why);
	ck_assert_str_eq(r.id, id);
	ck_assert_str_eq(r.status, status);
	if (code >= 0) {
		ck_assert(r.exited);
		ck_assert_int_eq(r.exit_code, code);
	}
	lanmsg_clear(&m);
}

static size_t file_lines(void)
{
	FILE *f = fopen(jpath, "r");
	size_t n = 0;
	int ch;

	ck_assert_ptr_nonnull(f);
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* What a crash mid-write leaves: text written where the journal writes its next record, at
 * the end of the data (the first NUL of the zero padding, or the end of the file). */
static void append_raw(const char *text)
{
	int fd = open(jpath, O_RDWR | O_CLOEXEC);
	off_t at = 0;
	char buf[4096];
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	while ((n = pread(fd, buf, sizeof buf, at)) > 0) {
		char *z = memchr(buf, '\0', (size_t)n);
		if (z) {
			at += z - buf;
			break;
		}
		at += n;
	}
	ck_assert_int_eq(pwrite(fd, text, strlen(text), at), (ssize_t)strlen(text));
	close(fd);
}

START_TEST(test_started_finished_lookup)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);
	const char *r = (const char *)1;
	char *res;

	ck_assert_int_eq(journal_lookup(j, "a", &r), JOURNAL_NONE);
	ck_assert_int_eq(journal_count(j), 0);
	ck_assert_int_eq(journal_started(j, "a"), 0);
	ck_assert_int_eq(journal_lookup(j, "a", NULL), JOURNAL_RUNNING);
	ck_assert_int_eq(journal_count(j), 1);
	ck_assert_uint_eq(file_lines(), 1);
	/* Durable before the action may run: on_durable comes after the flush. */
	ck_assert_int_eq(durable_calls, 0);
	end_iteration();
	ck_assert_int_eq(durable_calls, 1);
	ck_assert_int_eq(durable_rc, 0);
	ck_assert_uint_eq(syncs_at_durable, 1);

	res = result_of("a", "ok", 3);
	ck_assert_int_eq(journal_finished(j, "a", res), 0);
	/* The journal keeps its own copy. */
	memset(res, 'x', strlen(res));
	free(res);
	assert_done(j, "a", "ok", 3);
	ck_assert_int_eq(journal_count(j), 1);
	ck_assert_uint_eq(file_lines(), 2);
	ck_assert_int_eq(journal_lookup(j, "b", NULL), JOURNAL_NONE);
	journal_close(j);
	journal_close(NULL);
}
END_TEST

START_TEST(test_reopen_keeps_results)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);

	run(j, "one", 0);
	run(j, "two", 1);
	run(j, "id:with.odd-chars_1", 2);
	journal_close(j);

	j = open_quiet(100, &log);
	ck_assert_str_eq(log, "");
	ck_assert_int_eq(journal_count(j), 3);
	assert_done(j, "one", "ok", 0);
	assert_done(j, "two", "ok", 1);
	assert_done(j, "id:with.odd-chars_1", "ok", 2);
	ck_assert_int_eq(journal_lookup(j, "three", NULL), JOURNAL_NONE);
	journal_close(j);
}
END_TEST

START_TEST(test_unfinished_is_lost)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);
	const char *r = NULL;

	run(j, "done", 0);
	ck_assert_int_eq(journal_started(j, "inflight"), 0);
	journal_close(j); /* the controller "dies" here */

	j = open_quiet(100, &log);
	ck_assert_msg(strstr(log, "1 command(s) were running") != NULL, "log: %s", log);
	assert_done(j, "done", "ok", 0);
	assert_done(j, "inflight", "lost", -1);
	ck_assert_int_eq(journal_lookup(j, "inflight", &r), JOURNAL_DONE);
	ck_assert_msg(strncmp(r, "{\"type\":\"result\",\"id\":\"inflight\",", 32) == 0, "%s", r);
	journal_close(j);
}
END_TEST

START_TEST(test_torn_tail)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);

	run(j, "a", 0);
	run(j, "b", 1);
	journal_close(j);
	/* A crash in the middle of an append. */
	append_raw("{\"id\":\"c\",\"res");

	j = open_quiet(100, &log);
	ck_assert_msg(strstr(log, "journal:5: unreadable record skipped") != NULL, "log: %s", log);
	assert_done(j, "a", "ok", 0);
	assert_done(j, "b", "ok", 1);
	ck_assert_int_eq(journal_lookup(j, "c", NULL), JOURNAL_NONE);
	/* Appends after the torn tail must not be glued onto it. */
	run(j, "d", 4);
	ck_assert_int_eq(journal_started(j, "e"), 0);
	journal_close(j);

	j = open_quiet(100, &log);
	ck_assert_msg(strstr(log, "unreadable") == NULL, "log: %s", log);
	assert_done(j, "a", "ok", 0);
	assert_done(j, "b", "ok", 1);
	assert_done(j, "d", "ok", 4);
	assert_done(j, "e", "lost", -1);
	journal_close(j);
}
END_TEST

START_TEST(test_complete_record_without_newline)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);

	ck_assert_int_eq(journal_started(j, "a"), 0);
	journal_close(j);
	/* The whole record made it, only its newline did not. */
	append_raw("{\"id\":\"a\",\"result\":{\"type\":\"result\",\"id\":\"a\",\"status\":\"ok\",\"exit_code\":7}}");

	j = open_quiet(100, &log);
	assert_done(j, "a", "ok", 7);
	run(j, "b", 1);
	journal_close(j);

	j = open_quiet(100, &log);
	ck_assert_msg(strstr(log, "unreadable") == NULL, "log: %s", log);
	assert_done(j, "a", "ok", 7);
	assert_done(j, "b", "ok", 1);
	journal_close(j);
}
END_TEST

START_TEST(test_garbage_lines_skipped)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);

	run(j, "a", 0);
	journal_close(j);
	append_raw("not json\n[1,2]\n{\"id\":5}\n\n");
	j = open_quiet(100, &log);
	ck_assert_msg(strstr(log, "journal:3: unreadable record skipped") != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, "journal:6: unreadable record skipped") != NULL, "log: %s", log);
	assert_done(j, "a", "ok", 0);
	ck_assert_int_eq(journal_count(j), 1);
	journal_close(j);
}
END_TEST

START_TEST(test_compaction_bounded)
{
	const char *log;
	struct journal *j = open_quiet(16, &log);
	char id[32];

	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof id, "cmd-%d", i);
		run(j, id, i % 100);
		ck_assert_uint_le(file_lines(), 32);
		ck_assert_uint_le(journal_count(j), 32);
		/* Just written: always found. */
		assert_done(j, id, "ok", i % 100);
	}
	/* The newest max_ids are kept. */
	for (int i = 200 - 16; i < 200; i++) {
		snprintf(id, sizeof id, "cmd-%d", i);
		assert_done(j, id, "ok", i % 100);
	}
	ck_assert_int_eq(journal_lookup(j, "cmd-0", NULL), JOURNAL_NONE);
	journal_close(j);

	j = open_quiet(16, &log);
	ck_assert_str_eq(log, "");
	ck_assert_uint_le(file_lines(), 32);
	for (int i = 200 - 16; i < 200; i++) {
		snprintf(id, sizeof id, "cmd-%d", i);
		assert_done(j, id, "ok", i % 100);
	}
	journal_close(j);

	/* A journal reopened with a smaller limit compacts right away. */
	j = open_quiet(4, &log);
	ck_assert_uint_le(file_lines(), 8);
	ck_assert_uint_le(journal_count(j), 4);
	assert_done(j, "cmd-199", "ok", 99);
	journal_close(j);
}
END_TEST

/* Only where each id's newest record is stays in memory: results are read back from the file,
 * as the bytes they were given, for many ids at once, across a reopen, and a record written
 * in another layout (spaces, as by hand) is still read. */
START_TEST(test_results_read_back)
{
	const char *log;
	struct journal *j = open_quiet(3000, &log);
	char id[32];
	const char *text;

	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof id, "id-%d", i);
		run(j, id, i % 200);
	}
	char *want = result_of("id-1234", "ok", 1234 % 200);
	ck_assert_int_eq(journal_lookup(j, "id-1234", &text), JOURNAL_DONE);
	ck_assert_str_eq(text, want);
	free(want);
	journal_close(j);
	append_raw("{ \"id\" : \"spaced\", \"result\" : {\"type\":\"result\",\"id\":\"spaced\","
		   "\"status\":\"ok\",\"exit_code\":7,\"signal\":null} }\n");
	j = open_quiet(3000, &log);
	ck_assert_str_eq(log, "");
	ck_assert_int_eq(journal_count(j), 2001);
	for (int i = 0; i < 2000; i += 37) {
		snprintf(id, sizeof id, "id-%d", i);
		assert_done(j, id, "ok", i % 200);
	}
	assert_done(j, "spaced", "ok", 7);
	ck_assert_int_eq(journal_lookup(j, "id-2000", NULL), JOURNAL_NONE);
	journal_close(j);
}
END_TEST

static ssize_t failing_pread(int fd, void *buf, size_t n, off_t off)
{
	(void)fd;
	(void)buf;
	(void)n;
	(void)off;
	errno = EIO;
	return -1;
}

/* A record that cannot be read back never makes its id look new: a repeat is not run again
 * (it is answered as running), and ids whose hash matches nothing are not read at all. */
START_TEST(test_unreadable_record)
{
	const char *log, *text = NULL;
	struct journal *j = open_quiet(100, &log);

	run(j, "a", 0);
	journal_pread = failing_pread;
	capture_start();
	ck_assert_int_eq(journal_lookup(j, "a", &text), JOURNAL_RUNNING);
	log = capture_end();
	ck_assert_msg(strstr(log, "could not be read back") != NULL, "log: %s", log);
	ck_assert_int_eq(journal_lookup(j, "b", NULL), JOURNAL_NONE);
	start(j, "b");
	journal_pread = pread;
	assert_done(j, "a", "ok", 0);
	ck_assert_int_eq(journal_lookup(j, "b", NULL), JOURNAL_RUNNING);
	journal_close(j);
}
END_TEST

/* Several start records written in one iteration: one flush covers them all, and nobody is
 * told any of them is durable (may run) before it. */
START_TEST(test_group_commit_one_flush)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);
	unsigned long opened = flushes;   /* journal_open's own preparation is not counted */

	run(j, "earlier", 0);
	ck_assert_uint_eq(journal_syncs(j), 1);
	ck_assert_int_eq(durable_calls, 1);

	/* One iteration: a result of an earlier run and three starts. */
	finish(j, "earlier", 1);
	ck_assert_int_eq(journal_started(j, "a"), 0);
	ck_assert_int_eq(journal_started(j, "b"), 0);
	ck_assert_int_eq(journal_started(j, "c"), 0);
	ck_assert_int_eq(journal_lookup(j, "b", NULL), JOURNAL_RUNNING);
	ck_assert_uint_eq(journal_syncs(j), 1);
	ck_assert_uint_eq(flushes, opened + 1);
	ck_assert_int_eq(durable_calls, 1);
	end_iteration();
	ck_assert_uint_eq(journal_syncs(j), 2);
	ck_assert_uint_eq(flushes, opened + 2);
	ck_assert_int_eq(durable_calls, 2);
	ck_assert_int_eq(durable_rc, 0);
	ck_assert_uint_eq(syncs_at_durable, opened + 2);
	ck_assert_uint_eq(file_lines(), 6);

	/* An iteration without a start record flushes nothing. */
	finish(j, "a", 0);
	end_iteration();
	ck_assert_uint_eq(journal_syncs(j), 2);
	ck_assert_int_eq(durable_calls, 2);
	journal_close(j);

	j = open_quiet(100, &log);
	assert_done(j, "earlier", "ok", 1);
	assert_done(j, "a", "ok", 0);
	assert_done(j, "b", "lost", -1);
	assert_done(j, "c", "lost", -1);
	journal_close(j);
}
END_TEST

/* A failed flush fails every start it was to cover, as a failed flush of one record did: none
 * is remembered, none reads back after a restart, and the same ids may run once it works. */
START_TEST(test_group_commit_failed_flush)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);

	start(j, "before");
	/* One iteration: before's result, two starts; the flush fails. */
	journal_fdatasync = failing_fdatasync;
	finish(j, "before", 3);
	ck_assert_int_eq(journal_started(j, "x"), 0);
	ck_assert_int_eq(journal_started(j, "y"), 0);
	capture_start();
	end_iteration();
	log = capture_end();
	ck_assert_msg(strstr(log, "flush") != NULL, "log: %s", log);
	ck_assert_int_eq(durable_calls, 2);
	ck_assert_int_eq(durable_rc, -1);
	ck_assert_uint_eq(journal_syncs(j), 2);
	ck_assert_int_eq(journal_lookup(j, "x", NULL), JOURNAL_NONE);
	ck_assert_int_eq(journal_lookup(j, "y", NULL), JOURNAL_NONE);
	assert_done(j, "before", "ok", 3);
	ck_assert_int_eq(journal_count(j), 1);
	/* Blanked in place: the lines stay, the result among them too. */
	ck_assert_uint_eq(file_lines(), 4);

	/* The disk works again: x runs, its record where the blanked ones were. */
	journal_fdatasync = counting_fdatasync;
	run(j, "x", 5);
	assert_done(j, "x", "ok", 5);
	journal_close(j);

	j = open_quiet(100, &log);
	ck_assert_str_eq(log, "");
	assert_done(j, "before", "ok", 3);
	assert_done(j, "x", "ok", 5);
	ck_assert_int_eq(journal_lookup(j, "y", NULL), JOURNAL_NONE);
	ck_assert_int_eq(journal_count(j), 2);
	journal_close(j);
}
END_TEST

/* Closed with starts still waiting (the controller stops mid-iteration): no on_durable later. */
START_TEST(test_close_with_pending)
{
	const char *log;
	struct journal *j = open_quiet(100, &log);

	ck_assert_int_eq(journal_started(j, "w"), 0);
	journal_close(j);
	end_iteration();
	ck_assert_int_eq(durable_calls, 0);
}
END_TEST

START_TEST(test_open_errors)
{
	char p[200];
	struct journal *j;
	const char *log;

	snprintf(p, sizeof p, "%s/no/such/dir", dir);
	capture_start();
	j = journal_open(p, 16, lp, on_durable, NULL);
	log = capture_end();
	ck_assert_ptr_null(j);
	ck_assert_msg(strstr(log, p) != NULL, "log: %s", log);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_started_finished_lookup);
	tcase_add_test(tc, test_reopen_keeps_results);
	tcase_add_test(tc, test_unfinished_is_lost);
	tcase_add_test(tc, test_torn_tail);
	tcase_add_test(tc, test_complete_record_without_newline);
	tcase_add_test(tc, test_garbage_lines_skipped);
	tcase_add_test(tc, test_compaction_bounded);
	tcase_add_test(tc, test_results_read_back);
	tcase_add_test(tc, test_unreadable_record);
	tcase_add_test(tc, test_group_commit_one_flush);
	tcase_add_test(tc, test_group_commit_failed_flush);
	tcase_add_test(tc, test_close_with_pending);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(journal_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
