/* frMhs: the home server. Connects out to the broker (so NAT is no obstacle), finds the
 * controllers on its LAN by their announces, links to them, and turns MQTT requests into
 * commands with correlated results (docs/topics.md). One epoll loop. */
#include "bridge.h"
#include "agent.h"
#include "cfg.h"
#include "command.h"
#include "conf.h"
#include "discovery.h"
#include "display.h"
#include "ha.h"
#include "keys.h"
#include "lanmsg.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "loop.h"
#include "net.h"
#include "peerlimit.h"
#include "registry.h"
#include "req.h"
#include "store.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The registry is saved this long after a change (changes come in bursts). */
#define MHS_SAVE_MS 1000
/* fr/<home>/stats is republished at most this often, when a counter changed. */
#define MHS_STATS_MS 10000

struct mhs {
	struct loop *loop;
	struct conf conf;
	uint8_t secret[32], announce_key[32];
	struct link_ctx *lctx;
	struct store *store;
	struct registry *reg;
	struct reqs *reqs;
	struct discovery *disc;
	struct bridge *bridge;
	struct ha *ha;          /* Home Assistant discovery (removes old configs when off) */
	struct display *disp;   /* NULL without m5stack/lcd in the config */
	int lfd;
	struct listener *listener;
	struct peerlimit *pending;  /* controllers dialling in, before their handshake */
	struct loop_timer stop_timer, save_timer, stats_timer;
	int64_t started;        /* unix ms */
	char *stats_last;       /* the counters last published; owned */
	bool stopping;
};

/* The displays show the bridge's status and the registry's counts. */
static void mhs_on_status(void *arg)
{
	struct mhs *h = arg;
	if (!h->disp)
		return;
	const struct bridge_status *bs = bridge_status(h->bridge);
	struct display_state st = { .home = h->conf.home, .broker_up = bs->broker_up,
				    .online = registry_online_count(h->reg),
				    .total = registry_count(h->reg), .last_cmd = bs->last_cmd,
				    .text = bs->display_text, .text_seq = bs->display_seq };
	display_update(h->disp, &st);
}

/* --- the state dir: the registry snapshot --- */

static void mhs_save(void *arg)
{
	struct mhs *h = arg;
	cJSON *doc = registry_snapshot(h->reg);
	cJSON_AddNumberToObject(doc, "format", 1);
	cJSON_AddStringToObject(doc, "home", h->conf.home);
	cJSON_AddNumberToObject(doc, "saved", (double)loop_wall_ms());
	store_registry_save(h->store, doc);
	cJSON_Delete(doc);
}

static void mhs_save_soon(struct mhs *h)
{
	if (!loop_timer_armed(&h->save_timer))
		loop_timer_start(h->loop, &h->save_timer, MHS_SAVE_MS);
}

/* --- stats: fr/<home>/stats --- */

static cJSON *mhs_counters(struct mhs *h)
{
	const struct bridge_counters *n = bridge_counters(h->bridge);
	cJSON *o = cJSON_CreateObject();
	cJSON *rq = cJSON_AddObjectToObject(o, "requests");
	cJSON_AddNumberToObject(rq, "received", (double)n->requests);
	cJSON_AddNumberToObject(rq, "refused", (double)n->refused);
	cJSON_AddNumberToObject(rq, "open", (double)reqs_open_count(h->reqs));
	cJSON *ev = cJSON_AddObjectToObject(o, "events");
	cJSON_AddNumberToObject(ev, "received", (double)n->events_in);
	cJSON_AddNumberToObject(ev, "published", (double)n->events_out);
	cJSON_AddNumberToObject(ev, "dropped", (double)n->events_dropped);
	cJSON_AddNumberToObject(o, "publish_failed", (double)n->publish_failed);
	cJSON_AddNumberToObject(o, "state_write_errors", (double)store_errors(h->store));
	cJSON *c = cJSON_AddObjectToObject(o, "controllers");
	cJSON_AddNumberToObject(c, "known", registry_count(h->reg));
	cJSON_AddNumberToObject(c, "online", registry_online_count(h->reg));
	return o;
}

