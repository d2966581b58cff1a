/* lcd: HD44780 + PCF8574 over i2c-dev; see lcd.h. */
#include "lcd.h"

#include "log.h"
#include "lcdtext.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define LCD_POWER_ON_MS 50    /* datasheet: > 40 ms after Vcc rises to 2.7 V */
#define LCD_RETRY_MS 5000
#define LCD_SCROLL_MS 400
#define LCD_SCROLL_HOLD 3     /* ticks a scrolled row rests at its start, so it can be read */
#define LCD_TEXT_MAX 512
/* A write that succeeds says nothing about the display: a power dip resets it (blank, 8-bit
 * mode, garbage in DDRAM) while the backpack keeps acknowledging. So the display is
 * re-initialised (without clearing: no flicker) and both rows rewritten on every change of
 * text and at least every LCD_REINIT_MS. */
#define LCD_REINIT_MS 5000

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

/* The HD44780U's execution times are given for fosc = 270 kHz and scale with 1/fosc; its
 * oscillator may run as slow as 190 kHz (datasheet: fosc range with Rf = 91 kOhm), so every
 * wait here is the 270 kHz figure times 270/190, rounded up: 1.52 ms -> 2160 us, 37 us ->
 * 53 us. Waits up to 53 us are covered by the bus itself (a nibble is 3 bytes, 270 us at the
 * PCF8574's 100 kHz); longer ones are loop timers (lcd.c rounds them up to whole ms). */
#define LCD_WAIT_CLEAR_US 2160
#define LCD_WAIT_POWERUP_US 4100
#define LCD_WAIT_SYNC_US 100

static size_t lcd_cmd(uint8_t *out, uint8_t v) { return lcd_byte(out, v, 0); }

