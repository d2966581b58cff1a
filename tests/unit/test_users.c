/* test_users: frAroundWeb's users file: a user without homes is valid, a bad entry costs only
 * that entry (logged with its line), two entries sharing a name or a token are both refused,
 * only an unusable file is refused as a whole; tokens are found by their hash. */
#include "log.h"
#include "logcapture.h"
#include "users.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];
static struct users *u;

static const char *hash_hex(const char *token)
{
	static char hex[65];
	uint8_t h[32];
	ck_assert_int_eq(users_hash_token(token, h), 0);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", h[i]);
	return hex;
}

static struct users *load(const char *text)
{
	strcpy(path, "/tmp/fr-test-users-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	users_free(u);
	u = users_load(path);
	unlink(path);
	return u;
}

static const struct user *who(const char *token)
{
	uint8_t h[32];
	ck_assert_int_eq(users_hash_token(token, h), 0);
	return users_find_hash(u, h);
}

static void teardown(void)
{
	users_free(u);
	u = NULL;
}

START_TEST(no_homes_is_a_user)
{
	char text[512];
	snprintf(text, sizeof text, "generation = \"g-1\";\nusers = (\n"
		 "  { name = \"alice\"; token_sha256 = \"%s\"; homes = []; },\n", hash_hex("a"));
	snprintf(text + strlen(text), sizeof text - strlen(text),
		 "  { name = \"bob\"; token_sha256 = \"%s\"; homes = [\"h1\", \"h2\"]; }\n);\n",
		 hash_hex("b"));
	ck_assert_ptr_nonnull(load(text));
	ck_assert_int_eq(users_count(u), 2);
	ck_assert_int_eq(users_rejected(u), 0);
	ck_assert_str_eq(users_generation(u), "g-1");
	const struct user *a = who("a"), *b = who("b");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->name, "alice");
	ck_assert_int_eq(a->nhomes, 0);
	ck_assert(!users_has_home(a, "h1"));
	ck_assert_str_eq(b->name, "bob");
	ck_assert(users_has_home(b, "h2") && !users_has_home(b, "h3"));
	ck_assert_ptr_null(who("c"));
}
END_TEST

START_TEST(bad_entries_cost_only_themselves)
{
	char text[2048];
	int n = snprintf(text, sizeof text, "users = (\n");
	static const char *const bad[] = {
		"{ name = \"bad name\"; token_sha256 = \"%s\"; homes = []; }",
		"{ name = \"x1\"; token_sha256 = \"abc\"; homes = []; }",
		"{ name = \"x2\"; token_sha256 = \"%s\"; homes = [\"a/b\"]; }",
		"{ name = \"x3\"; token_sha256 = \"%s\"; }",
		"{ name = \"x4\"; token_sha256 = \"%s\"; homes = []; colour = 1; }",
		"{ name = \"x5\"; token_sha256 = \"%s\"; homes = \"h1\"; }",
		"\"not a group\"",
	};
	char tok[8];
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(tok, sizeof tok, "t%zu", i);
		n += snprintf(text + n, sizeof text - (size_t)n, bad[i], hash_hex(tok));
		n += snprintf(text + n, sizeof text - (size_t)n, ",\n");
	}
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "{ name = \"good\"; token_sha256 = \"%s\"; homes = [\"h1\"]; }\n);\n",
		      hash_hex("good"));
	capture_start();
	ck_assert_ptr_nonnull(load(text));
	const char *log = capture_end();
	ck_assert_int_eq(users_count(u), 1);
	ck_assert_int_eq(users_rejected(u), 7);
	ck_assert_ptr_nonnull(who("good"));
	ck_assert_ptr_null(who("t2"));
	/* Each ignored entry is named by its line. */
	ck_assert_ptr_nonnull(strstr(log, ":2: this user entry is ignored"));
	ck_assert_ptr_nonnull(strstr(log, ":8: this user entry is ignored"));
	ck_assert_ptr_nonnull(strstr(log, "missing 'homes'"));
	ck_assert_ptr_null(users_generation(u));
}
END_TEST

START_TEST(shared_name_or_token_refuses_both)
{
	char text[1024];
	int n = snprintf(text, sizeof text, "users = (\n");
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "{ name = \"a\"; token_sha256 = \"%s\"; homes = []; },\n", hash_hex("ta"));
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "{ name = \"a\"; token_sha256 = \"%s\"; homes = []; },\n", hash_hex("ta2"));
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "{ name = \"a\"; token_sha256 = \"%s\"; homes = []; },\n", hash_hex("ta3"));
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "{ name = \"b\"; token_sha256 = \"%s\"; homes = []; },\n", hash_hex("tb"));
	n += snprintf(text + n, sizeof text - (size_t)n,
		      "{ name = \"c\"; token_sha256 = \"%s\"; homes = []; },\n", hash_hex("tb"));
	snprintf(text + n, sizeof text - (size_t)n,
		 "{ name = \"d\"; token_sha256 = \"%s\"; homes = []; }\n);\n", hash_hex("td"));
	ck_assert_ptr_nonnull(load(text));
	ck_assert_int_eq(users_count(u), 1);
	ck_assert_int_eq(users_rejected(u), 5);
	ck_assert_str_eq(who("td")->name, "d");
	ck_assert_ptr_null(who("ta3"));
	ck_assert_ptr_null(who("tb"));
}
END_TEST

START_TEST(unusable_file_refused)
{
	ck_assert_ptr_null(load("users = ( {"));
	ck_assert_ptr_null(load("users = { };"));
	ck_assert_ptr_null(load("people = ();"));
	ck_assert_ptr_null(load("generation = 5; users = ();"));
	ck_assert_ptr_null(users_load("/nonexistent/users.conf"));
	ck_assert_ptr_nonnull(load("users = ();"));
	ck_assert_int_eq(users_count(u), 0);
}
END_TEST

int main(void)
{
	log_init("test_users", true, 0);
	Suite *s = suite_create("users");
	TCase *tc = tcase_create("users");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, no_homes_is_a_user);
	tcase_add_test(tc, bad_entries_cost_only_themselves);
	tcase_add_test(tc, shared_name_or_token_refuses_both);
	tcase_add_test(tc, unusable_file_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