static void mhs_stats(struct mhs *h, bool always)
{
	cJSON *o = mhs_counters(h);
	char *text = cJSON_PrintUnformatted(o);
	if (text && bridge_connected(h->bridge) &&
	    (always || !h->stats_last || strcmp(text, h->stats_last) != 0)) {
		cJSON_AddNumberToObject(o, "since", (double)h->started);
		cJSON_AddNumberToObject(o, "ts", (double)loop_wall_ms());
		bridge_publish_retained(h->bridge, "stats", o);
		free(h->stats_last);
		h->stats_last = text;
		text = NULL;
	}
	free(text);
	cJSON_Delete(o);
}

static void mhs_stats_tick(void *arg)
{
	struct mhs *h = arg;
	mhs_stats(h, false);
	loop_timer_start(h->loop, &h->stats_timer, MHS_STATS_MS);
}

/* --- registry -> bridge, requests --- */

static void mhs_publish_ctl(struct mhs *h, struct ctl *c)
{
	cJSON *info = ctl_info_json(c);
	bridge_publish_ctl(h->bridge, ctl_id(c), info, ctl_online(c));
	ha_ctl_info(h->ha, ctl_id(c), info);
	cJSON_Delete(info);
}

static void mhs_on_changed(void *arg, struct ctl *c)
{
	struct mhs *h = arg;
	mhs_publish_ctl(h, c);
	mhs_save_soon(h);
	mhs_on_status(h);
}

static void mhs_on_link_up(void *arg, struct ctl *c) { reqs_ctl_linked(((struct mhs *)arg)->reqs, ctl_id(c)); }

static void mhs_on_offline(void *arg, struct ctl *c)
{
	reqs_ctl_offline(((struct mhs *)arg)->reqs, ctl_id(c), ctl_offline_reason(c));
}

static void mhs_on_msg(void *arg, struct ctl *c, const struct lanmsg *m)
{
	struct mhs *h = arg;
	char why[256];
	if (m->type == LANMSG_EVENT) {
		struct lanmsg_event e;
		if (lanmsg_event(m, &e, why, sizeof why) < 0) {
			log_warnx("controller %s: %s; event dropped", ctl_id(c), why);
			return;
		}
		bridge_ctl_event(h->bridge, ctl_id(c), m, &e);
		ha_ctl_event(h->ha, ctl_id(c), m->json);
	} else if (!reqs_ctl_msg(h->reqs, ctl_id(c), m) && m->type == LANMSG_RESULT) {
		/* A result for a request this home server does not know (sent by frcmd, or before
		 * a restart that lost the state dir): the default result topic is the best place. */
		bridge_unclaimed_result(h->bridge, ctl_id(c), m);
	}
}

static const struct registry_ops mhs_registry_ops = { mhs_on_changed, mhs_on_link_up,
						      mhs_on_offline, mhs_on_msg };

/* --- bridge -> registry, requests --- */

static void mhs_on_connected(void *arg)
{
	struct mhs *h = arg;
	ha_connected(h->ha);
	for (struct ctl *c = registry_first(h->reg); c; c = registry_next(c))
		mhs_publish_ctl(h, c);
	mhs_stats(h, true);
}

static void mhs_on_request(void *arg, const char *ctl, const struct command *cmd,
			   const struct req_route *rt)
{
	struct mhs *h = arg;
	/* How long it may wait for its controller: until its deadline, else request_wait. */
	int64_t until = cmd->deadline_ms ? cmd->deadline_ms
					 : (int64_t)(loop_wall_ms() + h->conf.request_wait_ms);
	reqs_request(h->reqs, ctl, cmd, rt, until);
}

static bool mhs_known(void *arg, const char *ctl, const char *id)
{
	return reqs_state(((struct mhs *)arg)->reqs, ctl, id) != REQ_NSTATES;
}

static void mhs_on_known_ctl(void *arg, const char *ctl, const cJSON *info)
{
	struct mhs *h = arg;
	registry_add_known(h->reg, ctl, info);
	struct ctl *c = registry_find(h->reg, ctl);
	if (c) {   /* known now: its Home Assistant configs stay */
		cJSON *now = ctl_info_json(c);
		ha_ctl_info(h->ha, ctl, now);
		cJSON_Delete(now);
	}
	mhs_save_soon(h);
}

