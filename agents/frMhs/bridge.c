/* bridge: MQTT topics of the home server; see bridge.h and docs/topics.md. */
#include "bridge.h"

#include "command.h"
#include "lanmsg.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "req.h"
#include "syncmsg.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BRIDGE_LEARN_MS 3000
/* Messages the MQTT client keeps while the broker is away (replies and states; events have
 * their own smaller bound in the bridge). Beyond it they are dropped and counted in
 * fr/<home>/stats. docs/topics.md, "Events". */
#define BRIDGE_MQTT_QUEUE 65536
/* Events handed to the MQTT client while the broker is away (sent on reconnect); beyond,
 * they are dropped, so they can never crowd the replies out of the client's queue. */
#define BRIDGE_OFFLINE_EVENTS 1000
/* A sensor's retained state is published at most this often (the latest value always): a
 * controller that changes a value a thousand times a second must not queue a thousand QoS 1
 * messages ahead of the replies (a broker with a small receive maximum takes ~20 a second). */
#define BRIDGE_STATE_MS 100
/* Sensors whose state is remembered for that (one per controller and sensor). */
#define BRIDGE_STATES_MAX 4096
/* The largest answer on a reply topic to fr/<home>/sync (docs/topics.md). */
#define BRIDGE_SYNC_MAX (256 * 1024)

/* The retained state topic of one sensor. */
struct sstate {
	char *topic;       /* owned */
	char *value;       /* owned: the latest value (fr/<home>/sync answers with it) */
	bool pending;      /* value not published yet (throttled or broker away) */
	uint64_t last;     /* monotonic ms of the last publish */
	struct sstate *next;
};

struct bridge {
	struct loop *loop;
	const struct conf *conf;
	const struct bridge_ops *ops;
	void *arg;
	struct mqtt *mqtt;
	char base[160];          /* "fr/<home>" */
	char reply_base[180];    /* "fr/<home>/reply/" */
	char sync_topic[180];    /* "fr/<home>/sync" */
	bool learning;
	struct loop_timer learn_timer;
	struct sstate *states;
	size_t nstates;
	struct loop_timer state_timer;   /* publishes throttled states */
	struct loop_timer beat_timer;    /* fr/<home>/heartbeat */
	unsigned long long beat_seq;
	unsigned offline_events;   /* events queued since the broker went away */
	struct bridge_counters n;
	struct bridge_status st;
};

static void bridge_status_changed(struct bridge *b)
{
	if (b->ops->on_status)
		b->ops->on_status(b->arg);
}

static int bridge_send(struct bridge *b, const char *topic, const void *payload, size_t len,
		       int qos, bool retain, const void *corr, size_t corr_len)
{
	int rc = mqtt_publish(b->mqtt, topic, payload, len, qos, retain, NULL, corr, corr_len);
	if (rc < 0)
		b->n.publish_failed++;
	return rc;
}

static int bridge_publish(struct bridge *b, const char *topic, const char *payload, int qos,
			  bool retain, const void *corr, size_t corr_len)
{
	return bridge_send(b, topic, payload, strlen(payload), qos, retain, corr, corr_len);
}

static int bridge_publish_json(struct bridge *b, const char *topic, const cJSON *o, int qos,
			       bool retain, const void *corr, size_t corr_len)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		return -1;
	int rc = bridge_publish(b, topic, s, qos, retain, corr, corr_len);
	free(s);
	return rc;
}

static void bridge_topic(struct bridge *b, char *buf, size_t n, const char *ctl, const char *leaf)
{
	snprintf(buf, n, "%s/ctl/%s/%s", b->base, ctl, leaf);
}

/* --- requests --- */

/* Replies are published with the home's own account, which may write anywhere in the home:
 * only fr/<home>/reply/... is let through, so a requester can never make the home server
 * overwrite a status, an info or another controller's topics. */
static bool bridge_reply_topic_ok(const struct bridge *b, const char *topic)
{
	size_t n = strlen(b->reply_base);
	return strncmp(topic, b->reply_base, n) == 0 && topic[n] != '\0' &&
	       strlen(topic) <= COMMAND_TOPIC_MAX && strpbrk(topic, "+#") == NULL;
}

