/* Unit tests of peerlimit: per-peer and total budgets of pending connections, which one a new
 * connection displaces, deadlines, unix-socket peers keyed by uid, IPv6 peers by /64, and the
 * rate-limited refusal log with its counts. */
#include "log.h"
#include "logcapture.h"
#include "loop.h"
#include "peerlimit.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NCONN 64

/* A pretend connection: what the close callback did to it. */
struct conn {
	struct peerlimit_slot *slot;
	int closed;                 /* times the callback ran */
	enum peerlimit_why why;
};

static struct conn conns[NCONN];

static void on_close(void *arg, enum peerlimit_why why)
{
	struct conn *c = arg;
	c->closed++;
	c->why = why;
	c->slot = NULL;
}

static struct sockaddr_storage v4(const char *a)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	in->sin_port = htons(40000);
	ck_assert_int_eq(inet_pton(AF_INET, a, &in->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *a)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;
	in->sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, a, &in->sin6_addr), 1);
	return ss;
}

static void admit(struct peerlimit *pl, int i, const struct sockaddr_storage *ss)
{
	conns[i].slot = peerlimit_admit(pl, -1, ss, on_close, &conns[i]);
	ck_assert_ptr_nonnull(conns[i].slot);
}

static struct peerlimit *mk(struct loop *loop, int total, int per_peer, uint64_t deadline_ms,
			    uint64_t log_ms)
{
	memset(conns, 0, sizeof conns);
	struct peerlimit_opts o = { .what = "test listener", .max_pending = total,
				    .max_pending_per_peer = per_peer, .deadline_ms = deadline_ms,
				    .log_ms = log_ms };
	struct peerlimit *pl = peerlimit_new(loop, &o);
	ck_assert_ptr_nonnull(pl);
	return pl;
}

START_TEST(test_bad_opts)
{
	struct loop *loop = loop_new();
	struct peerlimit_opts o = { .what = "x", .max_pending = 4, .max_pending_per_peer = 5 };
	ck_assert_ptr_null(peerlimit_new(loop, &o));
	o.max_pending_per_peer = 0;
	ck_assert_ptr_null(peerlimit_new(loop, &o));
	loop_free(loop);
}
END_TEST

/* Over its own budget a peer displaces its own oldest pending connection. */
START_TEST(test_per_peer_oldest_goes)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 16, 2, 0, 0);
	struct sockaddr_storage a = v4("127.0.0.9");
	admit(pl, 0, &a);
	admit(pl, 1, &a);
	ck_assert_int_eq(conns[0].closed, 0);
	admit(pl, 2, &a);
	ck_assert_int_eq(conns[0].closed, 1);
	ck_assert_int_eq(conns[0].why, PEERLIMIT_OVER_BUDGET);
	ck_assert_int_eq(conns[1].closed, 0);
	ck_assert_int_eq(peerlimit_peer_pending(conns[2].slot), 2);
	ck_assert_int_eq(peerlimit_pending(pl), 2);
	ck_assert_str_eq(peerlimit_peer_name(conns[2].slot), "127.0.0.9");
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* The lockout: a flood from one address never displaces another address's
 * connection, whatever its size. */
START_TEST(test_flood_does_not_starve_others)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 8, 4, 0, 0);
	struct sockaddr_storage good = v4("127.0.0.1"), bad = v4("127.0.0.9");
	admit(pl, 0, &good);
	for (int round = 0; round < 1000; round++)
		admit(pl, 1 + round % (NCONN - 1), &bad);
	ck_assert_int_eq(conns[0].closed, 0);
	ck_assert_int_eq(peerlimit_pending(pl), 5);
	/* And the good peer can still come in beside the flood. */
	admit(pl, 0 + 0, &good);
	ck_assert_int_eq(peerlimit_pending(pl), 6);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* Over the total budget the peer holding the most gives up its oldest. */
START_TEST(test_total_takes_from_heaviest)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 4, 4, 0, 0);
	struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2"), c = v4("10.0.0.3");
	admit(pl, 0, &b);          /* the oldest of all, but b holds only one */
	admit(pl, 1, &a);
	admit(pl, 2, &a);
	admit(pl, 3, &a);
	admit(pl, 4, &c);
	ck_assert_int_eq(conns[0].closed, 0);
	ck_assert_int_eq(conns[1].closed, 1);
	ck_assert_int_eq(conns[2].closed, 0);
	/* Equal holdings: the oldest connection goes. */
	admit(pl, 5, &c);          /* a 2, b 1, c 2 -> a's oldest (2) is older than c's (4) */
	ck_assert_int_eq(conns[2].closed, 1);
	ck_assert_int_eq(conns[4].closed, 0);
	ck_assert_int_eq(peerlimit_pending(pl), 4);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* With one slot per peer, the displaced connection is the peer's last one, whose record is
 * freed before the newcomer is added (ASan checks the order). */
