/* lcd: a 2-line HD44780 character LCD behind a PCF8574 I2C backpack, driven through Linux
 * i2c-dev in 4-bit mode. The byte streams (init, one row) are pure functions so they can be
 * checked against the datasheet; the I/O part opens the bus, runs the init as a small state
 * machine on loop timers (never sleeps), writes only rows that changed, scrolls rows longer
 * than the display, re-initialises it on every change and every few seconds (a power dip
 * between writes goes unnoticed otherwise), and reopens a failing display every few seconds,
 * logging once per change. Text is in ROM A00 codes: see lcdtext.h. */
#ifndef MHS_LCD_H
#define MHS_LCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct lcd;

/* PCF8574 pin map of the common backpack: P0=RS P1=RW P2=E P3=backlight P4..P7=D4..D7. */
#define LCD_RS 0x01
#define LCD_RW 0x02
#define LCD_E 0x04
#define LCD_BL 0x08

#define LCD_WIDTH_MAX 40
#define LCD_STEP_MAX 128      /* bytes of the largest init step */
#define LCD_ROW_BYTES(w) (6 + 6 * (size_t)(w))
#define LCD_SCROLL_GAP 3      /* blanks between the end of a scrolled text and its restart */

/* Step i (0, 1, ...) of the datasheet 4-bit initialisation (HD44780U figure 24), then the
 * CGRAM glyphs of lcdtext.h: writes its bytes to out (cap >= LCD_STEP_MAX) and the wait needed
 * after them in *wait_us (the worst case: a controller clocked at 190 kHz). full: clear the
 * display (the first init after open); otherwise only return home (a re-init that does not
 * flicker). Returns the number of bytes, 0 when i is past the last step. The >40 ms power-on
 * wait comes before step 0 and is the caller's. */
size_t lcd_init_step(unsigned i, bool full, uint8_t *out, size_t cap, unsigned *wait_us);

/* The bytes that set the DDRAM address to the start of row (0 or 1) and write exactly width
 * characters of text (already in the LCD's character set, see lcd_text), padded with blanks.
 * cap >= LCD_ROW_BYTES(width). Returns the number of bytes, 0 if cap is too small. */
size_t lcd_row_bytes(uint8_t *out, size_t cap, int row, const char *text, int width);

/* Number of scroll positions of text on a display width wide: 0 if it fits, else
 * strlen(text) + LCD_SCROLL_GAP (the window wraps around). */
unsigned lcd_scroll_len(const char *text, int width);
/* The width characters shown at scroll position pos (out holds width + 1). */
void lcd_window(char *out, const char *text, int width, unsigned pos);

/* The display at addr on device (e.g. "/dev/i2c-1"); both strings are copied. Never fails
 * because the display is missing: it keeps retrying. NULL only without memory. Owned by the
 * caller: free with lcd_free. */
struct lcd *lcd_new(struct loop *loop, const char *device, int addr, int width);
void lcd_free(struct lcd *l);
/* Shows two rows of ROM codes (lcdtext.h; copied). Row 1 is a status line: cut to the width,
 * never scrolled. Row 2 scrolls when longer. A change re-initialises the display (no clear)
 * and rewrites both rows; so does a timer every few seconds (recovers a power dip). */
void lcd_show(struct lcd *l, const char *line1, const char *line2);
int lcd_width(const struct lcd *l);
/* On a clean exit, with the loop stopped: shows line1/line2 (ROM codes) at once, with blocking
 * waits, so the display does not keep a stale screen. */
void lcd_goodbye(struct lcd *l, const char *line1, const char *line2);

#endif
