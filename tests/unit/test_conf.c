/* test_conf: frMhc's config loader (errors with file:line) and the argv built from checked
 * command arguments. */
#include <check.h>

#include "logcapture.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static char dir[64];
static char path[128];
static char why[256];

static void setup(void)
{
	strcpy(dir, "/tmp/fr-tst-conf-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/mhc.conf", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static void write_conf(const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}


/* conf_load fails and logs "path:line: what". */
static void assert_load_fails(const char *text, int line, const char *what)
{
	struct conf c;
	char want[300];
	const char *log;
	int rc;

	write_conf(text);
	capture_start();
	rc = conf_load(&c, path);
	log = capture_end();
	conf_free(&c);
	ck_assert_int_eq(rc, -1);
	snprintf(want, sizeof want, "%s:%d: %s", path, line, what);
	ck_assert_msg(strstr(log, want) != NULL, "expected \"%s\" in log: %s", want, log);
}

#define HEAD                                                   \
	"id = \"kitchen\";\n"                  /* 1 */       \
	"secret_file = \"/etc/fr/home.secret\";\n" /* 2 */   \
	"state_dir = \"/var/lib/frmhc\";\n"    /* 3 */       \
	"listen = { address = \"127.0.0.2\"; port = 7410; };\n" /* 4 */

static const char good[] =
	HEAD
	"name = \"Kitchen Pi\";\n"
	"announce = { address = \"127.255.255.255\"; port = 7400; interval = 2.5; };\n"
	"home_server = { address = \"127.0.0.1\"; port = 7401; };\n"
	"ping_interval = 1; ping_timeout = 3.5; journal_max = 100;\n"
	"actions = (\n"
	"  { name = \"lamp\"; argv = [\"/usr/local/bin/lamp\", \"--level={level}\", \"{room}\"];\n"
	"    timeout = 5; kill_grace = 0.5; max_running = 2;\n"
	"    args = ( { name = \"level\"; pattern = \"[0-9]+\"; default = \"100\"; },\n"
	"             { name = \"room\"; pattern = \"[a-z]+\"; } ); },\n"
	"  { name = \"reboot\"; argv = [\"/sbin/reboot\"]; }\n"
	");\n"
	"sensors = (\n"
	"  { name = \"temp\"; argv = [\"/usr/local/bin/temp\", \"-c\"]; interval = 10; timeout = 2; }\n"
	");\n";

static void load_good(struct conf *c)
{
	write_conf(good);
	ck_assert_int_eq(conf_load(c, path), 0);
}

START_TEST(test_good_config)
{
	struct conf c;
	const struct conf_action *a;

	load_good(&c);
	ck_assert_str_eq(c.id, "kitchen");
	ck_assert_str_eq(c.name, "Kitchen Pi");
	ck_assert_str_eq(c.secret_file, "/etc/fr/home.secret");
	ck_assert_str_eq(c.state_dir, "/var/lib/frmhc");
	ck_assert_str_eq(c.listen_addr, "127.0.0.2");
	ck_assert_uint_eq(c.listen_port, 7410);
	ck_assert_str_eq(c.announce_addr, "127.255.255.255");
	ck_assert_uint_eq(c.announce_port, 7400);
	ck_assert_uint_eq(c.announce_interval_ms, 2500);
	ck_assert_str_eq(c.home_addr, "127.0.0.1");
	ck_assert_uint_eq(c.home_port, 7401);
	ck_assert_uint_eq(c.ping_interval_ms, 1000);
	ck_assert_uint_eq(c.ping_timeout_ms, 3500);
	ck_assert_int_eq(c.journal_max, 100);

	ck_assert_int_eq(c.nactions, 2);
	a = conf_action_find(&c, "lamp");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->argv[0], "/usr/local/bin/lamp");
	ck_assert_str_eq(a->argv[1], "--level={level}");
	ck_assert_ptr_null(a->argv[3]);
	ck_assert_uint_eq(a->timeout_ms, 5000);
	ck_assert_uint_eq(a->grace_ms, 500);
	ck_assert_int_eq(a->max_running, 2);
	ck_assert_int_eq(a->nargs, 2);
	ck_assert_str_eq(a->args[0].name, "level");
	ck_assert_str_eq(a->args[0].pattern, "[0-9]+");
	ck_assert_str_eq(a->args[0].def, "100");
	ck_assert_ptr_null(a->args[1].def);

	a = conf_action_find(&c, "reboot");
	ck_assert_ptr_nonnull(a);
	/* Defaults. */
	ck_assert_uint_eq(a->timeout_ms, 30000);
	ck_assert_uint_eq(a->grace_ms, 2000);
	ck_assert_int_eq(a->max_running, 1);
	ck_assert_int_eq(a->nargs, 0);
	ck_assert_ptr_null(conf_action_find(&c, "nope"));

	ck_assert_int_eq(c.nsensors, 1);
	ck_assert_str_eq(c.sensors[0].name, "temp");
	ck_assert_str_eq(c.sensors[0].argv[1], "-c");
	ck_assert_uint_eq(c.sensors[0].interval_ms, 10000);
	ck_assert_uint_eq(c.sensors[0].timeout_ms, 2000);

	/* What the announce carries. */
	cJSON *acts = conf_actions_json(&c), *sens = conf_sensors_json(&c);
	char *s = cJSON_PrintUnformatted(acts);
	ck_assert_str_eq(s, "[{\"name\":\"lamp\",\"timeout\":5,\"args\":[{\"name\":\"level\","
			 "\"pattern\":\"[0-9]+\",\"default\":\"100\"},{\"name\":\"room\","
			 "\"pattern\":\"[a-z]+\"}]},{\"name\":\"reboot\",\"timeout\":30,\"args\":[]}]");
	cJSON_free(s);
	s = cJSON_PrintUnformatted(sens);
	ck_assert_str_eq(s, "[{\"name\":\"temp\",\"interval\":10}]");
	cJSON_free(s);
	cJSON_Delete(acts);
	cJSON_Delete(sens);
	conf_free(&c);
}
END_TEST

START_TEST(test_minimal_defaults)
{
	struct conf c;

	write_conf("id = \"k\"; secret_file = \"/s\"; state_dir = \"/d\"; listen = { };\n");
	ck_assert_int_eq(conf_load(&c, path), 0);
	ck_assert_str_eq(c.name, "k");
	ck_assert_str_eq(c.listen_addr, "127.0.0.1");
	ck_assert_uint_eq(c.listen_port, 7410);
	ck_assert_ptr_null(c.announce_addr);
	ck_assert_ptr_null(c.home_addr);
	ck_assert_int_eq(c.nactions, 0);
	ck_assert_int_eq(c.nsensors, 0);
	ck_assert_int_eq(c.journal_max, 10000);
	conf_free(&c);
}
END_TEST

START_TEST(test_relative_argv0)
{
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"lamp\", \"on\"]; }\n" /* 6 */
			  ");\n",
			  6, "action 'lamp': argv[0] must be an absolute path");
	assert_load_fails(HEAD "sensors = (\n"
			  "  { name = \"t\"; argv = [\"./temp\"]; }\n"
			  ");\n",
			  6, "sensor 't': argv[0] must be an absolute path");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"x\"; argv = [\"/bin/{a}\"];\n"
			  "    args = ( { name = \"a\"; pattern = \"sh\"; } ); }\n"
			  ");\n",
			  6, "action 'x': argv[0] must not take an argument");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"x\"; argv = [ ]; }\n"
			  ");\n",
			  6, "'argv' must not be empty");
}
END_TEST

