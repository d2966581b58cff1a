/* frMhc: the IoT controller. Announces itself by UDP, serves commands over TLS-PSK links,
 * runs each action as a child process under a timeout watchdog, never runs a command id twice
 * (journal), and pushes sensor changes as events. One epoll loop; see docs/lan-protocol.md. */
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
#include <math.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MHC_SENSOR_VALUE_MAX 256
/* An event: the value (a 256-byte string, escaped at most 6 times over) and the rest. */
#define MHC_EVENT_MAX (6 * MHC_SENSOR_VALUE_MAX + 256)

struct mhc;

struct peer {
	struct mhc *m;
	struct link *link;
	bool hello;      /* the peer said hello: commands are served after that */
	bool dialled;    /* the link to the configured home server */
	bool up;         /* the handshake completed: counted in nlinks */
	struct peerlimit_slot *slot;  /* accepted, handshake not done yet */
	struct peer *next;
};

struct run {
	struct mhc *m;
	char id[COMMAND_ID_MAX + 1];
	const struct conf_action *action;
	int action_idx;
	uint64_t started_wall;
	struct run *next;
};

struct sensor {
	struct mhc *m;
	const struct conf_sensor *def;
	struct loop_timer timer;
	struct runner_job *job;
	char *value;     /* last value as JSON text; NULL until first reading */
	int64_t ts_ms;
	bool failing;
};

struct mhc {
	struct loop *loop;
	struct conf conf;
	uint8_t secret[32], announce_key[32];
	char boot[33];
	uint64_t seq;
	struct link_ctx *lctx;
	int lfd, ufd;
	struct listener *listener;
	uint16_t port;
	struct sockaddr_storage announce_to;
	struct loop_timer announce_timer;
	struct peer *peers;
	int nlinks;      /* peers whose handshake completed */
	struct peerlimit *pending;
	struct loop_timer home_timer;
	uint64_t home_backoff_ms;
	struct runner *runner;
	struct journal *journal;
	struct run *runs;
	int *running;    /* per action index */
	struct sensor *sensors;
	bool stopping;
	bool bye_sent;         /* stopping, every run reported: the links only flush now */
	struct loop_timer stop_timer;
	int exit_code;
};

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
static void mhc_broadcast(struct mhc *m, const char *text, size_t len)
{
	for (struct peer *p = m->peers; p; p = p->next)
		if (p->hello && link_is_up(p->link))
			link_send_raw(p->link, text, len);
}

/* Sends o (taken) to one peer. */
static void mhc_send(struct peer *p, cJSON *o)
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

/* The sensor's state event into buf; its length, or <0 (logged). */
static int mhc_sensor_event(const struct sensor *s, char *buf, size_t n)
{
	int len = lanmsg_event_state(buf, n, s->def->name, s->value, s->ts_ms);
	if (len < 0)
		log_warnx("sensor %s: event not sent: %s", s->def->name, strerror(-len));
	return len;
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
	peerlimit_done(m->pending, p->slot);
	link_free(p->link);
	free(p);
}

static void mhc_home_schedule(struct mhc *m);

/* A refusal before any run: it left no trace in the journal, so the home server must not keep
 * it as the id's outcome (docs/lan-protocol.md, result: "recorded": false). id NULL: null. */
static void mhc_refuse(struct peer *p, const char *id, const char *status, const char *reason)
{
	struct lanmsg_result r = { .id = id, .status = status, .reason = reason, .unrecorded = true };
	mhc_send(p, lanmsg_result_new(&r));
}

/* A final result (o taken): serialised once, journalled, sent to every peer. */
static void mhc_final(struct mhc *m, const char *id, cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text) {
		log_warnx("command %s: no memory for its result", id);
		return;
	}
	journal_finished(m->journal, id, text);
	mhc_broadcast(m, text, strlen(text));
	free(text);
}

/* --- commands --- */

static void mhc_run_done(void *arg, const struct runner_result *res);

/* A builtin completes at once, without a process, but with the same records and replies. */
static void mhc_builtin(struct peer *p, const struct command *c, const struct conf_action *a)
{
	struct mhc *m = p->m;
	if (cJSON_GetArraySize(c->args) > 0) {
		mhc_refuse(p, c->id, "rejected", "a builtin takes no args");
		return;
	}
	mhc_send(p, lanmsg_accepted_new(c->id));
	if (journal_started(m->journal, c->id) < 0) {
		mhc_refuse(p, c->id, "failed", "could not record the command durably");
		return;
	}
	mhc_send(p, lanmsg_started_new(c->id, 0, false));
	struct lanmsg_result r = { .id = c->id, .action = a->name, .status = "ok", .run = true,
				   .exited = true, .started_ms = (int64_t)loop_wall_ms() };
	mhc_final(m, c->id, lanmsg_result_new(&r));
}

