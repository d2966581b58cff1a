/* ctl: controller liveness; see ctl.h for the table. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

typedef unsigned (*ctl_handler)(struct ctl_live *l, const struct ctl_params *p);

static const char *const ctl_state_names[CTL_NSTATES] = { "new", "up", "grace", "down" };

const char *ctl_state_name(enum ctl_state s) { return s < CTL_NSTATES ? ctl_state_names[s] : "?"; }

void ctl_live_init(struct ctl_live *l)
{
	memset(l, 0, sizeof *l);
	l->state = CTL_NEW;
	snprintf(l->reason, sizeof l->reason, "never seen");
}

void ctl_live_restore(struct ctl_live *l, bool online, const char *reason, int64_t since)
{
	ctl_live_init(l);
	l->since = since;
	if (!online) {
		l->state = CTL_DOWN;
		if (reason && reason[0])
			snprintf(l->reason, sizeof l->reason, "%s", reason);
	}
}

bool ctl_live_online(const struct ctl_live *l) { return l->state == CTL_UP || l->state == CTL_GRACE; }

uint64_t ctl_live_due(const struct ctl_live *l, uint64_t window_ms) { return l->heard + window_ms; }

/* Offline with a reason; since moves only when online changes. */
static unsigned ctl_down(struct ctl_live *l, const struct ctl_params *p, const char *why)
{
	bool was_online = ctl_live_online(l);
	bool same = l->state == CTL_DOWN && strcmp(l->reason, why) == 0;
	l->state = CTL_DOWN;
	snprintf(l->reason, sizeof l->reason, "%s", why);
	if (was_online)
		l->since = p->wall;
	if (same)
		return 0;
	return CTL_DO_PUBLISH | CTL_DO_DISARM | (was_online ? CTL_DO_OFFLINE : 0);
}

static unsigned ctl_ev_ignore(struct ctl_live *l, const struct ctl_params *p)
{
	(void)l;
	(void)p;
	return 0;
}

static unsigned ctl_ev_up(struct ctl_live *l, const struct ctl_params *p)
{
	unsigned out = CTL_DO_LINKED | CTL_DO_DISARM;
	if (!ctl_live_online(l)) {
		l->since = p->wall;
		out |= CTL_DO_PUBLISH;
	}
	l->state = CTL_UP;
	l->ever_up = true;
	l->reason[0] = '\0';
	return out;
}

static unsigned ctl_ev_lost(struct ctl_live *l, const struct ctl_params *p)
{
	l->state = CTL_GRACE;
	l->heard = p->now;
	return CTL_DO_ARM;
}

static unsigned ctl_ev_hs_failed(struct ctl_live *l, const struct ctl_params *p)
{
	char why[sizeof l->reason];
	snprintf(why, sizeof why, "handshake failed: %s", p->detail ? p->detail : "");
	return ctl_down(l, p, why);
}

static unsigned ctl_ev_bye(struct ctl_live *l, const struct ctl_params *p)
{
	return ctl_down(l, p, "shut down cleanly");
}

static unsigned ctl_ev_heard(struct ctl_live *l, const struct ctl_params *p)
{
	l->heard = p->now;
	return l->state == CTL_GRACE ? CTL_DO_ARM : 0;
}

static unsigned ctl_ev_window(struct ctl_live *l, const struct ctl_params *p)
{
	if (p->now < ctl_live_due(l, p->window_ms))
		return CTL_DO_ARM;
	char why[sizeof l->reason];
	/* A link that had been up: its loss is the cause; else the controller just went quiet. */
	if (l->ever_up)
		snprintf(why, sizeof why, "link lost and %d announces missed", p->offline_after);
	else
		snprintf(why, sizeof why, "missed %d announces", p->offline_after);
	return ctl_down(l, p, why);
}

/* Online in the previous run: it has the window to show itself before it reads offline, so a
 * restart of frMhs never leaves a stale "online" behind and never flaps a live controller. */
static unsigned ctl_ev_restore(struct ctl_live *l, const struct ctl_params *p)
{
	l->state = CTL_GRACE;
	l->reason[0] = '\0';
	l->heard = p->now;
	return CTL_DO_ARM;
}

#define IGN ctl_ev_ignore
static const ctl_handler ctl_table[CTL_NSTATES][CTL_NEVENTS] = {
	/*            LINK_UP    LINK_LOST    HS_FAILED         BYE         HEARD         WINDOW         RESTORE */
	[CTL_NEW]   = { ctl_ev_up, IGN,         ctl_ev_hs_failed, IGN,        IGN,          IGN,           ctl_ev_restore },
	[CTL_UP]    = { ctl_ev_up, ctl_ev_lost, IGN,              ctl_ev_bye, IGN,          IGN,           IGN },
	[CTL_GRACE] = { ctl_ev_up, IGN,         ctl_ev_hs_failed, IGN,        ctl_ev_heard, ctl_ev_window, IGN },
	[CTL_DOWN]  = { ctl_ev_up, IGN,         ctl_ev_hs_failed, IGN,        IGN,          IGN,           IGN },
};
#undef IGN

unsigned ctl_live_step(struct ctl_live *l, enum ctl_event ev, const struct ctl_params *p)
{
	if (l->state >= CTL_NSTATES || ev >= CTL_NEVENTS)
		return 0;
	if (ev == CTL_EV_HEARD && l->state != CTL_GRACE)
		l->heard = p->now;   /* remembered in every state: GRACE may follow */
	return ctl_table[l->state][ev](l, p);
}
