/* Unit tests of name: the one check of fr's names and command ids. */
#include "name.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_names)
{
	ck_assert(name_valid("ab-C_9", 63));
	ck_assert(!name_valid("", 63));
	ck_assert(!name_valid(NULL, 63));
	ck_assert(!name_valid("a b", 63));
	ck_assert(!name_valid("a.b", 63));
	ck_assert(!name_valid("a:b", 63));
	ck_assert(!name_valid("a/b", 63));
	ck_assert(!name_valid("a+", 63));
	ck_assert(!name_valid("\xc3\xa9", 63));   /* é: names are ASCII */
	ck_assert(name_valid("abc", 3));
	ck_assert(!name_valid("abcd", 3));
	char n63[64], n64[65];
	memset(n63, 'x', 63);
	n63[63] = '\0';
	memset(n64, 'x', 64);
	n64[64] = '\0';
	ck_assert(name_valid(n63, NAME_LEN_MAX));
	ck_assert(!name_valid(n64, NAME_LEN_MAX));
}
END_TEST

/* A PSK identity arrives as bytes with a length, not a C string. */
START_TEST(test_names_n)
{
	ck_assert(name_valid_n("ctl-1xyz", 5, 63));
	ck_assert(!name_valid_n("ctl\0x", 5, 63));
	ck_assert(!name_valid_n("ctl", 0, 63));
	ck_assert(!name_valid_n("abcd", 4, 3));
	ck_assert(!name_valid_n(NULL, 3, 63));
}
END_TEST

START_TEST(test_ids)
{
	ck_assert(name_valid_id("3f6c2a1e-5b7d-4c1e-9a7b-2d4e6f8a0b1c", NAME_ID_LEN_MAX));
	ck_assert(name_valid_id("client:42.7", NAME_ID_LEN_MAX));
	ck_assert(!name_valid_id("", NAME_ID_LEN_MAX));
	ck_assert(!name_valid_id(NULL, NAME_ID_LEN_MAX));
	ck_assert(!name_valid_id("a b", NAME_ID_LEN_MAX));
	ck_assert(!name_valid_id("a/b", NAME_ID_LEN_MAX));
	char n64[65], n65[66];
	memset(n64, '7', 64);
	n64[64] = '\0';
	memset(n65, '7', 65);
	n65[65] = '\0';
	ck_assert(name_valid_id(n64, NAME_ID_LEN_MAX));
	ck_assert(!name_valid_id(n65, NAME_ID_LEN_MAX));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("name");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_names_n);
	tcase_add_test(tc, test_ids);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
