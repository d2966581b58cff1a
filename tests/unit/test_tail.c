/* Unit tests of tail: the last cap bytes of a stream, whatever the sizes of the pieces, with
 * truncated set exactly when bytes were dropped. */
#include "tail.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_short_and_exact)
{
	struct tail t;
	ck_assert_int_eq(tail_init(&t, 8), 0);
	ck_assert_str_eq(tail_str(&t), "");
	tail_append(&t, "abc", 3);
	tail_append(&t, "defgh", 5);
	ck_assert_str_eq(tail_str(&t), "abcdefgh");   /* exactly cap: nothing dropped */
	ck_assert_uint_eq(tail_len(&t), 8);
	ck_assert(!tail_truncated(&t));
	tail_free(&t);
	ck_assert_ptr_null(tail_str(&t));
}
END_TEST

START_TEST(test_wraps_and_keeps_the_end)
{
	/* Every piece size against a reference: the last 7 bytes of what was written. */
	for (size_t piece = 1; piece <= 20; piece++) {
		struct tail t;
		char all[512];
		size_t n = 0;
		ck_assert_int_eq(tail_init(&t, 7), 0);
		for (int i = 0; n + piece < sizeof all && i < 15; i++) {
			char p[32];
			for (size_t k = 0; k < piece; k++)
				p[k] = (char)('a' + (n + k) % 26);
			memcpy(all + n, p, piece);
			n += piece;
			tail_append(&t, p, piece);
			if (i % 4 == 3) {
				/* Reading in between rotates the ring; appending goes on from there. */
				size_t keep = n < 7 ? n : 7;
				ck_assert_int_eq(memcmp(tail_str(&t), all + n - keep, keep), 0);
			}
		}
		size_t keep = n < 7 ? n : 7;
		all[n] = '\0';
		ck_assert_str_eq(tail_str(&t), all + n - keep);
		ck_assert_uint_eq(tail_len(&t), keep);
		ck_assert(tail_truncated(&t) == (n > 7));
		tail_free(&t);
	}
}
END_TEST

START_TEST(test_one_big_piece)
{
	struct tail t;
	ck_assert_int_eq(tail_init(&t, 4), 0);
	tail_append(&t, "0123456789", 10);
	ck_assert_str_eq(tail_str(&t), "6789");
	ck_assert(tail_truncated(&t));
	tail_free(&t);
	ck_assert_int_eq(tail_init(&t, 4), 0);
	tail_append(&t, "wxyz", 4);   /* one piece of exactly cap into an empty tail */
	ck_assert_str_eq(tail_str(&t), "wxyz");
	ck_assert(!tail_truncated(&t));
	tail_free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tail");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_short_and_exact);
	tcase_add_test(tc, test_wraps_and_keeps_the_end);
	tcase_add_test(tc, test_one_big_piece);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
