/* test_registry: frMhs's registry (agents/frMhs/registry.c, reglink.c) with real TLS-PSK links
 * on loopback to fake controllers in the same loop: a controller is linked where it announced;
 * an announce naming another address (a replay, answered there by a tarpit that never finishes
 * the handshake) is only tried beside the current link and then left alone, so the controller
 * neither moves nor goes offline; a controller that really moved is followed once its link
 * there says hello; a snapshot restores addresses, since and the replay state; a restored
 * controller that never answers goes offline after the window; bye and a wrong key are final
 * at once; a lost link keeps the controller online while it still announces and is dialled
 * again, and takes it offline ("link lost and 3 announces missed") when it goes quiet. */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "announce.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "registry.h"

#define INTERVAL 100      /* announce period, ms: the window is 3 of them */

static const uint8_t secret[32] = { 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
				    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7 };
static const uint8_t other_secret[32] = { 9 };

/* A fake controller "c1" listening at host:port, or a tarpit that accepts and never answers. */
struct fake {
	int lfd;
	uint16_t port;
	char host[16], boot[33];
	bool tarpit;
	struct link_ctx *ctx;
	struct link *links[8];
	int nlinks, accepts, tarfds[8];
};

static struct {
	struct loop *loop;
	struct link_ctx *ctx, *bad_ctx;
	struct registry *reg;
	struct fake fakes[3];
	int changed, linked, offline;
	char last_addr[64];
	int moved_to_bad;      /* infos published with the tarpit's address */
	struct loop_timer tick, limit, announcer;
	uint16_t announce_port;   /* the announcer's: c1 at 127.0.0.2 every INTERVAL */
	bool (*until)(void);
	uint64_t seq;
} W;

static void fake_up(struct link *l, void *arg)
{
	struct fake *f = arg;
	cJSON *none = cJSON_CreateArray();
	struct lanmsg_hello hello = { .controller = true, .id = "c1", .name = "Controller one",
				      .version = "0.1.0", .boot = f->boot, .port = f->port,
				      .actions = none, .sensors = none };
	cJSON *h = lanmsg_hello_new(&hello);
	link_send(l, h);
	cJSON_Delete(h);
	cJSON_Delete(none);
}

static void fake_msg(struct link *l, const struct lanmsg *msg, void *arg)
{
	(void)l;
	(void)msg;
	(void)arg;
}

static void fake_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct fake *f = arg;
	(void)why;
	(void)detail;
	for (int i = 0; i < f->nlinks; i++)
		if (f->links[i] == l)
			f->links[i] = NULL;
	link_free(l);
}

static const struct link_ops fake_ops = { fake_up, fake_msg, fake_down, NULL };

static void fake_accept(void *arg, int fd, uint32_t events)
{
	struct fake *f = arg;
	(void)events;
	struct sockaddr_storage peer;
	int cfd = net_tcp_accept(fd, &peer);
	if (cfd < 0)
		return;
	f->accepts++;
	if (f->tarpit) {
		f->tarfds[f->accepts < 8 ? f->accepts : 7] = cfd;   /* held, never read */
		return;
	}
	ck_assert_int_lt(f->nlinks, 8);
	f->links[f->nlinks++] = link_accept(f->ctx, W.loop, cfd, &peer, "c1", &fake_ops, f);
}

static struct fake *fake_start(int i, const char *host, uint16_t port, bool tarpit, const char *boot)
{
	struct fake *f = &W.fakes[i];
	memset(f, 0, sizeof *f);
	snprintf(f->host, sizeof f->host, "%s", host);
	snprintf(f->boot, sizeof f->boot, "%s", boot);
	f->tarpit = tarpit;
	f->ctx = W.ctx;
	f->lfd = net_tcp_listen(host, port, 16);
	ck_assert_int_ge(f->lfd, 0);
	f->port = net_local_port(f->lfd);
	ck_assert_int_eq(loop_io_add(W.loop, f->lfd, EPOLLIN, fake_accept, f), 0);
	return f;
}

static void fake_stop(struct fake *f)
{
	if (f->lfd < 0)
		return;
	for (int i = 0; i < f->nlinks; i++)
		if (f->links[i])
			link_free(f->links[i]);
	for (int i = 0; i < 8; i++)
		if (f->tarfds[i] > 0)
			close(f->tarfds[i]);
	loop_io_del(W.loop, f->lfd);
	close(f->lfd);
	f->lfd = -1;
}

