/* display: the home server's status on its optional displays (an M5Stack on a serial port,
 * a 2-line I2C LCD). The agent reports its state as often as it likes; changes only mark the
 * display dirty and a loop timer pushes at most one refresh per DISPLAY_MIN_MS to the devices,
 * so a slow, missing or failing display never slows the agent. */
#ifndef MHS_DISPLAY_H
#define MHS_DISPLAY_H

#include <stdbool.h>

#include "conf.h"

#define DISPLAY_MIN_MS 200

struct loop;
struct display;

/* What is shown. Strings are borrowed for the call only (copied, truncated to the sizes of
 * struct bridge_status); NULL reads as "". */
struct display_state {
	const char *home;
	bool broker_up;
	int online, total;               /* controllers */
	const char *last_cmd;            /* "kitchen/lamp_on ok", "" if none yet */
	const char *text;                /* last text published to fr/<home>/display */
	unsigned long long text_seq;     /* counts publications (the same text may be re-sent) */
};

/* What a display shows, copied (display_update keeps one; the M5Stack's driver the one it
 * should show and the one it sent). */
struct display_view {
	char home[64];
	bool broker_up;
	int online, total;
	char cmd[160];
	char text[256];
	unsigned long long seq;
};

/* The displays configured in conf (m5stack.port, lcd.device); NULL if neither is configured
 * or without memory. conf must outlive the display. Owned by the caller: display_free. */
struct display *display_new(struct loop *loop, const struct conf *conf);
void display_update(struct display *d, const struct display_state *st);
void display_free(struct display *d);

#endif
