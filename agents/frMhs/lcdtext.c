/* lcdtext: UTF-8 to the HD44780 A00 ROM, kana and kanji included; see lcdtext.h. */
#include "lcdtext.h"

#include "log.h"

#include <iconv.h>
#include <libkakasi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const unsigned char lcdtext_cgram[2][8] = {
	{ 0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00 },   /* \ */
	{ 0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00 },   /* ~ */
};

/* Full-width katakana U+30A1..U+30FA (hiragana U+3041..U+3096 = katakana - 0x60) as A00
 * codes: the base glyph, and 0xDE (dakuten) or 0xDF (handakuten) as a second code. */
static const unsigned char lcdtext_kana[][2] = {
	/* ァ ア ィ イ ゥ ウ ェ エ ォ オ */
	{ 0xA7, 0 }, { 0xB1, 0 }, { 0xA8, 0 }, { 0xB2, 0 }, { 0xA9, 0 }, { 0xB3, 0 },
	{ 0xAA, 0 }, { 0xB4, 0 }, { 0xAB, 0 }, { 0xB5, 0 },
	/* カ ガ キ ギ ク グ ケ ゲ コ ゴ */
	{ 0xB6, 0 }, { 0xB6, 0xDE }, { 0xB7, 0 }, { 0xB7, 0xDE }, { 0xB8, 0 }, { 0xB8, 0xDE },
	{ 0xB9, 0 }, { 0xB9, 0xDE }, { 0xBA, 0 }, { 0xBA, 0xDE },
	/* サ ザ シ ジ ス ズ セ ゼ ソ ゾ */
	{ 0xBB, 0 }, { 0xBB, 0xDE }, { 0xBC, 0 }, { 0xBC, 0xDE }, { 0xBD, 0 }, { 0xBD, 0xDE },
	{ 0xBE, 0 }, { 0xBE, 0xDE }, { 0xBF, 0 }, { 0xBF, 0xDE },
	/* タ ダ チ ヂ ッ ツ ヅ テ デ ト ド */
	{ 0xC0, 0 }, { 0xC0, 0xDE }, { 0xC1, 0 }, { 0xC1, 0xDE }, { 0xAF, 0 }, { 0xC2, 0 },
	{ 0xC2, 0xDE }, { 0xC3, 0 }, { 0xC3, 0xDE }, { 0xC4, 0 }, { 0xC4, 0xDE },
	/* ナ ニ ヌ ネ ノ */
	{ 0xC5, 0 }, { 0xC6, 0 }, { 0xC7, 0 }, { 0xC8, 0 }, { 0xC9, 0 },
	/* ハ バ パ ヒ ビ ピ フ ブ プ ヘ ベ ペ ホ ボ ポ */
	{ 0xCA, 0 }, { 0xCA, 0xDE }, { 0xCA, 0xDF }, { 0xCB, 0 }, { 0xCB, 0xDE }, { 0xCB, 0xDF },
	{ 0xCC, 0 }, { 0xCC, 0xDE }, { 0xCC, 0xDF }, { 0xCD, 0 }, { 0xCD, 0xDE }, { 0xCD, 0xDF },
	{ 0xCE, 0 }, { 0xCE, 0xDE }, { 0xCE, 0xDF },
	/* マ ミ ム メ モ */
	{ 0xCF, 0 }, { 0xD0, 0 }, { 0xD1, 0 }, { 0xD2, 0 }, { 0xD3, 0 },
	/* ャ ヤ ュ ユ ョ ヨ */
	{ 0xAC, 0 }, { 0xD4, 0 }, { 0xAD, 0 }, { 0xD5, 0 }, { 0xAE, 0 }, { 0xD6, 0 },
	/* ラ リ ル レ ロ */
	{ 0xD7, 0 }, { 0xD8, 0 }, { 0xD9, 0 }, { 0xDA, 0 }, { 0xDB, 0 },
	/* ヮ ワ ヰ ヱ ヲ ン ヴ ヵ ヶ ヷ ヸ ヹ ヺ */
	{ 0xDC, 0 }, { 0xDC, 0 }, { 0xB2, 0 }, { 0xB4, 0 }, { 0xA6, 0 }, { 0xDD, 0 },
	{ 0xB3, 0xDE }, { 0xB6, 0 }, { 0xB9, 0 }, { 0xDC, 0xDE }, { 0xB2, 0xDE }, { 0xB4, 0xDE },
	{ 0xA6, 0xDE },
};

/* Latin-1 letters U+00C0..U+00FF: A00 has ä ö ü ñ (and ß drawn as β); others lose their
 * accent. */
static const char lcdtext_latin1[] = "AAAAAAACEEEEIIIIDNOOOOOxOUUUUYPs"
				     "aaaaaaaceeeeiiiidnooooo/ouuuuypy";

