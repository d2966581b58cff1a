/* frAroundWeb: the web side's agent. Keeps a cache of every home's status, controller info and
 * sensor state from the broker, and serves the shim protocol (docs/shim.md) to the web page's
 * PHP and to scripts: authenticated reads from the cache, requests relayed to controllers with
 * correlated replies and an audit trail, subscriptions; plus /healthz, /readyz and /metrics.
 * One epoll loop. */
#include "audit.h"
#include "cache.h"
#include "conf.h"
#include "history.h"
#include "homemsg.h"
#include "http.h"
#include "keys.h"
#include "agent.h"
#include "log.h"
#include "notify.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "peerlimit.h"
#include "relay.h"
#include "shim.h"
#include "shimproto.h"
#include "subs.h"
#include "users.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct web {
	struct loop *loop;
	struct conf conf;
	struct users *users;
	struct cache *cache;
	struct history *history;   /* NULL: not configured */
	struct audit *audit;
	struct metrics metrics;
	struct mqtt *mqtt;
	struct subs *subs;
	struct relay *relay;
	struct shim *shim;
	struct http *http;
	char instance[33];
	unsigned long sync_gen;    /* web_sync_all's asks: their id is web-<instance>-<sync_gen> */
	char sync_id[64];          /* the id of the latest ask; only its answers are taken */
	char client_id[64];
	uint64_t started;
	uint64_t beat_logged_at;   /* last line about a bad heartbeat (monotonic ms) */
	bool stopping;
	uint64_t users_reloads;     /* SIGHUPs handled */
	bool users_reload_failed;   /* the last one could not use the file */
};