/* A repeat of an id the journal holds: its result again, marked duplicate, to this peer. */
static void mhc_repeat(struct peer *p, const char *id, const char *stored)
{
	static const char *const drop[] = { "duplicate", NULL };
	struct lanmsg was;
	char why[200];
	if (lanmsg_decode(&was, stored, strlen(stored), why, sizeof why) < 0) {
		/* Still never run again: what a repeat of a running id gets. */
		log_warnx("command %s: journalled result unreadable (%s); answered started", id, why);
		mhc_send(p, lanmsg_started_new(id, 0, true));
		return;
	}
	cJSON *dup = cJSON_CreateObject();
	cJSON_AddTrueToObject(dup, "duplicate");
	size_t len;
	char *text = lanmsg_forward(&was, drop, dup, &len);
	if (text)
		link_send_raw(p->link, text, len);
	free(text);
	cJSON_Delete(dup);
	lanmsg_clear(&was);
}

static void mhc_command(struct peer *p, const struct lanmsg *msg)
{
	struct mhc *m = p->m;
	struct command c;
	char why[256];

	if (lanmsg_command(msg, &c, why, sizeof why) < 0) {
		log_warnx("command from %s rejected: %s", link_peer_addr(p->link), why);
		mhc_refuse(p, c.id[0] ? c.id : NULL, "rejected", why);
		return;
	}
	const char *stored = NULL;
	switch (journal_lookup(m->journal, c.id, &stored)) {
	case JOURNAL_RUNNING:
		/* A redelivery while it runs: acknowledge; the result reaches every peer. */
		log_info("command %s: repeated while running, not run again", c.id);
		mhc_send(p, lanmsg_started_new(c.id, 0, true));
		goto out;
	case JOURNAL_DONE:
		log_info("command %s: repeated after it ended, answered from the journal", c.id);
		mhc_repeat(p, c.id, stored);
		goto out;
	case JOURNAL_NONE:
		break;
	}
	if (c.deadline_ms && (int64_t)loop_wall_ms() > c.deadline_ms) {
		log_info("command %s (%s): deadline passed, not run", c.id, c.action);
		mhc_refuse(p, c.id, "expired", "the command's deadline had passed");
		goto out;
	}
	const struct conf_action *a = conf_action_find(&m->conf, c.action);
	if (!a) {
		log_info("command %s: unknown action '%s'", c.id, c.action);
		snprintf(why, sizeof why, "no action '%s' on %s", c.action, m->conf.id);
		mhc_refuse(p, c.id, "unknown_action", why);
		goto out;
	}
	int idx = (int)(a - m->conf.actions);
	if (a->builtin) {
		mhc_builtin(p, &c, a);
		goto out;
	}
	char **argv = NULL;
	if (conf_action_argv(a, c.args, &argv, why, sizeof why) < 0) {
		log_info("command %s (%s) rejected: %s", c.id, c.action, why);
		mhc_refuse(p, c.id, "rejected", why);
		goto out;
	}
	if (m->running[idx] >= a->max_running) {
		log_info("command %s (%s): busy, %d already running", c.id, c.action, m->running[idx]);
		snprintf(why, sizeof why, "action '%s' already runs %d time(s), its limit", a->name,
			 m->running[idx]);
		mhc_refuse(p, c.id, "busy", why);
		conf_argv_free(argv);
		goto out;
	}
	mhc_send(p, lanmsg_accepted_new(c.id));
	if (journal_started(m->journal, c.id) < 0) {
		mhc_refuse(p, c.id, "failed", "could not record the command durably");
		conf_argv_free(argv);
		goto out;
	}
	struct run *run = calloc(1, sizeof *run);
	if (!run) {
		conf_argv_free(argv);
		goto out;
	}
	run->m = m;
	run->action = a;
	run->action_idx = idx;
	run->started_wall = loop_wall_ms();
	strcpy(run->id, c.id);
	uint64_t timeout = a->timeout_ms;
	/* A caller may shorten the configured timeout, never extend it. */
	if (c.timeout_ms && c.timeout_ms < timeout)
		timeout = c.timeout_ms;
	struct runner_spec spec = { .argv = argv, .timeout_ms = timeout, .grace_ms = a->grace_ms };
	int err = 0;
	struct runner_job *job = runner_start(m->runner, &spec, mhc_run_done, run, &err);
	conf_argv_free(argv);
	if (!job) {
		snprintf(why, sizeof why, "could not start: %s", strerror(-err));
		log_warnx("command %s (%s): %s", c.id, c.action, why);
		struct lanmsg_result r = { .id = c.id, .action = a->name, .status = "failed",
					   .reason = why };
		mhc_final(m, c.id, lanmsg_result_new(&r));
		free(run);
		goto out;
	}
	m->running[idx]++;
	run->next = m->runs;
	m->runs = run;
	log_info("command %s: %s started, pid %d", c.id, c.action, (int)runner_job_pid(job));
	mhc_send(p, lanmsg_started_new(c.id, (long)runner_job_pid(job), false));
out:
	command_clear(&c);
}

