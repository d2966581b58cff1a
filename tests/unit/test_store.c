/* test_store: frMhs's state dir (agents/frMhs/store.c): created with its parents, locked against
 * a second frMhs, tied to one home, the registry replaced whole, the request log read back in
 * order with a cut last record skipped, and rewritten short. */
#include <check.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "logcapture.h"
#include "loop.h"
#include "store.h"

static char base[64], dir[128];
static struct loop *loop;

static void setup(void)
{
	strcpy(base, "/tmp/fr-tst-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(dir, sizeof dir, "%s/var/lib/frmhs", base);
	loop = loop_new();
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", base);
	ck_assert_int_eq(system(cmd), 0);
	loop_free(loop);
}

static struct store *open_quiet(const char *home, const char **log)
{
	capture_start();
	struct store *s = store_open(loop, dir, home);
	*log = capture_end();
	return s;
}

START_TEST(test_dir_lock_home)
{
	const char *log;
	struct store *s = open_quiet("home1", &log);
	ck_assert_ptr_nonnull(s);
	struct stat st;
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	/* One frMhs per directory. */
	ck_assert_ptr_null(open_quiet("home1", &log));
	ck_assert_ptr_nonnull(strstr(log, "in use by another frMhs"));
	store_close(s);
	/* Another home's directory is refused, not taken over. */
	ck_assert_ptr_null(open_quiet("home2", &log));
	ck_assert_ptr_nonnull(strstr(log, "belongs to home 'home1', not 'home2'"));
	s = open_quiet("home1", &log);
	ck_assert_ptr_nonnull(s);
	store_close(s);
}
END_TEST

START_TEST(test_registry)
{
	const char *log;
	struct store *s = open_quiet("home1", &log);
	ck_assert_ptr_null(store_registry_load(s));
	cJSON *doc = cJSON_Parse("{\"format\":1,\"home\":\"home1\",\"controllers\":[{\"id\":\"a\"}]}");
	ck_assert_int_eq(store_registry_save(s, doc), 0);
	cJSON *back = store_registry_load(s);
	ck_assert(cJSON_Compare(doc, back, 1));
	cJSON_Delete(back);
	cJSON_Delete(doc);
	/* Another format is ignored with a reason, not misread. */
	doc = cJSON_Parse("{\"format\":2,\"controllers\":[]}");
	store_registry_save(s, doc);
	cJSON_Delete(doc);
	capture_start();
	ck_assert_ptr_null(store_registry_load(s));
	ck_assert_ptr_nonnull(strstr(capture_end(), "not a format 1 registry"));
	char tmp[200];
	snprintf(tmp, sizeof tmp, "%s/registry.json.tmp", dir);
	ck_assert_int_ne(access(tmp, F_OK), 0);
	store_close(s);
}
END_TEST

static void collect(void *arg, const cJSON *rec)
{
	cJSON_AddItemToArray(arg, cJSON_Duplicate(rec, 1));
}

START_TEST(test_log)
{
	const char *log;
	struct store *s = open_quiet("home1", &log);
	for (int i = 0; i < 5; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddNumberToObject(r, "n", i);
		ck_assert_int_eq(store_log_append(s, r), 0);
		cJSON_Delete(r);
	}
	ck_assert_int_eq(store_log_lines(s), 5);
	store_close(s);
	/* A crash cut the last record short. */
	char path[200];
	snprintf(path, sizeof path, "%s/requests.log", dir);
	int fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, "{\"n\":5,\"x", 9), 9);
	close(fd);
	s = open_quiet("home1", &log);
	cJSON *all = cJSON_CreateArray();
	capture_start();
	store_log_load(s, collect, all);
	ck_assert_ptr_nonnull(strstr(capture_end(), "cut record"));
	ck_assert_int_eq(cJSON_GetArraySize(all), 5);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(all, 4), "n")->valueint, 4);
	/* Rewritten with what is still open: short again, and appends go on after it. */
	cJSON_DeleteItemFromArray(all, 0);
	ck_assert_int_eq(store_log_rewrite(s, all), 0);
	ck_assert_int_eq(store_log_lines(s), 4);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "n", 9);
	store_log_append(s, r);
	cJSON_Delete(r);
	cJSON_Delete(all);
	all = cJSON_CreateArray();
	store_log_load(s, collect, all);
	ck_assert_int_eq(cJSON_GetArraySize(all), 5);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(all, 0), "n")->valueint, 1);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(all, 4), "n")->valueint, 9);
	cJSON_Delete(all);
	ck_assert_int_eq(store_errors(s), 0);
	store_close(s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("state dir");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_dir_lock_home);
	tcase_add_test(tc, test_registry);
	tcase_add_test(tc, test_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_init("test_store", true, 0);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
