/* lcd: HD44780 + PCF8574 over i2c-dev; see lcd.h. */
#include "lcd.h"

#include "log.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LCD_POWER_ON_MS 50    /* datasheet: > 40 ms after Vcc rises to 2.7 V */
#define LCD_RETRY_MS 5000
#define LCD_SCROLL_MS 400
#define LCD_SCROLL_HOLD 3     /* ticks a scrolled row rests at its start, so it can be read */
#define LCD_TEXT_MAX 512

/* One nibble is three bus bytes: data with E low (RS and data settle before E rises: tAS),
 * E high, E low (the HD44780 latches on the falling edge). At 100 kHz a byte takes 90 us, so
 * E's high time (>= 450 ns) and the 37 us most commands need are covered by the bus itself. */
static size_t lcd_nibble(uint8_t *out, uint8_t nib, uint8_t rs)
{
	uint8_t b = (uint8_t)((nib & 0x0f) << 4) | LCD_BL | rs;
	out[0] = b;
	out[1] = b | LCD_E;
	out[2] = b;
	return 3;
}

static size_t lcd_byte(uint8_t *out, uint8_t v, uint8_t rs)
{
	size_t n = lcd_nibble(out, v >> 4, rs);
	return n + lcd_nibble(out + n, v & 0x0f, rs);
}

size_t lcd_init_step(unsigned i, uint8_t *out, size_t cap, unsigned *wait_us)
{
	size_t n = 0;
	if (cap < LCD_STEP_MAX)
		return 0;
	switch (i) {
	case 0:   /* 8-bit function set, as the controller may be in any mode */
		n = lcd_nibble(out, 0x3, 0);
		*wait_us = 4100;
		break;
	case 1:
		n = lcd_nibble(out, 0x3, 0);
		*wait_us = 100;
		break;
	case 2:
		n = lcd_nibble(out, 0x3, 0);
		*wait_us = 100;
		break;
	case 3:   /* now surely in 8-bit mode: switch to 4-bit */
		n = lcd_nibble(out, 0x2, 0);
		*wait_us = 100;
		break;
	case 4:   /* 4-bit, 2 lines, 5x8; display off; clear (1.52 ms) */
		n = lcd_byte(out, 0x28, 0);
		n += lcd_byte(out + n, 0x08, 0);
		n += lcd_byte(out + n, 0x01, 0);
		*wait_us = 2000;
		break;
	case 5:   /* entry mode: increment, no shift; display on, no cursor, no blink */
		n = lcd_byte(out, 0x06, 0);
		n += lcd_byte(out + n, 0x0c, 0);
		*wait_us = 0;
		break;
	default:
		return 0;
	}
	return n;
}

size_t lcd_row_bytes(uint8_t *out, size_t cap, int row, const char *text, int width)
{
	if (width < 1 || width > LCD_WIDTH_MAX || cap < LCD_ROW_BYTES(width))
		return 0;
	size_t n = lcd_byte(out, (uint8_t)(0x80 | (row ? 0x40 : 0x00)), 0);
	bool end = false;
	for (int i = 0; i < width; i++) {
		if (!end && text[i] == '\0')
			end = true;
		n += lcd_byte(out + n, end ? ' ' : (uint8_t)text[i], LCD_RS);
	}
	return n;
}

/* U+00C0..U+00FF without their accents; '?' where no letter is close enough. */
static const char lcd_latin1[] = "AAAAAAACEEEEIIIIDNOOOOOxOUUUUYPs"
				 "aaaaaaaceeeeiiiidnooooo/ouuuuypy";

static char lcd_map(uint32_t cp)
{
	if (cp == '\t' || cp == '\n' || cp == '\r')
		return ' ';
	if (cp >= 0x20 && cp < 0x7f)
		return (char)cp;
	if (cp >= 0xc0 && cp <= 0xff)
		return lcd_latin1[cp - 0xc0];
	switch (cp) {
	case 0xb0: return (char)0xdf;       /* degree sign in ROM A00 */
	case 0xa0: return ' ';
	case 0x2018: case 0x2019: return '\'';
	case 0x201c: case 0x201d: return '"';
	case 0x2013: case 0x2014: return '-';
	case 0x2026: return '.';
	case 0x20ac: return 'E';
	}
	return '?';
}

