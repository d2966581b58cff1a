/* frMhc: the IoT controller. Announces itself by UDP, serves commands over TLS-PSK links,
 * runs each action as a child process under a timeout watchdog, never runs a command id twice
 * (journal), and pushes sensor changes as events. One epoll loop; see docs/lan-protocol.md.
 * This file: links and peers, dialling the home server, announces, shutdown, setup; commands
 * are cmd.c's, sensors sensors.c's, --help usage.c's (mhc_int.h). */
#include "mhc_int.h"

#include "announce.h"
#include "agent.h"
#include "cfg.h"
#include "command.h"
#include "conf.h"
#include "journal.h"
#include "keys.h"
#include "lanmsg.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "loop.h"
#include "net.h"
#include "peerlimit.h"
#include "runner.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t mhc_jitter(uint64_t ms, int percent)
{
	/* Spreads controllers that booted together so their announces do not arrive in bursts. */
	long span = (long)(ms * (uint64_t)percent / 100);
	if (span <= 0)
		return ms;
	return ms - (uint64_t)span + (uint64_t)(random() % (2 * span + 1));
}

/* --- peers --- */

/* A message serialised once, to every peer that said hello (a final result reaches a home
 * server that relinked mid-run too). */
void mhc_broadcast(struct mhc *m, const char *text, size_t len)
{
	for (struct peer *p = m->peers; p; p = p->next)
		if (p->hello && link_is_up(p->link))
			link_send_raw(p->link, text, len);
}

/* Sends o (taken) to one peer. */
void mhc_send(struct peer *p, cJSON *o)
{
	if (o)
		link_send(p->link, o);
	cJSON_Delete(o);
}

static cJSON *mhc_hello(struct mhc *m)
{
	cJSON *actions = conf_actions_json(&m->conf), *sensors = conf_sensors_json(&m->conf);
	struct lanmsg_hello h = { .controller = true, .id = m->conf.id, .name = m->conf.name,
				  .boot = m->boot, .port = m->port, .actions = actions,
				  .sensors = sensors };
	cJSON *o = lanmsg_hello_new(&h);
	cJSON_Delete(actions);
	cJSON_Delete(sensors);
	return o;
}

/* Unlinks and frees p and its link (which may be NULL: a link that could not be made). */
static void mhc_peer_free(struct peer *p)
{
	struct mhc *m = p->m;
	for (struct peer **pp = &m->peers; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->up)
		m->nlinks--;
	cmd_peer_gone(m, p);
	peerlimit_done(m->pending, p->slot);
	link_free(p->link);
	free(p);
}

static void mhc_home_schedule(struct mhc *m);

/* --- link callbacks --- */

static void mhc_on_up(struct link *l, void *arg)
{
	struct peer *p = arg;
	struct mhc *m = p->m;
	/* It proved it holds the secret: no longer a stranger in the pending budgets. */
	peerlimit_done(m->pending, p->slot);
	p->slot = NULL;
	if (m->nlinks >= m->conf.max_links) {
		log_warnx("link %s: refused: already %d links with the home secret (listen.max_links)",
			  link_peer_addr(l), m->nlinks);
		bool dialled = p->dialled;
		mhc_peer_free(p);
		if (dialled)
			mhc_home_schedule(m);
		return;
	}
	p->up = true;
	m->nlinks++;
	if (p->dialled)
		backoff_reset(&m->home_backoff);
	log_info("link %s: up", link_peer_addr(l));
	mhc_send(p, mhc_hello(m));
}

static void mhc_on_msg(struct link *l, const struct lanmsg *msg, void *arg)
{
	struct peer *p = arg;
	char why[256];

	if (msg->type == LANMSG_HELLO) {
		struct lanmsg_hello h;
		int rc = lanmsg_hello(msg, &h, why, sizeof why);
		if (rc == 0 && h.controller) {
			snprintf(why, sizeof why, "hello from a controller, not a home server");
			rc = -EINVAL;
		}
		if (rc < 0) {
			log_warnx("link %s: %s; dropped", link_peer_addr(l), why);
			mhc_peer_free(p);
			return;
		}
		p->hello = true;
		/* A fresh home server learns current values without waiting for a change. */
		sensors_send_current(p->m, l);
		return;
	}
	if (!p->hello) {
		log_warnx("link %s: '%s' before hello; dropped", link_peer_addr(l), msg->type_name);
		mhc_peer_free(p);
		return;
	}
	if (msg->type == LANMSG_COMMAND) {
		if (p->m->stopping) {
			struct command c;
			if (lanmsg_command(msg, &c, why, sizeof why) == 0)
				command_clear(&c);   /* only its id is needed */
			cmd_refuse(p, c.id[0] ? c.id : NULL, "rejected", "the controller is shutting down");
			return;
		}
		cmd_serve(p, msg);
	} else if (msg->type == LANMSG_BYE) {
		log_info("link %s: peer said bye", link_peer_addr(l));
	} else {
		/* Newer peers may send types we do not know; ignoring them keeps v1 extensible. */
		log_debug("link %s: ignored message type '%s'", link_peer_addr(l), msg->type_name);
	}
}