/* A result the bridge gives itself: the request never reaches the request table. */
static void bridge_refuse(struct bridge *b, const char *topic, const void *corr, size_t corr_len,
			  const char *ctl, const char *id, const char *reason)
{
	b->n.refused++;
	cJSON *o = req_result_json(ctl, id, NULL, "rejected", reason, false);
	bridge_publish_json(b, topic, o, 1, false, corr, corr_len);
	cJSON_Delete(o);
}

static void bridge_on_cmd(struct bridge *b, const char *ctl, const struct mqtt_msg *m)
{
	char deftopic[512], why[400];
	if (m->len == 0)
		return;   /* the deletion of a retained message (ours, see below), not a request */
	b->n.requests++;
	bridge_topic(b, deftopic, sizeof deftopic, ctl, "result");
	struct command cmd;
	int prc = command_parse(m->payload, m->len, &cmd, why, sizeof why);
	/* A refused request still names its id and reply_to where they can be read. */
	char peek_id[COMMAND_ID_MAX + 1] = "", peek_rt[COMMAND_TOPIC_MAX + 1] = "";
	if (prc < 0)
		command_peek(m->payload, m->len, peek_id, peek_rt);
	const char *id = prc == 0 ? cmd.id : peek_id[0] ? peek_id : NULL;
	const char *reply_to = prc == 0 ? cmd.reply_to : peek_rt;
	/* Where to answer: MQTT 5 response topic, else reply_to, else the default; a route out of
	 * the reply space is refused, and that answer goes to the default topic. */
	const char *topic = m->response_topic ? m->response_topic : reply_to[0] ? reply_to : deftopic;
	bool route_ok = topic == deftopic || bridge_reply_topic_ok(b, topic);
	if (m->retained) {
		/* It would run again on every reconnect of every subscriber: taken off the broker
		 * (an empty retained message deletes it) and never run. */
		mqtt_publish(b->mqtt, m->topic, "", 0, 1, true, NULL, NULL, 0);
		if (id && b->ops->known(b->arg, ctl, id)) {
			log_info("cmd for %s (id %s): retained copy of a known request removed", ctl, id);
			goto out;
		}
		log_warnx("cmd for %s: retained message not run (retained commands would replay on "
			  "every reconnect); removed from the broker", ctl);
		bridge_refuse(b, route_ok ? topic : deftopic, m->correlation, m->correlation_len, ctl,
			      id, "retained commands are never run; publish with retain=false");
		goto out;
	}
	if (!route_ok) {
		log_warnx("cmd for %s (id %s): reply topic '%.80s' refused: not under %s", ctl,
			  id ? id : "?", topic, b->reply_base);
		snprintf(why, sizeof why, "reply topic must be under %s (MQTT 5 response topic or "
			 "reply_to; at most %d bytes, no + or #); not run", b->reply_base,
			 COMMAND_TOPIC_MAX);
		bridge_refuse(b, deftopic, m->correlation, m->correlation_len, ctl, id, why);
		goto out;
	}
	if (prc < 0) {
		log_warnx("cmd for %s (id %s) rejected: %s", ctl, id ? id : "?", why);
		bridge_refuse(b, topic, m->correlation, m->correlation_len, ctl, id, why);
		return;
	}
	struct req_route rt = { topic, m->correlation, m->correlation_len, cmd.final_only };
	b->ops->on_request(b->arg, ctl, &cmd, &rt);
out:
	if (prc == 0)
		command_clear(&cmd);
}

int bridge_subscribe(struct bridge *b, const char *filter, int qos, const struct mqtt_subopts *opts)
{
	return mqtt_subscribe_opts(b->mqtt, filter, qos, opts);
}

int bridge_publish_raw(struct bridge *b, const char *topic, const void *payload, size_t len,
		       int qos, bool retain)
{
	return bridge_send(b, topic, payload, len, qos, retain, NULL, 0);
}

