/* session: a shim client's state and operations but history (sesshist.c); see session.h and
 * docs/shim.md. */
#include "session.h"
#include "session_int.h"

#include "audit.h"
#include "cache.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "relay.h"
#include "shim.h"
#include "subs.h"
#include "users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_AUTH_TRIES 5
/* How long a publish waits for the broker's acknowledgment before it is answered timeout. */
#define SESSION_PUBLISH_WAIT_MS 10000

/* One "subscribe" of the client. */
struct csub {
	struct session *s;
	cJSON *id;                        /* the subscribe request's id; owned */
	char home[SHIM_NAME_MAX + 1];
	struct subs_ref *ref;
	struct csub *next;
};

/* A publish waiting for the broker's acknowledgment (docs/shim.md: ok = the broker has it). */
struct pubwait {
	struct session *s;
	cJSON *id;                        /* the publish request's id; owned */
	uint64_t ticket;
	struct loop_timer timer;
	struct pubwait *next;
};

struct session *session_new(struct client *c, const struct shim_deps *d)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->c = c;
	s->d = d;
	return s;
}

static void csub_free(struct session *s, struct csub *u)
{
	subs_remove(s->d->subs, u->ref);
	cJSON_Delete(u->id);
	free(u);
}

static void pubwait_free(struct session *s, struct pubwait *w)
{
	loop_timer_stop(s->d->loop, &w->timer);
	cJSON_Delete(w->id);
	free(w);
}

void session_detach(struct session *s)
{
	s->detached = true;
	session_history_drop(s);
	relay_detach(s->d->relay, s);
	/* Nobody is left to answer: the messages stay with the broker connection, their
	 * acknowledgments are not waited for. */
	while (s->pubs) {
		struct pubwait *w = s->pubs;
		s->pubs = w->next;
		mqtt_publish_forget(s->d->mqtt, w->ticket);
		pubwait_free(s, w);
	}
}

void session_free(struct session *s)
{
	if (!s)
		return;
	session_detach(s);
	while (s->subs) {
		struct csub *u = s->subs;
		s->subs = u->next;
		csub_free(s, u);
	}
	free(s);
}

const char *session_user(const struct session *s)
{
	return s->user ? s->user->name : NULL;
}

void session_send(struct session *s, cJSON *line)
{
	if (line && !s->detached)
		shim_client_send(s->c, line);
	cJSON_Delete(line);
}

void session_error(struct session *s, const cJSON *id, enum shim_err code, const char *msg)
{
	if (!s->detached)
		shim_client_error(s->c, id, code, msg);
}

bool session_admit(struct session *s, const cJSON *id)
{
	if (s->inflight < s->d->conf->max_inflight)
		return true;
	session_error(s, id, SHIM_E_TOO_MANY, "too many requests in flight");
	return false;
}

bool session_home_ok(const struct session *s, const char *home)
{
	return s->user && users_has_home(s->user, home);
}

/* --- auth, ping, publish, get --- */

static void op_auth(struct session *s, const struct shim_req *r)
{
	uint8_t h[32];
	if (users_hash_token(r->token, h) < 0) {
		session_error(s, r->id, SHIM_E_INTERNAL, "hash failed");
		return;
	}
	const struct user *u = users_find_hash(s->d->users, h);
	if (!u) {
		s->auth_failures++;
		shim_client_wrong_token(s->c, s->auth_failures);
		session_error(s, r->id, SHIM_E_AUTH, "wrong token");
		if (s->auth_failures >= SESSION_AUTH_TRIES)
			shim_client_close_after(s->c, METRICS_DISC_AUTH, "too many wrong tokens");
		return;
	}
	if (!s->user && shim_client_authenticated(s->c, r->id) < 0)
		return;
	s->user = u;
	memcpy(s->token_hash, h, 32);
	log_info("shim client %s: user %s", shim_client_peer(s->c), u->name);
	cJSON *o = shimproto_ok(r->id);
	cJSON_AddStringToObject(o, "user", u->name);
	cJSON *homes = cJSON_AddArrayToObject(o, "homes");
	for (int i = 0; homes && i < u->nhomes; i++)
		cJSON_AddItemToArray(homes, cJSON_CreateString(u->homes[i]));
	/* The page speaks to the same broker: it connects with the version this agent speaks (the
	 * one configured until a first connection says which "auto" gives). */
	int v = mqtt_version(s->d->mqtt);
	if (!v)
		v = s->d->conf->mqtt.version;
	cJSON_AddItemToObject(o, "mqtt_version", v ? cJSON_CreateNumber(v) : cJSON_CreateNull());
	session_send(s, o);
}