static int web_cmp_home(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fr/<home>/sync (docs/topics.md): after every (re)connect each home a user is granted is
 * asked for its whole state, so the cache is true even where the broker delivers no retained
 * message (a cluster). The reply_to in the payload serves MQTT 5 and 3.1.1 alike. */
static void web_sync_all(struct web *w)
{
	char topic[256], msg[320];
	int nu = users_count(w->users), n = 0, asked = 0;
	for (int i = 0; i < nu; i++)
		n += users_at(w->users, i)->nhomes;
	/* Each home once however many users share it: sorted, so a file of many users stays
	 * n log n here (this runs in the event loop on every connect). */
	const char **homes = n ? malloc((size_t)n * sizeof *homes) : NULL;
	if (n && !homes) {
		log_warnx("sync: out of memory: the cache waits for live messages");
		return;
	}
	n = 0;
	for (int i = 0; i < nu; i++) {
		const struct user *u = users_at(w->users, i);
		for (int j = 0; j < u->nhomes; j++)
			homes[n++] = u->homes[j];
	}
	if (n)
		qsort(homes, (size_t)n, sizeof *homes, web_cmp_home);
	snprintf(w->sync_id, sizeof w->sync_id, "web-%s-%lu", w->instance, ++w->sync_gen);
	for (int i = 0; i < n; i++) {
		if (i > 0 && strcmp(homes[i - 1], homes[i]) == 0)
			continue;
		snprintf(topic, sizeof topic, "%s/%s/sync", w->conf.prefix, homes[i]);
		int len = snprintf(msg, sizeof msg,
				   "{\"id\":\"%s\",\"reply_to\":\"%s/%s/reply/web-sync-%s\"}",
				   w->sync_id, w->conf.prefix, homes[i], w->instance);
		if (mqtt_publish(w->mqtt, topic, msg, (size_t)len, 1, false, NULL, NULL, 0) == 0)
			asked++;
	}
	free(homes);
	log_info("sync: asked %d homes for their state", asked);
}

static void web_on_connected(void *arg, bool session_present)
{
	struct web *w = arg;
	w->metrics.mqtt_connected = true;
	log_info("broker %s: MQTT %s, connected (session %s)", mqtt_uri(w->mqtt),
		 mqtt_version(w->mqtt) == 4 ? "3.1.1" : "5", session_present ? "resumed" : "new");
	if (w->users)
		web_sync_all(w);
	relay_on_connected(w->relay);
}

/* A part of a sync answer, kept as if it had arrived retained. */
static void web_sync_part(void *arg, const char *topic, const cJSON *v)
{
	struct web *w = arg;
	char *s = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
	const char *text = cJSON_IsString(v) ? v->valuestring : s;
	if (text && cache_wants(w->cache, topic))
		cache_put(w->cache, topic, text, strlen(text), true, loop_wall_ms());
	free(s);
}

/* The answer to web_sync_all, on <prefix>/<home>/reply/web-sync-<instance>: only the home's
 * account writes its reply topics (docs/broker.md), so it is the home's state. */
static void web_on_sync(void *arg, const struct mqtt_msg *m)
{
	struct web *w = arg;
	char home[SHIM_NAME_MAX + 1];
	int skipped;
	if (!shimproto_topic_home(w->conf.prefix, m->topic, false, home))
		return;
	int rc = homemsg_sync(w->conf.prefix, home, w->sync_id, m->payload, m->len, web_sync_part,
			      w, &skipped);
	if (rc == HOMEMSG_OTHER_ID) {
		log_info("sync: home %s: answer to an earlier ask ignored", home);
		return;
	}
	if (rc < 0) {
		log_warnx("%s: not a sync answer of home %s (docs/topics.md): ignored", m->topic, home);
		return;
	}
	w->metrics.cache_topics = cache_count(w->cache);
	if (skipped)
		log_warnx("sync: home %s: %d controllers or sensors with invalid names skipped",
			  home, skipped);
	log_info("sync: home %s: state taken from its answer", home);
}

static void web_on_disconnected(void *arg, const char *reason)
{
	struct web *w = arg;
	w->metrics.mqtt_connected = false;
	relay_on_disconnected(w->relay);
	log_warnx("broker %s: connection lost: %s", mqtt_uri(w->mqtt), reason);
}

static void web_on_message(void *arg, const struct mqtt_msg *m)
{
	struct web *w = arg;
	w->metrics.mqtt_messages++;
	subs_on_message(w->subs, m);
}

/* The cache's filters. MQTT 5 (Retain As Published): m->retained says the home published it as
 * state. MQTT 3.1.1 has no such option: a broker clears the retain flag of every live message
 * (3.3.1.3), so the flag cannot tell state from anything else there and every message on a
 * state topic is taken as state (only the home's account may publish on them: the broker's
 * ACL, docs/broker.md). */
static void web_on_state(void *arg, const struct mqtt_msg *m)
{
	struct web *w = arg;
	if (cache_wants(w->cache, m->topic)) {
		uint64_t now = loop_wall_ms();
		bool state = m->retained || mqtt_version(w->mqtt) == 4;
		int rc = cache_put(w->cache, m->topic, m->payload, m->len, state, now);
		w->metrics.cache_topics = cache_count(w->cache);
		/* Only what the home published as state, and within the home's cache budget: a home
		 * cannot fill the history file with sensors it has no room for. */
		if (w->history && rc == 0)
			history_on_message(w->history, m->topic, m->payload, m->len, now);
	}
}

/* fr/<home>/heartbeat: {"ts":<ms>,"seq":n,"interval":<s>} (docs/topics.md). A payload without a
 * usable interval is refused with a reason, at most one line a minute (any number of homes
 * could send them), and changes nothing. */
static void web_on_heartbeat(void *arg, const struct mqtt_msg *m)
{
	struct web *w = arg;
	char home[SHIM_NAME_MAX + 1];
	/* A retained beat is an old one (frMhs never retains them): it says nothing of now. */
	if (m->retained || !shimproto_topic_home(w->conf.prefix, m->topic, false, home))
		return;
	int64_t ms = homemsg_heartbeat_ms(m->payload, m->len);
	if (ms < 0) {
		uint64_t now = loop_now(w->loop);
		if (!w->beat_logged_at || now - w->beat_logged_at >= 60000) {
			log_warnx("%s: not a heartbeat (a JSON object with \"interval\" 1..3600 s, "
				  "docs/topics.md): ignored", m->topic);
			w->beat_logged_at = now;
		}
		return;
	}
	cache_heartbeat(w->cache, home, (uint64_t)ms, loop_now(w->loop));
}

static void web_on_reply(void *arg, const struct mqtt_msg *m)
{
	struct web *w = arg;
	relay_on_message(w->relay, m);
}

static const struct mqtt_ops web_mqtt_ops = { web_on_connected, web_on_disconnected,
					      web_on_message };

static char *web_healthz(struct web *w, bool up, uint64_t uptime)
{
	cJSON *o = cJSON_CreateObject(), *u;
	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "broker", up ? "connected" : "disconnected");
	cJSON_AddNumberToObject(o, "uptime_s", (double)uptime);
	if ((u = cJSON_AddObjectToObject(o, "users"))) {
		const char *gen = users_generation(w->users);
		cJSON_AddNumberToObject(u, "count", users_count(w->users));
		cJSON_AddNumberToObject(u, "rejected", users_rejected(w->users));
		cJSON_AddItemToObject(u, "generation", gen ? cJSON_CreateString(gen) : cJSON_CreateNull());
		cJSON_AddNumberToObject(u, "reloads", (double)w->users_reloads);
		cJSON_AddStringToObject(u, "last_reload", w->users_reload_failed ? "failed" : "ok");
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	char *line = s ? malloc(strlen(s) + 2) : NULL;
	if (line)
		sprintf(line, "%s\n", s);
	free(s);
	return line;
}

static char *web_http(void *arg, const char *path, int *status, const char **ctype)
{
	struct web *w = arg;
	char buf[256];
	bool up = mqtt_is_connected(w->mqtt);
	uint64_t uptime = (loop_now(w->loop) - w->started) / 1000;
	if (strcmp(path, "/healthz") == 0) {
		/* Liveness: the loop answers, so the process is alive, whatever the broker does. The
		 * users part tells fr-admin whether its last change was taken. */
		*status = 200;
		*ctype = "application/json";
		return web_healthz(w, up, uptime);
	}
	if (strcmp(path, "/readyz") == 0) {
		*status = up ? 200 : 503;
		*ctype = "application/json";
		snprintf(buf, sizeof buf, "{\"status\":\"%s\",\"broker\":\"%s\",\"uptime_s\":%llu}\n",
			 up ? "ready" : "not ready", up ? "connected" : "disconnected",
			 (unsigned long long)uptime);
		return strdup(buf);
	}
	if (strcmp(path, "/metrics") == 0) {
		*status = 200;
		*ctype = "text/plain; version=0.0.4";
		w->metrics.mqtt_connected = up;
		w->metrics.cache_topics = cache_count(w->cache);
		w->metrics.homes_stale = cache_stale_count(w->cache, loop_now(w->loop));
		for (int i = 0; i < CACHE_REFUSAL_COUNT; i++)
			w->metrics.cache_refused[i] = cache_refused(w->cache, (enum cache_refusal)i);
		if (w->history) {
			struct history_stats st;
			history_stats(w->history, &st);
			w->metrics.history = true;
			w->metrics.history_written = st.written;
			w->metrics.history_dropped = st.dropped;
			w->metrics.history_bad = st.bad;
			w->metrics.history_queued = st.queued;
			w->metrics.history_flush_max_us = st.slowest_flush_us;
		}
		return metrics_render(&w->metrics);
	}
	*status = 404;
	*ctype = "text/plain";
	return strdup("not found\n");
}

static void web_on_term(void *arg, const struct signalfd_siginfo *si)
{
	struct web *w = arg;
	if (w->stopping)
		return;
	w->stopping = true;
	notify_stopping();
	log_info("signal %d: stopping", (int)si->ssi_signo);
	shim_shutdown(w->shim);
	loop_stop(w->loop);
}

static void web_on_hup(void *arg, const struct signalfd_siginfo *si)
{
	struct web *w = arg;
	(void)si;
	struct users *u = users_load(w->conf.users_file);
	w->users_reloads++;
	w->users_reload_failed = !u;
	if (!u) {
		log_warnx("SIGHUP: %s not reloaded, the previous users stay", w->conf.users_file);
	} else {
		shim_set_users(w->shim, u);
		users_free(w->users);
		w->users = u;
		if (mqtt_is_connected(w->mqtt))
			web_sync_all(w);   /* homes granted now are asked too */
		if (users_rejected(u))
			log_warnx("SIGHUP: %s reloaded: %d users, %d entries ignored (see above)",
				  w->conf.users_file, users_count(u), users_rejected(u));
		else
			log_info("SIGHUP: %s reloaded: %d users", w->conf.users_file, users_count(u));
	}
	audit_reopen(w->audit);
}

static void web_usage(FILE *f)
{
	fputs(
"NAME\n"
"    frAroundWeb - fr web agent: broker cache, shim protocol for the web page, audit, metrics\n"
"\n"
"SYNOPSIS\n"
"    frAroundWeb [-f] [-v]... -c FILE\n"
"    frAroundWeb --check-config -c FILE\n"
"\n"
"DESCRIPTION\n"
"    frAroundWeb runs next to the web server. It subscribes (QoS 1) to every home's status,\n"
"    controller status, info and sensor state (docs/topics.md) and keeps the latest retained\n"
"    payload of each topic, within a budget per home, and each home's heartbeat: a home that\n"
"    missed stale_after beats reads as stale. It serves the shim protocol\n"
"    (docs/shim.md) on loopback TCP and/or a unix socket: newline-delimited JSON requests,\n"
"    authenticated with a per-user token whose SHA-256 is in the users file; a user sees only\n"
"    the homes granted to it. 'get' and 'list'\n"
"    answer from the cache at once (retained state, and each granted home's answer to\n"
"    fr/<home>/sync, asked after every connect and users reload); 'request' publishes\n"
"    a command as the web page does\n"
"    (docs/topics.md, the request profile: a fresh UUID, reply topic\n"
"    fr/<home>/reply/<user>/web-<instance> as MQTT 5 response topic and reply_to, a deadline\n"
"    from the wait), streams accepted/started and answers the result,\n"
"    and appends one JSON line per finished request to the audit file; 'subscribe' streams\n"
"    matching messages, each once per subscription (every broker subscription carries an MQTT 5\n"
"    subscription identifier); 'history' answers a sensor's recorded values. With 'history'\n"
"    configured, every sensor state change (numbers and strings) is recorded in one SQLite\n"
"    file (WAL): raw points for keep_raw_days, and step-wide buckets (mean, min, max) of the\n"
"    numbers for keep_days; a value re-delivered by the broker (same sensor, same ts) is\n"
"    recorded once. Points are queued in memory and written in one transaction every\n"
"    flush_interval seconds or flush_points points, whichever comes first.\n"
"    Every client has bounded buffers; one that breaks a limit is\n"
"    disconnected with a logged reason and never slows the others.\n"
"    HTTP (HTTP/1.0, GET): /healthz (200 while the loop runs, with the broker state and the\n"
"    users file's load: count, ignored entries, generation, reloads, last reload ok|failed),\n"
"    /readyz (503 while the broker is disconnected), /metrics (Prometheus text format).\n"
"\n"
"OPTIONS\n"
"    -c, --config FILE   configuration file (required)\n"
"    -f, --foreground    stay in the foreground and log to stderr (default: daemon, syslog)\n"
"    -v, --verbose       more logging; repeat for more\n"
"        --check-config  check the configuration and the users file, exit 0 if valid\n"
"    -h, --help          this text\n"
"    -V, --version       print the version\n"
"\n"
"CONFIGURATION (libconfig syntax; see docs/frAroundWeb.conf.example)\n"
"    topic_prefix = \"fr\";\n"
"    instance = \"web1\";            # optional; replies go to\n"
"                                  # fr/<home>/reply/<user>/web-<instance>; default: random\n"
"                                  # per start\n"
"    users_file = \"/etc/fr/users.conf\";\n"
"    audit_file = \"/var/lib/fr/audit.log\";\n"
"    shim = { address = \"127.0.0.1\"; port = 7420; unix = \"/run/fr/shim.sock\";\n"
"             max_line = 65536; max_clients = 1024; max_inflight = 64; max_outq = 1048576;\n"
"             auth_timeout = 10; max_pending = 256; max_pending_per_peer = 64; };\n"
"             # max_clients: authenticated clients; before its auth a connection is pending:\n"
"             # budgets in all and per peer (address, or uid on the unix socket), separate\n"
"             # for TCP and the unix socket, and auth_timeout seconds to authenticate\n"
"    http = { address = \"127.0.0.1\"; port = 7421; max_pending = 64;\n"
"             max_pending_per_peer = 16; request_timeout = 5; };\n"
"    user = \"fraroundweb\"; group = \"fraroundweb\";   # optional: drop root to this user\n"
"                                     # once the listeners and files are open\n"
"    max_topics = 100000;            # cache: topics in all; new ones beyond are refused\n"
"    max_topics_per_home = 4096;     # cache: topics of one home (status, info, state)\n"
"    stale_after = 3;                # missed heartbeats before a home reads as stale\n"
"    max_bytes_per_home = 4194304;   # cache: topic + payload bytes of one home\n"
"    history = { file = \"/var/lib/fr/history.db\";   # optional; without it nothing is recorded\n"
"                keep_raw_days = 7; keep_days = 365; step = 300;   # buckets of step seconds\n"
"                flush_interval = 1; flush_points = 1000; max_queue = 100000; };\n"
"    mqtt = { uri = \"mqtts://broker.example.org:8883\"; username = \"web\";\n"
"             password_file = \"/etc/fr/web-mqtt.pw\"; ca_file = \"/etc/ssl/certs/ca.pem\";\n"
"             version = \"auto\"; keepalive = 30; backoff_min = 0.5; backoff_max = 30; };\n"
"             # uri may be a list (failover); version \"auto\" (default) = MQTT 5, else\n"
"             # 3.1.1 when the broker refuses 5; 5 or \"3.1.1\" (also 4) = only that\n"
"             # reconnect delay: backoff_min doubling to backoff_max, with jitter; a\n"
"             # connection that lasted under 10 s counts as one more failure\n"
"  users file (written by the management command; reloaded on SIGHUP):\n"
"    generation = \"<any text>\";   # optional; /healthz reports the one loaded\n"
"    users = ( { name = \"alice\"; token_sha256 = \"<64 hex digits>\"; homes = [\"home1\"]; } );\n"
"    homes = [] is a user who may sign in and sees no home. A bad entry is ignored with a\n"
"    logged reason (the other users load); a file that cannot be parsed keeps the old users.\n"
"\n"
"FILES\n"
"    /etc/fr/frAroundWeb.conf   configuration\n"
"    /etc/fr/users.conf         users, token hashes and granted homes\n"
"    /var/lib/fr/audit.log      audit records, one JSON object per line\n"
"    /var/lib/fr/history.db     sensor history, if configured (SQLite; -wal and -shm beside)\n"
"    /run/fr/shim.sock          the shim's unix socket, if configured (mode 0660)\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop: clients are disconnected, the broker session is closed.\n"
"    SIGHUP           reload the users file (clients whose token is gone are disconnected;\n"
"                     subscriptions and requests in homes no longer granted end with error\n"
"                     forbidden) and reopen the audit file (after logrotate).\n"
"\n"
"EXIT STATUS\n"
"    0 after a clean stop or a valid --check-config; 1 on a configuration or start-up error.\n",
	      f);
}

static int web_setup(struct web *w)
{
	struct conf *c = &w->conf;
	w->loop = loop_new();
	if (!w->loop)
		return -1;
	w->started = loop_now(w->loop);
	if (c->instance)
		snprintf(w->instance, sizeof w->instance, "%s", c->instance);
	else if (keys_random_hex(w->instance, 8) < 0)
		return -1;
	snprintf(w->client_id, sizeof w->client_id, "frAroundWeb-%s", w->instance);
	w->users = users_load(c->users_file);
	struct cache_limits lim = { (size_t)c->max_topics, (size_t)c->max_topics_per_home,
				    (size_t)c->max_bytes_per_home, (unsigned)c->stale_after };
	w->cache = cache_new(c->prefix, &lim);
	w->audit = audit_open(c->audit_file);
	if (c->history_file) {
		struct history_opts ho;
		history_defaults(&ho);
		ho.path = c->history_file;
		ho.prefix = c->prefix;
		ho.raw_keep_ms = c->history_keep_raw_ms;
		ho.agg_keep_ms = c->history_keep_ms;
		ho.step_ms = c->history_step_ms;
		ho.flush_ms = c->history_flush_ms;
		ho.flush_max = (size_t)c->history_flush_points;
		ho.queue_max = (size_t)c->history_max_queue;
		if (!(w->history = history_open(w->loop, &ho)))
			return -1;
		log_info("history in %s (raw %llu days, %llu s buckets for %llu days)", c->history_file,
			 (unsigned long long)(c->history_keep_raw_ms / 86400000),
			 (unsigned long long)(c->history_step_ms / 1000),
			 (unsigned long long)(c->history_keep_ms / 86400000));
	}
	if (!w->users || !w->cache || !w->audit)
		return -1;
	struct mqtt_opts mo = {
		/* The session lives while this process does (replies during a broker outage), not
		 * longer: the relay's requests and the clients' subscriptions do not outlive it. */
		.clean = false,
		.clean_first = true,
		/* Long enough for a broker blip; a stopped frAroundWeb's queue goes soon after. */
		.session_expiry = 300,
	};
	mqttconf_opts(&c->mqtt, w->client_id, &mo);
	w->mqtt = mqtt_new(w->loop, &mo, &web_mqtt_ops, w);
	if (!w->mqtt)
		return -1;
	w->subs = subs_new(w->mqtt);
	w->relay = relay_new(w->loop, w->mqtt, w->audit, &w->metrics, c->prefix, w->instance);
	if (!w->subs || !w->relay)
		return -1;
	struct shim_deps d = { w->loop, c, w->mqtt, w->cache, w->relay, w->audit, &w->metrics,
			       w->subs, w->users, w->history };
	w->shim = shim_new(&d);
	if (!w->shim)
		return -1;
	/* The agent's own consumers hold their filters for good (subs_free drops them). */
	static const char *const leaves[] = { "status", "ctl/+/status", "ctl/+/info",
					      "ctl/+/state/+" };
	char f[256];
	for (size_t i = 0; i < sizeof leaves / sizeof *leaves; i++) {
		snprintf(f, sizeof f, "%s/+/%s", c->prefix, leaves[i]);
		if (!subs_add(w->subs, f, true, web_on_state, w))
			return -1;
	}
	snprintf(f, sizeof f, "%s/+/heartbeat", c->prefix);
	if (!subs_add(w->subs, f, true, web_on_heartbeat, w))
		return -1;
	if (!subs_add(w->subs, relay_reply_filter(w->relay), true, web_on_reply, w))
		return -1;
	snprintf(f, sizeof f, "%s/+/reply/web-sync-%s", c->prefix, w->instance);
	if (!subs_add(w->subs, f, true, web_on_sync, w))
		return -1;
	if (c->http_addr) {
		struct peerlimit_opts hlim = { .what = "http", .max_pending = c->http_max_pending,
					      .max_pending_per_peer = c->http_max_pending_per_peer,
					      .deadline_ms = c->http_timeout_ms,
					      .deadline_what = "send its request and read the answer",
					      .first_message_whole = true };
		w->http = http_new(w->loop, c->http_addr, c->http_port, &hlim, web_http, w);
		if (!w->http)
			return -1;
		log_info("http on %s:%u (/healthz /readyz /metrics)", c->http_addr, http_port(w->http));
	}
	if (loop_signal_add(w->loop, SIGTERM, web_on_term, w) < 0 ||
	    loop_signal_add(w->loop, SIGINT, web_on_term, w) < 0 ||
	    loop_signal_add(w->loop, SIGHUP, web_on_hup, w) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	/* Listeners and files are open: the broker connection and everything after run without
	 * root. */
	if (agent_drop_privileges(c->user, c->group) < 0)
		return -1;
	if (mqtt_start(w->mqtt) < 0)
		return -1;
	log_info("instance %s: broker %s%s (MQTT %s), %d users, replies on %s", w->instance,
		 c->mqtt.uri, c->mqtt.nuris > 1 ? " (+ more)" : "",
		 c->mqtt.version == 5 ? "5" : c->mqtt.version == 4 ? "3.1.1" : "5, else 3.1.1",
		 users_count(w->users), relay_reply_filter(w->relay));
	return 0;
}

static void web_teardown(struct web *w)
{
	if (w->mqtt)
		mqtt_stop(w->mqtt, 1000);
	shim_free(w->shim);
	http_free(w->http);
	relay_free(w->relay);
	subs_free(w->subs);
	mqtt_free(w->mqtt);
	audit_free(w->audit);
	history_close(w->history);   /* writes what is still queued */
	cache_free(w->cache);
	users_free(w->users);
	loop_free(w->loop);
	conf_free(&w->conf);
}

int main(int argc, char **argv)
{
	struct agent_args args;
	agent_parse_args(argc, argv, "frAroundWeb", web_usage, NULL, &args);
	const char *config = args.config;
	bool check = args.check;
	struct web w = { 0 };
	if (conf_load(&w.conf, config) < 0) {
		conf_free(&w.conf);
		return 1;
	}
	if (check) {
		/* Strict: an entry the daemon would ignore is an error here. */
		struct users *u = users_load(w.conf.users_file);
		bool ok = u && users_rejected(u) == 0;
		if (ok)
			printf("%s: OK (broker %s, %d users in %s)\n", config, w.conf.mqtt.uri,
			       users_count(u), w.conf.users_file);
		else if (u)
			fprintf(stderr, "%s: %d user entries would be ignored\n", w.conf.users_file,
				users_rejected(u));
		users_free(u);
		conf_free(&w.conf);
		return ok ? 0 : 1;
	}
	agent_start(&args);
	if (web_setup(&w) < 0) {
		log_warnx("start-up failed");
		web_teardown(&w);
		return 1;
	}
	notify_ready();   /* systemd Type=notify: serving now */
	loop_run(w.loop);
	log_info("stopped");
	web_teardown(&w);
	return 0;
}
