/* test_command: command request parsing, each rejection's reason, and the JSON round trip. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

static char why[256];

static int parse(const char *json, struct command *c)
{
	why[0] = '\0';
	return command_parse(json, strlen(json), c, why, sizeof why);
}

static const char *arg(const struct command *c, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(c->args, name);

	ck_assert_msg(cJSON_IsString(a), "arg '%s' missing or not a string", name);
	return a->valuestring;
}

/* The command is rejected, c is left cleared, and why says exactly this. */
static void assert_rejected(const char *json, const char *want)
{
	struct command c;

	memset(&c, 0x5a, sizeof c);
	ck_assert_msg(parse(json, &c) == -EINVAL, "accepted: %s", json);
	ck_assert_msg(strcmp(why, want) == 0, "for %s\n  why: %s\n want: %s", json, why, want);
	ck_assert_ptr_null(c.args);
	ck_assert_str_eq(c.id, "");
	ck_assert_str_eq(c.action, "");
}

START_TEST(test_valid_all_fields)
{
	struct command c;

	ck_assert_int_eq(parse("{\"type\":\"command\",\"id\":\"3f2a-1:x.y\",\"action\":\"lamp_on\","
			       "\"args\":{\"level\":\"50\",\"room\":\"kitchen\"},\"timeout\":2.5,"
			       "\"deadline\":1700000000.25,\"reply_to\":\"fr/home/reply/cli-1\"}",
			       &c), 0);
	ck_assert_str_eq(c.id, "3f2a-1:x.y");
	ck_assert_str_eq(c.action, "lamp_on");
	ck_assert_int_eq(cJSON_GetArraySize(c.args), 2);
	ck_assert_str_eq(arg(&c, "level"), "50");
	ck_assert_str_eq(arg(&c, "room"), "kitchen");
	ck_assert_uint_eq(c.timeout_ms, 2500);
	ck_assert_int_eq(c.deadline_ms, 1700000000250ll);
	ck_assert_str_eq(c.reply_to, "fr/home/reply/cli-1");
	command_clear(&c);
	ck_assert_ptr_null(c.args);
}
END_TEST

START_TEST(test_valid_minimal)
{
	struct command c;

	ck_assert_int_eq(parse("{\"id\":\"1\",\"action\":\"a\"}", &c), 0);
	ck_assert_ptr_nonnull(c.args);
	ck_assert_int_eq(cJSON_GetArraySize(c.args), 0);
	ck_assert_uint_eq(c.timeout_ms, 0);
	ck_assert_int_eq(c.deadline_ms, 0);
	ck_assert_str_eq(c.reply_to, "");
	command_clear(&c);

	/* Explicit nulls mean "not given". */
	ck_assert_int_eq(parse("{\"id\":\"1\",\"action\":\"a\",\"args\":null,\"timeout\":null,"
			       "\"deadline\":null,\"reply_to\":null}", &c), 0);
	ck_assert_int_eq(cJSON_GetArraySize(c.args), 0);
	command_clear(&c);

	/* A tiny timeout still means "a timeout", not "the action's own". */
	ck_assert_int_eq(parse("{\"id\":\"1\",\"action\":\"a\",\"timeout\":0.0001}", &c), 0);
	ck_assert_uint_eq(c.timeout_ms, 1);
	command_clear(&c);
}
END_TEST