static void mhc_on_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct peer *p = arg;
	struct mhc *m = p->m;
	bool dialled = p->dialled;
	if (p->slot) {
		/* A stranger's failed handshake: counted, rate-limited. */
		char why_s[320];
		snprintf(why_s, sizeof why_s, "%s%s%s", link_down_str(why), detail ? ": " : "",
			 detail ? detail : "");
		peerlimit_failed(m->pending, p->slot, why_s);
		p->slot = NULL;
	} else {
		log_info("link %s: down: %s%s%s", link_peer_addr(l), link_down_str(why),
			 detail ? ": " : "", detail ? detail : "");
	}
	mhc_peer_free(p);
	if (dialled && !m->stopping)
		mhc_home_schedule(m);
}

/* The handshake's first bytes: a peer that speaks, not an idle connection of a flood. */
static void mhc_on_rx(struct link *l, void *arg)
{
	struct peer *p = arg;
	(void)l;
	peerlimit_active(p->m->pending, p->slot);
}

static const struct link_ops mhc_link_ops = { mhc_on_up, mhc_on_msg, mhc_on_down, mhc_on_rx };

static struct peer *mhc_peer_new(struct mhc *m)
{
	struct peer *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->m = m;
	p->next = m->peers;
	m->peers = p;
	return p;
}

/* peerlimit displaced this stranger or its handshake took too long (logged there). */
static void mhc_pending_close(void *arg, enum peerlimit_why why)
{
	struct peer *p = arg;
	(void)why;
	p->slot = NULL;
	mhc_peer_free(p);
}

static void mhc_on_accept(void *arg, int cfd, const struct sockaddr_storage *peer)
{
	struct mhc *m = arg;
	if (m->stopping) {
		close(cfd);
		return;
	}
	struct peer *p = mhc_peer_new(m);
	if (p)
		p->slot = peerlimit_admit(m->pending, cfd, peer, mhc_pending_close, p);
	if (!p || !p->slot) {
		if (p)
			mhc_peer_free(p);
		close(cfd);
		return;
	}
	p->link = link_accept(m->lctx, m->loop, cfd, peer, m->conf.id, &mhc_link_ops, p);
	if (!p->link) {
		char addr[NET_ADDRSTRLEN];
		log_warn("link from %s", net_addr_str((const struct sockaddr *)peer, addr, sizeof addr));
		mhc_peer_free(p);
	}
}

/* --- dialling the home server --- */

static void mhc_home_dial(void *arg)
{
	struct mhc *m = arg;
	struct sockaddr_storage to;
	if (net_addr_parse(m->conf.home_addr, m->conf.home_port, &to, NULL) < 0)
		return;
	struct peer *p = mhc_peer_new(m);
	if (!p)
		goto retry;
	p->dialled = true;
	p->link = link_dial(m->lctx, m->loop, &to, m->conf.listen_addr, m->conf.id, &mhc_link_ops, p);
	if (p->link)
		return;
	log_warn("dial home server %s:%u", m->conf.home_addr, m->conf.home_port);
	mhc_peer_free(p);
retry:
	mhc_home_schedule(m);
}

static void mhc_home_schedule(struct mhc *m)
{
	/* Jittered: a home server coming back is not hit by every controller in the same
	 * millisecond. */
	loop_timer_start(m->loop, &m->home_timer, backoff_next(&m->home_backoff, (uint64_t)random()));
}

/* --- announces --- */