START_TEST(test_per_peer_one)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 4, 1, 0, 0);
	struct sockaddr_storage a = v4("10.0.0.1");
	for (int i = 0; i < 10; i++)
		admit(pl, i, &a);
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(conns[i].closed, 1);
	ck_assert_int_eq(conns[9].closed, 0);
	ck_assert_int_eq(peerlimit_pending(pl), 1);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* Authenticated connections leave the budgets: they can never be displaced by strangers and
 * do not use up room strangers could have. */
START_TEST(test_done_leaves_budget)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 2, 2, 0, 0);
	struct sockaddr_storage a = v4("10.0.0.1"), x = v4("10.0.0.66");
	admit(pl, 0, &a);
	peerlimit_done(pl, conns[0].slot);
	conns[0].slot = NULL;
	admit(pl, 1, &a);
	peerlimit_failed(pl, conns[1].slot, "handshake failed: bad mac");
	ck_assert_int_eq(peerlimit_pending(pl), 0);
	for (int i = 2; i < 20; i++)
		admit(pl, i, &x);
	ck_assert_int_eq(conns[0].closed, 0);
	ck_assert_int_eq(conns[1].closed, 0);
	ck_assert_int_eq(peerlimit_pending(pl), 2);
	peerlimit_done(pl, NULL);   /* no-op */
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* A connection that spoke is displaced only after every idle one: a legitimate client that
 * sent its first bytes survives a flood of idle connections spread over many addresses, which
 * oldest-first alone would not guarantee. */
START_TEST(test_active_outlives_idle)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 4, 2, 0, 0);
	struct sockaddr_storage good = v4("127.0.0.1");
	char a[32];
	admit(pl, 0, &good);
	peerlimit_active(pl, conns[0].slot);
	peerlimit_active(pl, conns[0].slot);   /* idempotent */
	for (int i = 0; i < 2000; i++) {
		snprintf(a, sizeof a, "127.0.%d.%d", 1 + i % 8, 9 + i % 32);
		struct sockaddr_storage ss = v4(a);
		admit(pl, 1 + i % (NCONN - 1), &ss);
	}
	ck_assert_int_eq(conns[0].closed, 0);
	ck_assert_int_eq(peerlimit_pending(pl), 4);
	/* Within one peer, though, the oldest goes: a newcomer cannot be told from the rest. */
	conns[1].closed = conns[2].closed = 0;
	admit(pl, 1, &good);            /* good: 1 active (0) + 1 idle (1) */
	admit(pl, 2, &good);            /* per peer 2: good's oldest (0) goes */
	ck_assert_int_eq(conns[0].closed, 1);
	ck_assert_int_eq(conns[1].closed, 0);
	/* When every pending connection spoke, the oldest of the heaviest goes as before. */
	peerlimit_active(pl, conns[2].slot);
	peerlimit_free(pl);
	pl = mk(loop, 2, 2, 0, 0);
	struct sockaddr_storage x = v4("10.0.0.1"), y = v4("10.0.0.2");
	admit(pl, 0, &x);
	admit(pl, 1, &y);
	peerlimit_active(pl, conns[0].slot);
	peerlimit_active(pl, conns[1].slot);
	admit(pl, 2, &y);
	ck_assert_int_eq(conns[0].closed, 1);
	ck_assert_int_eq(conns[1].closed, 0);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* Where the first message arrives whole (HTTP), a peer's slow connections (spoke, stopped) go
 * before its newcomer that has not spoken yet, however many of them the peer opens; without
 * the option the newcomer is the oldest after per_peer - 1 more and goes. */
