/* relay: shim requests -> MQTT commands -> replies, with audit; see relay.h. */
#include "relay.h"

#include "audit.h"
#include "keys.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "strhash.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_BUCKETS 4096

struct preq {
	struct relay *r;
	char uuid[RELAY_UUID_LEN + 1];
	char user[SHIM_NAME_MAX + 1], home[SHIM_NAME_MAX + 1], ctl[SHIM_NAME_MAX + 1];
	char action[SHIM_NAME_MAX + 1];
	cJSON *args;          /* owned copy for the audit record; NULL = none */
	cJSON *client_id;     /* owned copy of the shim id */
	void *owner;          /* NULL once the client is gone */
	relay_deliver_cb cb;
	uint64_t started;     /* monotonic ms */
	char *cmd;            /* owned: the command as published, sent again after a reconnect */
	char topic[256], reply[256];
	unsigned long gen;    /* the relay's connection generation when it was published */
	bool resent;          /* asked again after a reconnect: its repeated progress is dropped */
	struct loop_timer wait;
	struct preq *hnext, *prev, *next;
};

struct relay {
	struct loop *loop;
	struct mqtt *mqtt;
	struct audit *audit;
	struct metrics *metrics;
	char prefix[SHIM_NAME_MAX + 1];
	char client[64];         /* "web-<instance>": the <client> level of the reply topics */
	char filter[160];        /* "<prefix>/+/reply/+/web-<instance>" */
	struct preq *b[RELAY_BUCKETS];
	struct preq *all;
	size_t n;
	unsigned long gen;       /* broker connections lost so far (relay_on_disconnected) */
};

static size_t relay_hash(const char *s)
{
	return strhash(s) & (RELAY_BUCKETS - 1);
}

struct relay *relay_new(struct loop *loop, struct mqtt *mqtt, struct audit *audit,
			struct metrics *metrics, const char *prefix, const char *instance)
{
	struct relay *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->loop = loop;
	r->mqtt = mqtt;
	r->audit = audit;
	r->metrics = metrics;
	snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
	snprintf(r->client, sizeof r->client, "web-%s", instance);
	snprintf(r->filter, sizeof r->filter, "%s/+/reply/+/%s", prefix, r->client);
	return r;
}

static void relay_remove(struct relay *r, struct preq *p)
{
	struct preq **pp = &r->b[relay_hash(p->uuid)];
	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	if (p->prev)
		p->prev->next = p->next;
	else
		r->all = p->next;
	if (p->next)
		p->next->prev = p->prev;
	loop_timer_stop(r->loop, &p->wait);
	cJSON_Delete(p->args);
	cJSON_Delete(p->client_id);
	free(p->cmd);
	free(p);
	r->n--;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	while (r->all)
		relay_remove(r, r->all);
	free(r);
}

const char *relay_reply_filter(const struct relay *r)
{
	return r->filter;
}

size_t relay_pending(const struct relay *r)
{
	return r->n;
}

static void relay_audit(struct relay *r, struct preq *p, const char *status)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "time", (double)loop_wall_ms());
	cJSON_AddStringToObject(o, "user", p->user);
	cJSON_AddStringToObject(o, "path", "shim");
	cJSON_AddStringToObject(o, "home", p->home);
	cJSON_AddStringToObject(o, "ctl", p->ctl);
	cJSON_AddStringToObject(o, "action", p->action);
	cJSON_AddItemToObject(o, "args", p->args ? cJSON_Duplicate(p->args, true) : cJSON_CreateObject());
	cJSON_AddStringToObject(o, "request", p->uuid);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddNumberToObject(o, "duration_ms", (double)(loop_now(r->loop) - p->started));
	audit_append(r->audit, o);
	cJSON_Delete(o);
}

static void relay_deliver(struct preq *p, cJSON *line, bool final)
{
	if (p->owner)
		p->cb(p->owner, line, final);
	cJSON_Delete(line);
}

static void relay_on_wait(void *arg)
{
	struct preq *p = arg;
	struct relay *r = p->r;
	log_info("request %s (%s %s/%s %s): no result within wait", p->uuid, p->user, p->home,
		 p->ctl, p->action);
	cJSON *o = shimproto_error(p->client_id, SHIM_E_TIMEOUT, "no final result within 'wait'");
	cJSON_AddStringToObject(o, "request", p->uuid);
	r->metrics->errors[SHIM_E_TIMEOUT]++;
	metrics_relay(r->metrics, "wait_timeout");
	relay_audit(r, p, "timeout");
	relay_deliver(p, o, true);
	relay_remove(r, p);
}

double relay_deadline(double now_s, double wait_s)
{
	/* The caller's patience bounds how long frMhs may wait for an offline controller: its
	 * "offline" arrives before the caller gives up (without a deadline frMhs would wait
	 * request_wait, whatever the caller). */
	return now_s + fmax(wait_s - RELAY_DEADLINE_MARGIN_S, wait_s / 2);
}