static void mhc_announce(void *arg)
{
	struct mhc *m = arg;
	struct announce a = { .v = ANNOUNCE_PROTO_VERSION, .port = m->port, .seq = ++m->seq,
			      .ts = (int64_t)(loop_wall_ms() / 1000) };
	snprintf(a.id, sizeof a.id, "%s", m->conf.id);
	snprintf(a.name, sizeof a.name, "%s", m->conf.name);
	snprintf(a.boot, sizeof a.boot, "%s", m->boot);
	snprintf(a.version, sizeof a.version, "%s", FR_VERSION);
	a.actions = conf_actions_json(&m->conf);
	a.sensors = conf_sensors_json(&m->conf);
	char buf[ANNOUNCE_MAX];
	size_t len;
	int rc = announce_build(&a, m->announce_key, buf, sizeof buf, &len);
	announce_clear(&a);
	if (rc < 0) {
		log_warnx("announce not sent: %s", announce_strerror(rc));
	} else if (sendto(m->ufd, buf, len, 0, (struct sockaddr *)&m->announce_to,
			  m->announce_to.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							       : sizeof(struct sockaddr_in)) < 0) {
		log_warn("announce to %s:%u", m->conf.announce_addr, m->conf.announce_port);
	} else {
		log_debug("announce %llu sent (%zu bytes)", (unsigned long long)m->seq, len);
	}
	loop_timer_start(m->loop, &m->announce_timer, mhc_jitter(m->conf.announce_interval_ms, 10));
}

/* --- shutdown --- */

static void mhc_finish(void *arg)
{
	struct mhc *m = arg;
	loop_stop(m->loop);
}

void mhc_maybe_exit(struct mhc *m)
{
	if (!m->stopping || runner_count(m->runner) > 0 || m->starts || m->bye_sent)
		return;
	/* Said only once the actions the shutdown stopped are reported: the home server takes a
	 * bye as "offline at once", and a result after it would reach requesters as lost instead
	 * of the failed outcome the journal holds. */
	m->bye_sent = true;
	cJSON *bye = lanmsg_bye_new("shutdown");
	char *text = bye ? cJSON_PrintUnformatted(bye) : NULL;
	if (text)
		mhc_broadcast(m, text, strlen(text));
	free(text);
	cJSON_Delete(bye);
	/* Let the links flush the final results and the bye before closing. */
	loop_timer_start(m->loop, &m->stop_timer, 200);
}

static void mhc_on_term(void *arg, const struct signalfd_siginfo *si)
{
	struct mhc *m = arg;
	if (m->stopping)
		return;
	log_info("signal %d: stopping; running actions are killed and reported", (int)si->ssi_signo);
	m->stopping = true;
	notify_stopping();
	loop_timer_stop(m->loop, &m->announce_timer);
	loop_timer_stop(m->loop, &m->home_timer);
	sensors_stop(m);
	runner_kill_all(m->runner);
	mhc_maybe_exit(m);
}

/* --- setup --- */