static void op_ping(struct session *s, const struct shim_req *r)
{
	cJSON *o = shimproto_ok(r->id);
	cJSON_AddNumberToObject(o, "time", (double)loop_wall_ms());
	session_send(s, o);
}

/* Answers a waiting publish and drops it. */
static void pubwait_end(struct pubwait *w, enum shim_err code, const char *msg)
{
	struct session *s = w->s;
	struct pubwait **p;

	for (p = &s->pubs; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	if (code == SHIM_OK)
		session_send(s, shimproto_ok(w->id));
	else
		session_error(s, w->id, code, msg);
	s->inflight--;
	pubwait_free(s, w);
}

static void pubwait_done(void *arg, uint64_t ticket, int err)
{
	(void)ticket;
	pubwait_end(arg, err == 0 ? SHIM_OK : err == -EACCES ? SHIM_E_FORBIDDEN : SHIM_E_INTERNAL,
		    "the broker refused the message");
}

static void pubwait_expired(void *arg)
{
	struct pubwait *w = arg;
	mqtt_publish_forget(w->s->d->mqtt, w->ticket);
	pubwait_end(w, SHIM_E_TIMEOUT,
		    "no acknowledgment from the broker yet (it may still deliver the message)");
}

static void op_publish(struct session *s, const struct shim_req *r)
{
	const char *prefix = s->d->conf->prefix;
	char home[SHIM_NAME_MAX + 1];
	if (!shimproto_publish_allowed(prefix, r->topic, r->retain) ||
	    !shimproto_topic_home(prefix, r->topic, false, home) || !session_home_ok(s, home)) {
		session_error(s, r->id, SHIM_E_FORBIDDEN, "topic not allowed");
		return;
	}
	if (!session_admit(s, r->id))
		return;
	char *p = cJSON_IsString(r->payload) ? strdup(r->payload->valuestring)
					     : cJSON_PrintUnformatted(r->payload);
	struct pubwait *w = calloc(1, sizeof *w);
	if (!p || !w || !(w->id = cJSON_Duplicate(r->id, true))) {
		free(p);
		free(w);
		session_error(s, r->id, SHIM_E_INTERNAL, "out of memory");
		return;
	}
	w->s = s;
	/* ok only once the broker has it (docs/shim.md), as mosquitto_pub -q 1 reports. */
	int rc = mqtt_publish_tracked(s->d->mqtt, r->topic, p, strlen(p), r->qos, r->retain, NULL,
				      NULL, 0, pubwait_done, w, &w->ticket);
	free(p);
	if (rc < 0) {
		cJSON_Delete(w->id);
		free(w);
		session_error(s, r->id, SHIM_E_INTERNAL, "broker unreachable");
		return;
	}
	w->next = s->pubs;
	s->pubs = w;
	s->inflight++;
	loop_timer_init(&w->timer, pubwait_expired, w);
	loop_timer_start(s->d->loop, &w->timer, SESSION_PUBLISH_WAIT_MS);
}

/* A home that stopped its heartbeats (cache.h): its status reads as stale, with why, unless it
 * is offline (a will or a clean stop says more than silence does). */
static bool session_stale(const struct session *s, const char *home, const struct cache_entry *st,
			  char *reason, size_t n)
{
	uint64_t silent;
	if ((st && strcmp(st->payload, "offline") == 0) ||
	    !cache_stale(s->d->cache, home, loop_now(s->d->loop), &silent))
		return false;
	snprintf(reason, n, "no heartbeat for %llu s", (unsigned long long)(silent / 1000));
	return true;
}

static void op_get(struct session *s, const struct shim_req *r)
{
	char home[SHIM_NAME_MAX + 1];
	if (!shimproto_topic_home(s->d->conf->prefix, r->topic, false, home) || !session_home_ok(s, home)) {
		session_error(s, r->id, SHIM_E_FORBIDDEN, "topic not under a granted home");
		return;
	}
	const struct cache_entry *e = cache_get(s->d->cache, r->topic);
	if (!e) {
		session_error(s, r->id, SHIM_E_NOT_FOUND, "no cached value");
		return;
	}
	cJSON *o = shimproto_ok(r->id);
	cJSON_AddStringToObject(o, "topic", e->topic);
	cJSON_AddItemToObject(o, "payload", shimproto_payload(e->payload, e->len));
	cJSON_AddBoolToObject(o, "retained", e->retained);
	cJSON_AddNumberToObject(o, "received", (double)e->received);
	char status[256], reason[64];
	snprintf(status, sizeof status, "%s/%s/status", s->d->conf->prefix, home);
	if (strcmp(e->topic, status) == 0 && session_stale(s, home, e, reason, sizeof reason)) {
		cJSON_AddBoolToObject(o, "stale", true);
		cJSON_AddStringToObject(o, "reason", reason);
	}
	session_send(s, o);
}

/* --- list --- */

struct list_ctx {
	const char *ctl_prefix;   /* "<prefix>/<home>/ctl/" */
	size_t skip;              /* its length */
	cJSON *ctls;
};

static cJSON *list_ctl(cJSON *ctls, const char *id, size_t n)
{
	cJSON *c;
	cJSON_ArrayForEach(c, ctls) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "id");
		if (strlen(v->valuestring) == n && memcmp(v->valuestring, id, n) == 0)
			return c;
	}
	c = cJSON_CreateObject();
	char *s = strndup(id, n);
	cJSON_AddStringToObject(c, "id", s ? s : "");
	free(s);
	cJSON_AddNullToObject(c, "status");
	cJSON_AddNullToObject(c, "info");
	cJSON_AddObjectToObject(c, "state");
	cJSON_AddItemToArray(ctls, c);
	return c;
}

