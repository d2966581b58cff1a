/* hd44780: HD44780U + PCF8574 model; see hd44780.h. Sources: Hitachi HD44780U datasheet
 * (instructions, table 6 execution times at fosc 270 kHz, figure 24 initialisation by
 * instruction, the 4-bit interface, character ROM A00), NXP PCF8574 (100 kHz). */
#include "hd44780.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull
#define US 1000ull

enum { K_CLEAR, K_INIT, K_OTHER, K_N };

struct hd44780 {
	unsigned fosc;
	uint64_t power_ns;          /* last power-on */
	uint64_t busy_until;
	int busy_kind;
	bool dipped;                /* powered again by a dip: the driver cannot know */
	/* Since a dip, the driver's bytes are read in a state it cannot know about (a nibble lost
	 * in the reset's busy time shifts everything after it), so what arrives while busy is lost
	 * without blaming the driver, until the controller has executed a whole initialisation by
	 * instruction: the driver's three 0x3 nibbles, then the 0x2 that selects 4 bits. */
	bool unsynced;
	int fs3;                    /* 0x3 nibbles with RS low accepted in a row while unsynced */
	unsigned lost_unsynced;
	bool four_bit, two_line, display_on, pending, cg, inc, shift_on;
	int init_fs;                /* function sets since power-on (initialisation by instruction) */
	uint8_t high, high_rs;
	uint8_t prev;               /* last pin state */
	uint8_t rise_pins;          /* pins when E rose */
	uint8_t ac;
	int shift;
	uint8_t ddram[128], cgram[64];
	unsigned violations, checked;
	int64_t min_margin[K_N];
	char last[256];
};

static uint64_t scaled(const struct hd44780 *m, uint64_t ns_at_270)
{
	return (ns_at_270 * 270 + m->fosc - 1) / m->fosc;
}

static void violation(struct hd44780 *m, uint64_t t, const char *fmt, const char *what, double us)
{
	m->violations++;
	snprintf(m->last, sizeof m->last, fmt, (double)(t - m->power_ns) / 1e6, what, us);
}

void hd44780_power_cycle(struct hd44780 *m, uint64_t t_ns)
{
	m->dipped = m->power_ns != 0 || m->violations || m->checked;
	m->unsynced = m->dipped;
	m->fs3 = 0;
	m->power_ns = t_ns;
	m->busy_until = t_ns + 10 * MS;   /* internal reset */
	m->busy_kind = -1;
	m->four_bit = m->two_line = m->display_on = m->pending = m->cg = m->shift_on = false;
	m->inc = true;
	m->init_fs = 0;
	m->ac = 0;
	m->shift = 0;
	memset(m->ddram, 0xff, sizeof m->ddram);   /* garbage: full blocks */
	m->prev = 0;
}

struct hd44780 *hd44780_new(unsigned fosc_khz, uint64_t t_ns)
{
	struct hd44780 *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->fosc = fosc_khz ? fosc_khz : 190;
	for (int k = 0; k < K_N; k++)
		m->min_margin[k] = INT64_MAX;
	hd44780_power_cycle(m, t_ns);
	return m;
}

void hd44780_free(struct hd44780 *m) { free(m); }

static void ac_step(struct hd44780 *m)
{
	if (m->cg) {
		m->ac = (uint8_t)((m->ac + (m->inc ? 1 : -1)) & 0x3f);
		return;
	}
	int a = m->ac + (m->inc ? 1 : -1);
	/* Two-line DDRAM: 0x00..0x27 then 0x40..0x67. */
	if (m->inc && a == 0x28) a = 0x40;
	else if (m->inc && a == 0x68) a = 0x00;
	else if (!m->inc && a == 0x3f) a = 0x27;
	else if (!m->inc && a < 0) a = 0x67;
	m->ac = (uint8_t)a;
}

