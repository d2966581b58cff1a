/* lcdtext: text for an HD44780 with character ROM A00 (the Japanese ROM, the one on nearly
 * every PCF8574 backpack module). UTF-8 in, the ROM's codes out: ASCII but '\' and '~' (the ROM
 * has ¥ and → there; both are drawn from CGRAM slots loaded by lcd.c), ¥ → 0x5C, the Latin,
 * Greek and symbol glyphs A00 has (ä ö ü ñ ° α β μ π Σ Ω ÷ √ ∞ 円 ...), hiragana and katakana
 * → half-width katakana with separate dakuten/handakuten, kanji through their reading
 * (KAKASI, libkakasi2 with the kakasi-dic dictionary) as katakana words separated by blanks:
 * 台所の電気 → ﾀﾞｲﾄﾞｺﾛ ﾉ ﾃﾞﾝｷ. Anything else becomes '?'. */
#ifndef MHS_LCDTEXT_H
#define MHS_LCDTEXT_H

#include <stdbool.h>
#include <stddef.h>

/* CGRAM codes (0x08.. mirror CGRAM 0..7; 0x00 would end a C string). */
#define LCDTEXT_BACKSLASH 0x08
#define LCDTEXT_TILDE 0x09
/* The 5x8 patterns lcd.c loads into CGRAM slots 0 and 1, row by row (5 low bits). */
extern const unsigned char lcdtext_cgram[2][8];

/* UTF-8 (invalid bytes allowed: each becomes '?') to ROM A00 codes. Always NUL-terminates
 * (cap > 0); never cuts a kana from its dakuten. Returns the number of codes written. */
size_t lcdtext_a00(char *out, size_t cap, const char *utf8);

/* Row 1 of the LCD in ROM codes, never longer than width: "<home> <online>/<total>", plus
 * " no MQTT" while the broker is down. The counts and the warning always show: a long home
 * name is cut to make room (and the warning shortened to "!MQTT" before the name goes
 * entirely). Returns the length. */
size_t lcdtext_status(char *out, size_t cap, const char *home, int online, int total,
		      bool broker_up, int width);

/* Whether KAKASI and its dictionary were found (kanji read as kana); false means kanji
 * become '?'. Loads them on first use; logs once when they are missing. */
bool lcdtext_kanji_available(void);

#endif