START_TEST(test_bad_regex)
{
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp\", \"{level}\"];\n"
			  "    args = (\n"
			  "      { name = \"level\"; pattern = \"[0-9\"; }\n" /* 8 */
			  "    ); }\n"
			  ");\n",
			  8, "action 'lamp': arg 'level': bad pattern");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp\", \"{level}\"];\n"
			  "    args = (\n"
			  "      { name = \"ok\"; pattern = \"[a-z]+\"; },\n"
			  "      { name = \"level\"; pattern = \"(\"; }\n" /* 9 */
			  "    ); }\n"
			  ");\n",
			  9, "action 'lamp': arg 'level': bad pattern");
}
END_TEST

START_TEST(test_default_must_match)
{
	/* After a compiled pattern (leaks are caught by the ASan build). */
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp\", \"{level}\"];\n"
			  "    args = (\n"
			  "      { name = \"a\"; pattern = \"[a-z]+\"; },\n"
			  "      { name = \"level\"; pattern = \"[0-9]+\"; default = \"high\"; }\n" /* 9 */
			  "    ); }\n"
			  ");\n",
			  9, "action 'lamp': arg 'level': default does not match its pattern");
}
END_TEST

START_TEST(test_duplicate_action)
{
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp\"]; },\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp2\"]; }\n" /* 7 */
			  ");\n",
			  7, "action 'lamp' defined twice");
	assert_load_fails(HEAD "sensors = (\n"
			  "  { name = \"t\"; argv = [\"/bin/t\"]; },\n"
			  "  { name = \"t\"; argv = [\"/bin/t\"]; }\n"
			  ");\n",
			  7, "sensor 't' defined twice");
}
END_TEST