size_t lcd_init_step(unsigned i, bool full, uint8_t *out, size_t cap, unsigned *wait_us)
{
	size_t n = 0;
	if (cap < LCD_STEP_MAX)
		return 0;
	switch (i) {
	case 0:   /* 8-bit function set, as the controller may be in any mode (or mid-byte) */
		n = lcd_nibble(out, 0x3, 0);
		*wait_us = LCD_WAIT_POWERUP_US;
		break;
	case 1:
	case 2:
		n = lcd_nibble(out, 0x3, 0);
		*wait_us = LCD_WAIT_SYNC_US;
		break;
	case 3:   /* now surely in 8-bit mode: switch to 4-bit */
		n = lcd_nibble(out, 0x2, 0);
		*wait_us = LCD_WAIT_SYNC_US;
		break;
	case 4:
		/* 4-bit, 2 lines, 5x8. The first init also turns the display off and clears it;
		 * a re-init only returns home (cancels any display shift) so the screen does not
		 * flicker: the rows are rewritten whole afterwards anyway. */
		n = lcd_cmd(out, 0x28);
		if (full) {
			n += lcd_cmd(out + n, 0x08);
			n += lcd_cmd(out + n, 0x01);
		} else {
			n += lcd_cmd(out + n, 0x02);
		}
		*wait_us = LCD_WAIT_CLEAR_US;
		break;
	case 5:   /* entry mode: increment, no shift; display on, no cursor, no blink */
		n = lcd_cmd(out, 0x06);
		n += lcd_cmd(out + n, 0x0c);
		*wait_us = 0;
		break;
	case 6:   /* CGRAM 0 and 1: the '\\' and '~' A00 lacks; then back to DDRAM */
		n = lcd_cmd(out, 0x40);
		for (int c = 0; c < 2; c++)
			for (int r = 0; r < 8; r++)
				n += lcd_byte(out + n, lcdtext_cgram[c][r], LCD_RS);
		n += lcd_cmd(out + n, 0x80);
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
	char text[LCD_TEXT_MAX];        /* ROM codes */
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
	bool full;                      /* this init clears the display (first after open) */
	bool reinit;                    /* a re-init is due once the current one ends */
	int last_err;                   /* errno last logged, 0 while working */
	bool ever_ready;
	struct loop_timer step_timer;   /* init steps, and retries while closed */
	struct loop_timer scroll_timer;
	struct loop_timer reinit_timer;
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
	loop_timer_stop(l->loop, &l->reinit_timer);
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

/* Row 0 is the status line (its caller fits it): it never scrolls. */
static unsigned lcd_cycle(const struct lcd *l, int i)
{
	return i == 0 ? 0 : lcd_scroll_len(l->row[i].text, l->width);
}

static unsigned lcd_pos(const struct lcd *l, int i)
{
	unsigned cycle = lcd_cycle(l, i);
	if (!cycle || l->row[i].tick < LCD_SCROLL_HOLD)
		return 0;
	return (l->row[i].tick - LCD_SCROLL_HOLD) % cycle;
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
		lcd_window(win, r->text, l->width, lcd_pos(l, i));
		if (lcd_cycle(l, i))
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
		unsigned cycle = lcd_cycle(l, i);
		/* Back to the resting start after one full turn. */
		if (cycle && ++r->tick >= LCD_SCROLL_HOLD + cycle)
			r->tick = 0;
	}
	lcd_refresh(l);
}

static void lcd_begin_init(struct lcd *l, bool full, uint64_t delay_ms)
{
	l->state = LCD_INIT;
	l->step = 0;
	l->full = full;
	l->reinit = false;
	loop_timer_stop(l->loop, &l->reinit_timer);
	loop_timer_start(l->loop, &l->step_timer, delay_ms);
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
	lcd_begin_init(l, true, LCD_POWER_ON_MS);
}

static void lcd_on_reinit(void *arg)
{
	struct lcd *l = arg;
	if (l->state == LCD_READY)
		lcd_begin_init(l, false, 0);
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
	size_t n = lcd_init_step(l->step++, l->full, buf, sizeof buf, &wait_us);
	if (n == 0) {
		if (l->reinit) {   /* the text changed during this init: once more */
			lcd_begin_init(l, false, 0);
			return;
		}
		l->state = LCD_READY;
		if (l->last_err || !l->ever_ready)
			log_info("lcd %s@0x%02x: ready (%dx2)", l->device, l->addr, l->width);
		l->last_err = 0;
		l->ever_ready = true;
		for (int i = 0; i < 2; i++)
			l->row[i].shown[0] = '\0';
		loop_timer_start(l->loop, &l->reinit_timer, LCD_REINIT_MS);
		lcd_refresh(l);
		return;
	}
	if (lcd_write(l, buf, n, "init") < 0)
		return;
	/* Never shorter than the datasheet's worst case: round up to the timers' whole ms (the
	 * loop's deadlines never fire early). */
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
	loop_timer_init(&l->reinit_timer, lcd_on_reinit, l);
	lcd_open(l);
	return l;
}

int lcd_width(const struct lcd *l) { return l->width; }

static void lcd_sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

void lcd_goodbye(struct lcd *l, const char *line1, const char *line2)
{
	if (!l || l->fd < 0)
		return;
	/* The loop has stopped: the same init and rows, with blocking waits (a sleep never ends
	 * early), so the last screen says the server is gone instead of going stale. */
	uint8_t buf[LCD_ROW_BYTES(LCD_WIDTH_MAX)];
	unsigned wait_us = 0;
	bool full = !l->ever_ready;
	if (full)
		lcd_sleep_us(LCD_POWER_ON_MS * 1000);
	for (unsigned i = 0;; i++) {
		size_t n = lcd_init_step(i, full, buf, sizeof buf, &wait_us);
		if (n == 0)
			break;
		if (lcd_write(l, buf, n, "goodbye") < 0)
			return;
		lcd_sleep_us(wait_us);
	}
	const char *in[2] = { line1 ? line1 : "", line2 ? line2 : "" };
	for (int i = 0; i < 2; i++) {
		char win[LCD_WIDTH_MAX + 1];
		lcd_window(win, in[i], l->width, 0);
		size_t n = lcd_row_bytes(buf, sizeof buf, i, win, l->width);
		if (lcd_write(l, buf, n, "goodbye") < 0)
			return;
	}
}

void lcd_free(struct lcd *l)
{
	if (!l)
		return;
	loop_timer_stop(l->loop, &l->step_timer);
	loop_timer_stop(l->loop, &l->scroll_timer);
	loop_timer_stop(l->loop, &l->reinit_timer);
	if (l->fd >= 0)
		close(l->fd);
	free(l->device);
	free(l);
}

void lcd_show(struct lcd *l, const char *line1, const char *line2)
{
	const char *in[2] = { line1 ? line1 : "", line2 ? line2 : "" };
	bool changed = false;
	for (int i = 0; i < 2; i++) {
		if (strcmp(in[i], l->row[i].text) == 0)
			continue;
		snprintf(l->row[i].text, sizeof l->row[i].text, "%s", in[i]);
		l->row[i].tick = 0;
		changed = true;
	}
	if (!changed)
		return;
	if (l->state == LCD_READY)
		lcd_begin_init(l, false, 0);   /* rows are written when it ends */
	else if (l->state == LCD_INIT)
		l->reinit = true;
}