/* --- the registry's owner --- */

static void on_changed(void *arg, struct ctl *c)
{
	(void)arg;
	W.changed++;
	cJSON *info = ctl_info_json(c);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(info, "address");
	snprintf(W.last_addr, sizeof W.last_addr, "%s", cJSON_IsString(a) ? a->valuestring : "-");
	if (strcmp(W.last_addr, "127.0.0.9") == 0)
		W.moved_to_bad++;
	cJSON_Delete(info);
}
static void on_link_up(void *arg, struct ctl *c) { (void)arg; (void)c; W.linked++; }
static void on_offline(void *arg, struct ctl *c) { (void)arg; (void)c; W.offline++; }

static const struct registry_ops reg_ops = { on_changed, on_link_up, on_offline, NULL };

static void tick(void *arg)
{
	(void)arg;
	if (W.until && W.until())
		loop_stop(W.loop);
	else
		loop_timer_start(W.loop, &W.tick, 5);
}

static void limit(void *arg)
{
	(void)arg;
	loop_stop(W.loop);
}

/* Runs the loop until cond holds (true) or ms pass (false); cond NULL: just ms. */
static bool run(bool (*cond)(void), uint64_t ms)
{
	W.until = cond;
	loop_timer_start(W.loop, &W.tick, 0);
	loop_timer_start(W.loop, &W.limit, ms);
	loop_run(W.loop);
	loop_timer_stop(W.loop, &W.tick);
	loop_timer_stop(W.loop, &W.limit);
	return !cond || cond();
}

static struct registry *reg_new(void)
{
	struct registry_opts o = { .announce_interval_ms = INTERVAL, .offline_after = 3 };
	struct registry *r = registry_new(W.loop, W.ctx, &o, &reg_ops, NULL);
	ck_assert_ptr_nonnull(r);
	return r;
}

static void setup(void)
{
	memset(&W, 0, sizeof W);
	for (int i = 0; i < 3; i++)
		W.fakes[i].lfd = -1;
	W.loop = loop_new();
	struct link_ctx_opts lo = { .secret = secret, .ping_interval_ms = 500,
				    .ping_timeout_ms = 1500, .handshake_timeout_ms = 300 };
	W.ctx = link_ctx_new(&lo);
	lo.secret = other_secret;
	W.bad_ctx = link_ctx_new(&lo);
	ck_assert_ptr_nonnull(W.ctx);
	loop_timer_init(&W.tick, tick, NULL);
	loop_timer_init(&W.limit, limit, NULL);
	W.reg = reg_new();
}

static void teardown(void)
{
	registry_free(W.reg);
	for (int i = 0; i < 3; i++)
		fake_stop(&W.fakes[i]);
	link_ctx_free(W.ctx);
	link_ctx_free(W.bad_ctx);
	loop_free(W.loop);
}

/* A verified announce of c1 as sent from host (the registry's caller did the checks). */
static void announce(const char *host, uint16_t port, const char *boot)
{
	struct announce a = { .v = 1, .port = port, .seq = ++W.seq, .ts = (int64_t)(loop_wall_ms() / 1000) };
	snprintf(a.id, sizeof a.id, "c1");
	snprintf(a.name, sizeof a.name, "Controller one");
	snprintf(a.boot, sizeof a.boot, "%s", boot);
	snprintf(a.version, sizeof a.version, "0.1.0");
	a.actions = cJSON_CreateArray();
	a.sensors = cJSON_CreateArray();
	struct sockaddr_storage from;
	ck_assert_int_eq(net_addr_parse(host, 40000, &from, NULL), 0);
	registry_announce(W.reg, &a, &from);
	announce_clear(&a);
}

static struct ctl *c1(void) { return registry_find(W.reg, "c1"); }
static bool c1_linked(void) { return c1() && ctl_link_up(c1()); }
static const char *c1_addr(void)
{
	static char buf[64];
	cJSON *info = ctl_info_json(c1());
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(info, "address");
	snprintf(buf, sizeof buf, "%s", cJSON_IsString(a) ? a->valuestring : "-");
	cJSON_Delete(info);
	return buf;
}