cJSON *relay_command(const char *id, const char *action, const cJSON *args, double timeout_s,
		     double deadline_s, const char *reply_to)
{
	cJSON *cmd = cJSON_CreateObject(), *a = NULL;
	if (!cmd || !cJSON_AddStringToObject(cmd, "id", id) ||
	    !cJSON_AddStringToObject(cmd, "action", action))
		goto fail;
	a = args ? cJSON_Duplicate(args, true) : cJSON_CreateObject();
	if (!cJSON_AddItemToObject(cmd, "args", a))
		goto fail;
	a = NULL;   /* cmd's now */
	if ((timeout_s > 0 && !cJSON_AddNumberToObject(cmd, "timeout", timeout_s)) ||
	    !cJSON_AddNumberToObject(cmd, "deadline", deadline_s) ||
	    !cJSON_AddStringToObject(cmd, "reply_to", reply_to) ||
	    !cJSON_AddTrueToObject(cmd, "progress"))
		goto fail;
	return cmd;
fail:
	cJSON_Delete(a);
	cJSON_Delete(cmd);
	return NULL;
}

/* UUID version 4 layout from 16 random bytes. */
static int relay_uuid(char *out)
{
	char hex[33];
	if (keys_random_hex(hex, 16) < 0)
		return -EIO;
	hex[12] = '4';
	static const char variant[] = "89ab";
	hex[16] = variant[(hex[16] >= 'a' ? hex[16] - 'a' + 10 : hex[16] - '0') & 3];
	snprintf(out, RELAY_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
		 hex + 16, hex + 20);
	return 0;
}

int relay_start(struct relay *r, const struct shim_req *req, const char *user, void *owner,
		relay_deliver_cb cb, char *uuid)
{
	struct preq *p = calloc(1, sizeof *p);
	cJSON *cmd = NULL;
	char *s = NULL;
	int rc = -ENOMEM;
	if (!p)
		goto fail;
	if ((rc = relay_uuid(p->uuid)) < 0)
		goto fail;
	rc = -ENOMEM;
	p->r = r;
	snprintf(p->user, sizeof p->user, "%s", user);
	snprintf(p->home, sizeof p->home, "%s", req->home);
	snprintf(p->ctl, sizeof p->ctl, "%s", req->ctl);
	snprintf(p->action, sizeof p->action, "%s", req->action);
	p->client_id = cJSON_Duplicate(req->id, true);
	p->args = req->args ? cJSON_Duplicate(req->args, true) : NULL;
	p->owner = owner;
	p->cb = cb;
	p->started = loop_now(r->loop);
	if (!p->client_id || (req->args && !p->args))
		goto fail;
	snprintf(p->topic, sizeof p->topic, "%s/%s/ctl/%s/cmd", r->prefix, req->home, req->ctl);
	snprintf(p->reply, sizeof p->reply, "%s/%s/reply/%s/%s", r->prefix, req->home, user,
		 r->client);
	double deadline = relay_deadline((double)loop_wall_ms() / 1000.0, req->wait_s);
	if (req->deadline_s > 0 && req->deadline_s < deadline)
		deadline = req->deadline_s;
	if (!(cmd = relay_command(p->uuid, req->action, req->args, req->timeout_s, deadline,
				  p->reply)) ||
	    !(s = cJSON_PrintUnformatted(cmd)))
		goto fail;
	rc = mqtt_publish(r->mqtt, p->topic, s, strlen(s), 1, false, p->reply, p->uuid,
			  strlen(p->uuid));
	if (rc < 0)
		goto fail;
	p->cmd = s;
	s = NULL;
	p->gen = r->gen;
	size_t h = relay_hash(p->uuid);
	p->hnext = r->b[h];
	r->b[h] = p;
	p->next = r->all;
	if (r->all)
		r->all->prev = p;
	r->all = p;
	r->n++;
	loop_timer_init(&p->wait, relay_on_wait, p);
	loop_timer_start(r->loop, &p->wait, (uint64_t)llround(req->wait_s * 1000.0));
	memcpy(uuid, p->uuid, RELAY_UUID_LEN + 1);
	log_debug("request %s: %s -> %s %s", p->uuid, user, p->topic, req->action);
	cJSON_Delete(cmd);
	free(s);
	return 0;
fail:
	if (p) {
		cJSON_Delete(p->args);
		cJSON_Delete(p->client_id);
		free(p->cmd);
	}
	free(p);
	cJSON_Delete(cmd);
	free(s);
	return rc;
}

/* Whether topic is <prefix>/<home>/reply/<user>/<client> with this relay's client. */
static bool relay_ours(const struct relay *r, const char *topic)
{
	size_t pl = strlen(r->prefix), cl = strlen(r->client), tl = strlen(topic);
	if (tl <= pl + cl + 2 || strncmp(topic, r->prefix, pl) != 0 || topic[pl] != '/' ||
	    topic[tl - cl - 1] != '/' || strcmp(topic + tl - cl, r->client) != 0)
		return false;
	const char *home = topic + pl + 1, *slash = strchr(home, '/');
	if (!slash || slash == home || strncmp(slash, "/reply/", 7) != 0)
		return false;
	const char *user = slash + 7, *end = topic + tl - cl - 1;
	return user < end && memchr(user, '/', (size_t)(end - user)) == NULL;
}

