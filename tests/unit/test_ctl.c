/* test_ctl: frMhs's controller liveness table (agents/frMhs/ctl.c). Every state × event pair
 * is walked against an expectation written here from docs/topics.md ("status"), not from the
 * code: the next state, what the owner is told to do, and that "since" moves only when online
 * changes. */
#include <check.h>

#include <string.h>

#include "ctl.h"

#define WINDOW 900   /* 3 × 300 ms */

enum { PUB = CTL_DO_PUBLISH, LNK = CTL_DO_LINKED, OFF = CTL_DO_OFFLINE, ARM = CTL_DO_ARM,
       DIS = CTL_DO_DISARM };

struct expect {
	enum ctl_state next;
	unsigned out;
};

/* [state][event], for a WINDOW that has run out (the "not yet" case is tested apart). */
static const struct expect table[CTL_NSTATES][CTL_NEVENTS] = {
	/*              LINK_UP                  LINK_LOST         HS_FAILED                 BYE                       HEARD             WINDOW                    RESTORE */
	[CTL_NEW]   = { { CTL_UP, PUB | LNK | DIS }, { CTL_NEW, 0 },   { CTL_DOWN, PUB | DIS },   { CTL_NEW, 0 },           { CTL_NEW, 0 },   { CTL_NEW, 0 },           { CTL_GRACE, ARM } },
	[CTL_UP]    = { { CTL_UP, LNK | DIS },       { CTL_GRACE, ARM }, { CTL_UP, 0 },           { CTL_DOWN, PUB | DIS | OFF }, { CTL_UP, 0 }, { CTL_UP, 0 },            { CTL_UP, 0 } },
	[CTL_GRACE] = { { CTL_UP, LNK | DIS },       { CTL_GRACE, 0 }, { CTL_DOWN, PUB | DIS | OFF }, { CTL_GRACE, 0 },    { CTL_GRACE, ARM }, { CTL_DOWN, PUB | DIS | OFF }, { CTL_GRACE, 0 } },
	[CTL_DOWN]  = { { CTL_UP, PUB | LNK | DIS }, { CTL_DOWN, 0 },  { CTL_DOWN, PUB | DIS },   { CTL_DOWN, 0 },          { CTL_DOWN, 0 },  { CTL_DOWN, 0 },          { CTL_DOWN, 0 } },
};

static struct ctl_params at(uint64_t now, int64_t wall, const char *detail)
{
	return (struct ctl_params){ .now = now, .wall = wall, .window_ms = WINDOW, .offline_after = 3,
				    .detail = detail };
}

/* A controller in state s, as the table itself gets it there. */
static void make(struct ctl_live *l, enum ctl_state s)
{
	struct ctl_params p = at(1000, 5000, "wrong key");
	ctl_live_init(l);
	switch (s) {
	case CTL_NEW:
		break;
	case CTL_UP:
		ctl_live_step(l, CTL_EV_LINK_UP, &p);
		break;
	case CTL_GRACE:
		ctl_live_step(l, CTL_EV_LINK_UP, &p);
		ctl_live_step(l, CTL_EV_LINK_LOST, &p);
		break;
	case CTL_DOWN:
		ctl_live_step(l, CTL_EV_LINK_UP, &p);
		ctl_live_step(l, CTL_EV_BYE, &p);
		break;
	default:
		ck_abort();
	}
	ck_assert_int_eq(l->state, s);
}

START_TEST(test_every_transition)
{
	for (int s = 0; s < CTL_NSTATES; s++)
		for (int e = 0; e < CTL_NEVENTS; e++) {
			struct ctl_live l;
			make(&l, (enum ctl_state)s);
			/* Long after the window (for WINDOW), a different handshake error (for DOWN). */
			struct ctl_params p = at(1000 + 10 * WINDOW, 9000, "bad binder");
			unsigned out = ctl_live_step(&l, (enum ctl_event)e, &p);
			ck_assert_msg(l.state == table[s][e].next && out == table[s][e].out,
				      "%s + event %d: got %s/%#x, want %s/%#x", ctl_state_name((enum ctl_state)s), e,
				      ctl_state_name(l.state), out, ctl_state_name(table[s][e].next),
				      table[s][e].out);
			ck_assert_int_eq(ctl_live_online(&l), l.state == CTL_UP || l.state == CTL_GRACE);
		}
}
END_TEST