static bool c1_moved(void) { return strcmp(c1_addr(), "127.0.0.3") == 0; }
static bool c1_down(void) { return !ctl_online(c1()); }
static bool c1_hs_failed(void) { return strncmp(ctl_offline_reason(c1()), "handshake failed", 16) == 0; }
static bool first_link_gone(void) { return W.fakes[0].links[0] == NULL; }

#define BOOT1 "00000000000000000000000000000001"
#define BOOT2 "00000000000000000000000000000002"

START_TEST(test_replay_elsewhere)
{
	struct fake *real = fake_start(0, "127.0.0.2", 0, false, BOOT1);
	struct fake *tar = fake_start(1, "127.0.0.9", real->port, true, BOOT1);
	announce("127.0.0.2", real->port, BOOT1);
	ck_assert(run(c1_linked, 3000));
	ck_assert(ctl_online(c1()));
	ck_assert_str_eq(c1_addr(), "127.0.0.2");
	int linked = W.linked;
	/* The same announce replayed from another address: tried there, beside the link. */
	announce("127.0.0.9", real->port, BOOT1);
	ck_assert(run(NULL, 800));   /* the tarpit holds the handshake past its timeout */
	ck_assert_int_eq(tar->accepts, 1);
	ck_assert(ctl_online(c1()));
	ck_assert(c1_linked());
	ck_assert_str_eq(c1_addr(), "127.0.0.2");
	ck_assert_int_eq(W.moved_to_bad, 0);
	ck_assert_int_eq(W.offline, 0);
	ck_assert_int_eq(W.linked, linked);
	/* Again at once: that address is left alone for a while. */
	announce("127.0.0.9", real->port, BOOT1);
	announce("127.0.0.9", real->port, BOOT1);
	run(NULL, 400);
	ck_assert_int_eq(tar->accepts, 1);
	ck_assert(ctl_online(c1()));
	ck_assert_str_eq(c1_addr(), "127.0.0.2");
}
END_TEST

START_TEST(test_real_move)
{
	struct fake *a = fake_start(0, "127.0.0.2", 0, false, BOOT1);
	announce("127.0.0.2", a->port, BOOT1);
	ck_assert(run(c1_linked, 3000));
	int changed = W.changed;
	/* Restarted on another address with a new boot; the old process still holds its link. */
	struct fake *b = fake_start(1, "127.0.0.3", a->port, false, BOOT2);
	announce("127.0.0.3", b->port, BOOT2);
	ck_assert(run(c1_moved, 3000));
	ck_assert(c1_linked());
	ck_assert(ctl_online(c1()));
	ck_assert_int_eq(W.offline, 0);
	ck_assert_int_gt(W.changed, changed);
	ck_assert_str_eq(W.last_addr, "127.0.0.3");
	cJSON *info = ctl_info_json(c1());
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(info, "boot")->valuestring, BOOT2);
	cJSON_Delete(info);
	/* The old link was closed: its peer saw it go. */
	ck_assert(run(first_link_gone, 3000));
}
END_TEST

START_TEST(test_snapshot_restore)
{
	struct fake *a = fake_start(0, "127.0.0.2", 0, false, BOOT1);
	announce("127.0.0.2", a->port, BOOT1);
	ck_assert(run(c1_linked, 3000));
	cJSON *info = ctl_info_json(c1());
	double since = cJSON_GetObjectItemCaseSensitive(info, "since")->valuedouble;
	cJSON_Delete(info);
	ck_assert(since > 0);
	cJSON *doc = registry_snapshot(W.reg);
	registry_free(W.reg);   /* a restart of frMhs */
	W.reg = reg_new();
	registry_restore(W.reg, doc);
	cJSON_Delete(doc);
	ck_assert_ptr_nonnull(c1());
	ck_assert(ctl_online(c1()));   /* was online: the window decides */
	const char *boot;
	uint64_t seq;
	int64_t ts;
	ctl_announce_state(c1(), &boot, &seq, &ts);
	ck_assert_str_eq(boot, BOOT1);
	ck_assert_uint_eq(seq, W.seq);
	ck_assert(run(c1_linked, 3000));   /* dialled at its address at once */
	info = ctl_info_json(c1());
	ck_assert(cJSON_GetObjectItemCaseSensitive(info, "since")->valuedouble == since);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(info, "address")->valuestring, "127.0.0.2");
	cJSON_Delete(info);
	ck_assert_int_eq(W.offline, 0);
}
END_TEST