START_TEST(test_missing_and_bad_fields)
{
	char longid[COMMAND_ID_MAX + 2], json[512];

	assert_rejected("[1,2]", "command must be a JSON object");
	assert_rejected("\"x\"", "command must be a JSON object");
	assert_rejected("{\"type\":\"result\",\"id\":\"1\",\"action\":\"a\"}",
			"'type' must be \"command\"");
	assert_rejected("{\"type\":1,\"id\":\"1\",\"action\":\"a\"}", "'type' must be \"command\"");
	assert_rejected("{\"action\":\"a\"}", "missing 'id'");
	assert_rejected("{\"id\":7,\"action\":\"a\"}",
			"'id' must be 1..64 characters of A-Z a-z 0-9 _ - . :");
	assert_rejected("{\"id\":\"\",\"action\":\"a\"}",
			"'id' must be 1..64 characters of A-Z a-z 0-9 _ - . :");
	assert_rejected("{\"id\":\"a/b\",\"action\":\"a\"}",
			"'id' must be 1..64 characters of A-Z a-z 0-9 _ - . :");
	memset(longid, 'i', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"action\":\"a\"}", longid);
	assert_rejected(json, "'id' must be 1..64 characters of A-Z a-z 0-9 _ - . :");
	longid[COMMAND_ID_MAX] = '\0'; /* exactly the maximum is fine */
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"action\":\"a\"}", longid);
	struct command c;
	ck_assert_int_eq(parse(json, &c), 0);
	ck_assert_str_eq(c.id, longid);
	command_clear(&c);

	assert_rejected("{\"id\":\"1\"}", "missing 'action'");
	assert_rejected("{\"id\":\"1\",\"action\":\"a.b\"}",
			"'action' must be 1..63 characters of A-Z a-z 0-9 _ -");
	assert_rejected("{\"id\":\"1\",\"action\":null}",
			"'action' must be 1..63 characters of A-Z a-z 0-9 _ -");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":[\"x\"]}",
			"'args' must be an object of name: value");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"a b\":\"x\"}}",
			"arg name must be 1..63 characters of A-Z a-z 0-9 _ -");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"x\":\"1\",\"x\":\"2\"}}",
			"arg 'x' given twice");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"x\":[1]}}",
			"arg 'x' must be a string, number or boolean");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"x\":null}}",
			"arg 'x' must be a string, number or boolean");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"x\":{}}}",
			"arg 'x' must be a string, number or boolean");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"timeout\":0}",
			"'timeout' must be a number of seconds in (0, 86400]");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"timeout\":86401}",
			"'timeout' must be a number of seconds in (0, 86400]");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"timeout\":\"5\"}",
			"'timeout' must be a number of seconds in (0, 86400]");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"deadline\":-1}",
			"'deadline' must be a unix time in seconds");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"deadline\":1e13}",
			"'deadline' must be a unix time in seconds");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"reply_to\":\"\"}",
			"'reply_to' must be a topic of 1..255 bytes without + or #");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"reply_to\":5}",
			"'reply_to' must be a topic of 1..255 bytes without + or #");
	assert_rejected("{\"id\":\"1\",", "not valid JSON (near byte 9)");
	assert_rejected("", "not valid JSON (near byte 0)");
}
END_TEST

START_TEST(test_args_to_strings)
{
	struct command c;

	ck_assert_int_eq(parse("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"i\":5,\"neg\":-12,"
			       "\"f\":2.5,\"tenth\":0.1,\"t\":true,\"fl\":false,\"big\":1e300,"
			       "\"huge\":123456789012345678,\"s\":\"str\",\"e\":\"\"}}", &c), 0);
	ck_assert_str_eq(arg(&c, "i"), "5");
	ck_assert_str_eq(arg(&c, "neg"), "-12");
	ck_assert_str_eq(arg(&c, "f"), "2.5");
	/* The JSON text as written, not a 17-digit expansion. */
	ck_assert_str_eq(arg(&c, "tenth"), "0.1");
	ck_assert_str_eq(arg(&c, "t"), "true");
	ck_assert_str_eq(arg(&c, "fl"), "false");
	ck_assert_str_eq(arg(&c, "big"), "1e+300");
	ck_assert_str_eq(arg(&c, "huge"), "1.2345678901234568e+17");
	ck_assert_str_eq(arg(&c, "s"), "str");
	ck_assert_str_eq(arg(&c, "e"), "");
	command_clear(&c);
}
END_TEST

START_TEST(test_arg_newline_and_length)
{
	char *json;
	size_t n = COMMAND_ARG_LEN_MAX + 100;
	struct command c;

	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"args\":{\"x\":\"one\\ntwo\"}}",
			"arg 'x' is longer than 1024 bytes or has a newline");
	json = malloc(n + 64);
	ck_assert_ptr_nonnull(json);
	strcpy(json, "{\"id\":\"1\",\"action\":\"a\",\"args\":{\"x\":\"");
	size_t k = strlen(json);
	memset(json + k, 'v', COMMAND_ARG_LEN_MAX + 1);
	strcpy(json + k + COMMAND_ARG_LEN_MAX + 1, "\"}}");
	assert_rejected(json, "arg 'x' is longer than 1024 bytes or has a newline");
	/* Exactly the maximum is fine. */
	strcpy(json + k + COMMAND_ARG_LEN_MAX, "\"}}");
	ck_assert_int_eq(parse(json, &c), 0);
	ck_assert_uint_eq(strlen(arg(&c, "x")), COMMAND_ARG_LEN_MAX);
	command_clear(&c);
	free(json);
}
END_TEST

/* Issue 11 item 13: an escaped NUL used to cut "a\u0000b" to "a", which then passed the
 * pattern. Any string, key or value, with a NUL is rejected; an escaped backslash before
 * "u0000" is text, not a NUL. */