void bridge_reply(struct bridge *b, const struct req_route *rt, const char *msg, size_t len)
{
	bridge_send(b, rt->topic, msg, len, 1, false, rt->corr, rt->corr_len);
}

void bridge_unclaimed_result(struct bridge *b, const char *ctl, const struct lanmsg *msg)
{
	char topic[512];
	bridge_topic(b, topic, sizeof topic, ctl, "result");
	cJSON *set = cJSON_CreateObject();
	cJSON_AddStringToObject(set, "ctl", ctl);
	size_t len;
	char *text = lanmsg_forward(msg, NULL, set, &len);
	if (text)
		bridge_send(b, topic, text, len, 1, false, NULL, 0);
	else
		b->n.publish_failed++;
	free(text);
	cJSON_Delete(set);
}

void bridge_note_answer(struct bridge *b, const char *ctl, const char *action, const char *status)
{
	snprintf(b->st.last_cmd, sizeof b->st.last_cmd, "%s/%s %s", ctl, action, status);
	bridge_status_changed(b);
}

/* --- controllers --- */

void bridge_publish_ctl(struct bridge *b, const char *ctl, const cJSON *info, bool online)
{
	char topic[512];
	/* Every controller is published on (re)connect: a copy queued now would reach the broker
	 * before frMhs has read the retained info of its previous run. */
	if (!mqtt_is_connected(b->mqtt))
		return;
	bridge_topic(b, topic, sizeof topic, ctl, "info");
	bridge_publish_json(b, topic, info, 1, true, NULL, 0);
	bridge_topic(b, topic, sizeof topic, ctl, "status");
	bridge_publish(b, topic, online ? "online" : "offline", 1, true, NULL, 0);
}

static void bridge_publish_state(struct bridge *b, struct sstate *st)
{
	bridge_publish(b, st->topic, st->value, 1, true, NULL, 0);
	st->pending = false;
	st->last = loop_now(b->loop);
}

/* Publishes what waited: on the throttle's timer and on (re)connect. */
static void bridge_flush_states(void *arg)
{
	struct bridge *b = arg;
	bool left = false;
	if (!mqtt_is_connected(b->mqtt))
		return;   /* again on connect */
	uint64_t now = loop_now(b->loop);
	for (struct sstate *st = b->states; st; st = st->next) {
		if (!st->pending)
			continue;
		if (now - st->last >= BRIDGE_STATE_MS)
			bridge_publish_state(b, st);
		else
			left = true;
	}
	if (left)
		loop_timer_start(b->loop, &b->state_timer, BRIDGE_STATE_MS);
}

/* A sensor's new state: published now, or as soon as the throttle and the broker allow. */
static void bridge_state(struct bridge *b, const char *topic, const char *payload)
{
	struct sstate *st = b->states;
	while (st && strcmp(st->topic, topic) != 0)
		st = st->next;
	if (!st && b->nstates < BRIDGE_STATES_MAX && (st = calloc(1, sizeof *st))) {
		if (!(st->topic = strdup(topic))) {
			free(st);
			st = NULL;
		} else {
			st->next = b->states;
			b->states = st;
			b->nstates++;
		}
	}
	if (!st) {   /* beyond the bound: unthrottled */
		bridge_publish(b, topic, payload, 1, true, NULL, 0);
		return;
	}
	char *p = strdup(payload);
	if (!p) {
		b->n.publish_failed++;
		return;
	}
	free(st->value);
	st->value = p;
	st->pending = true;
	if (!mqtt_is_connected(b->mqtt))
		return;
	if (!st->last || loop_now(b->loop) - st->last >= BRIDGE_STATE_MS)
		bridge_publish_state(b, st);
	else if (!loop_timer_armed(&b->state_timer))
		loop_timer_start(b->loop, &b->state_timer, BRIDGE_STATE_MS);
}