START_TEST(test_whole_first_message)
{
	struct loop *loop = loop_new();
	for (int whole = 0; whole <= 1; whole++) {
		memset(conns, 0, sizeof conns);
		struct peerlimit_opts o = { .what = "test listener", .max_pending = 16,
					    .max_pending_per_peer = 4, .first_message_whole = whole };
		struct peerlimit *pl = peerlimit_new(loop, &o);
		ck_assert_ptr_nonnull(pl);
		struct sockaddr_storage a = v4("127.0.0.1");
		for (int i = 0; i < 3; i++) {
			admit(pl, i, &a);
			peerlimit_active(pl, conns[i].slot);   /* slow: sent part of a head */
		}
		admit(pl, 3, &a);                              /* the newcomer, silent so far */
		for (int i = 0; i < 200; i++) {                /* the peer churns its slow ones */
			int k = 4 + i % (NCONN - 4);
			conns[k].closed = 0;
			admit(pl, k, &a);
			peerlimit_active(pl, conns[k].slot);
		}
		ck_assert_int_eq(conns[3].closed, whole ? 0 : 1);
		ck_assert_int_eq(peerlimit_pending(pl), 4);
		if (whole) {
			/* Only silent ones left: the oldest of them goes, the newcomer included. */
			for (int i = 0; i < 4; i++)
				admit(pl, 40 + i, &a);
			ck_assert_int_eq(conns[3].closed, 1);
		}
		peerlimit_free(pl);
	}
	loop_free(loop);
}
END_TEST

static void stop_loop(void *arg)
{
	loop_stop(arg);
}

static void run_for(struct loop *loop, uint64_t ms)
{
	struct loop_timer t;
	loop_timer_init(&t, stop_loop, loop);
	loop_timer_start(loop, &t, ms);
	loop_run(loop);
	loop_timer_stop(loop, &t);
}

START_TEST(test_deadline)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 8, 8, 50, 0);
	struct sockaddr_storage a = v4("10.0.0.1");
	admit(pl, 0, &a);
	admit(pl, 1, &a);
	peerlimit_done(pl, conns[1].slot);
	conns[1].slot = NULL;
	for (int i = 0; i < 200 && !conns[0].closed; i++)
		run_for(loop, 20);
	ck_assert_int_eq(conns[0].closed, 1);
	ck_assert_int_eq(conns[0].why, PEERLIMIT_DEADLINE);
	ck_assert_int_eq(conns[1].closed, 0);
	ck_assert_int_eq(peerlimit_pending(pl), 0);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* Unix-socket peers are told apart by their user: two connections of one uid share a budget. */
START_TEST(test_unix_peer_uid)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 8, 1, 0, 0);
	int sv[2], sw[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sw), 0);
	struct sockaddr_storage un;
	memset(&un, 0, sizeof un);
	un.ss_family = AF_UNIX;
	conns[0].slot = peerlimit_admit(pl, sv[0], &un, on_close, &conns[0]);
	ck_assert_ptr_nonnull(conns[0].slot);
	char want[32];
	snprintf(want, sizeof want, "uid %u", (unsigned)getuid());
	ck_assert_str_eq(peerlimit_peer_name(conns[0].slot), want);
	conns[1].slot = peerlimit_admit(pl, sw[0], &un, on_close, &conns[1]);
	ck_assert_int_eq(conns[0].closed, 1);
	ck_assert_int_eq(peerlimit_pending(pl), 1);
	peerlimit_free(pl);
	close(sv[0]);
	close(sv[1]);
	close(sw[0]);
	close(sw[1]);
	loop_free(loop);
}
END_TEST

/* A client whose first bytes already wait when it is accepted (it sat in the backlog during a
 * flood) counts as active at once, before anything is read. */
START_TEST(test_unread_bytes_active)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 2, 2, 0, 0);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], "hello", 5), 5);
	struct sockaddr_storage a = v4("10.0.0.1");
	conns[0].slot = peerlimit_admit(pl, sv[0], &a, on_close, &conns[0]);
	ck_assert_ptr_nonnull(conns[0].slot);
	struct sockaddr_storage b = v4("10.0.0.2");
	for (int i = 1; i < 10; i++)
		admit(pl, i, &b);
	ck_assert_int_eq(conns[0].closed, 0);
	ck_assert_int_eq(conns[8].closed, 1);
	ck_assert_int_eq(conns[9].closed, 0);
	peerlimit_free(pl);
	close(sv[0]);
	close(sv[1]);
	loop_free(loop);
}
END_TEST