static void execute(struct hd44780 *m, uint8_t rs, uint8_t b, uint64_t t)
{
	uint64_t exec = scaled(m, 37 * US);
	int kind = K_OTHER;
	if (rs) {
		if (m->cg)
			m->cgram[m->ac & 0x3f] = b & 0x1f;
		else
			m->ddram[m->ac & 0x7f] = b;
		ac_step(m);
		exec = scaled(m, 41 * US);   /* 37 us + tADD 4 us */
	} else if (b == 0x01) {
		memset(m->ddram, 0x20, sizeof m->ddram);
		m->ac = 0, m->shift = 0, m->inc = true, m->cg = false;
		exec = scaled(m, 1520 * US), kind = K_CLEAR;
	} else if ((b & 0xfe) == 0x02) {
		m->ac = 0, m->shift = 0, m->cg = false;
		exec = scaled(m, 1520 * US), kind = K_CLEAR;
	} else if ((b & 0xfc) == 0x04) {
		m->inc = b & 0x02, m->shift_on = b & 0x01;
	} else if ((b & 0xf8) == 0x08) {
		m->display_on = b & 0x04;
	} else if ((b & 0xf0) == 0x10) {
		if (b & 0x08)
			m->shift += (b & 0x04) ? -1 : 1;
	} else if ((b & 0xe0) == 0x20) {
		bool was4 = m->four_bit;
		m->four_bit = !(b & 0x10);
		m->two_line = b & 0x08;   /* in 8-bit mode via the backpack D0..D3 float: N reads 0 */
		if (!was4)
			m->two_line = false;
		m->pending = false;
		/* Initialisation by instruction: > 4.1 ms after the first function set, > 100 us
		 * after the second (figure 24); they apply after power-on only. */
		if (m->init_fs < 2 && (b & 0x10)) {
			exec = m->init_fs == 0 ? 4100 * US : 100 * US;
			kind = K_INIT;
		}
		m->init_fs++;
	} else if (b & 0x80) {
		m->ac = b & 0x7f, m->cg = false;
	} else {
		m->ac = b & 0x3f, m->cg = true;
	}
	m->busy_until = t + exec;
	m->busy_kind = kind;
}

static void latch(struct hd44780 *m, uint8_t pins, uint64_t t)
{
	uint8_t nib = pins >> 4, rs = pins & 1;
	if (!m->dipped && t < m->power_ns + 40 * MS) {
		violation(m, t, "%.3f ms after power-on: %s (%.1f us before the 40 ms wait)",
			  "instruction", (double)(m->power_ns + 40 * MS - t) / 1e3);
		return;
	}
	if (t < m->busy_until) {
		if (m->unsynced)
			m->lost_unsynced++;
		else if (m->busy_kind >= 0) {
			static const char *names[] = { "clear/home", "init function set", "instruction" };
			violation(m, t, "%.3f ms after power-on: E while busy after %s, %.1f us early",
				  names[m->busy_kind], (double)(m->busy_until - t) / 1e3);
		}
		return;   /* lost, as on a strict controller */
	}
	if (m->busy_kind >= 0 && m->busy_until && !m->unsynced) {
		int64_t margin = (int64_t)(t - m->busy_until);
		if (margin < m->min_margin[m->busy_kind])
			m->min_margin[m->busy_kind] = margin;
		m->checked++;
		m->busy_kind = -2;   /* measured once per instruction */
	}
	/* The driver's sync preamble: three 0x3 nibbles, whatever mode and nibble phase they meet
	 * (from 4-bit mode the first two make one instruction), leave 8-bit mode; its 0x2 then
	 * selects 4 bits in step with the driver. Nothing else sends three 0x3 with RS low. */
	if (m->unsynced) {
		if (!rs && nib == 0x3)
			m->fs3++;
		else if (!rs && nib == 0x2 && !m->four_bit && m->fs3 >= 3)
			m->unsynced = false;
		else
			m->fs3 = 0;
	}
	if (!m->four_bit) {
		execute(m, rs, (uint8_t)(nib << 4), t);
		return;
	}
	if (!m->pending) {
		m->high = nib, m->high_rs = rs, m->pending = true;
		return;
	}
	m->pending = false;
	execute(m, m->high_rs, (uint8_t)(m->high << 4 | nib), t);
}

