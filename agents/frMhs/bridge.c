/* bridge: MQTT topics <-> controllers; see bridge.h and docs/topics.md. */
#include "bridge.h"

#include "command.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "registry.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BRIDGE_INFLIGHT_MAX 10000
#define BRIDGE_LEARN_MS 3000

enum req_state { REQ_QUEUED, REQ_SENT, REQ_ACCEPTED, REQ_STARTED, REQ_DONE };

struct req {
	struct bridge *b;
	char key[COMMAND_NAME_MAX + COMMAND_ID_MAX + 2];   /* "<ctl>/<id>" */
	char ctl[COMMAND_NAME_MAX + 1];
	char id[COMMAND_ID_MAX + 1];
	char action[COMMAND_NAME_MAX + 1];
	char *topic;          /* where replies go; owned */
	void *corr;           /* MQTT 5 correlation data; owned */
	size_t corr_len;
	bool final_only;      /* the requester wants the final result only */
	cJSON *cmd;           /* the link frame; owned; NULL once done */
	cJSON *final;         /* the final reply; owned */
	enum req_state state;
	int sends;            /* times the command went over a link */
	uint64_t received;    /* monotonic ms */
	struct loop_timer guard;
	struct req *hnext;    /* hash chain */
	struct req *prev, *next;  /* age list, oldest first */
};

struct bridge {
	struct loop *loop;
	const struct conf *conf;
	struct registry *reg;
	struct mqtt *mqtt;
	char base[160];       /* "fr/<home>" */
	struct req **buckets;
	size_t nbuckets;
	struct req *oldest, *newest;
	size_t nreqs, ndone, ninflight;
	bool learning;
	struct loop_timer learn_timer;
	struct bridge_status st;
	void (*status_cb)(void *);
	void *status_arg;
};

static void bridge_status_changed(struct bridge *b)
{
	if (b->status_cb)
		b->status_cb(b->status_arg);
}

/* --- request table --- */

static size_t bridge_hash(const char *s)
{
	size_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static struct req *bridge_req_find(struct bridge *b, const char *key)
{
	for (struct req *r = b->buckets[bridge_hash(key) & (b->nbuckets - 1)]; r; r = r->hnext)
		if (strcmp(r->key, key) == 0)
			return r;
	return NULL;
}

static void bridge_req_free(struct bridge *b, struct req *r)
{
	struct req **pp = &b->buckets[bridge_hash(r->key) & (b->nbuckets - 1)];
	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	if (r->prev)
		r->prev->next = r->next;
	else
		b->oldest = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		b->newest = r->prev;
	loop_timer_stop(b->loop, &r->guard);
	if (r->state == REQ_DONE)
		b->ndone--;
	else
		b->ninflight--;
	b->nreqs--;
	free(r->topic);
	free(r->corr);
	cJSON_Delete(r->cmd);
	cJSON_Delete(r->final);
	free(r);
}

/* Finished requests are forgotten oldest first beyond dedup_max; in-flight ones never are. */
static void bridge_req_evict(struct bridge *b)
{
	struct req *r = b->oldest;
	while (r && b->ndone > (size_t)b->conf->dedup_max) {
		struct req *next = r->next;
		if (r->state == REQ_DONE)
			bridge_req_free(b, r);
		r = next;
	}
}

static void bridge_req_guard(void *arg);

static struct req *bridge_req_new(struct bridge *b, const char *ctl, const char *id)
{
	struct req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->b = b;
	snprintf(r->ctl, sizeof r->ctl, "%s", ctl);
	snprintf(r->id, sizeof r->id, "%s", id);
	snprintf(r->key, sizeof r->key, "%s/%s", ctl, id);
	r->received = loop_now(b->loop);
	loop_timer_init(&r->guard, bridge_req_guard, r);
	size_t h = bridge_hash(r->key) & (b->nbuckets - 1);
	r->hnext = b->buckets[h];
	b->buckets[h] = r;
	r->prev = b->newest;
	if (b->newest)
		b->newest->next = r;
	else
		b->oldest = r;
	b->newest = r;
	b->nreqs++;
	b->ninflight++;
	return r;
}

/* --- publishing --- */

static int bridge_publish_json(struct bridge *b, const char *topic, const cJSON *o, int qos,
			       bool retain, const void *corr, size_t corr_len)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		return -1;
	int rc = mqtt_publish(b->mqtt, topic, s, strlen(s), qos, retain, NULL, corr, corr_len);
	free(s);
	return rc;
}