static void mhs_on_other(void *arg, const struct mqtt_msg *m) { ha_message(((struct mhs *)arg)->ha, m); }

static cJSON *mhs_controllers(void *arg)
{
	struct mhs *h = arg;
	cJSON *list = cJSON_CreateArray();
	for (struct ctl *c = registry_first(h->reg); list && c; c = registry_next(c)) {
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddStringToObject(o, "id", ctl_id(c));
		cJSON_AddStringToObject(o, "status", ctl_online(c) ? "online" : "offline");
		cJSON_AddItemToObject(o, "info", ctl_info_json(c));
		cJSON_AddItemToArray(list, o);
	}
	return list;
}

static const struct bridge_ops mhs_bridge_ops = { mhs_on_connected, mhs_on_request, mhs_known,
						  mhs_on_known_ctl, mhs_on_status, mhs_on_other,
						  mhs_controllers };

/* --- Home Assistant -> requests --- */

static const struct ha_ops mhs_ha_ops = { mhs_on_request };

/* --- requests -> registry, bridge --- */

static int mhs_send(void *arg, const char *ctl, const char *frame, size_t len)
{
	struct ctl *c = registry_find(((struct mhs *)arg)->reg, ctl);
	return c ? ctl_send(c, frame, len) : -ENOENT;
}

static bool mhs_linked(void *arg, const char *ctl)
{
	struct ctl *c = registry_find(((struct mhs *)arg)->reg, ctl);
	return c && ctl_link_up(c);
}

static uint64_t mhs_action_timeout(void *arg, const char *ctl, const char *action)
{
	struct ctl *c = registry_find(((struct mhs *)arg)->reg, ctl);
	return c ? ctl_action_timeout(c, action) : 0;
}

static void mhs_why_not(void *arg, const char *ctl, char *buf, size_t n)
{
	struct ctl *c = registry_find(((struct mhs *)arg)->reg, ctl);
	if (!c)
		snprintf(buf, n, "is not known in this home");
	else if (!ctl_online(c))
		snprintf(buf, n, "is offline: %s", ctl_offline_reason(c));
	else
		snprintf(buf, n, "has no link up yet");
}

static void mhs_reply(void *arg, const struct req_route *rt, const char *msg, size_t len)
{
	bridge_reply(((struct mhs *)arg)->bridge, rt, msg, len);
}

static void mhs_answered(void *arg, const char *ctl, const char *action, const char *status)
{
	bridge_note_answer(((struct mhs *)arg)->bridge, ctl, action, status);
}

static void mhs_outcome(void *arg, const char *ctl, const char *action, const cJSON *args,
			const cJSON *result)
{
	ha_outcome(((struct mhs *)arg)->ha, ctl, action, args, result);
}

static const struct reqs_ops mhs_reqs_ops = { mhs_send, mhs_linked, mhs_action_timeout,
					      mhs_why_not, mhs_reply, mhs_answered, mhs_outcome };

/* --- process --- */

static void mhs_on_accept(void *arg, int cfd, const struct sockaddr_storage *peer)
{
	struct mhs *h = arg;
	if (h->stopping) {
		close(cfd);
		return;
	}
	registry_accept(h->reg, h->pending, cfd, peer);
}

static void mhs_finish(void *arg)
{
	struct mhs *h = arg;
	loop_stop(h->loop);
}

static void mhs_on_term(void *arg, const struct signalfd_siginfo *si)
{
	struct mhs *h = arg;
	if (h->stopping)
		return;
	h->stopping = true;
	notify_stopping();
	log_info("signal %d: stopping", (int)si->ssi_signo);
	registry_shutdown(h->reg);
	/* A moment for the byes to leave before the links close. */
	loop_timer_start(h->loop, &h->stop_timer, 100);
}