void bridge_ctl_event(struct bridge *b, const char *ctl, const struct lanmsg *msg,
		      const struct lanmsg_event *e)
{
	static const char *const drop[] = { "type", NULL };
	char topic[512];
	bool up = mqtt_is_connected(b->mqtt);
	b->n.events_in++;
	if (strcmp(e->kind, "state") == 0) {
		cJSON *st = cJSON_CreateObject();
		cJSON_AddItemToObject(st, "value", cJSON_Duplicate(e->value, 1));
		cJSON_AddNumberToObject(st, "ts", (double)e->ts_ms);
		char leaf[128];
		snprintf(leaf, sizeof leaf, "state/%s", e->sensor);
		bridge_topic(b, topic, sizeof topic, ctl, leaf);
		char *s = cJSON_PrintUnformatted(st);
		if (s)
			bridge_state(b, topic, s);
		free(s);
		cJSON_Delete(st);
	}
	/* QoS 0 by contract: beyond a small allowance while the broker is away, an event it
	 * cannot take now is counted, not queued. */
	if (!up && b->offline_events >= BRIDGE_OFFLINE_EVENTS) {
		b->n.events_dropped++;
		return;
	}
	if (!up)
		b->offline_events++;
	bridge_topic(b, topic, sizeof topic, ctl, "event");
	size_t len;
	char *s = lanmsg_forward(msg, drop, NULL, &len);
	if (s && mqtt_publish(b->mqtt, topic, s, len, 0, false, NULL, NULL, 0) == 0)
		b->n.events_out++;
	else
		b->n.events_dropped++;
	free(s);
}

void bridge_publish_retained(struct bridge *b, const char *leaf, const cJSON *doc)
{
	char topic[512];
	snprintf(topic, sizeof topic, "%s/%s", b->base, leaf);
	bridge_publish_json(b, topic, doc, 1, true, NULL, 0);
}

/* --- MQTT --- */

static void bridge_on_display(struct bridge *b, const struct mqtt_msg *m)
{
	size_t n = m->len < sizeof b->st.display_text - 1 ? m->len : sizeof b->st.display_text - 1;
	/* Cut before a character that would not fit whole: a split UTF-8 sequence is not text. */
	if (n < m->len)
		while (n > 0 && (((const unsigned char *)m->payload)[n] & 0xC0) == 0x80)
			n--;
	memcpy(b->st.display_text, m->payload, n);
	b->st.display_text[n] = '\0';
	b->st.display_seq++;
	bridge_status_changed(b);
}

/* --- fr/<home>/sync: the home's whole state on request (docs/topics.md) --- */

/* The latest states of one controller, from the throttle's memory: {"<sensor>": {value, ts}}. */
static cJSON *bridge_ctl_states(void *arg, const char *ctl)
{
	const struct bridge *b = arg;
	char prefix[512];
	int n = snprintf(prefix, sizeof prefix, "%s/ctl/%s/state/", b->base, ctl);
	cJSON *states = cJSON_CreateObject();
	if (!states || n < 0 || (size_t)n >= sizeof prefix)
		return states;
	for (const struct sstate *st = b->states; st; st = st->next) {
		if (!st->value || strncmp(st->topic, prefix, (size_t)n) != 0)
			continue;
		cJSON *v = cJSON_Parse(st->value);   /* our own {"value","ts"}: always JSON */
		if (v)
			cJSON_AddItemToObject(states, st->topic + n, v);
	}
	return states;
}

/* A request for the home's state. The reply route follows the rules of commands (MQTT 5
 * response topic, else "reply_to", only under fr/<home>/reply/); without one nobody is
 * answered. A retained request is ignored: it would be answered again on every reconnect. */