static void bridge_topic(struct bridge *b, char *buf, size_t n, const char *ctl, const char *leaf)
{
	snprintf(buf, n, "%s/ctl/%s/%s", b->base, ctl, leaf);
}

/* A reply (accepted/started/result) to wherever the request asked. */
static void bridge_reply(struct bridge *b, struct req *r, cJSON *msg)
{
	cJSON_DeleteItemFromObjectCaseSensitive(msg, "ctl");
	cJSON_AddStringToObject(msg, "ctl", r->ctl);
	cJSON_DeleteItemFromObjectCaseSensitive(msg, "id");
	cJSON_AddStringToObject(msg, "id", r->id);
	if (!cJSON_GetObjectItemCaseSensitive(msg, "ts"))
		cJSON_AddNumberToObject(msg, "ts", (double)loop_wall_ms());
	bridge_publish_json(b, r->topic, msg, 1, false, r->corr, r->corr_len);
}

/* Replies to a request that never got a req entry (unparseable, retained, table full). */
static void bridge_reply_direct(struct bridge *b, const char *topic, const void *corr,
				size_t corr_len, const char *ctl, const char *id,
				const char *status, const char *reason)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "result");
	if (id)
		cJSON_AddStringToObject(o, "id", id);
	else
		cJSON_AddNullToObject(o, "id");
	cJSON_AddStringToObject(o, "ctl", ctl);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddNumberToObject(o, "ts", (double)loop_wall_ms());
	bridge_publish_json(b, topic, o, 1, false, corr, corr_len);
	cJSON_Delete(o);
}

static void bridge_req_finish(struct bridge *b, struct req *r, cJSON *final)
{
	bridge_reply(b, r, final);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(final, "status");
	snprintf(b->st.last_cmd, sizeof b->st.last_cmd, "%s/%s %s", r->ctl, r->action,
		 cJSON_IsString(st) ? st->valuestring : "?");
	log_info("request %s (%s): %s", r->key, r->action, cJSON_IsString(st) ? st->valuestring : "?");
	r->final = final;
	r->state = REQ_DONE;
	cJSON_Delete(r->cmd);
	r->cmd = NULL;
	loop_timer_stop(b->loop, &r->guard);
	b->ninflight--;
	b->ndone++;
	bridge_status_changed(b);
	bridge_req_evict(b);
}

static void bridge_req_fail(struct bridge *b, struct req *r, const char *status, const char *reason)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "result");
	cJSON_AddStringToObject(o, "action", r->action);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "reason", reason);
	bridge_req_finish(b, r, o);
}

static void bridge_req_guard(void *arg)
{
	struct req *r = arg;
	bridge_req_fail(r->b, r, "lost", "no result from the controller within the action's timeout");
}

static void bridge_req_send(struct bridge *b, struct req *r, struct ctl *c)
{
	if (ctl_send(c, r->cmd) < 0)
		return;  /* stays queued; sent again on the next link up */
	r->sends++;
	if (r->state == REQ_QUEUED)
		r->state = REQ_SENT;
	/* The controller enforces the timeout; this guard only catches a result that never comes. */
	uint64_t t = ctl_action_timeout(c, r->action);
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(r->cmd, "timeout");
	if (cJSON_IsNumber(rt) && (!t || rt->valuedouble * 1000.0 < (double)t))
		t = (uint64_t)(rt->valuedouble * 1000.0);
	if (!t)
		t = 300000;
	loop_timer_start(b->loop, &r->guard, t + b->conf->result_grace_ms);
}

/* --- incoming requests --- */

