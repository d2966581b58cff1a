/* test_cfg: libconfig helpers; every config error must name the file and the line. */
#include <check.h>

#include "logcapture.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/fr-tst-cfg-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/test.conf", dir);
}

static void teardown(void)
{
	char p[160];

	unlink(path);
	snprintf(p, sizeof p, "%s/secret", dir);
	unlink(p);
	rmdir(dir);
}

static void write_file(const char *p, const char *text, mode_t mode)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}


static void assert_logged(const char *log, const char *what)
{
	ck_assert_msg(strstr(log, what) != NULL, "expected \"%s\" in log: %s", what, log);
}

/* "path:line: " as cfg_error writes it. */
static void assert_logged_at(const char *log, int line, const char *what)
{
	char want[256];

	snprintf(want, sizeof want, "%s:%d: %s", path, line, what);
	assert_logged(log, want);
}

START_TEST(test_syntax_error)
{
	config_t c;
	const char *log;

	write_file(path, "a = 1;\nb = 2;\nc = ;\n", 0644);
	capture_start();
	ck_assert_int_eq(cfg_load(&c, path), -1);
	log = capture_end();
	config_destroy(&c);
	assert_logged_at(log, 3, "");
}
END_TEST

START_TEST(test_missing_file)
{
	config_t c;
	const char *log;
	char p[160];

	snprintf(p, sizeof p, "%s/nope.conf", dir);
	capture_start();
	ck_assert_int_eq(cfg_load(&c, p), -1);
	log = capture_end();
	config_destroy(&c);
	assert_logged(log, p);
	assert_logged(log, "cannot read");
}
END_TEST

static const char sample[] =
	"name = \"kitchen\";\n"                 /* 1 */
	"port = \"7400\";\n"                    /* 2 */
	"big = 70000;\n"                        /* 3 */
	"g = {\n"                               /* 4 */
	"  a = 1;\n"                            /* 5 */
	"  prot = 2;\n"                         /* 6 */
	"};\n"                                  /* 7 */
	"t_int = 2;\n"                          /* 8 */
	"t_float = 2.5;\n"                      /* 9 */
	"t_small = 0.001;\n"                    /* 10 */
	"t_big = 100000;\n"                     /* 11 */
	"t_str = \"2\";\n"                      /* 12 */
	"flag = true;\n"                        /* 13 */
	"list = [\"x\", \"y\"];\n"              /* 14 */
	"mixed = (\"x\", 3);\n"                 /* 15 */
	"neg = -1.5;\n";                        /* 16 */

static void load_sample(config_t *c)
{
	write_file(path, sample, 0644);
	ck_assert_int_eq(cfg_load(c, path), 0);
}

START_TEST(test_wrong_type)
{
	config_t c;
	const char *log, *s;
	long long v;

	load_sample(&c);
	capture_start();
	ck_assert_int_eq(cfg_int(config_root_setting(&c), "port", 1, 1, 65535, &v), -1);
	ck_assert_int_eq(cfg_string(config_root_setting(&c), "big", NULL, &s), -1);
	log = capture_end();
	assert_logged_at(log, 2, "'port' must be an integer, not a string");
	assert_logged_at(log, 3, "'big' must be a string, not an integer");
	config_destroy(&c);
}
END_TEST

START_TEST(test_int_range)
{
	config_t c;
	const char *log;
	long long v = 0;

	load_sample(&c);
	capture_start();
	ck_assert_int_eq(cfg_int(config_root_setting(&c), "big", 1, 1, 65535, &v), -1);
	log = capture_end();
	assert_logged_at(log, 3, "'big' must be in 1..65535, not 70000");
	ck_assert_int_eq(cfg_int(config_root_setting(&c), "big", 1, 1, 70000, &v), 0);
	ck_assert_int_eq(v, 70000);
	/* Missing: the default, no error. */
	ck_assert_int_eq(cfg_int(config_root_setting(&c), "absent", 42, 1, 2, &v), 0);
	ck_assert_int_eq(v, 42);
	config_destroy(&c);
}
END_TEST

