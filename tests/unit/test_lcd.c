/* test_lcd: the HD44780/PCF8574 byte streams against the datasheet, written out by hand
 * (P0=RS P1=RW P2=E P3=backlight P4..P7=D4..D7; each nibble: data, data|E, data), scrolling
 * windows, and the mapping of UTF-8 to the LCD's character set. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "lcd.h"
#include "loop.h"

static void check_bytes(const uint8_t *got, size_t n, const uint8_t *want, size_t wn)
{
	ck_assert_uint_eq(n, wn);
	for (size_t i = 0; i < wn; i++)
		ck_assert_msg(got[i] == want[i], "byte %zu: got 0x%02x, want 0x%02x", i, got[i],
			      want[i]);
}

START_TEST(init_sequence)
{
	/* HD44780U datasheet, figure 24 (4-bit interface), backlight bit 0x08 always on. */
	static const struct {
		uint8_t b[18];
		size_t n;
		unsigned wait_us;
	} want[] = {
		{ { 0x38, 0x3c, 0x38 }, 3, 4100 },   /* 0x3: function set (8-bit), wait > 4.1 ms */
		{ { 0x38, 0x3c, 0x38 }, 3, 100 },    /* 0x3 again, wait > 100 us */
		{ { 0x38, 0x3c, 0x38 }, 3, 100 },    /* 0x3 a third time */
		{ { 0x28, 0x2c, 0x28 }, 3, 100 },    /* 0x2: 4-bit interface */
		{ { 0x28, 0x2c, 0x28, 0x88, 0x8c, 0x88,    /* 0x28 function set: 4-bit, 2 lines, 5x8 */
		    0x08, 0x0c, 0x08, 0x88, 0x8c, 0x88,    /* 0x08 display off */
		    0x08, 0x0c, 0x08, 0x18, 0x1c, 0x18 },  /* 0x01 clear, wait 1.52 ms */
		  18, 2000 },
		{ { 0x08, 0x0c, 0x08, 0x68, 0x6c, 0x68,    /* 0x06 entry mode: increment */
		    0x08, 0x0c, 0x08, 0xc8, 0xcc, 0xc8 },  /* 0x0C display on, no cursor */
		  12, 0 },
	};
	uint8_t buf[LCD_STEP_MAX];
	unsigned i;
	for (i = 0; i < sizeof want / sizeof want[0]; i++) {
		unsigned wait = 12345;
		size_t n = lcd_init_step(i, buf, sizeof buf, &wait);
		check_bytes(buf, n, want[i].b, want[i].n);
		ck_assert_uint_eq(wait, want[i].wait_us);
	}
	unsigned wait = 0;
	ck_assert_uint_eq(lcd_init_step(i, buf, sizeof buf, &wait), 0);
	ck_assert_uint_eq(lcd_init_step(0, buf, 8, &wait), 0);   /* cap too small */
}
END_TEST

START_TEST(two_lines)
{
	/* Row 0 "Hi" on an 8-wide display: set DDRAM 0x00 (cmd 0x80, RS=0), then 'H' 'i' and six
	 * blanks with RS=1 (0x01). */
	static const uint8_t row0[] = {
		0x88, 0x8c, 0x88, 0x08, 0x0c, 0x08,   /* 0x80 */
		0x49, 0x4d, 0x49, 0x89, 0x8d, 0x89,   /* 'H' 0x48 */
		0x69, 0x6d, 0x69, 0x99, 0x9d, 0x99,   /* 'i' 0x69 */
		0x29, 0x2d, 0x29, 0x09, 0x0d, 0x09,   /* ' ' 0x20 x6 */
		0x29, 0x2d, 0x29, 0x09, 0x0d, 0x09,
		0x29, 0x2d, 0x29, 0x09, 0x0d, 0x09,
		0x29, 0x2d, 0x29, 0x09, 0x0d, 0x09,
		0x29, 0x2d, 0x29, 0x09, 0x0d, 0x09,
		0x29, 0x2d, 0x29, 0x09, 0x0d, 0x09,
	};
	/* Row 1 "ok4567890" cut to 8: DDRAM 0x40 (cmd 0xC0). */
	static const uint8_t row1[] = {
		0xc8, 0xcc, 0xc8, 0x08, 0x0c, 0x08,   /* 0xC0 */
		0x69, 0x6d, 0x69, 0xf9, 0xfd, 0xf9,   /* 'o' 0x6F */
		0x69, 0x6d, 0x69, 0xb9, 0xbd, 0xb9,   /* 'k' 0x6B */
		0x39, 0x3d, 0x39, 0x49, 0x4d, 0x49,   /* '4' 0x34 */
		0x39, 0x3d, 0x39, 0x59, 0x5d, 0x59,   /* '5' */
		0x39, 0x3d, 0x39, 0x69, 0x6d, 0x69,   /* '6' */
		0x39, 0x3d, 0x39, 0x79, 0x7d, 0x79,   /* '7' */
		0x39, 0x3d, 0x39, 0x89, 0x8d, 0x89,   /* '8' */
		0x39, 0x3d, 0x39, 0x99, 0x9d, 0x99,   /* '9' */
	};
	uint8_t buf[LCD_ROW_BYTES(LCD_WIDTH_MAX)];
	check_bytes(buf, lcd_row_bytes(buf, sizeof buf, 0, "Hi", 8), row0, sizeof row0);
	check_bytes(buf, lcd_row_bytes(buf, sizeof buf, 1, "ok4567890", 8), row1, sizeof row1);
	ck_assert_uint_eq(lcd_row_bytes(buf, sizeof buf, 0, "x", 16), 6 + 16 * 6);
	ck_assert_uint_eq(lcd_row_bytes(buf, 50, 0, "Hi", 8), 0);          /* cap too small */
	ck_assert_uint_eq(lcd_row_bytes(buf, sizeof buf, 0, "Hi", 41), 0); /* wider than a HD44780 */
}
END_TEST