static void bridge_on_cmd(struct bridge *b, const char *ctl, const struct mqtt_msg *m)
{
	char deftopic[512];
	bridge_topic(b, deftopic, sizeof deftopic, ctl, "result");
	struct command cmd;
	char why[256];
	int prc = command_parse(m->payload, m->len, &cmd, why, sizeof why);
	/* Where to answer: MQTT 5 response topic, else reply_to, else the default. */
	const char *topic = m->response_topic ? m->response_topic
			    : (prc == 0 && cmd.reply_to[0]) ? cmd.reply_to : deftopic;
	if (m->retained) {
		log_warnx("cmd for %s: retained message not run (retained commands would replay on every reconnect)",
			  ctl);
		bridge_reply_direct(b, topic, m->correlation, m->correlation_len, ctl,
				    prc == 0 ? cmd.id : NULL, "rejected",
				    "retained commands are never run; publish with retain=false");
		goto out;
	}
	if (prc < 0) {
		log_warnx("cmd for %s rejected: %s", ctl, why);
		bridge_reply_direct(b, topic, m->correlation, m->correlation_len, ctl, NULL,
				    "rejected", why);
		return;
	}
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl, cmd.id);
	struct req *r = bridge_req_find(b, key);
	if (r) {
		/* A redelivery (QoS 1 dup, a client retry): answer, never run again. */
		log_info("request %s: repeated; answered, not run again", key);
		cJSON *o;
		if (r->state == REQ_DONE) {
			o = cJSON_Duplicate(r->final, 1);
		} else if (r->final_only) {
			goto out;  /* the final result will follow */
		} else {
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "type", r->state == REQ_STARTED ? "started" : "accepted");
		}
		cJSON_DeleteItemFromObjectCaseSensitive(o, "duplicate");
		cJSON_AddBoolToObject(o, "duplicate", 1);
		cJSON_DeleteItemFromObjectCaseSensitive(o, "ts");
		/* Answer where this copy asked, which may differ from the first. */
		cJSON_AddStringToObject(o, "ctl", ctl);
		cJSON_AddStringToObject(o, "id", cmd.id);
		cJSON_AddNumberToObject(o, "ts", (double)loop_wall_ms());
		bridge_publish_json(b, topic, o, 1, false, m->correlation, m->correlation_len);
		cJSON_Delete(o);
		goto out;
	}
	if (b->ninflight >= BRIDGE_INFLIGHT_MAX) {
		bridge_reply_direct(b, topic, m->correlation, m->correlation_len, ctl, cmd.id, "busy",
				    "the home server has too many requests in flight");
		goto out;
	}
	r = bridge_req_new(b, ctl, cmd.id);
	if (!r)
		goto out;
	snprintf(r->action, sizeof r->action, "%s", cmd.action);
	r->topic = strdup(topic);
	r->final_only = cmd.final_only;
	if (m->correlation_len && (r->corr = malloc(m->correlation_len))) {
		memcpy(r->corr, m->correlation, m->correlation_len);
		r->corr_len = m->correlation_len;
	}
	r->cmd = command_to_json(&cmd);
	cJSON_DeleteItemFromObjectCaseSensitive(r->cmd, "reply_to");
	cJSON_DeleteItemFromObjectCaseSensitive(r->cmd, "progress");
	cJSON_AddStringToObject(r->cmd, "type", "command");
	struct ctl *c = b->reg ? registry_find(b->reg, ctl) : NULL;
	if (!c) {
		bridge_req_fail(b, r, "offline", "no such controller in this home");
	} else if (!ctl_online(c)) {
		snprintf(why, sizeof why, "controller is offline: %s", ctl_offline_reason(c));
		bridge_req_fail(b, r, "offline", why);
	} else if (ctl_link_up(c)) {
		bridge_req_send(b, r, c);
	} else {
		/* Online but relinking: the request waits for the link, or for the offline verdict. */
		log_info("request %s: queued until the link to %s is back", key, ctl);
	}
out:
	command_clear(&cmd);
}

static void bridge_on_display(struct bridge *b, const struct mqtt_msg *m)
{
	size_t n = m->len < sizeof b->st.display_text - 1 ? m->len : sizeof b->st.display_text - 1;
	memcpy(b->st.display_text, m->payload, n);
	b->st.display_text[n] = '\0';
	b->st.display_seq++;
	bridge_status_changed(b);
}

static void bridge_on_message(void *arg, const struct mqtt_msg *m)
{
	struct bridge *b = arg;
	struct topic t;
	if (topic_parse(b->conf->prefix, m->topic, &t) == TOPIC_OTHER ||
	    strcmp(t.home, b->conf->home) != 0)
		return;
	if (t.kind == TOPIC_DISPLAY) {
		bridge_on_display(b, m);
	} else if (t.kind == TOPIC_CTL && strcmp(t.leaf, "cmd") == 0) {
		bridge_on_cmd(b, t.ctl, m);
	} else if (t.kind == TOPIC_CTL && strcmp(t.leaf, "info") == 0 && b->learning &&
		   m->retained && b->reg) {
		cJSON *info = cJSON_ParseWithLength(m->payload, m->len);
		if (cJSON_IsObject(info))
			registry_add_known(b->reg, t.ctl, info);
		cJSON_Delete(info);
	}
}