/* IPv6 peers count per /64 (one host commonly holds a whole one); v4-mapped ones as IPv4. */
START_TEST(test_ipv6_prefix)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 8, 1, 0, 0);
	struct sockaddr_storage a1 = v6("2001:db8:0:1::1"), a2 = v6("2001:db8:0:1:ffff::2"),
				b = v6("2001:db8:0:2::1"), m = v6("::ffff:10.0.0.1"), m4 = v4("10.0.0.1");
	admit(pl, 0, &a1);
	ck_assert_str_eq(peerlimit_peer_name(conns[0].slot), "2001:db8:0:1::/64");
	admit(pl, 1, &a2);
	ck_assert_int_eq(conns[0].closed, 1);
	admit(pl, 2, &b);
	ck_assert_int_eq(conns[1].closed, 0);
	admit(pl, 3, &m);
	ck_assert_str_eq(peerlimit_peer_name(conns[3].slot), "10.0.0.1");
	admit(pl, 4, &m4);
	ck_assert_int_eq(conns[3].closed, 1);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

static int count_lines(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* A flood is logged once at once and then as one counted line per spell, not per connection;
 * after a quiet spell the next refusal is logged at once again. */
START_TEST(test_log_rate_limited)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 4, 2, 0, 100);
	struct sockaddr_storage bad = v4("127.0.0.9"), other = v4("127.0.0.10");
	capture_start();
	for (int i = 0; i < 2919; i++)
		admit(pl, i % NCONN, &bad);      /* 2917 refusals */
	admit(pl, 0, &other);
	peerlimit_failed(pl, conns[0].slot, "handshake failed: wrong version number");
	conns[0].slot = NULL;
	const char *log = capture_end();
	ck_assert_int_eq(count_lines(log, "\n"), 1);
	ck_assert_ptr_nonnull(strstr(log, "test listener: refused a connection from 127.0.0.9"));
	capture_start();
	run_for(loop, 150);     /* the spell ends: the counts */
	log = capture_end();
	ck_assert_ptr_nonnull(strstr(log, "test listener: refused 2916 connections from 127.0.0.9 "
					  "in the last 0.1 s"));
	ck_assert_ptr_nonnull(strstr(log, "1 failure before authenticating from 127.0.0.10 in the "
					  "last 0.1 s (last: handshake failed: wrong version number)"));
	ck_assert_int_eq(count_lines(log, "\n"), 2);
	capture_start();
	run_for(loop, 250);     /* a quiet spell: nothing to log, the spell ends */
	log = capture_end();
	ck_assert_str_eq(log, "");
	capture_start();
	admit(pl, 1, &bad);
	admit(pl, 2, &bad);
	admit(pl, 3, &bad);     /* one refusal, logged at once */
	log = capture_end();
	ck_assert_int_eq(count_lines(log, "refused a connection from 127.0.0.9"), 1);
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

/* More peers than a spell names: the rest are summed up as "other peers". */
START_TEST(test_log_many_peers)
{
	struct loop *loop = loop_new();
	struct peerlimit *pl = mk(loop, 1, 1, 0, 100);
	char a[32];
	capture_start();
	for (int i = 0; i < 40; i++) {
		snprintf(a, sizeof a, "10.0.1.%d", i + 1);
		struct sockaddr_storage ss = v4(a);
		admit(pl, i, &ss);
	}
	/* The heaviest peer is named though it came late. */
	struct sockaddr_storage heavy = v4("10.0.9.9");
	for (int i = 0; i < 100; i++)
		admit(pl, 40 + i % 20, &heavy);
	capture_end();
	capture_start();
	run_for(loop, 150);
	const char *log = capture_end();
	ck_assert_int_eq(count_lines(log, "\n"), PEERLIMIT_LOG_PEERS + 1);
	ck_assert_ptr_nonnull(strstr(log, "refused 99 connections from 10.0.9.9 in the last"));
	ck_assert_ptr_nonnull(strstr(log, "from other peers"));
	peerlimit_free(pl);
	loop_free(loop);
}
END_TEST

int main(void)
{
	log_init("test_peerlimit", true, 0);
	Suite *s = suite_create("peerlimit");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_bad_opts);
	tcase_add_test(tc, test_per_peer_oldest_goes);
	tcase_add_test(tc, test_flood_does_not_starve_others);
	tcase_add_test(tc, test_total_takes_from_heaviest);
	tcase_add_test(tc, test_per_peer_one);
	tcase_add_test(tc, test_done_leaves_budget);
	tcase_add_test(tc, test_active_outlives_idle);
	tcase_add_test(tc, test_whole_first_message);
	tcase_add_test(tc, test_deadline);
	tcase_add_test(tc, test_unix_peer_uid);
	tcase_add_test(tc, test_ipv6_prefix);
	tcase_add_test(tc, test_unread_bytes_active);
	tcase_add_test(tc, test_log_rate_limited);
	tcase_add_test(tc, test_log_many_peers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
