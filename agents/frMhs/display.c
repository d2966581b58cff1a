/* display: coalesces the agent's state changes into rate-limited refreshes of the M5Stack and
 * the LCD; see display.h. */
#include "display.h"

#include "lcd.h"
#include "lcdtext.h"
#include "log.h"
#include "loop.h"
#include "m5stack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct display {
	struct loop *loop;
	struct m5stack *m5;
	struct lcd *lcd;
	struct display_view v;
	bool text_newer;        /* the LCD's second row shows whichever changed last */
	bool dirty, refreshed;
	uint64_t last_ms;       /* monotonic time of the last refresh */
	struct loop_timer timer;
};

static void display_refresh(void *arg)
{
	struct display *d = arg;
	d->dirty = false;
	d->refreshed = true;
	d->last_ms = loop_now(d->loop);
	if (d->m5)
		m5stack_show(d->m5, &d->v);
	if (d->lcd) {
		/* Row 1: "home1 1/2", plus " no MQTT" while the broker is away, fitted to the
		 * width. Row 2: the last published text or the last command, whichever is newer. */
		char l1[LCD_WIDTH_MAX + 1], l2[512];
		const struct display_view *v = &d->v;
		lcdtext_status(l1, sizeof l1, v->home, v->online, v->total, v->broker_up,
			       lcd_width(d->lcd));
		lcdtext_a00(l2, sizeof l2,
			    d->text_newer && v->text[0] ? v->text : v->cmd[0] ? v->cmd : v->text);
		lcd_show(d->lcd, l1, l2);
	}
}

static bool display_copy(char *dst, size_t cap, const char *src)
{
	char tmp[256];
	snprintf(tmp, cap < sizeof tmp ? cap : sizeof tmp, "%s", src ? src : "");
	if (strcmp(dst, tmp) == 0)
		return false;
	memcpy(dst, tmp, strlen(tmp) + 1);
	return true;
}

void display_update(struct display *d, const struct display_state *st)
{
	bool changed = false;
	if (!d)
		return;
	struct display_view *v = &d->v;
	changed |= display_copy(v->home, sizeof v->home, st->home);
	if (display_copy(v->cmd, sizeof v->cmd, st->last_cmd)) {
		d->text_newer = false;
		changed = true;
	}
	if (display_copy(v->text, sizeof v->text, st->text) || st->text_seq != v->seq) {
		v->seq = st->text_seq;
		d->text_newer = true;
		changed = true;
	}
	if (st->broker_up != v->broker_up || st->online != v->online || st->total != v->total) {
		v->broker_up = st->broker_up;
		v->online = st->online;
		v->total = st->total;
		changed = true;
	}
	if (!changed && d->refreshed)
		return;
	d->dirty = true;
	if (loop_timer_armed(&d->timer))
		return;
	uint64_t now = loop_now(d->loop), next = d->last_ms + DISPLAY_MIN_MS;
	loop_timer_start(d->loop, &d->timer, d->refreshed && next > now ? next - now : 0);
}

struct display *display_new(struct loop *loop, const struct conf *conf)
{
	if (!conf->serial_port && !conf->lcd_device)
		return NULL;
	struct display *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->loop = loop;
	loop_timer_init(&d->timer, display_refresh, d);
	if (conf->serial_port) {
		d->m5 = m5stack_new(loop, conf->serial_port, conf->serial_baud);
		if (!d->m5)
			goto fail;
	}
	if (conf->lcd_device) {
		d->lcd = lcd_new(loop, conf->lcd_device, conf->lcd_addr, conf->lcd_width);
		if (!d->lcd)
			goto fail;
	}
	return d;
fail:
	log_warnx("display: out of memory");
	display_free(d);
	return NULL;
}

void display_free(struct display *d)
{
	if (!d)
		return;
	loop_timer_stop(d->loop, &d->timer);
	if (d->lcd) {
		/* The last screen must not look current after frMhs has gone. */
		char home[LCD_WIDTH_MAX + 1];
		lcdtext_a00(home, sizeof home, d->v.home);
		lcd_goodbye(d->lcd, home, "frMhs stopped");
	}
	m5stack_free(d->m5);
	lcd_free(d->lcd);
	free(d);
}