START_TEST(test_pending)
{
	config_t c;
	int t = 0, p = 0;

	write_file(path, "a = { max_pending = 8; max_pending_per_peer = 2; };\n"
			 "b = { };\n"
			 "c = { max_pending = 4;\n max_pending_per_peer = 5; };\n", 0600);
	ck_assert_int_eq(cfg_load(&c, path), 0);
	config_setting_t *r = config_root_setting(&c);
	ck_assert_int_eq(cfg_pending(config_setting_get_member(r, "a"), 32, 4, &t, &p), 0);
	ck_assert_int_eq(t, 8);
	ck_assert_int_eq(p, 2);
	ck_assert_int_eq(cfg_pending(config_setting_get_member(r, "b"), 32, 4, &t, &p), 0);
	ck_assert_int_eq(t, 32);
	ck_assert_int_eq(p, 4);
	capture_start();
	ck_assert_int_eq(cfg_pending(config_setting_get_member(r, "c"), 32, 4, &t, &p), -1);
	const char *log = capture_end();
	assert_logged_at(log, 4, "max_pending_per_peer (5) must not exceed max_pending (4)");
	config_destroy(&c);
}
END_TEST

START_TEST(test_user_group)
{
	config_t c;
	const char *u = "x", *g = "x";

	write_file(path, "user = \"root\";\ngroup = \"root\";\n", 0600);
	ck_assert_int_eq(cfg_load(&c, path), 0);
	ck_assert_int_eq(cfg_user_group(config_root_setting(&c), &u, &g), 0);
	ck_assert_str_eq(u, "root");
	ck_assert_str_eq(g, "root");
	config_destroy(&c);

	write_file(path, "x = 1;\n", 0600);
	ck_assert_int_eq(cfg_load(&c, path), 0);
	ck_assert_int_eq(cfg_user_group(config_root_setting(&c), &u, &g), 0);
	ck_assert_ptr_null(u);
	ck_assert_ptr_null(g);
	config_destroy(&c);

	write_file(path, "\nuser = \"no-such-user-fr\";\n", 0600);
	ck_assert_int_eq(cfg_load(&c, path), 0);
	capture_start();
	ck_assert_int_eq(cfg_user_group(config_root_setting(&c), &u, &g), -1);
	assert_logged_at(capture_end(), 2, "no user 'no-such-user-fr' on this system");
	config_destroy(&c);

	write_file(path, "group = \"root\";\n", 0600);
	ck_assert_int_eq(cfg_load(&c, path), 0);
	capture_start();
	ck_assert_int_eq(cfg_user_group(config_root_setting(&c), &u, &g), -1);
	assert_logged_at(capture_end(), 1, "'group' needs 'user'");
	config_destroy(&c);

	write_file(path, "user = \"root\";\ngroup = \"no-such-group-fr\";\n", 0600);
	ck_assert_int_eq(cfg_load(&c, path), 0);
	capture_start();
	ck_assert_int_eq(cfg_user_group(config_root_setting(&c), &u, &g), -1);
	assert_logged_at(capture_end(), 2, "no group 'no-such-group-fr' on this system");
	config_destroy(&c);
}
END_TEST

START_TEST(test_unknown_key)
{
	static const char *const keys[] = { "a", "port", NULL };
	config_t c;
	const char *log;
	config_setting_t *g;

	load_sample(&c);
	g = config_setting_get_member(config_root_setting(&c), "g");
	ck_assert_ptr_nonnull(g);
	capture_start();
	ck_assert_int_eq(cfg_known_keys(g, keys), -1);
	log = capture_end();
	assert_logged_at(log, 6, "unknown setting 'prot'");
	ck_assert_ptr_null(strstr(log, "'a'"));
	config_destroy(&c);
}
END_TEST