void hd44780_bus(struct hd44780 *m, uint8_t pins, uint64_t t_ns)
{
	bool e_was = m->prev & 0x04, e_now = pins & 0x04;
	if (!e_was && e_now) {
		m->rise_pins = pins;
		if (pins & 0x02)
			violation(m, t_ns, "%.3f ms after power-on: %s (RW high: a read)", "E rose", 0);
	} else if (e_was && e_now && (pins & 0xf1) != (m->rise_pins & 0xf1)) {
		violation(m, t_ns, "%.3f ms after power-on: %s %.0f", "data changed while E high", 0);
	} else if (e_was && !e_now) {
		if ((pins & 0xf1) != (m->rise_pins & 0xf1))
			violation(m, t_ns, "%.3f ms after power-on: %s %.0f", "data changed at E fall", 0);
		latch(m, m->rise_pins, t_ns);
	}
	m->prev = pins;
}

void hd44780_glitch(struct hd44780 *m, uint64_t t_ns)
{
	if (t_ns >= m->busy_until && m->four_bit) {
		if (m->pending) {
			m->pending = false;
			execute(m, m->high_rs, (uint8_t)(m->high << 4), t_ns);
		} else {
			m->high = 0, m->high_rs = 0, m->pending = true;
		}
	}
	m->busy_kind = -1;   /* the driver's next wait is not measured against noise */
}

/* A00 glyphs as UTF-8. */
static const char *glyph(const struct hd44780 *m, uint8_t c, char *buf)
{
	static const char *e0[32] = { "α", "ä", "β", "ε", "μ", "σ", "ρ", "g", "√", "⁻", "j", "ˣ", "¢",
				      "£", "ñ", "ö", "p", "q", "θ", "∞", "Ω", "ü", "Σ", "π", "x̄", "y",
				      "千", "万", "円", "÷", " ", "█" };
	if (c < 0x10) {
		const uint8_t *p = m->cgram + (c & 7) * 8;
		static const uint8_t bs[8] = { 0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00 };
		static const uint8_t ti[8] = { 0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00 };
		return memcmp(p, bs, 8) == 0 ? "\\" : memcmp(p, ti, 8) == 0 ? "~" : "?";
	}
	if (c == 0x5c) return "¥";
	if (c == 0x7e) return "→";
	if (c == 0x7f) return "←";
	if (c >= 0x20 && c < 0x7e) {
		buf[0] = (char)c, buf[1] = 0;
		return buf;
	}
	if (c >= 0xa1 && c <= 0xdf) {   /* U+FF61 + (c - 0xA1) */
		unsigned cp = 0xff61 + (c - 0xa1);
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		buf[3] = 0;
		return buf;
	}
	if (c >= 0xe0)
		return e0[c - 0xe0];
	return " ";
}

size_t hd44780_screen(const struct hd44780 *m, int width, char *out, size_t cap)
{
	size_t n = 0;
	char buf[8];
	for (int r = 0; r < 2; r++) {
		n += (size_t)snprintf(out + n, cap - n, "|");
		for (int i = 0; i < width && n < cap; i++) {
			int a = ((i + m->shift) % 40 + 40) % 40;
			uint8_t c = m->ddram[(r ? 0x40 : 0) + a];
			bool dark = !m->display_on || (r == 1 && !m->two_line);
			n += (size_t)snprintf(out + n, cap - n, "%s", dark ? " " : glyph(m, c, buf));
		}
		n += (size_t)snprintf(out + n, cap - n, "|\n");
		if (n >= cap)
			return cap - 1;
	}
	return n;
}

unsigned hd44780_violations(const struct hd44780 *m) { return m->violations; }
const char *hd44780_last_violation(const struct hd44780 *m) { return m->last; }

size_t hd44780_stats(const struct hd44780 *m, char *out, size_t cap)
{
	static const char *names[] = { "clear/home", "init waits", "others" };
	int n = snprintf(out, cap, "fosc %u kHz: %u waits checked, %u violations (%u nibbles lost "
			 "after power dips before the next init); smallest margin:",
			 m->fosc, m->checked, m->violations, m->lost_unsynced);
	for (int k = 0; k < K_N && n > 0 && (size_t)n < cap; k++) {
		if (m->min_margin[k] == INT64_MAX)
			n += snprintf(out + n, cap - (size_t)n, " %s -", names[k]);
		else
			n += snprintf(out + n, cap - (size_t)n, " %s +%.1f us", names[k],
				      (double)m->min_margin[k] / 1e3);
	}
	return n < 0 ? 0 : (size_t)n;
}