static void mhs_usage(FILE *f)
{
	fputs(
"NAME\n"
"    frMhs - fr home server: controllers on the LAN <-> the MQTT broker\n"
"\n"
"SYNOPSIS\n"
"    frMhs [-f] [-v]... -c FILE\n"
"    frMhs --check-config -c FILE\n"
"\n"
"DESCRIPTION\n"
"    frMhs runs in the home, behind NAT. It connects out to the broker (mqtt://, mqtts:// or\n"
"    wss://, MQTT 5 or 3.1.1), listens for the controllers' signed UDP announces, keeps a\n"
"    TLS-PSK link to each controller (it dials them; controllers may also dial it), and\n"
"    implements the topic contract of docs/topics.md: retained status, info and sensor state\n"
"    per controller, and requests on fr/<home>/ctl/<ctl>/cmd answered with accepted, started\n"
"    and one final result, each request id run at most once. A controller is declared offline\n"
"    only when its link is down and it missed 'offline_after' announce periods. Replies go\n"
"    only under fr/<home>/reply/; counters are published in fr/<home>/stats. A request on\n"
"    fr/<home>/sync is answered on its reply topic with the home's whole state (every\n"
"    controller, its info and latest sensor states), for consumers that cannot rely on\n"
"    retained messages (a broker cluster; docs/topics.md, \"fr/<home>/sync\"). Its controllers\n"
"    and open requests are kept in state_dir: after a restart it answers the requests it had.\n"
"    With homeassistant.enabled it publishes Home Assistant MQTT discovery configs: each\n"
"    controller a device, each sensor a sensor, each action a button, switch, select, number\n"
"    or text; HA's plain payloads on fr/<home>/ha/<ctl>/<action>/set become requests, and\n"
"    their results the entity's state and attributes (docs/topics.md, \"Home Assistant\").\n"
"\n"
"OPTIONS\n"
"    -c, --config FILE   configuration file (required)\n"
"    -f, --foreground    stay in the foreground and log to stderr (default: daemon, syslog)\n"
"    -v, --verbose       more logging; repeat for more\n"
"        --check-config  check the configuration and the secret, exit 0 if valid\n"
"    -h, --help          this text\n"
"    -V, --version       print the version\n"
"\n"
"CONFIGURATION (libconfig syntax; see docs/frmhs.conf.example)\n"
"    home = \"home1\";                        # [A-Za-z0-9_-]{1,63}; topics are fr/<home>/...\n"
"    secret_file = \"/etc/fr/home.secret\";   # 64 hex digits, shared with the controllers\n"
"    topic_prefix = \"fr\";\n"
"    discovery = { address = \"0.0.0.0\"; port = 7400; interval = 5; offline_after = 3;\n"
"                  time_window = 30; };      # optional: where announces are heard\n"
"    link_listen = { address = \"0.0.0.0\"; port = 7401;     # optional: controllers dial in\n"
"                    max_pending = 256; max_pending_per_peer = 8; };\n"
"                      # connections still in their handshake: in all, from one address\n"
"    controllers = ( { id = \"garage\"; address = \"192.168.1.20\"; port = 7410; } ); # optional\n"
"    ping_interval = 10; ping_timeout = 30;  # link keepalive, seconds\n"
"    handshake_timeout = 10;                 # a link's TCP connect + TLS-PSK handshake\n"
"    heartbeat_interval = 30;                # seconds between beats on fr/<home>/heartbeat\n"
"                                            # (0 = none); consumers mark the home stale\n"
"                                            # after 3 missed beats (docs/topics.md)\n"
"    user = \"frmhs\"; group = \"frmhs\";      # optional: drop root to this user (with its\n"
"                                            # supplementary groups, e.g. dialout, i2c) once\n"
"                                            # sockets and devices are open\n"
"    result_grace = 30;                      # beyond an action's timeout before \"lost\"\n"
"    dedup_max = 10000;                      # request ids remembered for redeliveries\n"
"    request_wait = 10;                      # a request without deadline waits this long\n"
"                                            # for its controller before \"offline\"\n"
"    state_dir = \"/var/lib/fr/frmhs\";       # controllers and open requests, so a restart\n"
"                                            # still answers them (created, locked)\n"
"    mqtt = { uri = \"mqtts://broker.example.org:8883\"; username = \"home-home1\";\n"
"             password_file = \"/etc/fr/mqtt.pw\"; ca_file = \"/etc/ssl/certs/ca.pem\";\n"
"             version = \"auto\"; keepalive = 30; backoff_min = 0.5; backoff_max = 30; };\n"
"             # uri may be a list (failover); version \"auto\" = MQTT 5, else 3.1.1\n"
"             # reconnect delay: backoff_min doubling to backoff_max, with jitter; a\n"
"             # connection that lasted under 10 s counts as one more failure\n"
"    m5stack = { port = \"/dev/ttyUSB0\"; baud = 115200; };   # optional display\n"
"    lcd = { device = \"/dev/i2c-1\"; address = 0x27; width = 16; };  # optional display\n"
"    homeassistant = { enabled = false; prefix = \"homeassistant\";      # HA MQTT discovery;\n"
"                      status_topic = \"homeassistant/status\"; };       # HA's birth message.\n"
"                      # Off (the default): configs it published before are removed\n"
"\n"
"FILES\n"
"    state_dir/lock, home, registry.json, requests.log   (format: agents/frMhs/store.h)\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop: controllers are told (bye), the answers given so far are handed to\n"
"                     the broker (up to 2 s), the home's status becomes offline.\n"
"\n"
"EXIT STATUS\n"
"    0 after a clean stop or a valid --check-config; 1 on a configuration or start-up error.\n",
	      f);
}

