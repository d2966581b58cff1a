/* test_frame: the frame codec (partial input, several frames per buffer, length limits checked
 * before allocating, encode/decode round trip, UTF-8 check). */
#include "frame.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_hdr(uint8_t *p, uint32_t n)
{
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

START_TEST(byte_by_byte)
{
	const char *body = "{\"type\":\"x\",\"v\":1}";
	uint8_t *enc;
	size_t enclen, used, len;
	struct frame_dec d;

	ck_assert_int_eq(frame_encode(body, strlen(body), 0, &enc, &enclen), 0);
	ck_assert_uint_eq(enclen, strlen(body) + 4);
	frame_dec_init(&d, 0);
	for (size_t i = 0; i < enclen; i++) {
		int rc = frame_dec_push(&d, enc + i, 1, &used);
		ck_assert_uint_eq(used, 1);
		ck_assert_int_eq(rc, i + 1 == enclen ? FRAME_READY : FRAME_MORE);
		if (i + 1 < enclen)
			ck_assert_ptr_null(frame_dec_take(&d, &len));
	}
	char *out = frame_dec_take(&d, &len);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(len, strlen(body));
	ck_assert_str_eq(out, body);
	free(out);
	free(enc);
	frame_dec_free(&d);
}
END_TEST

START_TEST(several_in_one_buffer)
{
	const char *bodies[] = { "{\"type\":\"a\"}", "{}", "{\"type\":\"ccc\",\"x\":[1,2,3]}" };
	uint8_t buf[256];
	size_t n = 0, used, len;
	struct frame_dec d;

	for (size_t i = 0; i < 3; i++) {
		put_hdr(buf + n, (uint32_t)strlen(bodies[i]));
		memcpy(buf + n + 4, bodies[i], strlen(bodies[i]));
		n += 4 + strlen(bodies[i]);
	}
	/* plus half of a fourth header */
	buf[n++] = 0;
	buf[n++] = 0;
	frame_dec_init(&d, 0);
	size_t off = 0;
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(frame_dec_push(&d, buf + off, n - off, &used), FRAME_READY);
		ck_assert_uint_eq(used, 4 + strlen(bodies[i]));
		/* Not taken yet: nothing more is consumed. */
		size_t used2;
		ck_assert_int_eq(frame_dec_push(&d, buf + off + used, n - off - used, &used2),
				 FRAME_READY);
		ck_assert_uint_eq(used2, 0);
		off += used;
		char *b = frame_dec_take(&d, &len);
		ck_assert_str_eq(b, bodies[i]);
		ck_assert_uint_eq(len, strlen(bodies[i]));
		free(b);
	}
	ck_assert_int_eq(frame_dec_push(&d, buf + off, n - off, &used), FRAME_MORE);
	ck_assert_uint_eq(used, 2);
	/* The rest of that header and a 1-byte body. */
	uint8_t rest[] = { 0, 1, '7' };
	ck_assert_int_eq(frame_dec_push(&d, rest, sizeof rest, &used), FRAME_READY);
	char *b = frame_dec_take(&d, &len);
	ck_assert_str_eq(b, "7");
	free(b);
	frame_dec_free(&d);
}
END_TEST

START_TEST(oversize_header_no_alloc)
{
	uint8_t hdr[8] = { 0xff, 0xff, 0xff, 0xff, 'x', 'x', 'x', 'x' };
	size_t used;
	struct frame_dec d;

	frame_dec_init(&d, 0);
	ck_assert_int_eq(frame_dec_push(&d, hdr, sizeof hdr, &used), FRAME_ETOOBIG);
	ck_assert_uint_eq(used, 4);
	/* Peeking at a private field on purpose: the verdict came before any allocation. */
	ck_assert_ptr_null(d.body);
	ck_assert_uint_eq(frame_dec_announced(&d), 0xffffffffu);
	/* Sticky: the stream cannot be resynchronised. */
	ck_assert_int_eq(frame_dec_push(&d, hdr + 4, 4, &used), FRAME_ETOOBIG);
	ck_assert_uint_eq(used, 0);
	frame_dec_free(&d);

	/* One above a small max, fed one byte at a time. */
	frame_dec_init(&d, 16);
	put_hdr(hdr, 17);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(frame_dec_push(&d, hdr + i, 1, &used), FRAME_MORE);
	ck_assert_int_eq(frame_dec_push(&d, hdr + 3, 1, &used), FRAME_ETOOBIG);
	ck_assert_ptr_null(d.body);
	frame_dec_free(&d);
}
END_TEST

START_TEST(zero_length)
{
	uint8_t hdr[5] = { 0, 0, 0, 0, '{' };
	size_t used;
	struct frame_dec d;

	frame_dec_init(&d, 0);
	ck_assert_int_eq(frame_dec_push(&d, hdr, sizeof hdr, &used), FRAME_EEMPTY);
	ck_assert_uint_eq(used, 4);
	ck_assert_ptr_null(d.body);
	ck_assert_ptr_null(frame_dec_take(&d, NULL));
	frame_dec_free(&d);

	uint8_t *enc = NULL;
	size_t enclen;
	ck_assert_int_eq(frame_encode("", 0, 0, &enc, &enclen), -EINVAL);
	ck_assert_ptr_null(enc);
}
END_TEST

