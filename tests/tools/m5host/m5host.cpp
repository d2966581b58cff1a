/* m5host: the M5Stack.h stand-in and the device harness of m5host.h. */
#include "M5Stack.h"
#include "m5host.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <string>

void setup();   /* fr_display.ino, compiled from m5host_sketch.cpp */
void loop();

HardwareSerial Serial;
M5Stack M5;

static char grid[M5HOST_ROWS][M5HOST_COLS];
static char screen[M5HOST_ROWS * (M5HOST_COLS + 1) + 1];
static int cur_x, cur_y, text_size = 1;
static uint32_t now_ms;
static std::string rx, tx, sent;   /* rx: bytes for the sketch; tx: what it wrote */
static size_t rx_pos;
static bool press_a;
static unsigned redraws;

uint32_t millis(void) { return now_ms; }

void HardwareSerial::begin(unsigned long baud) { (void)baud; }
int HardwareSerial::available(void) { return (int)(rx.size() - rx_pos); }
int HardwareSerial::read(void)
{
	return rx_pos < rx.size() ? (unsigned char)rx[rx_pos++] : -1;
}
size_t HardwareSerial::print(const char *s)
{
	tx += s;
	return strlen(s);
}

/* Cells of the text grid a pixel rectangle touches (cells are 12 x 16 px). */
static void cells(int32_t x, int32_t y, int32_t w, int32_t h, char fill)
{
	for (int32_t r = y / 16; r <= (y + h - 1) / 16 && r < M5HOST_ROWS; r++)
		for (int32_t c = x / 12; c <= (x + w - 1) / 12 && c < M5HOST_COLS; c++)
			if (r >= 0 && c >= 0)
				grid[r][c] = fill;
}

void M5Display::fillScreen(uint32_t color)
{
	(void)color;
	memset(grid, ' ', sizeof grid);
	redraws++;
}
void M5Display::fillRect(int32_t x, int32_t y, int32_t w, int32_t h, uint32_t color)
{
	(void)color;
	cells(x, y, w, h, ' ');
}
void M5Display::drawFastHLine(int32_t x, int32_t y, int32_t w, uint32_t color)
{
	(void)color;
	cells(x, y, w, 1, '-');
}
void M5Display::setCursor(int16_t x, int16_t y) { cur_x = x, cur_y = y; }
void M5Display::setTextSize(uint8_t size) { text_size = size ? size : 1; }
void M5Display::setTextColor(uint16_t fg, uint16_t bg) { (void)fg, (void)bg; }

/* As TFT_eSPI's write(): '\n' goes to x 0 of the next line, text wraps at the right edge. A
 * byte the ASCII font would draw as something else shows as '#'. */
size_t M5Display::print(const char *s)
{
	int cw = 6 * text_size, ch = 8 * text_size;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n') {
			cur_x = 0, cur_y += ch;
			continue;
		}
		if (cur_x + cw > 320)
			cur_x = 0, cur_y += ch;
		/* The cell under the glyph's centre. */
		cells(cur_x + cw / 2, cur_y + ch / 2, 1, 1, *p >= 0x20 && *p < 0x7f ? (char)*p : '#');
		cur_x += cw;
	}
	return strlen(s);
}
size_t M5Display::printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return print(buf);
}

uint8_t Button::wasPressed(void)
{
	bool was = this == &M5.BtnA && press_a;
	if (was)
		press_a = false;
	return was;
}

void M5Stack::begin(bool lcd, bool sd, bool serial, bool i2c) { (void)lcd, (void)sd, (void)serial, (void)i2c; }
void M5Stack::update(void) {}

void m5host_boot(void)
{
	memset(grid, ' ', sizeof grid);
	now_ms = 0;
	rx.clear(), tx.clear();
	rx_pos = 0;
	redraws = 0;
	setup();
	loop();
}

void m5host_receive(const void *buf, size_t n)
{
	rx.append((const char *)buf, n);
	while (rx_pos < rx.size())
		loop();
	rx.clear();
	rx_pos = 0;
}

void m5host_advance(uint32_t ms)
{
	now_ms += ms;
	loop();
}

void m5host_press_a(void)
{
	press_a = true;
	loop();
}

const char *m5host_screen(void)
{
	char *o = screen;
	for (int r = 0; r < M5HOST_ROWS; r++) {
		memcpy(o, grid[r], M5HOST_COLS);
		o += M5HOST_COLS;
		*o++ = '\n';
	}
	*o = '\0';
	return screen;
}

int m5host_shows(const char *s)
{
	size_t n = strlen(s);
	for (int r = 0; r < M5HOST_ROWS; r++)
		for (size_t c = 0; n <= M5HOST_COLS && c + n <= M5HOST_COLS; c++)
			if (memcmp(&grid[r][c], s, n) == 0)
				return 1;
	return 0;
}

const char *m5host_sent(void)
{
	sent = tx;
	tx.clear();
	return sent.c_str();
}

unsigned m5host_redraws(void) { return redraws; }