static void mhc_maybe_exit(struct mhc *m);

static void mhc_run_done(void *arg, const struct runner_result *res)
{
	struct run *run = arg;
	struct mhc *m = run->m;
	const char *status = "failed";
	char reason[160] = "";

	switch (res->status) {
	case RUNNER_EXITED:
		status = res->exit_code == 0 ? "ok" : "failed";
		if (res->exit_code)
			snprintf(reason, sizeof reason, "exit code %d", res->exit_code);
		break;
	case RUNNER_SIGNALED:
		snprintf(reason, sizeof reason, "killed by signal %d (%s)", res->signal,
			 strsignal(res->signal));
		break;
	case RUNNER_TIMEOUT:
		status = "timeout";
		snprintf(reason, sizeof reason, "no result within the timeout; process group killed");
		break;
	case RUNNER_KILLED:
		snprintf(reason, sizeof reason, "stopped: the controller is shutting down");
		break;
	case RUNNER_SPAWN_FAILED:
		snprintf(reason, sizeof reason, "could not start %s: %s", run->action->argv[0],
			 strerror(res->spawn_errno));
		break;
	}
	struct lanmsg_result r = {
		.id = run->id, .action = run->action->name, .status = status, .run = true,
		.exited = res->status == RUNNER_EXITED ||
			  (res->status != RUNNER_SPAWN_FAILED && !res->signal),
		.exit_code = res->exit_code, .signal = res->signal, .duration_ms = res->duration_ms,
		.started_ms = (int64_t)run->started_wall, .out = res->out, .err = res->err,
		.out_truncated = res->out_truncated, .err_truncated = res->err_truncated,
		.reason = reason[0] ? reason : NULL,
	};
	mhc_final(m, run->id, lanmsg_result_new(&r));
	log_info("command %s: %s ended: %s%s%s (%llu ms)", run->id, run->action->name, status,
		 reason[0] ? ", " : "", reason, (unsigned long long)res->duration_ms);

	m->running[run->action_idx]--;
	for (struct run **pp = &m->runs; *pp; pp = &(*pp)->next)
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	free(run);
	mhc_maybe_exit(m);
}

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
		m->home_backoff_ms = 0;
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
		for (int i = 0; i < p->m->conf.nsensors; i++) {
			char ev[MHC_EVENT_MAX];
			int n;
			if (p->m->sensors[i].value &&
			    (n = mhc_sensor_event(&p->m->sensors[i], ev, sizeof ev)) > 0)
				link_send_raw(l, ev, (size_t)n);
		}
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
			mhc_refuse(p, c.id[0] ? c.id : NULL, "rejected", "the controller is shutting down");
			return;
		}
		mhc_command(p, msg);
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
	/* Exponential backoff with jitter: a home server coming back is not hit by every
	 * controller in the same millisecond. */
	m->home_backoff_ms = m->home_backoff_ms ? m->home_backoff_ms * 2 : 500;
	if (m->home_backoff_ms > 30000)
		m->home_backoff_ms = 30000;
	loop_timer_start(m->loop, &m->home_timer, mhc_jitter(m->home_backoff_ms, 50));
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

/* --- sensors --- */

static void mhc_sensor_tick(void *arg);

/* Trimmed output; a number stays a JSON number, anything else becomes a JSON string. */
static char *mhc_sensor_json(const char *out, size_t len)
{
	while (len && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' ' ||
		       out[len - 1] == '\t'))
		len--;
	while (len && (*out == ' ' || *out == '\t' || *out == '\n' || *out == '\r')) {
		out++;
		len--;
	}
	if (len > MHC_SENSOR_VALUE_MAX)
		len = MHC_SENSOR_VALUE_MAX;
	char tmp[MHC_SENSOR_VALUE_MAX + 1];
	memcpy(tmp, out, len);
	tmp[len] = '\0';
	char *end;
	double d = strtod(tmp, &end);
	cJSON *v = (len && *end == '\0' && isfinite(d) && tmp[0] != ' ') ? cJSON_CreateNumber(d)
									  : cJSON_CreateString(tmp);
	char *s = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return s;
}