static void bridge_publish_ctl(struct bridge *b, struct ctl *c)
{
	char topic[512];
	bridge_topic(b, topic, sizeof topic, ctl_id(c), "info");
	cJSON *info = ctl_info_json(c);
	bridge_publish_json(b, topic, info, 1, true, NULL, 0);
	cJSON_Delete(info);
	bridge_topic(b, topic, sizeof topic, ctl_id(c), "status");
	const char *s = ctl_online(c) ? "online" : "offline";
	mqtt_publish(b->mqtt, topic, s, strlen(s), 1, true, NULL, NULL, 0);
}

static void bridge_learn_done(void *arg)
{
	struct bridge *b = arg;
	char filter[512];
	b->learning = false;
	snprintf(filter, sizeof filter, "%s/ctl/+/info", b->base);
	mqtt_unsubscribe(b->mqtt, filter);
}

static void bridge_on_connected(void *arg, bool session_present)
{
	struct bridge *b = arg;
	char topic[512];
	log_info("broker connected (session %s)", session_present ? "resumed" : "new");
	snprintf(topic, sizeof topic, "%s/status", b->base);
	mqtt_publish(b->mqtt, topic, "online", 6, 1, true, NULL, NULL, 0);
	/* The broker may have lost retained state (no persistence): make it true again. */
	if (b->reg)
		for (struct ctl *c = registry_first(b->reg); c; c = registry_next(c))
			bridge_publish_ctl(b, c);
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

/* --- registry events --- */

void bridge_ctl_changed(struct bridge *b, struct ctl *c)
{
	bridge_publish_ctl(b, c);
	bridge_status_changed(b);
}

void bridge_ctl_link_up(struct bridge *b, struct ctl *c)
{
	/* (Re)send everything not finished for this controller: the controller's journal turns a
	 * repeat into an answer, so a link that dropped mid-run still yields the result. */
	for (struct req *r = b->oldest; r; r = r->next)
		if (r->state != REQ_DONE && strcmp(r->ctl, ctl_id(c)) == 0)
			bridge_req_send(b, r, c);
}

void bridge_ctl_offline(struct bridge *b, struct ctl *c)
{
	char why[256];
	snprintf(why, sizeof why, "controller went offline: %s", ctl_offline_reason(c));
	for (struct req *r = b->oldest, *next; r; r = next) {
		next = r->next;
		if (r->state == REQ_DONE || strcmp(r->ctl, ctl_id(c)) != 0)
			continue;
		/* Queued requests never reached it; sent ones may or may not have run. */
		bridge_req_fail(b, r, r->state == REQ_QUEUED ? "offline" : "lost", why);
	}
}

void bridge_ctl_msg(struct bridge *b, struct ctl *c, const cJSON *msg)
{
	const char *type = cJSON_GetObjectItemCaseSensitive(msg, "type")->valuestring;
	char topic[512];
	if (strcmp(type, "event") == 0) {
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(msg, "kind");
		const cJSON *sensor = cJSON_GetObjectItemCaseSensitive(msg, "sensor");
		if (cJSON_IsString(kind) && strcmp(kind->valuestring, "state") == 0 &&
		    cJSON_IsString(sensor) && command_valid_name(sensor->valuestring, COMMAND_NAME_MAX)) {
			cJSON *st = cJSON_CreateObject();
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, "value");
			const cJSON *ts = cJSON_GetObjectItemCaseSensitive(msg, "ts");
			cJSON_AddItemToObject(st, "value", v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
			cJSON_AddNumberToObject(st, "ts", cJSON_IsNumber(ts) ? ts->valuedouble : (double)loop_wall_ms());
			char leaf[128];
			snprintf(leaf, sizeof leaf, "state/%s", sensor->valuestring);
			bridge_topic(b, topic, sizeof topic, ctl_id(c), leaf);
			bridge_publish_json(b, topic, st, 1, true, NULL, 0);
			cJSON_Delete(st);
		}
		cJSON *e = cJSON_Duplicate(msg, 1);
		cJSON_DeleteItemFromObjectCaseSensitive(e, "type");
		bridge_topic(b, topic, sizeof topic, ctl_id(c), "event");
		bridge_publish_json(b, topic, e, 0, false, NULL, 0);
		cJSON_Delete(e);
		return;
	}
	if (strcmp(type, "accepted") && strcmp(type, "started") && strcmp(type, "result"))
		return;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (!cJSON_IsString(id))
		return;
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl_id(c), id->valuestring);
	struct req *r = bridge_req_find(b, key);
	if (!r) {
		/* A result for a request this process does not know (sent before a restart of
		 * frMhs, or by frcmd): the default result topic is the best place for it. */
		if (strcmp(type, "result") == 0) {
			bridge_topic(b, topic, sizeof topic, ctl_id(c), "result");
			cJSON *o = cJSON_Duplicate(msg, 1);
			cJSON_AddStringToObject(o, "ctl", ctl_id(c));
			bridge_publish_json(b, topic, o, 1, false, NULL, 0);
			cJSON_Delete(o);
		}
		return;
	}
	if (r->state == REQ_DONE)
		return;
	cJSON *o = cJSON_Duplicate(msg, 1);
	/* After our own resend (a relink mid-run) the controller's duplicate flag is an artefact:
	 * the requester sent once. On a first send it is real: the id ran before (e.g. before
	 * this frMhs restarted) and the requester must know this is not a new run. */
	if (r->sends > 1)
		cJSON_DeleteItemFromObjectCaseSensitive(o, "duplicate");
	if (strcmp(type, "result") == 0) {
		bridge_req_finish(b, r, o);
		return;
	}
	enum req_state ns = strcmp(type, "accepted") == 0 ? REQ_ACCEPTED : REQ_STARTED;
	if (ns > r->state) {
		r->state = ns;
		if (!r->final_only)
			bridge_reply(b, r, o);
	}
	cJSON_Delete(o);
}