START_TEST(test_nul_escape)
{
	struct command c;

	assert_rejected("{\"id\":\"n-1\",\"action\":\"lamp\",\"args\":{\"state\":\"a\\u0000b\"}}",
			"strings must not contain NUL (\\u0000 at byte 46)");
	assert_rejected("{\"id\":\"n-1\",\"action\":\"lamp\",\"args\":{\"st\\u0000ate\":\"on\"}}",
			"strings must not contain NUL (\\u0000 at byte 39)");
	assert_rejected("{\"id\":\"n-1\",\"action\":\"lamp\",\"reply_to\":\"x/\\u0000\"}",
			"strings must not contain NUL (\\u0000 at byte 42)");
	ck_assert_int_eq(parse("{\"id\":\"n-2\",\"action\":\"lamp\",\"args\":{\"state\":\"a\\\\u0000b\"}}", &c), 0);
	ck_assert_str_eq(arg(&c, "state"), "a\\u0000b");
	command_clear(&c);
	ck_assert_int_eq(parse("{\"id\":\"n-3\",\"action\":\"lamp\",\"args\":{\"state\":\"\\\"\\u0001\"}}", &c), 0);
	command_clear(&c);
	ck_assert_int_eq(command_json_nul("\"\\u0000\"", 8), 1);
	ck_assert_int_eq(command_json_nul("\"\\\"\\u0000\"", 10), 3);
	ck_assert_int_eq(command_json_nul("\"\\\\u0000\"", 9), -1);
	ck_assert_int_eq(command_json_nul("\"\\u000", 7), -1);
}
END_TEST

START_TEST(test_too_many_args)
{
	char json[2048];
	size_t k;
	struct command c;

	for (int n = COMMAND_ARGS_MAX; n <= COMMAND_ARGS_MAX + 1; n++) {
		k = (size_t)snprintf(json, sizeof json, "{\"id\":\"1\",\"action\":\"a\",\"args\":{");
		for (int i = 0; i < n; i++)
			k += (size_t)snprintf(json + k, sizeof json - k, "%s\"a%d\":\"%d\"",
					      i ? "," : "", i, i);
		snprintf(json + k, sizeof json - k, "}}");
		if (n == COMMAND_ARGS_MAX) {
			ck_assert_int_eq(parse(json, &c), 0);
			ck_assert_int_eq(cJSON_GetArraySize(c.args), COMMAND_ARGS_MAX);
			command_clear(&c);
		} else {
			assert_rejected(json, "more than 32 args");
		}
	}
}
END_TEST

START_TEST(test_reply_to_wildcards)
{
	char json[600], topic[COMMAND_TOPIC_MAX + 2];
	struct command c;

	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"reply_to\":\"fr/+/reply\"}",
			"'reply_to' must be a topic of 1..255 bytes without + or #");
	assert_rejected("{\"id\":\"1\",\"action\":\"a\",\"reply_to\":\"fr/reply/#\"}",
			"'reply_to' must be a topic of 1..255 bytes without + or #");
	memset(topic, 't', sizeof topic - 1);
	topic[sizeof topic - 1] = '\0';
	snprintf(json, sizeof json, "{\"id\":\"1\",\"action\":\"a\",\"reply_to\":\"%s\"}", topic);
	assert_rejected(json, "'reply_to' must be a topic of 1..255 bytes without + or #");
	topic[COMMAND_TOPIC_MAX] = '\0';
	snprintf(json, sizeof json, "{\"id\":\"1\",\"action\":\"a\",\"reply_to\":\"%s\"}", topic);
	ck_assert_int_eq(parse(json, &c), 0);
	ck_assert_str_eq(c.reply_to, topic);
	command_clear(&c);
}
END_TEST

START_TEST(test_json_too_long)
{
	size_t n = COMMAND_JSON_MAX + 1;
	char *json = malloc(n + 1);
	struct command c;

	ck_assert_ptr_nonnull(json);
	/* A valid command padded with whitespace: the length alone rejects it. */
	memset(json, ' ', n);
	memcpy(json, "{\"id\":\"1\",\"action\":\"a\"}", 23);
	json[n] = '\0';
	assert_rejected(json, "command is longer than 16384 bytes");
	/* At exactly the maximum it parses. */
	json[n - 1] = '\0';
	ck_assert_int_eq(parse(json, &c), 0);
	command_clear(&c);
	free(json);
}
END_TEST

START_TEST(test_no_why_buffer)
{
	struct command c;
	const char *bad = "{\"id\":1}";

	ck_assert_int_eq(command_parse(bad, strlen(bad), &c, NULL, 0), -EINVAL);
	ck_assert_ptr_null(c.args);
}
END_TEST