/* One code point to at most two A00 codes; returns how many (0: not representable). */
static int lcdtext_map(uint32_t cp, unsigned char o[2])
{
	o[1] = 0;
	if (cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xa0 || cp == 0x3000)
		return o[0] = ' ', 1;
	if (cp == '\\')
		return o[0] = LCDTEXT_BACKSLASH, 1;
	if (cp == '~')
		return o[0] = LCDTEXT_TILDE, 1;
	if (cp >= 0x20 && cp < 0x7f)
		return o[0] = (unsigned char)cp, 1;
	if (cp >= 0xff01 && cp <= 0xff5e)   /* full-width ASCII */
		return lcdtext_map(cp - 0xff01 + 0x21, o);
	if (cp >= 0xff61 && cp <= 0xff9f)   /* half-width katakana: the ROM's own order */
		return o[0] = (unsigned char)(cp - 0xff61 + 0xa1), 1;
	if (cp >= 0x3041 && cp <= 0x3096)   /* hiragana: as katakana */
		cp += 0x60;
	if (cp >= 0x30a1 && cp <= 0x30fa) {
		o[0] = lcdtext_kana[cp - 0x30a1][0];
		o[1] = lcdtext_kana[cp - 0x30a1][1];
		return o[1] ? 2 : 1;
	}
	switch (cp) {
	case 0xe4: return o[0] = 0xe1, 1;   /* ä */
	case 0xf6: return o[0] = 0xef, 1;   /* ö */
	case 0xfc: return o[0] = 0xf5, 1;   /* ü */
	case 0xf1: return o[0] = 0xee, 1;   /* ñ */
	case 0xdf: return o[0] = 0xe2, 1;   /* ß as β */
	case 0xa5: return o[0] = 0x5c, 1;   /* ¥ */
	case 0xb0: return o[0] = 0xdf, 1;   /* ° (the handakuten glyph) */
	case 0xa2: return o[0] = 0xec, 1;   /* ¢ */
	case 0xa3: return o[0] = 0xed, 1;   /* £ */
	case 0xb5: case 0x3bc: return o[0] = 0xe4, 1;   /* µ */
	case 0xb7: case 0x30fb: return o[0] = 0xa5, 1;  /* · ・ */
	case 0xf7: return o[0] = 0xfd, 1;   /* ÷ */
	case 0x3b1: return o[0] = 0xe0, 1;  /* α */
	case 0x3b2: return o[0] = 0xe2, 1;  /* β */
	case 0x3b5: return o[0] = 0xe3, 1;  /* ε */
	case 0x3c3: return o[0] = 0xe5, 1;  /* σ */
	case 0x3c1: return o[0] = 0xe6, 1;  /* ρ */
	case 0x3b8: return o[0] = 0xf2, 1;  /* θ */
	case 0x3a9: case 0x2126: return o[0] = 0xf4, 1;  /* Ω */
	case 0x3a3: return o[0] = 0xf6, 1;  /* Σ */
	case 0x3c0: return o[0] = 0xf7, 1;  /* π */
	case 0x221a: return o[0] = 0xe8, 1; /* √ */
	case 0x221e: return o[0] = 0xf3, 1; /* ∞ */
	case 0x2192: return o[0] = 0x7e, 1; /* → */
	case 0x2190: return o[0] = 0x7f, 1; /* ← */
	case 0x2588: return o[0] = 0xff, 1; /* █ */
	case 0x5343: return o[0] = 0xfa, 1; /* 千 */
	case 0x4e07: return o[0] = 0xfb, 1; /* 万 */
	case 0x5186: return o[0] = 0xfc, 1; /* 円 */
	case 0x3002: case 0xff61: return o[0] = 0xa1, 1;  /* 。 */
	case 0x300c: return o[0] = 0xa2, 1; /* 「 */
	case 0x300d: return o[0] = 0xa3, 1; /* 」 */
	case 0x3001: return o[0] = 0xa4, 1; /* 、 */
	case 0x30fc: return o[0] = 0xb0, 1; /* ー */
	case 0x309b: return o[0] = 0xde, 1; /* ゛ */
	case 0x309c: return o[0] = 0xdf, 1; /* ゜ */
	case 0x2018: case 0x2019: return o[0] = '\'', 1;
	case 0x201c: case 0x201d: return o[0] = '"', 1;
	case 0x2013: case 0x2014: return o[0] = '-', 1;
	case 0x2026: return o[0] = '.', 1;
	case 0x20ac: return o[0] = 'E', 1;
	}
	if (cp >= 0xc0 && cp <= 0xff)
		return o[0] = (unsigned char)lcdtext_latin1[cp - 0xc0], 1;
	return 0;
}

/* Decodes one UTF-8 character at s; returns its length (1 for an invalid byte, *cp = ~0). */
static size_t lcdtext_utf8(const unsigned char *s, uint32_t *cp)
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
	*cp = v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) ? UINT32_MAX : v;
	return len;
}

static bool lcdtext_is_kanji(uint32_t cp)
{
	return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || cp == 0x3005;
}

static bool lcdtext_is_japanese(uint32_t cp)
{
	return lcdtext_is_kanji(cp) || (cp >= 0x3041 && cp <= 0x3096) ||
	       (cp >= 0x30a1 && cp <= 0x30fc);
}

/* --- KAKASI: kanji -> katakana readings. Its library keeps global state (one set of options
 * per process) and reads EUC-JP only: the run is converted with iconv on the way in and out. */