START_TEST(test_restored_gone)
{
	cJSON *doc = cJSON_Parse("{\"controllers\":[{\"id\":\"c1\",\"name\":\"gone\",\"address\":"
				 "\"127.0.0.5\",\"port\":1,\"online\":true,\"since\":1000}]}");
	registry_restore(W.reg, doc);
	cJSON_Delete(doc);
	ck_assert(ctl_online(c1()));
	ck_assert(run(c1_down, 3000));
	ck_assert_str_eq(ctl_offline_reason(c1()), "missed 3 announces");
	ck_assert_int_eq(W.offline, 1);
}
END_TEST

START_TEST(test_bye_and_wrong_key)
{
	struct fake *a = fake_start(0, "127.0.0.2", 0, false, BOOT1);
	announce("127.0.0.2", a->port, BOOT1);
	ck_assert(run(c1_linked, 3000));
	cJSON *bye = cJSON_Parse("{\"type\":\"bye\",\"reason\":\"shutdown\"}");
	link_send(a->links[0], bye);
	cJSON_Delete(bye);
	ck_assert(run(c1_down, 3000));
	ck_assert_str_eq(ctl_offline_reason(c1()), "shut down cleanly");
	ck_assert_int_eq(W.offline, 1);
	/* Back at its address with a key of another home: the handshake there fails, final at
	 * once. (At another address it would only be a candidate that failed: a stranger's replay
	 * must not take a controller offline.) */
	uint16_t port = a->port;
	fake_stop(a);
	a = fake_start(0, "127.0.0.2", port, false, BOOT2);
	a->ctx = W.bad_ctx;
	announce("127.0.0.2", a->port, BOOT2);
	ck_assert(run(c1_hs_failed, 3000));
}
END_TEST

static bool c1_unlinked(void) { return !ctl_link_up(c1()); }

START_TEST(test_link_lost_then_quiet)
{
	struct fake *a = fake_start(0, "127.0.0.2", 0, false, BOOT1);
	announce("127.0.0.2", a->port, BOOT1);
	ck_assert(run(c1_linked, 3000));
	/* The controller dies: its link goes and no announce comes. */
	fake_stop(a);
	ck_assert(run(c1_down, 3000));
	/* Down from the link-lost grace (UP -> GRACE -> DOWN), not as one never seen. */
	ck_assert_str_eq(ctl_offline_reason(c1()), "link lost and 3 announces missed");
	ck_assert_int_eq(W.offline, 1);
}
END_TEST

static void announcer(void *arg)
{
	(void)arg;
	announce("127.0.0.2", W.announce_port, BOOT1);
	loop_timer_start(W.loop, &W.announcer, INTERVAL);
}

START_TEST(test_link_lost_heals)
{
	struct fake *a = fake_start(0, "127.0.0.2", 0, false, BOOT1);
	W.announce_port = a->port;
	loop_timer_init(&W.announcer, announcer, NULL);
	announcer(NULL);
	ck_assert(run(c1_linked, 3000));
	int linked = W.linked, changed = W.changed;
	/* Its link drops (say, a switch restarted) while it goes on announcing. */
	fake_stop(a);
	ck_assert(run(c1_unlinked, 3000));
	ck_assert(ctl_online(c1()));
	/* It listens again: dialled again, and it never read offline. */
	a = fake_start(0, "127.0.0.2", W.announce_port, false, BOOT1);
	ck_assert(run(c1_linked, 10000));   /* redial backoff: generous bound */
	loop_timer_stop(W.loop, &W.announcer);
	ck_assert(ctl_online(c1()));
	ck_assert_int_eq(W.offline, 0);
	ck_assert_int_eq(W.linked, linked + 1);
	ck_assert_int_eq(W.changed, changed);   /* nothing to publish: online all along */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("links");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_replay_elsewhere);
	tcase_add_test(tc, test_real_move);
	tcase_add_test(tc, test_snapshot_restore);
	tcase_add_test(tc, test_restored_gone);
	tcase_add_test(tc, test_bye_and_wrong_key);
	tcase_add_test(tc, test_link_lost_then_quiet);
	tcase_add_test(tc, test_link_lost_heals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_init("test_registry", true, 0);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