START_TEST(test_round_trip)
{
	static const char *const inputs[] = {
		("{\"id\":\"abc:1\",\"action\":\"lamp\",\"args\":{\"state\":\"on\",\"n\":3},"
		 "\"timeout\":2.5,\"deadline\":1700000000.123,\"reply_to\":\"fr/h/reply/x\"}"),
		"{\"id\":\"x\",\"action\":\"y\"}",
		"{\"id\":\"x\",\"action\":\"y\",\"timeout\":0.001,\"deadline\":1999999999.999}",
		"{\"id\":\"x\",\"action\":\"y\",\"deadline\":1700000000.001}",
		/* ms / 1000 * 1000 lands just below these in binary floating point. */
		"{\"id\":\"x\",\"action\":\"y\",\"deadline\":2182187855.107}",
		"{\"id\":\"x\",\"action\":\"y\",\"deadline\":1075161068.353}",
	};

	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		struct command a, b;
		cJSON *j;

		ck_assert_int_eq(parse(inputs[i], &a), 0);
		j = command_to_json(&a, true);
		ck_assert_ptr_nonnull(j);
		ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "type"));
		ck_assert_int_eq(command_from_json(j, &b, why, sizeof why), 0);
		ck_assert_str_eq(a.id, b.id);
		ck_assert_str_eq(a.action, b.action);
		ck_assert(cJSON_Compare(a.args, b.args, 1));
		ck_assert_uint_eq(a.timeout_ms, b.timeout_ms);
		ck_assert_msg(a.deadline_ms == b.deadline_ms, "deadline %lld became %lld",
			      (long long)a.deadline_ms, (long long)b.deadline_ms);
		ck_assert_str_eq(a.reply_to, b.reply_to);
		cJSON_Delete(j);
		command_clear(&a);
		command_clear(&b);
	}
}
END_TEST

START_TEST(test_deadline_ms_exact)
{
	struct command c;

	ck_assert_int_eq(parse("{\"id\":\"x\",\"action\":\"y\",\"deadline\":1700000000.123}", &c), 0);
	ck_assert_int_eq(c.deadline_ms, 1700000000123ll);
	command_clear(&c);
	ck_assert_int_eq(parse("{\"id\":\"x\",\"action\":\"y\",\"deadline\":1075161068.353}", &c), 0);
	ck_assert_int_eq(c.deadline_ms, 1075161068353ll);
	command_clear(&c);
}
END_TEST

/* A refused request's id and reply_to, as far as they can be read (docs/topics.md: "id": null
 * only when the id could not be read). */
START_TEST(test_peek)
{
	char id[COMMAND_ID_MAX + 1], rt[COMMAND_TOPIC_MAX + 1];
	static const char *const named[] = {
		"{\"id\":\"p-1\",\"reply_to\":\"fr/h/reply/u/1\"}",                     /* no action */
		"{\"id\":\"p-1\",\"action\":\"a\",\"args\":{\"w\":{\"a\":1}},\"reply_to\":\"fr/h/reply/u/1\"}",
		"{\"id\":\"p-1\",\"action\":\"a\",\"args\":{\"w\":\"a\\u0000b\"},\"reply_to\":\"fr/h/reply/u/1\"}",
		"{\"type\":\"x\",\"id\":\"p-1\",\"reply_to\":\"fr/h/reply/u/1\"}",
	};
	for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
		command_peek(named[i], strlen(named[i]), id, rt);
		ck_assert_str_eq(id, "p-1");
		ck_assert_str_eq(rt, "fr/h/reply/u/1");
	}
	/* Unreadable: not JSON, not an object, an invalid id, a value with a NUL (cJSON would
	 * hand back the prefix "p"), wildcards in reply_to. */
	static const char *const anon[] = {
		"not json", "[\"id\",\"p-1\"]", "{\"id\":\"has space\",\"reply_to\":\"a/#\"}",
		"{\"id\":\"p\\u0000q\",\"reply_to\":\"fr/h/reply/\\u0000\"}", "{\"id\":7}", "",
	};
	for (size_t i = 0; i < sizeof anon / sizeof *anon; i++) {
		command_peek(anon[i], strlen(anon[i]), id, rt);
		ck_assert_str_eq(id, "");
		ck_assert_str_eq(rt, "");
	}
}
END_TEST

static Suite *command_suite(void)
{
	Suite *s = suite_create("command");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_valid_all_fields);
	tcase_add_test(tc, test_valid_minimal);
	tcase_add_test(tc, test_missing_and_bad_fields);
	tcase_add_test(tc, test_args_to_strings);
	tcase_add_test(tc, test_arg_newline_and_length);
	tcase_add_test(tc, test_nul_escape);
	tcase_add_test(tc, test_too_many_args);
	tcase_add_test(tc, test_reply_to_wildcards);
	tcase_add_test(tc, test_json_too_long);
	tcase_add_test(tc, test_no_why_buffer);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_deadline_ms_exact);
	tcase_add_test(tc, test_peek);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(command_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
