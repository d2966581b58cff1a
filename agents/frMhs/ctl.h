/* ctl: one controller's liveness -- online or offline, since when and why -- as an explicit
 * state × event table. It holds no links and no timers: the registry feeds it what happened
 * and does what the step returns, so every transition can be walked by a unit test.
 *
 *   state \ event  LINK_UP  LINK_LOST  HS_FAILED  BYE    HEARD   WINDOW        RESTORE
 *   NEW            UP       -          DOWN       -      -       -             GRACE
 *   UP             UP       GRACE      -          DOWN   -       -             -
 *   GRACE          UP       -          DOWN       -      GRACE   GRACE / DOWN  -
 *   DOWN           UP       -          DOWN       -      -       -             -
 *
 * NEW: known, never linked in this run, not vouched for ("never seen"). UP: a link said hello.
 * GRACE: still online without a link -- its link was lost, or it was online before frMhs
 * restarted -- until offline_after announce periods pass without an announce (WINDOW), so one
 * lost datagram or a link re-dialled in a moment never flaps it. DOWN: offline with a reason.
 * LINK_LOST is the loss of the link that had said hello; HS_FAILED a failed handshake at the
 * controller's own (verified) address, final at once: a wrong key does not heal by waiting. */
#ifndef MHS_CTL_H
#define MHS_CTL_H

#include <stdbool.h>
#include <stdint.h>

enum ctl_state { CTL_NEW, CTL_UP, CTL_GRACE, CTL_DOWN, CTL_NSTATES };
enum ctl_event { CTL_EV_LINK_UP, CTL_EV_LINK_LOST, CTL_EV_HS_FAILED, CTL_EV_BYE, CTL_EV_HEARD,
		 CTL_EV_WINDOW, CTL_EV_RESTORE, CTL_NEVENTS };

/* What the owner does after a step (bits of the returned value). */
enum {
	CTL_DO_PUBLISH = 1,   /* online/offline or the reason changed: publish status and info */
	CTL_DO_LINKED = 2,    /* a link said hello: send what waits for it */
	CTL_DO_OFFLINE = 4,   /* it went offline: what was sent to it is lost */
	CTL_DO_ARM = 8,       /* (re)arm the window check to fire at ctl_live_due() */
	CTL_DO_DISARM = 16,   /* stop the window check */
};

struct ctl_live {
	enum ctl_state state;
	bool ever_up;         /* a link said hello in this run */
	char reason[160];     /* why offline; "" while online */
	int64_t since;        /* unix ms when online last changed (0: never) */
	uint64_t heard;       /* monotonic ms of the last announce or link loss */
};

/* The circumstances of a step. */
struct ctl_params {
	uint64_t now;         /* monotonic ms */
	int64_t wall;         /* unix ms */
	uint64_t window_ms;   /* announce interval × offline_after */
	int offline_after;
	const char *detail;   /* HS_FAILED: the handshake's error */
};

/* NEW, "never seen". */
void ctl_live_init(struct ctl_live *l);
/* What a previous run knew: offline with its reason, or online (then RESTORE). */
void ctl_live_restore(struct ctl_live *l, bool online, const char *reason, int64_t since);
/* Applies ev; returns CTL_DO_* bits. */
unsigned ctl_live_step(struct ctl_live *l, enum ctl_event ev, const struct ctl_params *p);
bool ctl_live_online(const struct ctl_live *l);
/* Monotonic ms when the window of a GRACE controller ends. */
uint64_t ctl_live_due(const struct ctl_live *l, uint64_t window_ms);
const char *ctl_state_name(enum ctl_state s);

#endif