START_TEST(test_other_errors)
{
	assert_load_fails(HEAD "colour = \"red\";\n", 5, "unknown setting 'colour'");
	assert_load_fails("id = \"kitchen\";\nsecret_file = \"/s\";\nstate_dir = \"/d\";\n"
			  "listen = { address = \"127.0.0.1\"; port = \"x\"; };\n",
			  4, "'port' must be an integer");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp\"]; timeout = 0; }\n",
			  7, "syntax error");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"lamp\"; argv = [\"/bin/lamp\"]; timeout = 100000; }\n"
			  ");\n",
			  6, "'timeout' must be between");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"la mp\"; argv = [\"/bin/lamp\"]; }\n"
			  ");\n",
			  6, "action name 'la mp' must be");
	assert_load_fails(HEAD "actions = (\n"
			  "  { argv = [\"/bin/lamp\"]; }\n"
			  ");\n",
			  6, "missing required setting 'name'");
	assert_load_fails(HEAD "actions = (\n"
			  "  { name = \"l\"; argv = [\"/bin/lamp\"];\n"
			  "    args = ( { name = \"x\"; } ); }\n" /* 7 */
			  ");\n",
			  7, "missing required setting 'pattern'");
	assert_load_fails(HEAD "actions = { };\n", 5, "'actions' must be a list");
	assert_load_fails(HEAD "id2 = 1;\n", 5, "unknown setting 'id2'");
	assert_load_fails("id = \"bad id\";\nsecret_file = \"/s\";\nstate_dir = \"/d\";\n"
			  "listen = { };\n",
			  1, "id 'bad id' must be");
	assert_load_fails("secret_file = \"/s\";\nstate_dir = \"/d\";\nlisten = { };\n",
			  0, "missing required setting 'id'");
}
END_TEST

/* A sensor's unit and device class (for Home Assistant) are checked and carried in hello and
 * announces (docs/lan-protocol.md); without them nothing changes. */
START_TEST(test_sensor_ha)
{
	struct conf c;
	write_conf(HEAD "sensors = (\n"
		   "  { name = \"temp\"; argv = [\"/bin/t\"]; unit = \"\xc2\xb0""C\"; device_class = \"temperature\"; },\n"
		   "  { name = \"hum\"; argv = [\"/bin/h\"]; unit = \"%\"; },\n"
		   "  { name = \"door\"; argv = [\"/bin/d\"]; }\n"
		   ");\n");
	ck_assert_int_eq(conf_load(&c, path), 0);
	ck_assert_str_eq(c.sensors[0].unit, "\xc2\xb0""C");
	ck_assert_str_eq(c.sensors[0].device_class, "temperature");
	ck_assert_ptr_null(c.sensors[1].device_class);
	ck_assert_ptr_null(c.sensors[2].unit);
	cJSON *sens = conf_sensors_json(&c);
	char *s = cJSON_PrintUnformatted(sens);
	ck_assert_str_eq(s, "[{\"name\":\"temp\",\"interval\":10,\"unit\":\"\xc2\xb0""C\",\"device_class\":\"temperature\"},"
			 "{\"name\":\"hum\",\"interval\":10,\"unit\":\"%\"},{\"name\":\"door\",\"interval\":10}]");
	cJSON_free(s);
	cJSON_Delete(sens);
	conf_free(&c);
	assert_load_fails(HEAD "sensors = (\n  { name = \"t\"; argv = [\"/bin/t\"]; unit = \"\"; }\n);\n",
			  6, "sensor 't': unit must be 1..31 bytes of text");
	assert_load_fails(HEAD "sensors = (\n  { name = \"t\"; argv = [\"/bin/t\"]; unit = \"a\\tb\"; }\n);\n",
			  6, "sensor 't': unit must be 1..31 bytes of text");
	assert_load_fails(HEAD "sensors = (\n  { name = \"t\"; argv = [\"/bin/t\"]; unit = \"0123456789012345678901234567890123\"; }\n);\n",
			  6, "sensor 't': unit must be 1..31 bytes of text");
	assert_load_fails(HEAD "sensors = (\n  { name = \"t\"; argv = [\"/bin/t\"]; device_class = \"Temperature\"; }\n);\n",
			  6, "sensor 't': device_class must be 1..63 of a-z 0-9 _");
	assert_load_fails(HEAD "sensors = (\n  { name = \"t\"; argv = [\"/bin/t\"]; device_class = 1; }\n);\n",
			  6, "'device_class' must be a string");
}
END_TEST