/* --- lifecycle --- */

struct bridge *bridge_new(struct loop *loop, const struct conf *conf)
{
	struct bridge *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->loop = loop;
	b->conf = conf;
	snprintf(b->base, sizeof b->base, "%s/%s", conf->prefix, conf->home);
	b->nbuckets = 1;
	while (b->nbuckets < (size_t)conf->dedup_max * 2)
		b->nbuckets <<= 1;
	b->buckets = calloc(b->nbuckets, sizeof *b->buckets);
	loop_timer_init(&b->learn_timer, bridge_learn_done, b);
	char will[512], client[200];
	snprintf(will, sizeof will, "%s/status", b->base);
	snprintf(client, sizeof client, "frMhs-%s", conf->home);
	struct mqtt_opts o = {
		.clean = false, .will_topic = will, .will_payload = "offline", .will_qos = 1,
		.will_retain = true,
	};
	mqttconf_opts(&conf->mqtt, client, &o);
	b->mqtt = b->buckets ? mqtt_new(loop, &o, &bridge_mqtt_ops, b) : NULL;
	if (!b->mqtt) {
		bridge_free(b);
		return NULL;
	}
	return b;
}

void bridge_set_registry(struct bridge *b, struct registry *reg) { b->reg = reg; }

int bridge_start(struct bridge *b)
{
	char filter[512];
	snprintf(filter, sizeof filter, "%s/ctl/+/cmd", b->base);
	if (mqtt_subscribe(b->mqtt, filter, 1) < 0)
		return -1;
	snprintf(filter, sizeof filter, "%s/display", b->base);
	if (mqtt_subscribe(b->mqtt, filter, 1) < 0)
		return -1;
	/* Controllers known from the previous run: their retained info says where they were. */
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
	while (b->oldest)
		bridge_req_free(b, b->oldest);
	loop_timer_stop(b->loop, &b->learn_timer);
	mqtt_free(b->mqtt);
	free(b->buckets);
	free(b);
}

const struct bridge_status *bridge_status(const struct bridge *b) { return &b->st; }

void bridge_on_status(struct bridge *b, void (*cb)(void *arg), void *arg)
{
	b->status_cb = cb;
	b->status_arg = arg;
}