static void bridge_on_sync(struct bridge *b, const struct mqtt_msg *m)
{
	struct syncmsg_req r;
	if (m->retained) {
		log_warnx("sync: retained request ignored (publish it with retain=false)");
		return;
	}
	syncmsg_parse(m->payload, m->len, &r);
	const char *id = r.id[0] ? r.id : NULL;
	if (r.warning)
		log_warnx("sync (id %s): %s", id ? id : "?", r.warning);
	const char *topic = m->response_topic ? m->response_topic : r.reply_to[0] ? r.reply_to : NULL;
	if (!topic) {
		log_warnx("sync (id %s): no response topic and no reply_to: not answered",
			  id ? id : "?");
		return;
	}
	if (!bridge_reply_topic_ok(b, topic)) {
		log_warnx("sync (id %s): reply topic '%.80s' refused: not under %s", id ? id : "?",
			  topic, b->reply_base);
		return;
	}
	size_t len = 0;
	char *text = syncmsg_doc(b->conf->home, id, b->conf->heartbeat_interval_s, loop_wall_ms(),
				 b->ops->controllers(b->arg), bridge_ctl_states, b, BRIDGE_SYNC_MAX,
				 &len);
	if (!text) {
		log_warnx("sync (id %s): out of memory, not answered", id ? id : "?");
		return;
	}
	bridge_send(b, topic, text, len, 1, false, m->correlation, m->correlation_len);
	free(text);
}

static void bridge_on_message(void *arg, const struct mqtt_msg *m)
{
	struct bridge *b = arg;
	struct topic t;
	if (strcmp(m->topic, b->sync_topic) == 0) {
		bridge_on_sync(b, m);
		return;
	}
	if (topic_parse(b->conf->prefix, m->topic, &t) == TOPIC_OTHER ||
	    strcmp(t.home, b->conf->home) != 0) {
		if (b->ops->on_other)
			b->ops->on_other(b->arg, m);
		return;
	}
	if (t.kind == TOPIC_DISPLAY) {
		bridge_on_display(b, m);
	} else if (t.kind == TOPIC_CTL && strcmp(t.leaf, "cmd") == 0) {
		bridge_on_cmd(b, t.ctl, m);
	} else if (t.kind == TOPIC_CTL && strcmp(t.leaf, "info") == 0 && b->learning &&
		   m->retained) {
		cJSON *info = cJSON_ParseWithLength(m->payload, m->len);
		if (cJSON_IsObject(info))
			b->ops->on_known_ctl(b->arg, t.ctl, info);
		cJSON_Delete(info);
	}
}

static void bridge_learn_done(void *arg)
{
	struct bridge *b = arg;
	char filter[512];
	b->learning = false;
	snprintf(filter, sizeof filter, "%s/ctl/+/info", b->base);
	mqtt_unsubscribe(b->mqtt, filter);
}

/* The heartbeat: liveness for consumers on brokers that send no will when the node holding the
 * home's connection dies (a cluster). QoS 0, not retained: an old beat means nothing. The
 * interval is in the payload so a consumer needs no configuration (docs/topics.md). */
static void bridge_beat(void *arg)
{
	struct bridge *b = arg;
	char topic[512], msg[128];
	int n = b->conf->heartbeat_interval_s;
	loop_timer_start(b->loop, &b->beat_timer, (uint64_t)n * 1000);
	if (!mqtt_is_connected(b->mqtt))
		return;   /* a beat queued while away would arrive late and say nothing true */
	snprintf(topic, sizeof topic, "%s/heartbeat", b->base);
	int len = snprintf(msg, sizeof msg, "{\"ts\":%llu,\"seq\":%llu,\"interval\":%d}",
			   (unsigned long long)loop_wall_ms(), ++b->beat_seq, n);
	bridge_send(b, topic, msg, (size_t)len, 0, false, NULL, 0);
}

static void bridge_on_connected(void *arg, bool session_present)
{
	struct bridge *b = arg;
	char topic[512];
	log_info("broker connected (session %s)", session_present ? "resumed" : "new");
	snprintf(topic, sizeof topic, "%s/status", b->base);
	bridge_publish(b, topic, "online", 1, true, NULL, 0);
	/* The broker may have lost retained state (no persistence): make it true again. */
	b->ops->on_connected(b->arg);
	for (struct sstate *st = b->states; st; st = st->next)
		st->last = 0;   /* a fresh connection: everything that waited goes now */
	bridge_flush_states(b);
	b->offline_events = 0;
	if (b->conf->heartbeat_interval_s > 0)
		bridge_beat(b);   /* at once: a consumer that marked the home stale hears it back */
	if (!b->st.broker_up) {
		b->st.broker_up = true;
		bridge_status_changed(b);
	}
}