START_TEST(test_window_not_over)
{
	struct ctl_live l;
	make(&l, CTL_GRACE);   /* link lost at now = 1000 */
	struct ctl_params p = at(1000 + WINDOW - 1, 9000, NULL);
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_WINDOW, &p), ARM);
	ck_assert_int_eq(l.state, CTL_GRACE);
	/* An announce restarts the window: still online at its old end. */
	p = at(1500, 9000, NULL);
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_HEARD, &p), ARM);
	ck_assert_uint_eq(ctl_live_due(&l, WINDOW), 1500 + WINDOW);
	p = at(1000 + WINDOW + 1, 9000, NULL);
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_WINDOW, &p), ARM);
	p = at(1500 + WINDOW, 9100, NULL);
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_WINDOW, &p), PUB | DIS | OFF);
	ck_assert_str_eq(l.reason, "link lost and 3 announces missed");
	ck_assert_int_eq(l.since, 9100);
}
END_TEST

START_TEST(test_reasons_and_since)
{
	struct ctl_live l;
	struct ctl_params p = at(10, 100, NULL);
	ctl_live_init(&l);
	ck_assert_str_eq(l.reason, "never seen");
	ck_assert_int_eq(l.since, 0);
	ctl_live_step(&l, CTL_EV_LINK_UP, &p);
	ck_assert_int_eq(l.since, 100);
	ck_assert_str_eq(l.reason, "");
	/* A new link while up is no change of status: since stays. */
	p = at(20, 200, NULL);
	ctl_live_step(&l, CTL_EV_LINK_UP, &p);
	ck_assert_int_eq(l.since, 100);
	ctl_live_step(&l, CTL_EV_LINK_LOST, &p);
	ck_assert_int_eq(l.since, 100);
	p = at(30, 300, "peer did not use the pre-shared key");
	ctl_live_step(&l, CTL_EV_HS_FAILED, &p);
	ck_assert_str_eq(l.reason, "handshake failed: peer did not use the pre-shared key");
	ck_assert_int_eq(l.since, 300);
	/* Offline for another reason: published, but since (online changed) stays. */
	p = at(40, 400, "bad binder");
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_HS_FAILED, &p), PUB | DIS);
	ck_assert_int_eq(l.since, 300);
	/* The same reason again is nothing new. */
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_HS_FAILED, &p), 0);
}
END_TEST

START_TEST(test_restored)
{
	struct ctl_live l;
	/* Online before a restart: since survives (#11.7), the window decides. */
	ctl_live_restore(&l, true, NULL, 1764061200123);
	ck_assert_int_eq(l.state, CTL_NEW);
	struct ctl_params p = at(50, 2000, NULL);
	ck_assert_uint_eq(ctl_live_step(&l, CTL_EV_RESTORE, &p), ARM);
	ck_assert(ctl_live_online(&l));
	ck_assert_int_eq(l.since, 1764061200123);
	/* Never linked in this run: "missed", not "link lost". */
	p = at(50 + WINDOW, 3000, NULL);
	ctl_live_step(&l, CTL_EV_WINDOW, &p);
	ck_assert_str_eq(l.reason, "missed 3 announces");
	ck_assert_int_eq(l.since, 3000);
	ctl_live_restore(&l, false, "shut down cleanly", 77);
	ck_assert_int_eq(l.state, CTL_DOWN);
	ck_assert_str_eq(l.reason, "shut down cleanly");
	ck_assert_int_eq(l.since, 77);
	ck_assert(!ctl_live_online(&l));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("liveness");
	tcase_add_test(tc, test_every_transition);
	tcase_add_test(tc, test_window_not_over);
	tcase_add_test(tc, test_reasons_and_since);
	tcase_add_test(tc, test_restored);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