START_TEST(exactly_max)
{
	size_t max = 1000, used, len;
	char *body = malloc(max + 1);
	uint8_t *enc;
	size_t enclen;
	struct frame_dec d;

	body[0] = '"';
	memset(body + 1, 'a', max - 2);
	body[max - 1] = '"';
	body[max] = '\0';
	ck_assert_int_eq(frame_encode(body, max, max, &enc, &enclen), 0);
	ck_assert_int_eq(frame_encode(body, max, max - 1, &enc, &enclen) , -EMSGSIZE);
	frame_dec_init(&d, max);
	ck_assert_int_eq(frame_dec_push(&d, enc, enclen, &used), FRAME_READY);
	ck_assert_uint_eq(used, enclen);
	char *out = frame_dec_take(&d, &len);
	ck_assert_uint_eq(len, max);
	ck_assert_mem_eq(out, body, max);
	free(out);
	frame_dec_free(&d);

	/* The default limit, at the edge. */
	uint8_t hdr[4];
	frame_dec_init(&d, 0);
	put_hdr(hdr, FRAME_MAX_DEFAULT);
	ck_assert_int_eq(frame_dec_push(&d, hdr, 4, &used), FRAME_MORE);
	frame_dec_free(&d); /* frees the partial body */
	frame_dec_init(&d, 0);
	put_hdr(hdr, FRAME_MAX_DEFAULT + 1);
	ck_assert_int_eq(frame_dec_push(&d, hdr, 4, &used), FRAME_ETOOBIG);
	frame_dec_free(&d);
	free(enc);
	free(body);
}
END_TEST

START_TEST(round_trip)
{
	struct frame_dec d;
	uint8_t *all = NULL;
	size_t alllen = 0, used, len;

	/* Many frames of growing size in one stream, decoded in 7-byte chunks. */
	for (size_t n = 1; n < 300; n += 13) {
		char *b = malloc(n + 1);
		for (size_t i = 0; i < n; i++)
			b[i] = (char)('a' + (i + n) % 26);
		uint8_t *enc;
		size_t enclen;
		ck_assert_int_eq(frame_encode(b, n, 0, &enc, &enclen), 0);
		all = realloc(all, alllen + enclen);
		memcpy(all + alllen, enc, enclen);
		alllen += enclen;
		free(enc);
		free(b);
	}
	frame_dec_init(&d, 0);
	size_t off = 0, expect = 1;
	while (off < alllen) {
		size_t chunk = alllen - off < 7 ? alllen - off : 7;
		int rc = frame_dec_push(&d, all + off, chunk, &used);
		off += used;
		if (rc == FRAME_READY) {
			char *b = frame_dec_take(&d, &len);
			ck_assert_uint_eq(len, expect);
			for (size_t i = 0; i < len; i++)
				ck_assert_int_eq(b[i], 'a' + (i + expect) % 26);
			ck_assert_int_eq(b[len], '\0');
			free(b);
			expect += 13;
		} else {
			ck_assert_int_eq(rc, FRAME_MORE);
			ck_assert_uint_eq(used, chunk);
		}
	}
	ck_assert_uint_eq(expect, 300); /* all 23 frames seen */
	frame_dec_free(&d);
	free(all);
}
END_TEST

START_TEST(utf8)
{
	ck_assert(frame_utf8_valid("", 0));
	ck_assert(frame_utf8_valid("plain", 5));
	ck_assert(frame_utf8_valid("\xc3\xa9t\xc3\xa9", 6));          /* été */
	ck_assert(frame_utf8_valid("\xe2\x82\xac", 3));               /* € */
	ck_assert(frame_utf8_valid("\xf0\x9f\x92\xa1", 4));           /* U+1F4A1 */
	ck_assert(frame_utf8_valid("\xf4\x8f\xbf\xbf", 4));           /* U+10FFFF */
	ck_assert(!frame_utf8_valid("\xc3", 1));                      /* truncated */
	ck_assert(!frame_utf8_valid("\xc0\xaf", 2));                  /* overlong / */
	ck_assert(!frame_utf8_valid("\xe0\x80\xaf", 3));              /* overlong */
	ck_assert(!frame_utf8_valid("\xed\xa0\x80", 3));              /* surrogate */
	ck_assert(!frame_utf8_valid("\xf4\x90\x80\x80", 4));          /* > U+10FFFF */
	ck_assert(!frame_utf8_valid("\xff", 1));
	ck_assert(!frame_utf8_valid("\xe2\x82", 2));
	ck_assert(!frame_utf8_valid("\xe2\x28\xac", 3));
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, byte_by_byte);
	tcase_add_test(tc, several_in_one_buffer);
	tcase_add_test(tc, oversize_header_no_alloc);
	tcase_add_test(tc, zero_length);
	tcase_add_test(tc, exactly_max);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, utf8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