static void bridge_on_disconnected(void *arg, const char *reason)
{
	struct bridge *b = arg;
	log_warnx("broker connection lost: %s", reason ? reason : "?");
	b->st.broker_up = false;
	bridge_status_changed(b);
}

static const struct mqtt_ops bridge_mqtt_ops = { bridge_on_connected, bridge_on_disconnected,
						 bridge_on_message };

/* --- lifecycle --- */

struct bridge *bridge_new(struct loop *loop, const struct conf *conf, const struct bridge_ops *ops,
			  void *arg)
{
	struct bridge *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->loop = loop;
	b->conf = conf;
	b->ops = ops;
	b->arg = arg;
	snprintf(b->base, sizeof b->base, "%s/%s", conf->prefix, conf->home);
	snprintf(b->reply_base, sizeof b->reply_base, "%s/reply/", b->base);
	snprintf(b->sync_topic, sizeof b->sync_topic, "%s/sync", b->base);
	loop_timer_init(&b->learn_timer, bridge_learn_done, b);
	loop_timer_init(&b->state_timer, bridge_flush_states, b);
	loop_timer_init(&b->beat_timer, bridge_beat, b);
	char will[512], client[200];
	snprintf(will, sizeof will, "%s/status", b->base);
	snprintf(client, sizeof client, "frMhs-%s", conf->home);
	struct mqtt_opts o = {
		.clean = false, .will_topic = will, .will_payload = "offline", .will_qos = 1,
		.will_retain = true, .max_buffered = BRIDGE_MQTT_QUEUE,
	};
	mqttconf_opts(&conf->mqtt, client, &o);
	b->mqtt = mqtt_new(loop, &o, &bridge_mqtt_ops, b);
	if (!b->mqtt) {
		bridge_free(b);
		return NULL;
	}
	return b;
}

int bridge_start(struct bridge *b)
{
	char filter[512];
	snprintf(filter, sizeof filter, "%s/ctl/+/cmd", b->base);
	if (mqtt_subscribe(b->mqtt, filter, 1) < 0)
		return -1;
	snprintf(filter, sizeof filter, "%s/display", b->base);
	if (mqtt_subscribe(b->mqtt, filter, 1) < 0)
		return -1;
	if (mqtt_subscribe(b->mqtt, b->sync_topic, 1) < 0)
		return -1;
	/* Controllers known from the previous run: their retained info says where they were (the
	 * state dir says it first; this is for a home server without one). */
	snprintf(filter, sizeof filter, "%s/ctl/+/info", b->base);
	b->learning = true;
	if (mqtt_subscribe(b->mqtt, filter, 1) < 0)
		return -1;
	loop_timer_start(b->loop, &b->learn_timer, BRIDGE_LEARN_MS);
	return mqtt_start(b->mqtt);
}

void bridge_stop(struct bridge *b)
{
	char topic[512];
	if (!b->mqtt)
		return;
	if (mqtt_is_connected(b->mqtt)) {
		/* Controller statuses are left as they were, as after a crash: they are only
		 * meaningful while the home's own status is online (docs/topics.md). */
		snprintf(topic, sizeof topic, "%s/status", b->base);
		mqtt_publish(b->mqtt, topic, "offline", 7, 1, true, NULL, NULL, 0);
	}
	mqtt_stop(b->mqtt, 2000);
}

void bridge_free(struct bridge *b)
{
	if (!b)
		return;
	loop_timer_stop(b->loop, &b->learn_timer);
	mqtt_free(b->mqtt);
	loop_timer_stop(b->loop, &b->state_timer);
	loop_timer_stop(b->loop, &b->beat_timer);
	while (b->states) {
		struct sstate *st = b->states;
		b->states = st->next;
		free(st->topic);
		free(st->value);
		free(st);
	}
	free(b);
}

const struct bridge_status *bridge_status(const struct bridge *b) { return &b->st; }
const struct bridge_counters *bridge_counters(const struct bridge *b) { return &b->n; }
bool bridge_connected(const struct bridge *b) { return mqtt_is_connected(b->mqtt); }
