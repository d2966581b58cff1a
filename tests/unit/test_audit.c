/* test_audit: frAroundWeb's audit file (agents/frAroundWeb/audit.c): created 0640, one line per
 * record; the tail read newest first, only the user's records, at most limit, from the last
 * AUDIT_TAIL_BYTES only (a record cut by that window is skipped, not misread); writers in
 * several processes never interleave their records (one write on O_APPEND); a reopen after
 * logrotate's rename writes to the new file; a file that cannot be opened is an error. */
#include "audit.h"
#include "log.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/fr-test-audit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/audit.log", dir);
}

static void teardown(void)
{
	char p[200];
	snprintf(p, sizeof p, "%s/audit.log.1", dir);
	unlink(p);
	unlink(path);
	rmdir(dir);
}

/* A record as the relay writes it, with a pad of n bytes. */
static cJSON *record(const char *user, int seq, size_t pad)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "time", 1764061200000.0 + seq);
	cJSON_AddStringToObject(o, "user", user);
	cJSON_AddStringToObject(o, "path", "shim");
	cJSON_AddNumberToObject(o, "seq", seq);
	if (pad) {
		char *p = malloc(pad + 1);
		memset(p, 'x', pad);
		p[pad] = '\0';
		cJSON_AddStringToObject(o, "pad", p);
		free(p);
	}
	return o;
}

static void append(struct audit *a, const char *user, int seq, size_t pad)
{
	cJSON *o = record(user, seq, pad);
	ck_assert_int_eq(audit_append(a, o), 0);
	cJSON_Delete(o);
}

static int seq_of(const cJSON *rec)
{
	return (int)cJSON_GetObjectItem(rec, "seq")->valuedouble;
}

/* Lines in the file at p, each checked to be a JSON object. */
static int lines_in(const char *p)
{
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	while (getline(&line, &cap, f) > 0) {
		cJSON *o = cJSON_Parse(line);
		ck_assert_msg(cJSON_IsObject(o), "line %d is not a record: %.80s", n + 1, line);
		cJSON_Delete(o);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

START_TEST(append_and_tail)
{
	struct audit *a = audit_open(path);
	ck_assert_ptr_nonnull(a);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	mode_t mask = umask(0);
	umask(mask);
	ck_assert_int_eq(st.st_mode & 0777, 0640 & ~mask);
	for (int i = 0; i < 6; i++)
		append(a, i % 2 ? "bob" : "alice", i, 0);
	ck_assert_int_eq(lines_in(path), 6);
	/* alice's records are 0, 2, 4: newest first. */
	cJSON *recs = audit_tail(a, "alice", 50);
	ck_assert_int_eq(cJSON_GetArraySize(recs), 3);
	ck_assert_int_eq(seq_of(cJSON_GetArrayItem(recs, 0)), 4);
	ck_assert_int_eq(seq_of(cJSON_GetArrayItem(recs, 2)), 0);
	cJSON_Delete(recs);
	recs = audit_tail(a, "bob", 2);
	ck_assert_int_eq(cJSON_GetArraySize(recs), 2);
	ck_assert_int_eq(seq_of(cJSON_GetArrayItem(recs, 0)), 5);
	ck_assert_int_eq(seq_of(cJSON_GetArrayItem(recs, 1)), 3);
	cJSON_Delete(recs);
	recs = audit_tail(a, "carol", 50);
	ck_assert(cJSON_IsArray(recs));
	ck_assert_int_eq(cJSON_GetArraySize(recs), 0);
	cJSON_Delete(recs);
	audit_free(a);
}
END_TEST

START_TEST(tail_reads_a_bounded_window)
{
	struct audit *a = audit_open(path);
	ck_assert_ptr_nonnull(a);
	/* 3 MiB of 10 KiB records: only the last AUDIT_TAIL_BYTES are read, and the record the
	 * window cuts in two is skipped, not parsed from its middle. */
	const size_t pad = 10 * 1024;
	int n = 3 * 1024 * 1024 / (int)pad;
	for (int i = 0; i < n; i++)
		append(a, "alice", i, pad);
	cJSON *recs = audit_tail(a, "alice", 100000);
	int got = cJSON_GetArraySize(recs);
	int fit = AUDIT_TAIL_BYTES / (int)(pad + 100);
	ck_assert_msg(got > fit - 2 && got <= AUDIT_TAIL_BYTES / (int)pad, "%d records from the window", got);
	for (int i = 0; i < got; i++)
		ck_assert_int_eq(seq_of(cJSON_GetArrayItem(recs, i)), n - 1 - i);
	cJSON_Delete(recs);
	audit_free(a);
}
END_TEST

START_TEST(writers_never_interleave)
{
	/* Two processes, each with its own descriptor, append large records at once: every line
	 * of the file is one whole record. */
	const int per = 300;
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			struct audit *a = audit_open(path);
			if (!a)
				_exit(2);
			for (int i = 0; i < per; i++) {
				cJSON *o = record(k ? "bob" : "alice", i, 4000 + (size_t)i);
				if (audit_append(a, o) < 0)
					_exit(3);
				cJSON_Delete(o);
			}
			audit_free(a);
			_exit(0);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st;
		ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ck_assert_int_eq(lines_in(path), 2 * per);
}
END_TEST

START_TEST(reopen_after_rotation)
{
	char rotated[200];
	snprintf(rotated, sizeof rotated, "%s/audit.log.1", dir);
	struct audit *a = audit_open(path);
	ck_assert_ptr_nonnull(a);
	append(a, "alice", 1, 0);
	ck_assert_int_eq(rename(path, rotated), 0);
	/* Until the reopen, records still go to the rotated file (the descriptor follows it). */
	append(a, "alice", 2, 0);
	ck_assert_int_eq(audit_reopen(a), 0);
	append(a, "alice", 3, 0);
	ck_assert_int_eq(lines_in(rotated), 2);
	ck_assert_int_eq(lines_in(path), 1);
	cJSON *recs = audit_tail(a, "alice", 10);
	ck_assert_int_eq(cJSON_GetArraySize(recs), 1);
	ck_assert_int_eq(seq_of(cJSON_GetArrayItem(recs, 0)), 3);
	cJSON_Delete(recs);
	audit_free(a);
}
END_TEST

START_TEST(unopenable_is_an_error)
{
	char p[200], moved[200];
	snprintf(p, sizeof p, "%s/no/such/dir/audit.log", dir);
	ck_assert_ptr_null(audit_open(p));
	/* A reopen that fails (a directory now stands at the path: EISDIR, also for root) keeps
	 * the old descriptor: records still land, in the file it had. */
	snprintf(moved, sizeof moved, "%s/audit.log.1", dir);
	struct audit *a = audit_open(path);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(rename(path, moved), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_lt(audit_reopen(a), 0);
	append(a, "alice", 1, 0);
	ck_assert_int_eq(lines_in(moved), 1);
	audit_free(a);
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

int main(void)
{
	log_init("test_audit", true, 0);
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, append_and_tail);
	tcase_add_test(tc, tail_reads_a_bounded_window);
	tcase_add_test(tc, writers_never_interleave);
	tcase_add_test(tc, reopen_after_rotation);
	tcase_add_test(tc, unopenable_is_an_error);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