static void mhc_sensor_done(void *arg, const struct runner_result *res)
{
	struct sensor *s = arg;
	struct mhc *m = s->m;
	s->job = NULL;
	if (res->status != RUNNER_EXITED || res->exit_code != 0) {
		if (!s->failing)
			log_warnx("sensor %s: reading failed (%s, exit %d, signal %d); keeping the last value",
				  s->def->name, res->status == RUNNER_TIMEOUT ? "timeout" : "error",
				  res->exit_code, res->signal);
		s->failing = true;
	} else {
		s->failing = false;
		char *v = mhc_sensor_json(res->out, res->out_len);
		if (v && (!s->value || strcmp(v, s->value) != 0)) {
			free(s->value);
			s->value = v;
			s->ts_ms = (int64_t)loop_wall_ms();
			log_debug("sensor %s = %s", s->def->name, v);
			char ev[MHC_EVENT_MAX];
			int n = mhc_sensor_event(s, ev, sizeof ev);
			if (n > 0)
				mhc_broadcast(m, ev, (size_t)n);
		} else {
			free(v);
		}
	}
	if (!m->stopping)
		loop_timer_start(m->loop, &s->timer, s->def->interval_ms);
	mhc_maybe_exit(m);
}

static void mhc_sensor_tick(void *arg)
{
	struct sensor *s = arg;
	struct runner_spec spec = { .argv = (char *const *)s->def->argv,
				    .timeout_ms = s->def->timeout_ms, .grace_ms = 500,
				    .tail_max = MHC_SENSOR_VALUE_MAX * 4 };
	int err;
	s->job = runner_start(s->m->runner, &spec, mhc_sensor_done, s, &err);
	if (!s->job) {
		log_warnx("sensor %s: cannot start: %s", s->def->name, strerror(-err));
		loop_timer_start(s->m->loop, &s->timer, s->def->interval_ms);
	}
}

/* --- shutdown --- */

static void mhc_finish(void *arg)
{
	struct mhc *m = arg;
	loop_stop(m->loop);
}

static void mhc_maybe_exit(struct mhc *m)
{
	if (!m->stopping || runner_count(m->runner) > 0 || m->bye_sent)
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
	for (int i = 0; i < m->conf.nsensors; i++)
		loop_timer_stop(m->loop, &m->sensors[i].timer);
	runner_kill_all(m->runner);
	mhc_maybe_exit(m);
}

/* --- setup --- */