/* --- conf_action_argv --- */

static cJSON *args_of(const char *json)
{
	cJSON *a = cJSON_Parse(json);

	ck_assert_ptr_nonnull(a);
	return a;
}

static void assert_argv(char **argv, const char *const *want)
{
	size_t i;

	ck_assert_ptr_nonnull(argv);
	for (i = 0; want[i]; i++) {
		ck_assert_ptr_nonnull(argv[i]);
		ck_assert_str_eq(argv[i], want[i]);
	}
	ck_assert_ptr_null(argv[i]);
}

static void assert_rejected(const struct conf_action *a, const char *json, const char *want)
{
	cJSON *args = args_of(json);
	char **argv = (char **)1;

	why[0] = '\0';
	ck_assert_int_eq(conf_action_argv(a, args, &argv, why, sizeof why), -1);
	ck_assert_ptr_null(argv);
	ck_assert_msg(strcmp(why, want) == 0, "why: %s\nwant: %s", why, want);
	cJSON_Delete(args);
}

START_TEST(test_argv_matching)
{
	static const char *const want[] = { "/usr/local/bin/lamp", "--level=42", "kitchen", NULL };
	struct conf c;
	const struct conf_action *a;
	cJSON *args;
	char **argv = NULL;

	load_good(&c);
	a = conf_action_find(&c, "lamp");
	args = args_of("{\"level\":\"42\",\"room\":\"kitchen\"}");
	ck_assert_int_eq(conf_action_argv(a, args, &argv, why, sizeof why), 0);
	assert_argv(argv, want);
	conf_argv_free(argv);
	cJSON_Delete(args);
	conf_argv_free(NULL);
	conf_free(&c);
}
END_TEST

START_TEST(test_argv_default)
{
	static const char *const want[] = { "/usr/local/bin/lamp", "--level=100", "hall", NULL };
	static const char *const none[] = { "/sbin/reboot", NULL };
	struct conf c;
	cJSON *args;
	char **argv = NULL;

	load_good(&c);
	args = args_of("{\"room\":\"hall\"}");
	ck_assert_int_eq(conf_action_argv(conf_action_find(&c, "lamp"), args, &argv, why,
					  sizeof why), 0);
	assert_argv(argv, want);
	conf_argv_free(argv);
	cJSON_Delete(args);

	/* No declared args, none given (NULL or empty object). */
	ck_assert_int_eq(conf_action_argv(conf_action_find(&c, "reboot"), NULL, &argv, why,
					  sizeof why), 0);
	assert_argv(argv, none);
	conf_argv_free(argv);
	args = args_of("{}");
	ck_assert_int_eq(conf_action_argv(conf_action_find(&c, "reboot"), args, &argv, why,
					  sizeof why), 0);
	assert_argv(argv, none);
	conf_argv_free(argv);
	cJSON_Delete(args);
	conf_free(&c);
}
END_TEST

START_TEST(test_argv_rejections)
{
	struct conf c;
	const struct conf_action *a;

	load_good(&c);
	a = conf_action_find(&c, "lamp");
	/* Patterns are anchored: a matching prefix is not enough. */
	assert_rejected(a, "{\"level\":\"5; rm -rf /\",\"room\":\"x\"}",
			"arg 'level' does not match [0-9]+");
	assert_rejected(a, "{\"level\":\"x5\",\"room\":\"x\"}", "arg 'level' does not match [0-9]+");
	assert_rejected(a, "{\"level\":\"\",\"room\":\"x\"}", "arg 'level' does not match [0-9]+");
	assert_rejected(a, "{\"level\":\"5\\n\",\"room\":\"x\"}",
			"arg 'level' does not match [0-9]+");
	assert_rejected(a, "{\"level\":5,\"room\":\"x\"}", "arg 'level' does not match [0-9]+");
	assert_rejected(a, "{\"room\":\"x\",\"colour\":\"red\"}",
			"action 'lamp' takes no arg 'colour'");
	assert_rejected(a, "{\"level\":\"5\"}", "missing arg 'room'");
	assert_rejected(conf_action_find(&c, "reboot"), "{\"now\":\"1\"}",
			"action 'reboot' takes no arg 'now'");
	conf_free(&c);
}
END_TEST