static void list_entry(void *arg, const struct cache_entry *e)
{
	struct list_ctx *l = arg;
	if (strncmp(e->topic, l->ctl_prefix, l->skip) != 0)
		return;   /* the home's own status */
	const char *id = e->topic + l->skip, *slash = strchr(id, '/');
	if (!slash)
		return;
	cJSON *c = list_ctl(l->ctls, id, (size_t)(slash - id));
	const char *leaf = slash + 1;
	if (strcmp(leaf, "status") == 0)
		cJSON_ReplaceItemInObjectCaseSensitive(c, "status", cJSON_CreateString(e->payload));
	else if (strcmp(leaf, "info") == 0)
		cJSON_ReplaceItemInObjectCaseSensitive(c, "info", shimproto_payload(e->payload, e->len));
	else if (strncmp(leaf, "state/", 6) == 0)
		cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(c, "state"), leaf + 6,
				      shimproto_payload(e->payload, e->len));
}

static int list_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(cJSON_GetObjectItemCaseSensitive(x, "id")->valuestring,
		      cJSON_GetObjectItemCaseSensitive(y, "id")->valuestring);
}

/* Controllers sorted by id so answers are stable. */
static cJSON *list_sorted(cJSON *ctls)
{
	int n = cJSON_GetArraySize(ctls);
	if (n < 2)
		return ctls;
	cJSON **v = calloc((size_t)n, sizeof *v);
	if (!v)
		return ctls;
	for (int i = n - 1; i >= 0; i--)
		v[i] = cJSON_DetachItemFromArray(ctls, i);
	qsort(v, (size_t)n, sizeof *v, list_cmp);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(ctls, v[i]);
	free(v);
	return ctls;
}

static void op_list(struct session *s, const struct shim_req *r)
{
	const char *prefix = s->d->conf->prefix;
	if (r->home && !session_home_ok(s, r->home)) {
		session_error(s, r->id, SHIM_E_FORBIDDEN, "home not granted");
		return;
	}
	cJSON *o = shimproto_ok(r->id);
	cJSON *homes = cJSON_AddArrayToObject(o, "homes");
	for (int i = 0; homes && i < s->user->nhomes; i++) {
		const char *home = s->user->homes[i];
		if (r->home && strcmp(home, r->home) != 0)
			continue;
		char topic[256];
		cJSON *h = cJSON_CreateObject();
		cJSON_AddStringToObject(h, "home", home);
		snprintf(topic, sizeof topic, "%s/%s/status", prefix, home);
		const struct cache_entry *e = cache_get(s->d->cache, topic);
		char reason[64];
		if (session_stale(s, home, e, reason, sizeof reason)) {
			cJSON_AddStringToObject(h, "status", "stale");
			cJSON_AddStringToObject(h, "reason", reason);
			cJSON_AddItemToObject(h, "last_status", e ? cJSON_CreateString(e->payload)
								  : cJSON_CreateNull());
		} else {
			cJSON_AddItemToObject(h, "status", e ? cJSON_CreateString(e->payload)
							     : cJSON_CreateNull());
		}
		uint64_t beat = cache_heartbeat_interval(s->d->cache, home);
		if (beat)
			cJSON_AddNumberToObject(h, "heartbeat_interval", (double)beat / 1000);
		snprintf(topic, sizeof topic, "%s/%s/ctl/", prefix, home);
		struct list_ctx l = { topic, strlen(topic), cJSON_CreateArray() };
		cache_foreach_home(s->d->cache, home, list_entry, &l);
		cJSON_AddItemToObject(h, "controllers", list_sorted(l.ctls));
		cJSON_AddItemToArray(homes, h);
	}
	session_send(s, o);
}