START_TEST(test_missing_required)
{
	config_t c;
	const char *log, *s = "x";
	const char **list = (const char **)1;
	config_setting_t *g;

	load_sample(&c);
	g = config_setting_get_member(config_root_setting(&c), "g");
	capture_start();
	ck_assert_int_eq(cfg_string_req(g, "name", &s), -1);
	ck_assert_int_eq(cfg_strings(g, "argv", true, &list), -1);
	log = capture_end();
	/* A missing member is reported at its group. */
	assert_logged_at(log, 4, "missing required setting 'name'");
	assert_logged_at(log, 4, "missing required setting 'argv'");
	ck_assert_ptr_null(list);

	/* At the top level there is no line to point at, but the file is still named. */
	capture_start();
	ck_assert_int_eq(cfg_string_req(config_root_setting(&c), "id", &s), -1);
	log = capture_end();
	assert_logged(log, path);
	assert_logged(log, "missing required setting 'id'");

	ck_assert_int_eq(cfg_string_req(config_root_setting(&c), "name", &s), 0);
	ck_assert_str_eq(s, "kitchen");
	config_destroy(&c);
}
END_TEST

START_TEST(test_seconds_ms)
{
	config_t c;
	const char *log;
	config_setting_t *r;
	uint64_t ms = 0;

	load_sample(&c);
	r = config_root_setting(&c);
	ck_assert_int_eq(cfg_seconds_ms(r, "t_int", 1, 10, 3600000, &ms), 0);
	ck_assert_uint_eq(ms, 2000);
	ck_assert_int_eq(cfg_seconds_ms(r, "t_float", 1, 10, 3600000, &ms), 0);
	ck_assert_uint_eq(ms, 2500);
	ck_assert_int_eq(cfg_seconds_ms(r, "absent", 777, 10, 3600000, &ms), 0);
	ck_assert_uint_eq(ms, 777);
	ck_assert_int_eq(cfg_seconds_ms(r, "t_small", 1, 0, 3600000, &ms), 0);
	ck_assert_uint_eq(ms, 1);

	capture_start();
	ck_assert_int_eq(cfg_seconds_ms(r, "t_small", 1, 10, 3600000, &ms), -1);
	ck_assert_int_eq(cfg_seconds_ms(r, "t_big", 1, 10, 3600000, &ms), -1);
	ck_assert_int_eq(cfg_seconds_ms(r, "t_str", 1, 10, 3600000, &ms), -1);
	ck_assert_int_eq(cfg_seconds_ms(r, "neg", 1, 0, 3600000, &ms), -1);
	log = capture_end();
	assert_logged_at(log, 10, "'t_small' must be between");
	assert_logged_at(log, 11, "'t_big' must be between");
	assert_logged_at(log, 12, "'t_str' must be a number of seconds, not a string");
	assert_logged_at(log, 16, "'neg' must be between");
	config_destroy(&c);
}
END_TEST

START_TEST(test_bool_and_strings)
{
	config_t c;
	const char *log;
	config_setting_t *r;
	const char **list = NULL;
	bool b = false;

	load_sample(&c);
	r = config_root_setting(&c);
	ck_assert_int_eq(cfg_bool(r, "flag", false, &b), 0);
	ck_assert(b);
	ck_assert_int_eq(cfg_bool(r, "absent", true, &b), 0);
	ck_assert(b);
	ck_assert_int_eq(cfg_strings(r, "list", true, &list), 0);
	ck_assert_str_eq(list[0], "x");
	ck_assert_str_eq(list[1], "y");
	ck_assert_ptr_null(list[2]);
	free(list);
	ck_assert_int_eq(cfg_strings(r, "absent", false, &list), 0);
	ck_assert_ptr_null(list);

	capture_start();
	ck_assert_int_eq(cfg_bool(r, "t_int", false, &b), -1);
	ck_assert_int_eq(cfg_strings(r, "mixed", true, &list), -1);
	ck_assert_int_eq(cfg_strings(r, "name", true, &list), -1);
	log = capture_end();
	assert_logged_at(log, 8, "'t_int' must be true or false");
	assert_logged_at(log, 15, "'mixed'[1] must be a string");
	assert_logged_at(log, 1, "'name' must be a list of strings");
	config_destroy(&c);
}
END_TEST

/* --- cfg_read_secret --- */

static const char hex64[] = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