/* A pattern with its own alternation must not escape the anchors ("^(a)|(b)$"). */
START_TEST(test_argv_anchor_alternation)
{
	static const char *const want[] = { "/bin/x", "on", NULL };
	struct conf c;
	const struct conf_action *a;
	cJSON *args;
	char **argv = NULL;

	write_conf(HEAD "actions = (\n"
		   "  { name = \"x\"; argv = [\"/bin/x\", \"{v}\"];\n"
		   "    args = ( { name = \"v\"; pattern = \"on)|(off\"; } ); },\n"
		   "  { name = \"y\"; argv = [\"/bin/y\", \"{v}\"];\n"
		   "    args = ( { name = \"v\"; pattern = \"on|off\"; } ); }\n"
		   ");\n");
	capture_start();
	int rc = conf_load(&c, path);
	capture_end();
	if (rc == 0) {
		a = conf_action_find(&c, "x");
		assert_rejected(a, "{\"v\":\"on; rm -rf /\"}", "arg 'v' does not match on)|(off");
		assert_rejected(a, "{\"v\":\"rm -rf / #off\"}", "arg 'v' does not match on)|(off");
		args = args_of("{\"v\":\"on\"}");
		ck_assert_int_eq(conf_action_argv(a, args, &argv, why, sizeof why), 0);
		assert_argv(argv, want);
		conf_argv_free(argv);
		cJSON_Delete(args);
	}
	a = conf_action_find(&c, "y");
	ck_assert_ptr_nonnull(a);
	assert_rejected(a, "{\"v\":\"onoff\"}", "arg 'v' does not match on|off");
	assert_rejected(a, "{\"v\":\"on \"}", "arg 'v' does not match on|off");
	conf_free(&c);
}
END_TEST

START_TEST(test_argv_expansion)
{
	static const char *const want[] = { "/bin/t", "--level=7", "7{7}", "{other}", "{lev", "7",
					    "a7b7c", NULL };
	struct conf c;
	cJSON *args;
	char **argv = NULL;

	write_conf(HEAD "actions = (\n"
		   "  { name = \"t\"; argv = [\"/bin/t\", \"--level={level}\", \"{level}{{level}}\",\n"
		   "      \"{other}\", \"{lev\", \"{level}\", \"a{level}b{level}c\"];\n"
		   "    args = ( { name = \"level\"; pattern = \"[0-9]+|\\\\{level\\\\}\"; } ); }\n"
		   ");\n");
	ck_assert_int_eq(conf_load(&c, path), 0);
	args = args_of("{\"level\":\"7\"}");
	ck_assert_int_eq(conf_action_argv(conf_action_find(&c, "t"), args, &argv, why, sizeof why),
			 0);
	/* "{level}{{level}}": the first is replaced, then "{" literal, then "{level}" -> 7,
	 * then "}" literal. */
	ck_assert_str_eq(argv[2], "7{7}");
	assert_argv(argv, want);
	conf_argv_free(argv);
	cJSON_Delete(args);

	/* A value that looks like a placeholder is inserted literally, not expanded again. */
	args = args_of("{\"level\":\"{level}\"}");
	ck_assert_int_eq(conf_action_argv(conf_action_find(&c, "t"), args, &argv, why, sizeof why),
			 0);
	ck_assert_str_eq(argv[1], "--level={level}");
	conf_argv_free(argv);
	cJSON_Delete(args);
	conf_free(&c);
}
END_TEST

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_good_config);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_relative_argv0);
	tcase_add_test(tc, test_bad_regex);
	tcase_add_test(tc, test_default_must_match);
	tcase_add_test(tc, test_duplicate_action);
	tcase_add_test(tc, test_other_errors);
	tcase_add_test(tc, test_sensor_ha);
	tcase_add_test(tc, test_argv_matching);
	tcase_add_test(tc, test_argv_default);
	tcase_add_test(tc, test_argv_rejections);
	tcase_add_test(tc, test_argv_anchor_alternation);
	tcase_add_test(tc, test_argv_expansion);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