static int mhs_setup(struct mhs *h)
{
	struct conf *c = &h->conf;
	if (cfg_read_secret(c->secret_file, h->secret) < 0 ||
	    keys_announce_key(h->secret, h->announce_key) < 0)
		return -1;
	h->loop = loop_new();
	if (!h->loop)
		return -1;
	h->started = (int64_t)loop_wall_ms();
	loop_timer_init(&h->stop_timer, mhs_finish, h);
	loop_timer_init(&h->save_timer, mhs_save, h);
	loop_timer_init(&h->stats_timer, mhs_stats_tick, h);
	h->store = store_open(h->loop, c->state_dir, c->home);
	if (!h->store)
		return -1;
	struct link_ctx_opts lo = { .secret = h->secret, .ping_interval_ms = c->ping_interval_ms,
				    .ping_timeout_ms = c->ping_timeout_ms,
				    .handshake_timeout_ms = c->handshake_timeout_ms };
	h->lctx = link_ctx_new(&lo);
	h->bridge = bridge_new(h->loop, c, &mhs_bridge_ops, h);
	h->ha = h->bridge ? ha_new(h->loop, c, h->bridge, &mhs_ha_ops, h) : NULL;
	struct registry_opts ro = { .announce_interval_ms = c->announce_interval_ms,
				    .offline_after = c->offline_after };
	h->reg = registry_new(h->loop, h->lctx, &ro, &mhs_registry_ops, h);
	/* The table of requests in flight is bounded; beyond, requests are answered busy. */
	struct reqs_opts qo = { .dedup_max = (size_t)c->dedup_max, .open_max = 10000,
				.result_grace_ms = c->result_grace_ms };
	h->reqs = reqs_new(h->loop, &qo, &mhs_reqs_ops, h, h->store);
	if (!h->lctx || !h->bridge || !h->ha || !h->reg || !h->reqs)
		return -1;
	if (c->serial_port || c->lcd_device) {
		h->disp = display_new(h->loop, c);
		if (!h->disp)
			return -1;
		mhs_on_status(h);
	}
	for (int i = 0; i < c->nstatics; i++)
		registry_add_static(h->reg, c->statics[i].id, c->statics[i].address, c->statics[i].port);
	/* What the previous run knew: controllers (dialled now at their addresses, online ones
	 * given the window to show themselves) and the requests it had not answered yet. */
	cJSON *saved = store_registry_load(h->store);
	if (saved)
		registry_restore(h->reg, saved);
	cJSON_Delete(saved);
	if (c->discovery_addr) {
		h->disc = discovery_new(h->loop, h->reg, c->discovery_addr, c->discovery_port,
					h->announce_key, c->time_window_s);
		if (!h->disc)
			return -1;
		for (struct ctl *ct = registry_first(h->reg); ct; ct = registry_next(ct)) {
			const char *boot;
			uint64_t seq;
			int64_t ts;
			ctl_announce_state(ct, &boot, &seq, &ts);
			if (boot[0])
				discovery_seed(h->disc, ctl_id(ct), boot, seq, ts);
		}
	}
	reqs_restore(h->reqs);
	if (c->link_addr) {
		h->lfd = net_tcp_listen(c->link_addr, c->link_port, 128);
		if (h->lfd < 0) {
			errno = -h->lfd;
			log_warn("link listen %s:%u", c->link_addr, c->link_port);
			return -1;
		}
		/* The handshake is the authentication; the link enforces its timeout itself. */
		struct peerlimit_opts po = { .what = "link listener",
					     .max_pending = c->link_max_pending,
					     .max_pending_per_peer = c->link_max_pending_per_peer };
		h->pending = peerlimit_new(h->loop, &po);
		if (!h->pending)
			return -1;
		h->listener = listener_new(h->loop, h->lfd, "link listener", mhs_on_accept, h);
		if (!h->listener)
			return -1;
		log_info("controllers may dial in on %s:%u", c->link_addr, net_local_port(h->lfd));
	}
	if (loop_signal_add(h->loop, SIGTERM, mhs_on_term, h) < 0 ||
	    loop_signal_add(h->loop, SIGINT, mhs_on_term, h) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	/* Sockets and devices are open: the broker connection and everything after run without
	 * root. */
	if (agent_drop_privileges(c->user, c->group) < 0)
		return -1;
	if (ha_start(h->ha) < 0 || bridge_start(h->bridge) < 0)
		return -1;
	loop_timer_start(h->loop, &h->stats_timer, MHS_STATS_MS);
	log_info("home %s: broker %s%s (MQTT %s), state dir %s", c->home, c->mqtt.uri,
		 c->mqtt.nuris > 1 ? " (+ more)" : "",
		 c->mqtt.version == 5 ? "5" : c->mqtt.version == 4 ? "3.1.1" : "5, else 3.1.1",
		 c->state_dir);
	return 0;
}

static void mhs_teardown(struct mhs *h)
{
	if (h->bridge)
		bridge_stop(h->bridge);
	if (h->store && h->reg)
		mhs_save(h);
	display_free(h->disp);
	h->disp = NULL;
	listener_free(h->listener);
	discovery_free(h->disc);
	reqs_free(h->reqs);
	registry_free(h->reg);
	peerlimit_free(h->pending);
	ha_free(h->ha);
	bridge_free(h->bridge);
	store_close(h->store);
	if (h->lfd >= 0)
		close(h->lfd);
	link_ctx_free(h->lctx);
	if (h->loop) {
		loop_timer_stop(h->loop, &h->save_timer);
		loop_timer_stop(h->loop, &h->stats_timer);
		loop_timer_stop(h->loop, &h->stop_timer);
	}
	loop_free(h->loop);
	free(h->stats_last);
	conf_free(&h->conf);
	OPENSSL_cleanse(h->secret, sizeof h->secret);
}

int main(int argc, char **argv)
{
	struct agent_args args;
	agent_parse_args(argc, argv, "frMhs", mhs_usage, NULL, &args);
	const char *config = args.config;
	bool check = args.check;
	struct mhs h = { .lfd = -1 };
	if (conf_load(&h.conf, config) < 0) {
		conf_free(&h.conf);
		return 1;
	}
	if (check) {
		uint8_t s[32];
		int rc = cfg_read_secret(h.conf.secret_file, s);
		if (rc == 0)
			printf("%s: OK (home %s, broker %s)\n", config, h.conf.home, h.conf.mqtt.uri);
		conf_free(&h.conf);
		return rc == 0 ? 0 : 1;
	}
	agent_start(&args);
	if (mhs_setup(&h) < 0) {
		log_warnx("start-up failed");
		mhs_teardown(&h);
		return 1;
	}
	notify_ready();   /* systemd Type=notify: serving now */
	loop_run(h.loop);
	log_info("stopped");
	mhs_teardown(&h);
	return 0;
}
