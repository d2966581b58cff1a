/* Unit tests of topic: the split of fr topic names. */
#include "topic.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_ctl)
{
	struct topic t;
	const char *s = "fr/home1/ctl/kitchen/state/temp";
	ck_assert_int_eq(topic_parse("fr", s, &t), TOPIC_CTL);
	ck_assert_str_eq(t.home, "home1");
	ck_assert_str_eq(t.ctl, "kitchen");
	ck_assert_str_eq(t.leaf, "state/temp");
	ck_assert_ptr_eq(t.leaf, s + strlen("fr/home1/ctl/kitchen/"));
	ck_assert_int_eq(topic_parse("fr", "fr/h/ctl/c/cmd", &t), TOPIC_CTL);
	ck_assert_str_eq(t.leaf, "cmd");
}
END_TEST

START_TEST(test_kinds)
{
	struct topic t;
	ck_assert_int_eq(topic_parse("fr", "fr/h/status", &t), TOPIC_HOME_STATUS);
	ck_assert_str_eq(t.home, "h");
	ck_assert_int_eq(topic_parse("fr", "fr/h/display", &t), TOPIC_DISPLAY);
	ck_assert_int_eq(topic_parse("fr", "fr/h/reply/alice/1", &t), TOPIC_REPLY);
	ck_assert_str_eq(t.leaf, "alice/1");
	ck_assert_int_eq(topic_parse("x", "x/h/status", &t), TOPIC_HOME_STATUS);
}
END_TEST

START_TEST(test_malformed)
{
	static const char *const bad[] = {
		"", "fr", "fr/", "fr//status", "frx/h/status", "fr/h", "fr/h/", "fr/h/ctl",
		"fr/h/ctl/", "fr/h/ctl/c", "fr/h/ctl/c/", "fr/h/ctl//cmd", "fr/h+/status",
		"fr/#/status", "fr/h/ctl/c d/cmd", "fr/h/reply/", "fr/h/other/x", "xx/h/status",
		"fr/h/statusx",
		"fr/0123456789012345678901234567890123456789012345678901234567890123/status",
	};
	struct topic t;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(topic_parse("fr", bad[i], &t) == TOPIC_OTHER, "accepted '%s'", bad[i]);
	/* 63 characters is the longest name. */
	char name[200];
	snprintf(name, sizeof name, "fr/%s/status",
		 "012345678901234567890123456789012345678901234567890123456789012");
	ck_assert_int_eq(topic_parse("fr", name, &t), TOPIC_HOME_STATUS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("topic");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_ctl);
	tcase_add_test(tc, test_kinds);
	tcase_add_test(tc, test_malformed);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