bool relay_on_message(struct relay *r, const struct mqtt_msg *m)
{
	if (!relay_ours(r, m->topic))
		return false;
	cJSON *msg = cJSON_ParseWithLength(m->payload, m->len);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	char key[RELAY_UUID_LEN + 1] = "";
	/* The correlation data is ours; the "id" field is the fallback (MQTT 3.1.1 brokers). */
	if (m->correlation && m->correlation_len == RELAY_UUID_LEN) {
		memcpy(key, m->correlation, RELAY_UUID_LEN);
		key[RELAY_UUID_LEN] = '\0';
	} else if (cJSON_IsString(id) && strlen(id->valuestring) == RELAY_UUID_LEN) {
		memcpy(key, id->valuestring, RELAY_UUID_LEN + 1);
	}
	struct preq *p = r->b[relay_hash(key)];
	while (p && strcmp(p->uuid, key) != 0)
		p = p->hnext;
	if (!p || !cJSON_IsString(type)) {
		log_debug("reply on %s for no pending request (%s)", m->topic, key[0] ? key : "no id");
		cJSON_Delete(msg);
		return true;
	}
	if (strcmp(type->valuestring, "result") == 0) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(msg, "status");
		const char *status = cJSON_IsString(st) ? st->valuestring : "other";
		cJSON *o = shimproto_ok(p->client_id);
		if (o) {
			cJSON_AddStringToObject(o, "request", p->uuid);
			cJSON_DeleteItemFromObjectCaseSensitive(msg, "type");
			cJSON_AddItemToObject(o, "result", msg);
			msg = NULL;
		}
		log_info("request %s (%s %s/%s %s): %s", p->uuid, p->user, p->home, p->ctl, p->action,
			 status);
		metrics_relay(r->metrics, status);
		relay_audit(r, p, status);
		relay_deliver(p, o, true);
		relay_remove(r, p);
	} else if ((strcmp(type->valuestring, "accepted") == 0 ||
		    strcmp(type->valuestring, "started") == 0) &&
		   !(p->resent && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "duplicate")))) {
		cJSON *o = shimproto_event(p->client_id, type->valuestring);
		if (o) {
			cJSON_AddStringToObject(o, "request", p->uuid);
			cJSON *f;
			cJSON_ArrayForEach(f, msg) {
				if (f->string && strcmp(f->string, "type") && strcmp(f->string, "id"))
					cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, true));
			}
		}
		relay_deliver(p, o, false);
	}
	cJSON_Delete(msg);
	return true;
}

void relay_end_ungranted(struct relay *r, void *owner,
			 bool (*granted)(void *owner, const char *home))
{
	for (struct preq *p = r->all; p; p = p->next) {
		if (p->owner != owner || granted(owner, p->home))
			continue;
		log_info("request %s (%s %s/%s %s): home no longer granted: answered, still runs",
			 p->uuid, p->user, p->home, p->ctl, p->action);
		r->metrics->errors[SHIM_E_FORBIDDEN]++;
		cJSON *o = shimproto_error(p->client_id, SHIM_E_FORBIDDEN, "home no longer granted");
		cJSON_AddStringToObject(o, "request", p->uuid);
		relay_deliver(p, o, true);
		p->owner = NULL;
	}
}

void relay_detach(struct relay *r, void *owner)
{
	for (struct preq *p = r->all; p; p = p->next)
		if (p->owner == owner)
			p->owner = NULL;
}

void relay_on_disconnected(struct relay *r)
{
	r->gen++;
}

/* What the broker held when the connection dropped may be gone with it (a broker restarted
 * without the messages of its last seconds, a cluster node that died): the command, or its
 * reply queued for us. Asking again with the same id is what docs/topics.md promises works --
 * the home runs an id once and answers a repeat with its outcome -- so nothing is lost, and
 * the requester still gets one final line. Requests published while disconnected are still in
 * the MQTT client's queue and go out with it. */
void relay_on_connected(struct relay *r)
{
	unsigned n = 0;
	for (struct preq *p = r->all; p; p = p->next) {
		if (p->gen == r->gen || !p->cmd)
			continue;
		if (mqtt_publish(r->mqtt, p->topic, p->cmd, strlen(p->cmd), 1, false, p->reply,
				 p->uuid, strlen(p->uuid)) < 0)
			continue;   /* logged by mqtt; its wait still ends it */
		p->gen = r->gen;
		p->resent = true;
		n++;
	}
	if (n)
		log_info("relay: %u open requests asked again after the reconnect (same ids)", n);
}