/* Decodes one UTF-8 character at s; returns its length (1 for an invalid byte, *cp = ~0). */
static size_t lcd_utf8(const unsigned char *s, uint32_t *cp)
{
	size_t len;
	uint32_t v, min;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, v = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, v = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, v = s[0] & 0x07, min = 0x10000;
	} else {
		*cp = UINT32_MAX;
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {   /* also stops at the NUL */
			*cp = UINT32_MAX;
			return 1;
		}
		v = v << 6 | (s[i] & 0x3f);
	}
	*cp = v < min || v > 0x10ffff ? UINT32_MAX : v;
	return len;
}

size_t lcd_text(char *out, size_t cap, const char *utf8)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t n = 0;
	if (cap == 0)
		return 0;
	while (*s && n + 1 < cap) {
		uint32_t cp;
		s += lcd_utf8(s, &cp);
		out[n++] = lcd_map(cp);
	}
	out[n] = '\0';
	return n;
}

unsigned lcd_scroll_len(const char *text, int width)
{
	size_t len = strlen(text);
	return len <= (size_t)width ? 0 : (unsigned)len + LCD_SCROLL_GAP;
}

void lcd_window(char *out, const char *text, int width, unsigned pos)
{
	size_t len = strlen(text);
	unsigned cycle = lcd_scroll_len(text, width);
	for (int i = 0; i < width; i++) {
		size_t k = cycle ? (pos + (unsigned)i) % cycle : (size_t)i;
		out[i] = k < len ? text[k] : ' ';
	}
	out[width] = '\0';
}

/* --- I/O --- */

enum lcd_state { LCD_CLOSED, LCD_INIT, LCD_READY };

struct lcd_row {
	char text[LCD_TEXT_MAX];
	unsigned tick;                  /* scroll ticks since the row restarted */
	char shown[LCD_WIDTH_MAX + 1];  /* what the display holds; "" = unknown */
};

struct lcd {
	struct loop *loop;
	char *device;
	int addr, width;
	int fd;
	enum lcd_state state;
	unsigned step;
	int last_err;                   /* errno last logged, 0 while working */
	bool ever_ready;
	struct loop_timer step_timer;   /* init steps, and retries while closed */
	struct loop_timer scroll_timer;
	struct lcd_row row[2];
};

static void lcd_fail(struct lcd *l, const char *what, int err)
{
	if (err != l->last_err) {
		errno = err;
		log_warn("lcd %s@0x%02x: %s (retrying every %d s)", l->device, l->addr, what,
			 LCD_RETRY_MS / 1000);
		l->last_err = err;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->state = LCD_CLOSED;
	loop_timer_stop(l->loop, &l->scroll_timer);
	loop_timer_start(l->loop, &l->step_timer, LCD_RETRY_MS);
}

/* i2c-dev has no non-blocking mode: each write is one bus transaction that returns when done.
 * A missing device NACKs at once; a row is at most 246 bytes (~22 ms at 100 kHz), and rows are
 * only rewritten when they change, at most every 200 ms (display.c) or scroll tick. */
static int lcd_write(struct lcd *l, const uint8_t *buf, size_t n, const char *what)
{
	ssize_t w;
	do
		w = write(l->fd, buf, n);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		lcd_fail(l, what, w < 0 ? errno : EIO);
		return -1;
	}
	return 0;
}

static unsigned lcd_pos(const struct lcd *l, const struct lcd_row *r)
{
	unsigned cycle = lcd_scroll_len(r->text, l->width);
	if (!cycle || r->tick < LCD_SCROLL_HOLD)
		return 0;
	return (r->tick - LCD_SCROLL_HOLD) % cycle;
}

