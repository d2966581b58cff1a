/* frMhs: the home server. Connects out to the broker (so NAT is no obstacle), finds the
 * controllers on its LAN by their announces, links to them, and turns MQTT requests into
 * commands with correlated results (docs/topics.md). One epoll loop. */
#include "bridge.h"
#include "agent.h"
#include "cfg.h"
#include "conf.h"
#include "discovery.h"
#include "display.h"
#include "keys.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "loop.h"
#include "net.h"
#include "peerlimit.h"
#include "registry.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mhs {
	struct loop *loop;
	struct conf conf;
	uint8_t secret[32], announce_key[32];
	struct link_ctx *lctx;
	struct registry *reg;
	struct discovery *disc;
	struct bridge *bridge;
	struct display *disp;   /* NULL without m5stack/lcd in the config */
	int lfd;
	struct listener *listener;
	struct peerlimit *pending;  /* controllers dialling in, before their handshake */
	struct loop_timer stop_timer;
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

static void mhs_on_changed(void *arg, struct ctl *c)
{
	bridge_ctl_changed(((struct mhs *)arg)->bridge, c);
	mhs_on_status(arg);
}
static void mhs_on_link_up(void *arg, struct ctl *c) { bridge_ctl_link_up(((struct mhs *)arg)->bridge, c); }
static void mhs_on_offline(void *arg, struct ctl *c) { bridge_ctl_offline(((struct mhs *)arg)->bridge, c); }
static void mhs_on_msg(void *arg, struct ctl *c, const cJSON *m) { bridge_ctl_msg(((struct mhs *)arg)->bridge, c, m); }

static const struct registry_ops mhs_registry_ops = { mhs_on_changed, mhs_on_link_up,
						      mhs_on_offline, mhs_on_msg };

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
"    only when its link is down and it missed 'offline_after' announce periods.\n"
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
"    user = \"frmhs\"; group = \"frmhs\";      # optional: drop root to this user (with its\n"
"                                            # supplementary groups, e.g. dialout, i2c) once\n"
"                                            # sockets and devices are open\n"
"    result_grace = 30;                      # beyond an action's timeout before \"lost\"\n"
"    dedup_max = 10000;                      # request ids remembered for redeliveries\n"
"    mqtt = { uri = \"mqtts://broker.example.org:8883\"; username = \"home-home1\";\n"
"             password_file = \"/etc/fr/mqtt.pw\"; ca_file = \"/etc/ssl/certs/ca.pem\";\n"
"             version = \"auto\"; keepalive = 30; backoff_min = 0.5; backoff_max = 30; };\n"
"             # uri may be a list (failover); version \"auto\" = MQTT 5, else 3.1.1\n"
"    m5stack = { port = \"/dev/ttyUSB0\"; baud = 115200; };   # optional display\n"
"    lcd = { device = \"/dev/i2c-1\"; address = 0x27; width = 16; };  # optional display\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop: controllers are told (bye), the home's status becomes offline.\n"
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
	struct link_ctx_opts lo = { .secret = h->secret, .ping_interval_ms = c->ping_interval_ms,
				    .ping_timeout_ms = c->ping_timeout_ms,
				    .handshake_timeout_ms = c->handshake_timeout_ms };
	h->lctx = link_ctx_new(&lo);
	h->bridge = bridge_new(h->loop, c);
	struct registry_opts ro = { .announce_interval_ms = c->announce_interval_ms,
				    .offline_after = c->offline_after };
	h->reg = registry_new(h->loop, h->lctx, &ro, &mhs_registry_ops, h);
	if (!h->lctx || !h->bridge || !h->reg)
		return -1;
	bridge_set_registry(h->bridge, h->reg);
	if (c->serial_port || c->lcd_device) {
		h->disp = display_new(h->loop, c);
		if (!h->disp)
			return -1;
		bridge_on_status(h->bridge, mhs_on_status, h);
		mhs_on_status(h);
	}
	if (c->discovery_addr) {
		h->disc = discovery_new(h->loop, h->reg, c->discovery_addr, c->discovery_port,
					h->announce_key, c->time_window_s);
		if (!h->disc)
			return -1;
	}
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
	for (int i = 0; i < c->nstatics; i++)
		registry_add_static(h->reg, c->statics[i].id, c->statics[i].address, c->statics[i].port);
	loop_timer_init(&h->stop_timer, mhs_finish, h);
	if (loop_signal_add(h->loop, SIGTERM, mhs_on_term, h) < 0 ||
	    loop_signal_add(h->loop, SIGINT, mhs_on_term, h) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	/* Sockets and devices are open: the broker connection and everything after run without
	 * root. */
	if (agent_drop_privileges(c->user, c->group) < 0)
		return -1;
	if (bridge_start(h->bridge) < 0)
		return -1;
	log_info("home %s: broker %s%s (MQTT %s)", c->home, c->mqtt.uri,
		 c->mqtt.nuris > 1 ? " (+ more)" : "",
		 c->mqtt.version == 5 ? "5" : c->mqtt.version == 4 ? "3.1.1" : "5, else 3.1.1");
	return 0;
}

static void mhs_teardown(struct mhs *h)
{
	if (h->bridge)
		bridge_stop(h->bridge);
	display_free(h->disp);
	h->disp = NULL;
	listener_free(h->listener);
	discovery_free(h->disc);
	registry_free(h->reg);
	peerlimit_free(h->pending);
	bridge_free(h->bridge);
	if (h->lfd >= 0)
		close(h->lfd);
	link_ctx_free(h->lctx);
	loop_free(h->loop);
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