static int read_secret(const char *text, uint8_t out[32], const char **log)
{
	char p[160];
	int rc;

	snprintf(p, sizeof p, "%s/secret", dir);
	write_file(p, text, 0600);
	capture_start();
	rc = cfg_read_secret(p, out);
	*log = capture_end();
	return rc;
}

static void assert_secret(const uint8_t s[32])
{
	for (int i = 0; i < 32; i++)
		ck_assert_uint_eq(s[i], (unsigned)i);
}

START_TEST(test_secret_ok)
{
	uint8_t s[32];
	const char *log;

	ck_assert_int_eq(read_secret(hex64, s, &log), 0);
	assert_secret(s);
	ck_assert_str_eq(log, "");
}
END_TEST

START_TEST(test_secret_whitespace)
{
	char text[1200];
	uint8_t s[32];
	const char *log;
	size_t k = 0;

	/* xxd -p style: two lines and a trailing newline. */
	snprintf(text, sizeof text, "  %.32s\n\t%.32s \n", hex64, hex64 + 32);
	ck_assert_int_eq(read_secret(text, s, &log), 0);
	assert_secret(s);

	/* Generous whitespace, more than any small read buffer: still "whitespace ignored". */
	memset(s, 0, sizeof s);
	for (int i = 0; i < 64; i++) {
		text[k++] = hex64[i];
		for (int j = 0; j < 7; j++)
			text[k++] = j == 6 ? '\n' : ' ';
	}
	text[k] = '\0';
	ck_assert_int_eq(read_secret(text, s, &log), 0);
	assert_secret(s);
}
END_TEST

START_TEST(test_secret_bad)
{
	char text[200];
	uint8_t s[32];
	const char *log;
	char p[160];
	char *big;

	snprintf(text, sizeof text, "%.63s\n", hex64);
	ck_assert_int_eq(read_secret(text, s, &log), -1);
	assert_logged(log, "expected exactly 64 hex digits");
	assert_logged(log, "found 63");

	snprintf(text, sizeof text, "%s0\n", hex64);
	ck_assert_int_eq(read_secret(text, s, &log), -1);
	assert_logged(log, "expected exactly 64 hex digits");

	snprintf(text, sizeof text, "%s", hex64);
	text[10] = 'g';
	ck_assert_int_eq(read_secret(text, s, &log), -1);
	assert_logged(log, "expected exactly 64 hex digits");

	ck_assert_int_eq(read_secret("", s, &log), -1);
	assert_logged(log, "found 0");

	/* Not a secret file at all (someone pointed at a big file): rejected, not truncated. */
	big = malloc(8192 + sizeof hex64);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', 8192);
	strcpy(big + 8192, hex64);
	ck_assert_int_eq(read_secret(big, s, &log), -1);
	free(big);
	assert_logged(log, "larger than");

	snprintf(p, sizeof p, "%s/no-such-secret", dir);
	capture_start();
	ck_assert_int_eq(cfg_read_secret(p, s), -1);
	log = capture_end();
	assert_logged(log, p);
	assert_logged(log, strerror(ENOENT));
}
END_TEST

START_TEST(test_secret_mode_warning)
{
	char p[160];
	uint8_t s[32];
	const char *log;

	snprintf(p, sizeof p, "%s/secret", dir);
	write_file(p, hex64, 0600);
	chmod(p, 0644);
	capture_start();
	ck_assert_int_eq(cfg_read_secret(p, s), 0);
	log = capture_end();
	assert_logged(log, "readable by group or others");
}
END_TEST

static Suite *cfg_suite(void)
{
	Suite *s = suite_create("cfg");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_wrong_type);
	tcase_add_test(tc, test_int_range);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_pending);
	tcase_add_test(tc, test_user_group);
	tcase_add_test(tc, test_missing_required);
	tcase_add_test(tc, test_seconds_ms);
	tcase_add_test(tc, test_bool_and_strings);
	tcase_add_test(tc, test_secret_ok);
	tcase_add_test(tc, test_secret_whitespace);
	tcase_add_test(tc, test_secret_bad);
	tcase_add_test(tc, test_secret_mode_warning);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
