/* Unit tests of backoff: every delay lies between the floor and a cap that doubles per failure
 * up to max, the random number picks where, a reset starts over, and no shift overflows. */
#include "backoff.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

START_TEST(test_bounds_double_and_cap)
{
	struct backoff b = { .min_ms = 500, .max_ms = 30000 };
	uint64_t cap = 500;
	for (unsigned i = 0; i < 40; i++) {
		struct backoff lo = b, hi = b;
		/* rnd 0 gives the floor, rnd = cap - min the cap itself. */
		ck_assert_uint_eq(backoff_next(&lo, 0), 500);
		ck_assert_uint_eq(backoff_next(&hi, cap - 500), cap);
		uint64_t d = backoff_next(&b, (uint64_t)random());
		ck_assert_uint_ge(d, 500);
		ck_assert_uint_le(d, cap);
		ck_assert_uint_eq(backoff_failures(&b), i + 1);
		cap = cap * 2 > 30000 ? 30000 : cap * 2;
	}
	/* Past 32 failures the shift stays in range: the cap is max. */
	ck_assert_uint_eq(backoff_next(&b, 29500), 30000);
	backoff_reset(&b);
	ck_assert_uint_eq(backoff_failures(&b), 0);
	ck_assert_uint_eq(backoff_next(&b, 12345), 500);   /* first delay: the floor only */
}
END_TEST

START_TEST(test_odd_settings)
{
	/* max below min counts as min; a huge min does not overflow when shifted. */
	struct backoff b = { .min_ms = 1000, .max_ms = 10 };
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(backoff_next(&b, (uint64_t)random()), 1000);
	struct backoff h = { .min_ms = UINT64_MAX / 4, .max_ms = UINT64_MAX / 2 };
	for (int i = 0; i < 70; i++) {
		uint64_t d = backoff_next(&h, UINT64_MAX);
		ck_assert_uint_ge(d, UINT64_MAX / 4);
		ck_assert_uint_le(d, UINT64_MAX / 2);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_bounds_double_and_cap);
	tcase_add_test(tc, test_odd_settings);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