static void lcd_refresh(struct lcd *l)
{
	bool scrolling = false;
	if (l->state != LCD_READY)
		return;
	for (int i = 0; i < 2; i++) {
		struct lcd_row *r = &l->row[i];
		char win[LCD_WIDTH_MAX + 1];
		uint8_t buf[LCD_ROW_BYTES(LCD_WIDTH_MAX)];
		lcd_window(win, r->text, l->width, lcd_pos(l, r));
		if (lcd_scroll_len(r->text, l->width))
			scrolling = true;
		if (strcmp(win, r->shown) == 0)
			continue;
		size_t n = lcd_row_bytes(buf, sizeof buf, i, win, l->width);
		if (lcd_write(l, buf, n, "write") < 0)
			return;
		memcpy(r->shown, win, sizeof r->shown);
	}
	if (scrolling && !loop_timer_armed(&l->scroll_timer))
		loop_timer_start(l->loop, &l->scroll_timer, LCD_SCROLL_MS);
}

static void lcd_on_scroll(void *arg)
{
	struct lcd *l = arg;
	for (int i = 0; i < 2; i++) {
		struct lcd_row *r = &l->row[i];
		unsigned cycle = lcd_scroll_len(r->text, l->width);
		/* Back to the resting start after one full turn. */
		if (cycle && ++r->tick >= LCD_SCROLL_HOLD + cycle)
			r->tick = 0;
	}
	lcd_refresh(l);
}

static void lcd_open(struct lcd *l)
{
	l->fd = open(l->device, O_RDWR | O_CLOEXEC);
	if (l->fd < 0) {
		lcd_fail(l, "open", errno);
		return;
	}
	if (ioctl(l->fd, I2C_SLAVE, (unsigned long)l->addr) < 0) {
		lcd_fail(l, "I2C_SLAVE", errno);
		return;
	}
	l->state = LCD_INIT;
	l->step = 0;
	loop_timer_start(l->loop, &l->step_timer, LCD_POWER_ON_MS);
}

static void lcd_on_step(void *arg)
{
	struct lcd *l = arg;
	uint8_t buf[LCD_STEP_MAX];
	unsigned wait_us = 0;
	if (l->state == LCD_CLOSED) {
		lcd_open(l);
		return;
	}
	size_t n = lcd_init_step(l->step++, buf, sizeof buf, &wait_us);
	if (n == 0) {
		l->state = LCD_READY;
		if (l->last_err || !l->ever_ready)
			log_info("lcd %s@0x%02x: ready (%dx2)", l->device, l->addr, l->width);
		l->last_err = 0;
		l->ever_ready = true;
		for (int i = 0; i < 2; i++)
			l->row[i].shown[0] = '\0';
		lcd_refresh(l);
		return;
	}
	if (lcd_write(l, buf, n, "init") < 0)
		return;
	/* Timers have millisecond resolution: round the datasheet waits up. */
	loop_timer_start(l->loop, &l->step_timer, (wait_us + 999) / 1000);
}

struct lcd *lcd_new(struct loop *loop, const char *device, int addr, int width)
{
	struct lcd *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->device = strdup(device);
	if (!l->device) {
		free(l);
		return NULL;
	}
	l->loop = loop;
	l->addr = addr;
	l->width = width < 1 ? 16 : width > LCD_WIDTH_MAX ? LCD_WIDTH_MAX : width;
	l->fd = -1;
	l->state = LCD_CLOSED;
	loop_timer_init(&l->step_timer, lcd_on_step, l);
	loop_timer_init(&l->scroll_timer, lcd_on_scroll, l);
	lcd_open(l);
	return l;
}

void lcd_free(struct lcd *l)
{
	if (!l)
		return;
	loop_timer_stop(l->loop, &l->step_timer);
	loop_timer_stop(l->loop, &l->scroll_timer);
	if (l->fd >= 0)
		close(l->fd);
	free(l->device);
	free(l);
}

void lcd_show(struct lcd *l, const char *line1, const char *line2)
{
	const char *in[2] = { line1 ? line1 : "", line2 ? line2 : "" };
	for (int i = 0; i < 2; i++) {
		char t[LCD_TEXT_MAX];
		lcd_text(t, sizeof t, in[i]);
		if (strcmp(t, l->row[i].text) == 0)
			continue;
		memcpy(l->row[i].text, t, sizeof t);
		l->row[i].tick = 0;
	}
	lcd_refresh(l);
}