/* --- request --- */

static void session_relay_cb(void *owner, cJSON *line, bool final)
{
	struct session *s = owner;
	if (final)
		s->inflight--;
	if (line && !s->detached)
		shim_client_send(s->c, line);
}

static bool status_offline(const struct session *s, const char *topic)
{
	const struct cache_entry *e = cache_get(s->d->cache, topic);
	return e && strcmp(e->payload, "offline") == 0;
}

static void op_request(struct session *s, const struct shim_req *r)
{
	const char *prefix = s->d->conf->prefix;
	char topic[256];
	if (!session_home_ok(s, r->home)) {
		session_error(s, r->id, SHIM_E_FORBIDDEN, "home not granted");
		return;
	}
	if (!session_admit(s, r->id))
		return;
	/* Only a status known to be offline refuses at once; unknown is sent (docs/shim.md). */
	snprintf(topic, sizeof topic, "%s/%s/status", prefix, r->home);
	bool off = status_offline(s, topic);
	snprintf(topic, sizeof topic, "%s/%s/ctl/%s/status", prefix, r->home, r->ctl);
	if (off || status_offline(s, topic)) {
		metrics_relay(s->d->metrics, "offline");
		session_error(s, r->id, SHIM_E_OFFLINE, off ? "home offline" : "controller offline");
		return;
	}
	char uuid[RELAY_UUID_LEN + 1];
	if (relay_start(s->d->relay, r, s->user->name, s, session_relay_cb, uuid) < 0) {
		session_error(s, r->id, SHIM_E_INTERNAL, "could not send the request");
		return;
	}
	s->inflight++;
}

/* --- subscribe, unsubscribe --- */

static void csub_on_message(void *arg, const struct mqtt_msg *m)
{
	struct csub *u = arg;
	struct session *s = u->s;
	if (s->detached)
		return;
	cJSON *o = shimproto_event(u->id, "message");
	cJSON_AddStringToObject(o, "topic", m->topic);
	cJSON_AddItemToObject(o, "payload", shimproto_payload(m->payload, m->len));
	/* The client filters are made without Retain As Published: true only for what the broker
	 * sends from its retained store when the subscription starts (docs/shim.md). */
	cJSON_AddBoolToObject(o, "retained", m->retained);
	session_send(s, o);
}

/* Ends the stream of subscription u with line (taking it) and drops u from the list at pp. */
static void csub_end(struct session *s, struct csub **pp, cJSON *line)
{
	struct csub *u = *pp;
	*pp = u->next;
	session_send(s, line);
	csub_free(s, u);
	s->inflight--;
}

/* "subscribed" only once the broker has acknowledged the subscription (docs/shim.md): what is
 * published after it reaches the client. A refusal ends the subscription. */
static void csub_on_suback(void *arg, int err)
{
	struct csub *u = arg;
	struct session *s = u->s;
	struct csub **pp = &s->subs;

	if (!err) {
		session_send(s, shimproto_event(u->id, "subscribed"));
		return;
	}
	u->ref = NULL;   /* subs has dropped it */
	while (*pp != u)
		pp = &(*pp)->next;
	enum shim_err code = err == -EACCES ? SHIM_E_FORBIDDEN : SHIM_E_INTERNAL;
	if (!s->detached)
		s->d->metrics->errors[code]++;
	csub_end(s, pp, shimproto_error(u->id, code, "the broker refused the subscription"));
}