START_TEST(scrolling)
{
	char w[LCD_WIDTH_MAX + 1];
	ck_assert_uint_eq(lcd_scroll_len("ok", 8), 0);
	ck_assert_uint_eq(lcd_scroll_len("12345678", 8), 0);
	lcd_window(w, "ok", 8, 5);
	ck_assert_str_eq(w, "ok      ");
	/* 10 characters + 3 blanks of gap = 13 positions, wrapping around. */
	ck_assert_uint_eq(lcd_scroll_len("abcdefghij", 8), 13);
	lcd_window(w, "abcdefghij", 8, 0);
	ck_assert_str_eq(w, "abcdefgh");
	lcd_window(w, "abcdefghij", 8, 1);
	ck_assert_str_eq(w, "bcdefghi");
	lcd_window(w, "abcdefghij", 8, 3);
	ck_assert_str_eq(w, "defghij ");
	lcd_window(w, "abcdefghij", 8, 5);
	ck_assert_str_eq(w, "fghij   ");
	lcd_window(w, "abcdefghij", 8, 6);
	ck_assert_str_eq(w, "ghij   a");
	lcd_window(w, "abcdefghij", 8, 12);
	ck_assert_str_eq(w, " abcdefg");
	lcd_window(w, "abcdefghij", 8, 13);
	ck_assert_str_eq(w, "abcdefgh");
	lcd_window(w, "", 4, 0);
	ck_assert_str_eq(w, "    ");
}
END_TEST

START_TEST(replacement)
{
	char out[64];
	ck_assert_uint_eq(lcd_text(out, sizeof out, "plain ASCII ~!"), 14);
	ck_assert_str_eq(out, "plain ASCII ~!");
	/* café Ünïcödé */
	lcd_text(out, sizeof out, "caf\xc3\xa9 \xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9");
	ck_assert_str_eq(out, "cafe Unicode");
	lcd_text(out, sizeof out, "21\xc2\xb0" "C");                            /* 21°C */
	ck_assert_str_eq(out, "21\xdf" "C");
	lcd_text(out, sizeof out, "a\tb\nc\r");
	ck_assert_str_eq(out, "a b c ");
	lcd_text(out, sizeof out, "\x01x\x7f");
	ck_assert_str_eq(out, "?x?");
	lcd_text(out, sizeof out, "\xe6\x97\xa5\xe6\x9c\xac!");                 /* 日本! */
	ck_assert_str_eq(out, "?" "?!");
	lcd_text(out, sizeof out, "\xe2\x82\xac" "5 \xe2\x80\x9cq\xe2\x80\x9d");  /* €5 “q” */
	ck_assert_str_eq(out, "E5 \"q\"");
	lcd_text(out, sizeof out, "\xf0\x9f\x98\x80.");                          /* emoji */
	ck_assert_str_eq(out, "?.");
	lcd_text(out, sizeof out, "\xff" "a\xc3");                               /* invalid, cut */
	ck_assert_str_eq(out, "?a?");
	lcd_text(out, sizeof out, "\xc0\xaf|\xed\xa0\x80|");                     /* overlong, surrogate */
	ck_assert_str_eq(out, "?|?|");
	ck_assert_uint_eq(lcd_text(out, 4, "abcdef"), 3);
	ck_assert_str_eq(out, "abc");
}
END_TEST

START_TEST(missing_device)
{
	/* A missing display or a path that is no I2C bus only logs: the object lives on and keeps
	 * retrying; showing text meanwhile is harmless. */
	struct loop *loop = loop_new();
	ck_assert_ptr_nonnull(loop);
	struct lcd *a = lcd_new(loop, "/nonexistent/i2c-9", 0x27, 16);
	struct lcd *b = lcd_new(loop, "/dev/null", 0x27, 16);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	lcd_show(a, "home1 0/0", "caf\xc3\xa9");
	lcd_show(b, "home1 0/0", "a very long line that would scroll");
	lcd_free(a);
	lcd_free(b);
	loop_free(loop);
}
END_TEST

static Suite *lcd_suite(void)
{
	Suite *s = suite_create("lcd");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, init_sequence);
	tcase_add_test(tc, two_lines);
	tcase_add_test(tc, scrolling);
	tcase_add_test(tc, replacement);
	tcase_add_test(tc, missing_device);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lcd_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
