/* test_shimproto: the shim protocol parser (every op, missing/bad fields, ids, junk) and the
 * topic checks that decide which home a topic belongs to. */
#include "shimproto.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct shim_req r;
static char why[160];

static enum shim_err parse(const char *s)
{
	shimproto_free(&r);
	return shimproto_parse(s, strlen(s), &r, why, sizeof why);
}

static void teardown(void)
{
	shimproto_free(&r);
}

START_TEST(every_op)
{
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"auth\",\"token\":\"t0k\"}"), SHIM_OK);
	ck_assert_int_eq(r.op, SHIM_OP_AUTH);
	ck_assert_str_eq(r.token, "t0k");
	ck_assert_int_eq(parse("{\"id\":\"x\",\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_int_eq(r.op, SHIM_OP_PING);
	ck_assert_str_eq(r.id->valuestring, "x");
	ck_assert_int_eq(parse("{\"id\":3,\"op\":\"publish\",\"topic\":\"fr/h/display\",\"payload\":\"hi\"}"), SHIM_OK);
	ck_assert_int_eq(r.qos, 1);
	ck_assert(!r.retain);
	ck_assert(cJSON_IsString(r.payload));
	ck_assert_int_eq(parse("{\"id\":3,\"op\":\"publish\",\"topic\":\"t\",\"payload\":{\"a\":[1]},\"qos\":0,\"retain\":true}"), SHIM_OK);
	ck_assert_int_eq(r.qos, 0);
	ck_assert(r.retain);
	ck_assert_int_eq(parse("{\"id\":4,\"op\":\"get\",\"topic\":\"fr/h/status\"}"), SHIM_OK);
	ck_assert_str_eq(r.topic, "fr/h/status");
	ck_assert_int_eq(parse("{\"id\":5,\"op\":\"list\"}"), SHIM_OK);
	ck_assert_ptr_null(r.home);
	ck_assert_int_eq(parse("{\"id\":5,\"op\":\"list\",\"home\":\"home1\"}"), SHIM_OK);
	ck_assert_str_eq(r.home, "home1");
	ck_assert_int_eq(parse("{\"id\":6,\"op\":\"request\",\"home\":\"home1\",\"ctl\":\"kitchen\","
			       "\"action\":\"lamp\",\"args\":{\"state\":\"on\",\"n\":2,\"b\":false},"
			       "\"timeout\":10,\"deadline\":1764061300.5}"), SHIM_OK);
	ck_assert_str_eq(r.ctl, "kitchen");
	ck_assert_str_eq(r.action, "lamp");
	ck_assert(r.timeout_s == 10 && r.deadline_s == 1764061300.5 && r.wait_s == 15);
	ck_assert_int_eq(parse("{\"id\":6,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\"}"), SHIM_OK);
	ck_assert(r.wait_s == 30 && r.timeout_s == 0 && !r.args);
	ck_assert_int_eq(parse("{\"id\":6,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"wait\":0.5}"), SHIM_OK);
	ck_assert(r.wait_s == 0.5);
	ck_assert_int_eq(parse("{\"id\":7,\"op\":\"subscribe\",\"filter\":\"fr/h/#\"}"), SHIM_OK);
	ck_assert_str_eq(r.filter, "fr/h/#");
	ck_assert_int_eq(parse("{\"id\":8,\"op\":\"unsubscribe\",\"sub\":\"s7\"}"), SHIM_OK);
	ck_assert_str_eq(r.sub->valuestring, "s7");
	ck_assert_int_eq(parse("{\"id\":9,\"op\":\"audit\"}"), SHIM_OK);
	ck_assert_int_eq(r.limit, 50);
	ck_assert_int_eq(parse("{\"id\":9,\"op\":\"audit\",\"limit\":3}"), SHIM_OK);
	ck_assert_int_eq(r.limit, 3);
	ck_assert_int_eq(parse("{\"id\":10,\"op\":\"history\",\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"temp\"}"), SHIM_OK);
	ck_assert_int_eq(r.op, SHIM_OP_HISTORY);
	ck_assert_str_eq(r.sensor, "temp");
	ck_assert(r.from_ms == -1 && r.to_ms == -1 && r.max_points == SHIM_HISTORY_POINTS_DEFAULT);
	ck_assert_int_eq(parse("{\"id\":10,\"op\":\"history\",\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"t\","
			       "\"from\":1764061200000,\"to\":1764061200000,\"max_points\":200000}"), SHIM_OK);
	ck_assert(r.from_ms == 1764061200000LL && r.to_ms == 1764061200000LL && r.max_points == 200000);
	for (int i = 0; i < SHIM_OP_COUNT; i++)
		ck_assert_str_ne(shimproto_op_name((enum shim_op)i), "?");
	ck_assert_str_eq(shimproto_err_name(SHIM_E_TOO_LONG), "too_long");
}
END_TEST

START_TEST(ids)
{
	ck_assert_int_eq(parse("{\"id\":9007199254740992,\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_int_eq(parse("{\"id\":-5,\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_int_eq(parse("{\"id\":\"\",\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_int_eq(parse("{\"id\":1.5,\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1e300,\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_ptr_null(r.id);
	ck_assert_int_eq(parse("{\"id\":1e400,\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":null,\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":true,\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":[1],\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_str_eq(why, "missing 'id'");
	char big[300];
	memset(big, 'a', sizeof big);
	snprintf(big, sizeof big, "{\"id\":\"%0200d\",\"op\":\"ping\"}", 0);
	ck_assert_int_eq(parse(big), SHIM_E_BAD_REQUEST);
	/* An error after the id was read still carries the id. */
	ck_assert_int_eq(parse("{\"id\":42,\"op\":\"nope\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_ptr_nonnull(r.id);
	ck_assert(cJSON_IsRaw(r.id));
	ck_assert_str_eq(r.id->valuestring, "42");
}
END_TEST

/* Integer ids keep their text: a double would print 8000000000000001 as 8e+15 and take
 * 2^53 + 1 for 2^53. */
static const char *id_text(void)
{
	ck_assert(cJSON_IsRaw(r.id));
	return r.id->valuestring;
}

START_TEST(integer_ids_verbatim)
{
	static const char *const good[] = { "8000000000000001", "9007199254740991", "9007199254740992",
					     "-9007199254740992", "0", "-0", "7" };
	char line[128];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		snprintf(line, sizeof line, "{\"id\":%s,\"op\":\"ping\"}", good[i]);
		ck_assert_int_eq(parse(line), SHIM_OK);
		ck_assert_str_eq(id_text(), good[i]);
		cJSON *o = shimproto_ok(r.id);
		char *out = cJSON_PrintUnformatted(o);
		snprintf(line, sizeof line, "{\"id\":%s,\"ok\":true}", good[i]);
		ck_assert_str_eq(out, line);
		free(out);
		cJSON_Delete(o);
	}
	static const char *const bad[] = { "9007199254740993", "-9007199254740993", "10000000000000000",
					   "1.0", "1e3", "1E3", "01", "-01", "2.5e0" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(line, sizeof line, "{\"id\":%s,\"op\":\"ping\"}", bad[i]);
		ck_assert_msg(parse(line) == SHIM_E_BAD_REQUEST, "id %s accepted", bad[i]);
		ck_assert_ptr_null(r.id);
	}
	/* Blanks, a byte order mark, members before it, escaped names, nested "id"s. */
	ck_assert_int_eq(parse("\xEF\xBB\xBF {\n\"x\" : {\"id\":[1,{\"id\":\"}\"}]}, \"op\":\"ping\",\t\"id\" :\r 12 }"), SHIM_OK);
	ck_assert_str_eq(id_text(), "12");
	ck_assert_int_eq(parse("{\"\\u0069d\":9007199254740993,\"op\":\"ping\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"\\u0069d\":900719925474099,\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_str_eq(id_text(), "900719925474099");
	ck_assert_int_eq(parse("{\"i\\\"d\":1,\"id\":\"s\",\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_str_eq(r.id->valuestring, "s");
	/* The first of two "id" members counts, as cJSON reads it. */
	ck_assert_int_eq(parse("{\"id\":5,\"id\":6,\"op\":\"ping\"}"), SHIM_OK);
	ck_assert_str_eq(id_text(), "5");
	/* "sub" of unsubscribe alike, so it matches the subscribe id's text. */
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"unsubscribe\",\"sub\":8000000000000001}"), SHIM_OK);
	ck_assert(cJSON_IsRaw(r.sub));
	ck_assert_str_eq(r.sub->valuestring, "8000000000000001");
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"unsubscribe\",\"sub\":9007199254740993}"), SHIM_E_BAD_REQUEST);
}
END_TEST

START_TEST(response_lines)
{
	char *s;
	cJSON *o = shimproto_error(NULL, SHIM_E_TOO_LONG, "long");
	s = cJSON_PrintUnformatted(o);
	ck_assert_str_eq(s, "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"too_long\",\"message\":\"long\"}}");
	free(s);
	cJSON_Delete(o);
	ck_assert_int_eq(parse("{\"id\":\"q\",\"op\":\"ping\"}"), SHIM_OK);
	o = shimproto_event(r.id, "subscribed");
	s = cJSON_PrintUnformatted(o);
	ck_assert_str_eq(s, "{\"id\":\"q\",\"event\":\"subscribed\"}");
	free(s);
	cJSON_Delete(o);
	/* Payloads: a whole JSON value is JSON, anything else a string. */
	static const struct { const char *in, *out; } pl[] = {
		{ "21.5", "21.5" }, { "{\"a\":[1]}", "{\"a\":[1]}" }, { " true ", "true" },
		{ "21 degrees", "\"21 degrees\"" }, { "online", "\"online\"" }, { "", "\"\"" },
		{ "{\"a\":1} x", "\"{\\\"a\\\":1} x\"" },
	};
	for (size_t i = 0; i < sizeof pl / sizeof *pl; i++) {
		o = shimproto_payload(pl[i].in, strlen(pl[i].in));
		s = cJSON_PrintUnformatted(o);
		ck_assert_str_eq(s, pl[i].out);
		free(s);
		cJSON_Delete(o);
	}
}
END_TEST

START_TEST(bad_fields)
{
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"auth\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"auth\",\"token\":5}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"auth\",\"token\":\"\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":5}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"publish\",\"topic\":\"t\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"publish\",\"topic\":\"t\",\"payload\":1,\"qos\":3}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"publish\",\"topic\":\"t\",\"payload\":1,\"qos\":0.5}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"publish\",\"topic\":\"t\",\"payload\":1,\"retain\":1}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"get\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"get\",\"topic\":[]}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"list\",\"home\":\"a/b\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_str_eq(why, "missing 'action'");
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h+\",\"ctl\":\"c\",\"action\":\"a\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"args\":[1]}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"args\":{\"x\":{}}}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"args\":{\"x\":null}}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"args\":{\"bad name\":1}}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"timeout\":-1}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"timeout\":1e308}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"wait\":\"5\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"wait\":99999}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"subscribe\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"unsubscribe\"}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"unsubscribe\",\"sub\":{}}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"audit\",\"limit\":0}"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"audit\",\"limit\":1001}"), SHIM_E_BAD_REQUEST);
	static const char *const bad_history[] = {
		"\"ctl\":\"c\",\"sensor\":\"s\"", "\"home\":\"h\",\"sensor\":\"s\"", "\"home\":\"h\",\"ctl\":\"c\"",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"a/b\"",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"from\":-1",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"from\":1.5",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"to\":\"now\"",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"to\":9007199254740994",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"from\":5,\"to\":4",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"max_points\":0",
		"\"home\":\"h\",\"ctl\":\"c\",\"sensor\":\"s\",\"max_points\":200001",
	};
	for (size_t i = 0; i < sizeof bad_history / sizeof *bad_history; i++) {
		char line[256];
		snprintf(line, sizeof line, "{\"id\":1,\"op\":\"history\",%s}", bad_history[i]);
		ck_assert_msg(parse(line) == SHIM_E_BAD_REQUEST, "accepted %s", line);
	}
	ck_assert_str_eq(why, "'max_points' must be an integer in 1..200000");
	/* An escaped NUL would be cut away by cJSON and the rest passed on (issue 11 item 13). */
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"c\",\"action\":\"a\",\"args\":{\"x\":\"a\\u0000b\"}}"), SHIM_E_BAD_REQUEST);
	ck_assert_str_eq(why, "strings must not contain NUL (\\u0000)");
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"publish\",\"topic\":\"t\",\"payload\":\"\\u0000\"}"), SHIM_E_BAD_REQUEST);
}
END_TEST

START_TEST(junk_lines)
{
	ck_assert_int_eq(parse(""), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("hello"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("[1,2]"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("\"str\""), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("42"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("null"), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"ping\""), SHIM_E_BAD_REQUEST);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"ping\"} trailing"), SHIM_E_BAD_REQUEST);
	/* Deeply nested junk is parsed or refused without crashing; extra fields are ignored. */
	char *deep = malloc(200100);  /* prefix (25) + 200000 brackets + "}" */
	size_t n = 0;
	n += (size_t)sprintf(deep, "{\"id\":1,\"op\":\"ping\",\"x\":");
	for (int i = 0; i < 100000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	shimproto_free(&r);
	ck_assert_int_eq(shimproto_parse(deep, n, &r, why, sizeof why), SHIM_E_BAD_REQUEST);
	free(deep);
	ck_assert_int_eq(parse("{\"id\":1,\"op\":\"ping\",\"x\":[[[[{\"a\":{\"b\":[1,2,{}]}}]]]]}"), SHIM_OK);
	/* Not NUL-terminated input: only len bytes count. */
	const char *s = "{\"id\":1,\"op\":\"ping\"}GARBAGE";
	shimproto_free(&r);
	ck_assert_int_eq(shimproto_parse(s, 20, &r, why, sizeof why), SHIM_OK);
}
END_TEST

START_TEST(topics)
{
	char home[SHIM_NAME_MAX + 1];
	ck_assert(shimproto_topic_home("fr", "fr/home1/ctl/k/state/temp", false, home));
	ck_assert_str_eq(home, "home1");
	ck_assert(!shimproto_topic_home("fr", "fr/home1", false, home));
	ck_assert(!shimproto_topic_home("fr", "fr/home1/", false, home));
	ck_assert(!shimproto_topic_home("fr", "fr//x", false, home));
	ck_assert(!shimproto_topic_home("fr", "fx/home1/x", false, home));
	ck_assert(!shimproto_topic_home("fr", "frx/home1/x", false, home));
	ck_assert(!shimproto_topic_home("fr", "fr/+/status", true, home));
	ck_assert(!shimproto_topic_home("fr", "fr/#", true, home));
	ck_assert(!shimproto_topic_home("fr", "fr/home1/ctl/+/x", false, home));
	ck_assert(shimproto_topic_home("fr", "fr/home1/ctl/+/state/#", true, home));
	ck_assert(shimproto_topic_home("fr", "fr/home1/#", true, home));
	ck_assert(!shimproto_topic_home("fr", "fr/home1/#/x", true, home));
	ck_assert(!shimproto_topic_home("fr", "fr/home1/a+", true, home));
	ck_assert(!shimproto_topic_home("fr", "fr/home1/a//b", true, home));
	ck_assert(shimproto_publish_allowed("fr", "fr/home1/ctl/kitchen/cmd", false));
	ck_assert(!shimproto_publish_allowed("fr", "fr/home1/ctl/kitchen/cmd", true));
	ck_assert(shimproto_publish_allowed("fr", "fr/home1/display", true));
	ck_assert(!shimproto_publish_allowed("fr", "fr/home1/status", false));
	ck_assert(!shimproto_publish_allowed("fr", "fr/home1/ctl/kitchen/info", false));
	ck_assert(!shimproto_publish_allowed("fr", "fr/home1/ctl/a/b/cmd", false));
	ck_assert(!shimproto_publish_allowed("fr", "fr/home1/ctl/+/cmd", false));
	ck_assert(shimproto_topic_match("fr/+/status", "fr/h/status"));
	ck_assert(!shimproto_topic_match("fr/+/status", "fr/h/x/status"));
	ck_assert(shimproto_topic_match("fr/h/#", "fr/h/a/b"));
	ck_assert(shimproto_topic_match("fr/h/#", "fr/h"));
	ck_assert(!shimproto_topic_match("fr/h/#", "fr/hx/a"));
	ck_assert(shimproto_topic_match("fr/+/ctl/+/state/+", "fr/h/ctl/c/state/t"));
	ck_assert(!shimproto_topic_match("fr/h/status", "fr/h/statu"));
	ck_assert(!shimproto_topic_match("fr/h/statu", "fr/h/status"));
	ck_assert(!shimproto_topic_match("#", "$SYS/x"));
	ck_assert(shimproto_topic_match("+/+", "a/"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("shimproto");
	TCase *tc = tcase_create("parse");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, every_op);
	tcase_add_test(tc, ids);
	tcase_add_test(tc, integer_ids_verbatim);
	tcase_add_test(tc, response_lines);
	tcase_add_test(tc, bad_fields);
	tcase_add_test(tc, junk_lines);
	tcase_add_test(tc, topics);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