static void op_subscribe(struct session *s, const struct shim_req *r)
{
	char home[SHIM_NAME_MAX + 1];
	if (!shimproto_topic_home(s->d->conf->prefix, r->filter, true, home) || !session_home_ok(s, home)) {
		session_error(s, r->id, SHIM_E_FORBIDDEN, "filter not within a granted home");
		return;
	}
	if (!session_admit(s, r->id))
		return;
	struct csub *u = calloc(1, sizeof *u);
	if (!u || !(u->id = cJSON_Duplicate(r->id, true))) {
		free(u);
		session_error(s, r->id, SHIM_E_INTERNAL, "out of memory");
		return;
	}
	u->s = s;
	memcpy(u->home, home, sizeof home);
	u->ref = subs_add_acked(s->d->subs, r->filter, false, csub_on_message, csub_on_suback, u);
	if (!u->ref) {
		cJSON_Delete(u->id);
		free(u);
		session_error(s, r->id, SHIM_E_INTERNAL, "broker subscription failed");
		return;
	}
	u->next = s->subs;
	s->subs = u;
	s->inflight++;
}

static void op_unsubscribe(struct session *s, const struct shim_req *r)
{
	struct csub **pp = &s->subs;
	while (*pp && !cJSON_Compare((*pp)->id, r->sub, true))
		pp = &(*pp)->next;
	if (!*pp) {
		session_error(s, r->id, SHIM_E_NOT_FOUND, "no such subscription");
		return;
	}
	cJSON *o = shimproto_ok((*pp)->id);
	cJSON_AddStringToObject(o, "ended", "unsubscribed");
	csub_end(s, pp, o);
	session_send(s, shimproto_ok(r->id));
}

static void op_audit(struct session *s, const struct shim_req *r)
{
	cJSON *recs = audit_tail(s->d->audit, s->user->name, r->limit);
	if (!recs) {
		session_error(s, r->id, SHIM_E_INTERNAL, "audit file unreadable");
		return;
	}
	cJSON *o = shimproto_ok(r->id);
	cJSON_AddItemToObject(o, "records", recs);
	session_send(s, o);
}

void session_request(struct session *s, const struct shim_req *r)
{
	if (!s->user && r->op != SHIM_OP_AUTH && r->op != SHIM_OP_PING) {
		session_error(s, r->id, SHIM_E_AUTH, "not authenticated");
		return;
	}
	switch (r->op) {
	case SHIM_OP_AUTH: op_auth(s, r); break;
	case SHIM_OP_PING: op_ping(s, r); break;
	case SHIM_OP_PUBLISH: op_publish(s, r); break;
	case SHIM_OP_GET: op_get(s, r); break;
	case SHIM_OP_LIST: op_list(s, r); break;
	case SHIM_OP_REQUEST: op_request(s, r); break;
	case SHIM_OP_SUBSCRIBE: op_subscribe(s, r); break;
	case SHIM_OP_UNSUBSCRIBE: op_unsubscribe(s, r); break;
	case SHIM_OP_AUDIT: op_audit(s, r); break;
	case SHIM_OP_HISTORY: session_history(s, r); break;
	default: session_error(s, r->id, SHIM_E_BAD_REQUEST, "unknown op"); break;
	}
}

/* --- users reload --- */

static bool session_granted(void *owner, const char *home)
{
	return session_home_ok(owner, home);
}

int session_set_users(struct session *s, const struct users *u)
{
	if (!s->user)
		return 0;
	s->user = users_find_hash(u, s->token_hash);
	if (!s->user)
		return -ENOENT;
	/* A revoked home ends at once what the client still had open there; the requests keep
	 * running at the controller and are audited. */
	for (struct csub **pp = &s->subs; *pp;) {
		if (session_home_ok(s, (*pp)->home)) {
			pp = &(*pp)->next;
			continue;
		}
		log_info("shim client %s user %s: home %s revoked: subscription ended",
			 shim_client_peer(s->c), s->user->name, (*pp)->home);
		s->d->metrics->errors[SHIM_E_FORBIDDEN]++;
		csub_end(s, pp, shimproto_error((*pp)->id, SHIM_E_FORBIDDEN, "home no longer granted"));
	}
	session_history_end_ungranted(s);
	relay_end_ungranted(s->d->relay, s, session_granted);
	return 0;
}