static int lcdtext_kakasi_state;   /* 0 not tried, 1 ready, -1 unavailable */

bool lcdtext_kanji_available(void)
{
	if (lcdtext_kakasi_state == 0) {
		const char *dict = getenv("KANWADICTPATH");
		if (!dict)
			dict = "/usr/share/kakasi/kanwadict";
		/* Without its dictionary KAKASI exits the process: never call it then. */
		if (access(dict, R_OK) != 0) {
			log_warnx("lcd: no KAKASI dictionary (%s; Debian package kakasi-dic): kanji "
				  "show as '?'", dict);
			lcdtext_kakasi_state = -1;
		} else {
			static char *argv[] = { "kakasi", "-ieuc", "-oeuc", "-JK", "-HK", "-s", NULL };
			lcdtext_kakasi_state = kakasi_getopt_argv(6, argv) == 0 ? 1 : -1;
			if (lcdtext_kakasi_state < 0)
				log_warnx("lcd: KAKASI would not start: kanji show as '?'");
		}
	}
	return lcdtext_kakasi_state > 0;
}

/* iconv from one encoding to another into out (NUL-terminated); -1 if it does not convert. */
static int lcdtext_iconv(const char *to, const char *from, const char *in, size_t inlen,
			 char *out, size_t cap)
{
	iconv_t cd = iconv_open(to, from);
	if (cd == (iconv_t)-1)
		return -1;
	char *ip = (char *)in, *op = out;
	size_t il = inlen, ol = cap - 1;
	size_t r = iconv(cd, &ip, &il, &op, &ol);
	iconv_close(cd);
	*op = '\0';
	return r == (size_t)-1 ? -1 : 0;
}

/* The reading of a run of Japanese text (UTF-8, len bytes) in katakana (UTF-8) into out;
 * -1 when KAKASI is not there or the run does not convert. */
static int lcdtext_reading(const char *run, size_t len, char *out, size_t cap)
{
	char euc[512], *r;
	if (!lcdtext_kanji_available() || len * 2 >= sizeof euc)
		return -1;
	if (lcdtext_iconv("EUC-JP", "UTF-8", run, len, euc, sizeof euc) < 0)
		return -1;
	r = kakasi_do(euc);
	if (!r)
		return -1;
	int rc = lcdtext_iconv("UTF-8", "EUC-JP", r, strlen(r), out, cap);
	kakasi_free(r);
	return rc;
}

static size_t lcdtext_put(char *out, size_t cap, size_t n, const unsigned char *codes, int k)
{
	if (k == 0) {
		codes = (const unsigned char *)"?";
		k = 1;
	}
	if (n + (size_t)k + 1 > cap)   /* never a kana without its dakuten */
		return n;
	memcpy(out + n, codes, (size_t)k);
	return n + (size_t)k;
}

size_t lcdtext_a00(char *out, size_t cap, const char *utf8)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t n = 0;
	if (cap == 0)
		return 0;
	while (*s && n + 1 < cap) {
		uint32_t cp;
		size_t len = lcdtext_utf8(s, &cp);
		if (cp != UINT32_MAX && lcdtext_is_kanji(cp)) {
			/* The whole run of Japanese text around the kanji: KAKASI reads words. */
			const unsigned char *e = s;
			uint32_t c2;
			size_t l2;
			while (*e && (l2 = lcdtext_utf8(e, &c2), c2 != UINT32_MAX && lcdtext_is_japanese(c2)))
				e += l2;
			char kana[1024];
			if (lcdtext_reading((const char *)s, (size_t)(e - s), kana, sizeof kana) == 0 &&
			    kana[0]) {
				size_t before = n;
				n += lcdtext_a00(out + n, cap - n, kana);
				if (n > before) {
					s = e;
					continue;
				}
			}
		}
		unsigned char o[2];
		size_t before = n;
		n = lcdtext_put(out, cap, n, o, cp == UINT32_MAX ? 0 : lcdtext_map(cp, o));
		if (n == before)
			break;
		s += len;
	}
	out[n] = '\0';
	return n;
}

size_t lcdtext_status(char *out, size_t cap, const char *home, int online, int total,
		      bool broker_up, int width)
{
	char h[256], counts[32];
	size_t hl = lcdtext_a00(h, sizeof h, home ? home : "");
	int cl = snprintf(counts, sizeof counts, "%d/%d", online, total);
	const char *warn = broker_up ? "" : " no MQTT";
	size_t wl = strlen(warn), w = width > 0 ? (size_t)width : 0;
	if (cap == 0)
		return 0;
	if (w >= cap)
		w = cap - 1;
	/* Shorten the warning only when even a 1-character name would not fit with it. */
	if (!broker_up && 1 + 1 + (size_t)cl + wl > w) {
		warn = " !MQTT";
		wl = strlen(warn);
	}
	size_t room = w > (size_t)cl + wl + 1 ? w - (size_t)cl - wl - 1 : 0;
	if (hl > room)
		hl = room;
	size_t n = (size_t)snprintf(out, cap, "%.*s%s%s%s", (int)hl, h, hl ? " " : "", counts, warn);
	if (n > w)
		n = w;
	out[n] = '\0';
	return n;
}