static int mhc_setup(struct mhc *m)
{
	struct conf *c = &m->conf;
	if (cfg_read_secret(c->secret_file, m->secret) < 0 ||
	    keys_announce_key(m->secret, m->announce_key) < 0 || keys_random_hex(m->boot, 16) < 0)
		return -1;
	m->loop = loop_new();
	if (!m->loop)
		return -1;
	struct link_ctx_opts lo = { .secret = m->secret, .ping_interval_ms = c->ping_interval_ms,
				    .ping_timeout_ms = c->ping_timeout_ms,
				    .handshake_timeout_ms = c->handshake_timeout_ms };
	/* The handshake is the authentication, and the link enforces its timeout itself. */
	struct peerlimit_opts po = { .what = "link listener", .max_pending = c->max_pending,
				     .max_pending_per_peer = c->max_pending_per_peer };
	m->pending = peerlimit_new(m->loop, &po);
	m->lctx = link_ctx_new(&lo);
	m->runner = runner_new(m->loop);
	m->running = calloc((size_t)c->nactions + 1, sizeof *m->running);
	m->sensors = calloc((size_t)c->nsensors + 1, sizeof *m->sensors);
	if (!m->lctx || !m->runner || !m->running || !m->sensors || !m->pending)
		return -1;
	m->lfd = net_tcp_listen(c->listen_addr, c->listen_port, 64);
	if (m->lfd < 0) {
		errno = -m->lfd;
		log_warn("listen on %s:%u", c->listen_addr, c->listen_port);
		return -1;
	}
	m->port = net_local_port(m->lfd);
	m->listener = listener_new(m->loop, m->lfd, "link listener", mhc_on_accept, m);
	if (!m->listener)
		return -1;
	m->ufd = -1;
	/* Initialised even when unused: shutdown stops it either way. */
	loop_timer_init(&m->announce_timer, mhc_announce, m);
	if (c->announce_addr) {
		if (net_addr_parse(c->announce_addr, c->announce_port, &m->announce_to, NULL) < 0) {
			log_warnx("announce address '%s' is not a numeric IP address", c->announce_addr);
			return -1;
		}
		/* Sent from our listen address, so the receiver sees where to dial. */
		const char *src = strcmp(c->listen_addr, "0.0.0.0") == 0 ? NULL : c->listen_addr;
		m->ufd = net_udp_bind(src, 0, true);
		if (m->ufd < 0) {
			errno = -m->ufd;
			log_warn("announce socket");
			return -1;
		}
		loop_timer_start(m->loop, &m->announce_timer, 0);
	}
	/* Everything that may need root is open: give it up before the state is touched, so the
	 * journal belongs to the user the actions run as. */
	const struct passwd *pw = c->user ? getpwnam(c->user) : NULL;
	if (geteuid() == 0 && !c->allow_root_actions && (!c->user || (pw && pw->pw_uid == 0))) {
		log_warnx("refusing to run actions as root: set 'user' (e.g. user = \"frmhc\";) or, "
			  "to run them as root on purpose, allow_root_actions = true;");
		return -1;
	}
	if (agent_make_dir(c->state_dir, c->user, c->group) < 0 ||
	    agent_drop_privileges(c->user, c->group) < 0)
		return -1;
	m->starts_tail = &m->starts;
	m->journal = journal_open(c->state_dir, (size_t)c->journal_max, m->loop, cmd_durable, m);
	if (!m->journal) {
		if (c->user)
			log_warnx("state_dir %s must belong to user %s (chown -R %s %s)", c->state_dir,
				  c->user, c->user, c->state_dir);
		return -1;
	}
	loop_timer_init(&m->home_timer, mhc_home_dial, m);
	if (c->home_addr)
		loop_timer_start(m->loop, &m->home_timer, 0);
	sensors_start(m);
	loop_timer_init(&m->stop_timer, mhc_finish, m);
	if (loop_signal_add(m->loop, SIGTERM, mhc_on_term, m) < 0 ||
	    loop_signal_add(m->loop, SIGINT, mhc_on_term, m) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	log_info("controller %s (%s) listening on %s:%u, %s, %d action(s), %d sensor(s)", c->id,
		 c->name, c->listen_addr, m->port,
		 c->announce_addr ? "announcing" : "not announcing (no 'announce' in config)",
		 c->nactions, c->nsensors);
	return 0;
}

static void mhc_teardown(struct mhc *m)
{
	while (m->peers)
		mhc_peer_free(m->peers);
	peerlimit_free(m->pending);
	listener_free(m->listener);
	runner_free(m->runner);
	sensors_free(m);
	while (m->runs) {
		struct run *r = m->runs;
		m->runs = r->next;
		free(r);
	}
	free(m->sensors);
	free(m->running);
	if (m->lfd >= 0)
		close(m->lfd);
	if (m->ufd >= 0)
		close(m->ufd);
	link_ctx_free(m->lctx);
	journal_close(m->journal);
	cmd_free_starts(m);
	loop_free(m->loop);
	conf_free(&m->conf);
	OPENSSL_cleanse(m->secret, sizeof m->secret);
}

int main(int argc, char **argv)
{
	struct agent_args args;
	agent_parse_args(argc, argv, "frMhc", usage_print, " (LAN protocol v1)", &args);
	const char *config = args.config;
	bool check = args.check;
	struct mhc m = { .lfd = -1, .ufd = -1,
			 .home_backoff = { .min_ms = 500, .max_ms = 30000 } };
	if (conf_load(&m.conf, config) < 0) {
		conf_free(&m.conf);
		return 1;
	}
	if (check) {
		uint8_t s[32];
		int rc = cfg_read_secret(m.conf.secret_file, s);
		if (rc == 0)
			printf("%s: OK (controller %s, %d action(s), %d sensor(s))\n", config,
			       m.conf.id, m.conf.nactions, m.conf.nsensors);
		conf_free(&m.conf);
		return rc == 0 ? 0 : 1;
	}
	agent_start(&args);
	if (mhc_setup(&m) < 0) {
		log_warnx("start-up failed");
		mhc_teardown(&m);
		return 1;
	}
	notify_ready();   /* systemd Type=notify: serving now */
	loop_run(m.loop);
	log_info("stopped");
	mhc_teardown(&m);
	return 0;
}
