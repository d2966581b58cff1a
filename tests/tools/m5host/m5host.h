/* m5host: runs the real fr_display.ino on the host (against the M5Stack.h stand-in beside this
 * file) for the C test suites: a device that boots, receives bytes, has its button pressed and
 * its clock advanced, and whose screen and serial output can be read as text. One device per
 * process; all strings returned are owned by m5host and valid until the next call. */
#ifndef FR_M5HOST_H
#define FR_M5HOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define M5HOST_COLS 26   /* 320 px / 12 px: the built-in font at text size 2 */
#define M5HOST_ROWS 15   /* 240 px / 16 px */

/* Powers the device on at clock 0: setup() once, then one loop(). */
void m5host_boot(void);
/* n bytes arrive on the serial port, then loop() runs until it has read them all. */
void m5host_receive(const void *buf, size_t n);
/* The clock moves on by ms, then loop() runs once. */
void m5host_advance(uint32_t ms);
/* Button A is pressed (and released) before the next loop(), which then runs. */
void m5host_press_a(void);
/* The screen: M5HOST_ROWS lines of M5HOST_COLS characters, each ended by '\n'. */
const char *m5host_screen(void);
/* Whether the screen shows s (within one row). */
int m5host_shows(const char *s);
/* What the sketch wrote to the serial port since the last call. */
const char *m5host_sent(void);
/* How many times the whole screen was cleared (one per full redraw). */
unsigned m5host_redraws(void);

#ifdef __cplusplus
}
#endif

#endif