static void mhc_usage(FILE *f)
{
	fputs(
"NAME\n"
"    frMhc - fr IoT controller: announces itself, runs actions, pushes sensor events\n"
"\n"
"SYNOPSIS\n"
"    frMhc [-f] [-v]... -c FILE\n"
"    frMhc --check-config -c FILE\n"
"\n"
"DESCRIPTION\n"
"    frMhc runs on each IoT controller (e.g. a Raspberry Pi beside a relay board). It\n"
"    announces itself by signed UDP datagrams so the home server (frMhs) finds it wherever\n"
"    its address moves, serves commands over TLS-PSK links (LAN protocol v1, see\n"
"    docs/lan-protocol.md), runs each action as a child process in its own process group\n"
"    (never through a shell) under a timeout watchdog (SIGTERM, then SIGKILL to the whole\n"
"    group), records every command id durably so no command ever runs twice, and pushes a\n"
"    sensor's value as an event whenever it changes.\n"
"\n"
"OPTIONS\n"
"    -c, --config FILE   configuration file (required)\n"
"    -f, --foreground    stay in the foreground and log to stderr (default: daemon, syslog)\n"
"    -v, --verbose       more logging (debug); repeat for more\n"
"        --check-config  load and check the configuration, print problems, exit 0 if valid\n"
"    -h, --help          this text\n"
"    -V, --version       print the version\n"
"\n"
"CONFIGURATION (libconfig syntax; see docs/frmhc.conf.example)\n"
"    id = \"kitchen\";                  # controller id, [A-Za-z0-9_-]{1,63}\n"
"    name = \"Kitchen Pi\";\n"
"    secret_file = \"/etc/fr/home.secret\"; # 64 hex digits, the home's 32-byte secret\n"
"    state_dir = \"/var/lib/frmhc\";     # command journal (exactly-once across restarts)\n"
"    listen = { address = \"0.0.0.0\"; port = 7410;\n"
"               max_links = 16;              # links that completed the handshake\n"
"               max_pending = 32;            # connections still in their handshake ...\n"
"               max_pending_per_peer = 4; }; # ... and from one address (or IPv6 /64)\n"
"    announce = { address = \"192.168.1.255\"; port = 7400; interval = 5; };\n"
"                                       # optional: without it nothing is broadcast\n"
"    home_server = { address = \"192.168.1.2\"; port = 7401; };  # optional: dial out\n"
"    ping_interval = 10; ping_timeout = 30; journal_max = 10000;\n"
"    handshake_timeout = 10;            # seconds for TCP + TLS-PSK handshake of a link\n"
"    user = \"frmhc\"; group = \"frmhc\";   # optional: drop root to this user once the\n"
"                                       # sockets are bound; actions run as this user\n"
"    allow_root_actions = false;        # true: run actions as root (started as root, no user)\n"
"    actions = (\n"
"      { name = \"lamp_on\"; argv = [\"/usr/local/lib/fr/lamp\", \"on\"]; timeout = 10; },\n"
"      { name = \"dim\"; argv = [\"/usr/local/lib/fr/dim\", \"{level}\"]; timeout = 5;\n"
"        max_running = 1; kill_grace = 2;\n"
"        args = ( { name = \"level\"; pattern = \"[0-9]{1,3}\"; default = \"50\"; } ); }\n"
"    );\n"
"    sensors = (\n"
"      { name = \"temp\"; argv = [\"/usr/local/lib/fr/temp\"]; interval = 10; timeout = 5;\n"
"        unit = \"°C\"; device_class = \"temperature\"; }\n"
"    );\n"
"    A sensor's unit and device_class are optional; they reach Home Assistant through frMhs's\n"
"    MQTT discovery (device_class: one of HA's sensor device classes, a-z 0-9 _).\n"
"    A builtin action runs inside frMhc, without a process: { name = \"ping\"; builtin = \"noop\"; }\n"
"    argv[0] is an absolute path; \"{arg}\" in later elements is replaced by the argument's\n"
"    value, which must match the whole pattern (POSIX extended regex). An action's defaults:\n"
"    timeout = 30, kill_grace = 2, max_running = 1 (a second concurrent request is answered\n"
"    busy). Durations are in seconds and may be decimal.\n"
"\n"
"PRIVILEGES\n"
"    Started as root, frMhc binds its sockets, creates state_dir for 'user', then becomes\n"
"    'user' (group 'group', else the user's primary group, plus the user's supplementary\n"
"    groups, e.g. gpio, i2c, dialout) and runs actions and sensors as that user. It refuses\n"
"    to start as root without 'user' unless allow_root_actions = true, and stops if the\n"
"    switch fails. Started as 'user' directly (e.g. by its unit), it just runs.\n"
"\n"
"LIMITS\n"
"    A connection to the link port that has not completed its handshake is a stranger's:\n"
"    at most max_pending of them, max_pending_per_peer from one address; a newer one closes\n"
"    an older one (its address's oldest; over max_pending, one that sent nothing yet, of the\n"
"    address holding the most), so a flood never locks out the home server. Refusals are\n"
"    logged with counts at most every 10 s (docs/lan-protocol.md).\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop: running actions are killed and reported as failed, then exit.\n"
"\n"
"EXIT STATUS\n"
"    0 after a clean stop or a valid --check-config; 1 on a configuration or start-up error.\n",
	      f);
}

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
	m->journal = journal_open(c->state_dir, (size_t)c->journal_max);
	if (!m->journal) {
		if (c->user)
			log_warnx("state_dir %s must belong to user %s (chown -R %s %s)", c->state_dir,
				  c->user, c->user, c->state_dir);
		return -1;
	}
	loop_timer_init(&m->home_timer, mhc_home_dial, m);
	if (c->home_addr)
		loop_timer_start(m->loop, &m->home_timer, 0);
	for (int i = 0; i < c->nsensors; i++) {
		struct sensor *s = &m->sensors[i];
		s->m = m;
		s->def = &c->sensors[i];
		loop_timer_init(&s->timer, mhc_sensor_tick, s);
		loop_timer_start(m->loop, &s->timer, (uint64_t)(random() % 200));
	}
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
	for (int i = 0; m->sensors && i < m->conf.nsensors; i++)
		free(m->sensors[i].value);
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
	loop_free(m->loop);
	conf_free(&m->conf);
	OPENSSL_cleanse(m->secret, sizeof m->secret);
}

int main(int argc, char **argv)
{
	struct agent_args args;
	agent_parse_args(argc, argv, "frMhc", mhc_usage, " (LAN protocol v1)", &args);
	const char *config = args.config;
	bool check = args.check;
	struct mhc m = { .lfd = -1, .ufd = -1 };
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
