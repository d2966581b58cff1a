/* hd44780: a model of an HD44780U behind a PCF8574 backpack (P0=RS P1=RW P2=E P3=backlight
 * P4..P7=D4..D7), written from the datasheets alone, to test the LCD driver with the bytes it
 * really sends: each PCF8574 output byte at its bus time goes in; the model keeps DDRAM,
 * CGRAM, 8/4-bit mode and nibble sync, and checks the timing a strict controller needs
 * (power-on wait, the init sequence's 4.1 ms / 100 us, each instruction's execution time at
 * the slowest oscillator, data stable while E is high, RW low). A nibble that arrives while
 * the controller is busy is lost, as on a strict part: the screen then shows what such a
 * display would. Used by tests/unit/test_lcd.c and the LD_PRELOAD shim i2cshim.c. */
#ifndef FR_HD44780_H
#define FR_HD44780_H

#include <stddef.h>
#include <stdint.h>

struct hd44780;

/* fosc_khz: the controller's oscillator (190 = the slowest HD44780U: every execution time is
 * the datasheet's 270 kHz figure times 270/fosc). Starts powered on at t_ns. */
struct hd44780 *hd44780_new(unsigned fosc_khz, uint64_t t_ns);
void hd44780_free(struct hd44780 *m);
/* Power dip at t_ns: the internal reset (8-bit, one line, display off, busy 10 ms) with
 * DDRAM garbage. The driver cannot know: until the controller has executed a whole
 * initialisation by instruction again (three 0x3 nibbles, then 0x2), nibbles that
 * arrive while it is busy are lost without counting as the driver's violations (the stats
 * count them), and no wait is measured. */
void hd44780_power_cycle(struct hd44780 *m, uint64_t t_ns);
/* A stray E pulse (noise): one nibble of 0 latched, the nibble sync is lost. */
void hd44780_glitch(struct hd44780 *m, uint64_t t_ns);
/* One PCF8574 output byte, set at t_ns (monotonic, non-decreasing). */
void hd44780_bus(struct hd44780 *m, uint8_t pins, uint64_t t_ns);
/* The visible screen, width columns: "|row 1|\n|row 2|\n" in UTF-8 (A00 glyphs: ¥ for 0x5C,
 * half-width katakana, ...; CGRAM characters by their pattern: '\' and '~' when they are
 * those, else '?'; a display that is off shows blanks). Returns the length. */
size_t hd44780_screen(const struct hd44780 *m, int width, char *out, size_t cap);
/* Violations so far, and the text of the last one ("" if none). */
unsigned hd44780_violations(const struct hd44780 *m);
const char *hd44780_last_violation(const struct hd44780 *m);
/* Timing summary: instructions checked, violations, nibbles lost after dips, the smallest
 * margin (ns) between an instruction's end (busy) and the next E, per kind (clear/home, init
 * waits, others). */
size_t hd44780_stats(const struct hd44780 *m, char *out, size_t cap);

#endif
