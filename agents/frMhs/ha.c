/* ha: Home Assistant MQTT discovery: configs, states and attributes kept true; see ha.h (HA's
 * commands and the outcomes of requests are hacmd.c). */
#include "ha.h"
#include "ha_int.h"

#include "bridge.h"
#include "command.h"
#include "conf.h"
#include "hamap.h"
#include "keys.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "req.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After a connect, the broker's retained copies have arrived and the registry has heard of
 * every controller it knows (its own learning takes 3 s from the start, bridge.c): what is
 * left of controllers it does not know is removed then. */
#define HA_PRUNE_MS 5000
/* HA's birth message republishes everything after a random 0.5..2.5 s (HA's docs ask for a
 * random delay, so a restarted HA is not hit by every device at once), and at most every
 * HA_BIRTH_MIN_MS: any user of any home may publish it, and no one may make every home server
 * republish in a loop. */
#define HA_BIRTH_DELAY_MS 500
#define HA_BIRTH_JITTER_MS 2000
#define HA_BIRTH_MIN_MS 10000
/* --- retained topics --- */

static void ha_put(struct ha *h, struct ha_ret *r)
{
	if (!r->payload || !bridge_connected(h->b))
		return;   /* sent on connect */
	bridge_publish_raw(h->b, r->topic, r->payload, strlen(r->payload), 1, true);
	r->sent = r->live = true;
}

static struct ha_ret *ha_ret_find(struct ha_ctl *c, const char *topic)
{
	for (struct ha_ret *r = c->rets; r; r = r->next)
		if (strcmp(r->topic, topic) == 0)
			return r;
	return NULL;
}

struct ha_ret *ha_ret_get(struct ha *h, struct ha_ctl *c, const char *topic, enum ha_rkind kind,
			  const char *action)
{
	struct ha_ret *r = ha_ret_find(c, topic);
	if (r)
		return r;
	if (h->nrets >= HA_RETS_MAX) {
		if (!h->full_logged)
			log_warnx("home assistant: %d retained topics tracked; no more", HA_RETS_MAX);
		h->full_logged = true;
		return NULL;
	}
	if (!(r = calloc(1, sizeof *r)) || !(r->topic = strdup(topic))) {
		free(r);
		return NULL;
	}
	r->kind = kind;
	snprintf(r->action, sizeof r->action, "%s", action ? action : "");
	r->next = c->rets;
	c->rets = r;
	h->nrets++;
	return r;
}

/* Takes r off the broker (an empty retained message: for a config HA removes the entity) and
 * forgets it. */
static void ha_ret_drop(struct ha *h, struct ha_ctl *c, struct ha_ret *r)
{
	if (r->live) {
		bridge_publish_raw(h->b, r->topic, "", 0, 1, true);
		log_debug("home assistant: removed %s", r->topic);
	}
	for (struct ha_ret **pp = &c->rets; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r->topic);
	free(r->payload);
	free(r);
	h->nrets--;
}

void ha_ret_set(struct ha *h, struct ha_ret *r, char *payload)
{
	r->want = true;
	if (r->payload && payload && strcmp(r->payload, payload) == 0) {
		free(payload);
		if (!r->sent)
			ha_put(h, r);
		return;
	}
	free(r->payload);
	r->payload = payload;
	r->sent = false;
	ha_put(h, r);
}

/* --- controllers --- */

struct ha_ctl *ha_ctl_find(struct ha *h, const char *id)
{
	for (struct ha_ctl *c = &h->home; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static struct ha_ctl *ha_ctl_get(struct ha *h, const char *id)
{
	struct ha_ctl *c = ha_ctl_find(h, id);
	if (c || !(c = calloc(1, sizeof *c)))
		return c;
	snprintf(c->id, sizeof c->id, "%s", id);
	c->next = h->home.next;
	h->home.next = c;
	return c;
}

static void ha_ctl_clear_acts(struct ha_ctl *c)
{
	for (int i = 0; i < c->nacts; i++)
		hamap_action_clear(&c->acts[i]);
	free(c->acts);
	c->acts = NULL;
	c->nacts = 0;
}

static void ha_ctl_free(struct ha *h, struct ha_ctl *c)
{
	while (c->rets) {
		struct ha_ret *r = c->rets;
		c->rets = r->next;
		free(r->topic);
		free(r->payload);
		free(r);
		h->nrets--;
	}
	ha_ctl_clear_acts(c);
	cJSON_Delete(c->info);
	cJSON_Delete(c->numeric);
	free(c->sig);
	if (c != &h->home)
		free(c);
}

const struct hamap_action *ha_act(const struct ha_ctl *c, const char *action)
{
	for (int i = 0; i < c->nacts; i++)
		if (strcmp(c->acts[i].name, action) == 0)
			return &c->acts[i];
	return NULL;
}

bool ha_enabled(const struct ha *h) { return h->conf->ha_enabled; }

/* Whether a state or attributes topic still belongs to an entity. */
static bool ha_value_wanted(const struct ha *h, const struct ha_ctl *c, const struct ha_ret *r)
{
	const struct hamap_action *a = c->known ? ha_act(c, r->action) : NULL;
	if (!ha_enabled(h) || !a || a->kind == HAMAP_NONE)
		return false;
	return r->kind == HA_ATTR || a->kind != HAMAP_BUTTON;
}

/* Makes what the broker holds for c what c's entities are now: configs published where they
 * changed, states and attributes kept for the actions still exposed, the rest removed. */
static void ha_sync(struct ha *h, struct ha_ctl *c)
{
	cJSON *want = NULL, *d;
	if (ha_enabled(h) && c == &h->home)
		want = hamap_home_configs(&h->x);
	else if (ha_enabled(h) && c->known)
		want = hamap_ctl_configs(&h->x, c->id, c->info, c->acts, c->nacts, c->numeric);
	for (struct ha_ret *r = c->rets; r; r = r->next)
		r->want = r->kind != HA_CONFIG && ha_value_wanted(h, c, r);
	cJSON_ArrayForEach(d, want) {
		struct ha_ret *r = ha_ret_get(h, c, d->string, HA_CONFIG, NULL);
		if (!r)
			continue;
		r->want = true;
		if (!cJSON_IsNull(d))   /* null: not decided, what the broker holds stays */
			ha_ret_set(h, r, cJSON_PrintUnformatted(d));
	}
	cJSON_Delete(want);
	struct ha_ret *r = c->rets, *next;
	for (; r; r = next) {
		next = r->next;
		if (!r->want)
			ha_ret_drop(h, c, r);
		else if (!r->sent)
			ha_put(h, r);
	}
}

/* What the entities of a controller are made of: a change elsewhere in its info (status,
 * last_seen, address) changes nothing in HA. */
static char *ha_signature(const cJSON *info)
{
	static const char *const keys[] = { "name", "version", "actions", "sensors" };
	cJSON *s = cJSON_CreateObject();
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, keys[i]);
		if (v)
			cJSON_AddItemToObject(s, keys[i], cJSON_Duplicate(v, 1));
	}
	char *text = cJSON_PrintUnformatted(s);
	cJSON_Delete(s);
	return text;
}

static void ha_classify(struct ha_ctl *c)
{
	const cJSON *actions = cJSON_GetObjectItemCaseSensitive(c->info, "actions"), *e;
	ha_ctl_clear_acts(c);
	int n = cJSON_IsArray(actions) ? cJSON_GetArraySize(actions) : 0;
	if (n <= 0 || !(c->acts = calloc((size_t)n, sizeof *c->acts)))
		return;
	cJSON_ArrayForEach(e, actions) {
		struct hamap_action *a = &c->acts[c->nacts++];
		if (hamap_classify(e, a) == HAMAP_NONE)
			log_info("home assistant: controller %s, action %s: not exposed: %s", c->id,
				 a->name[0] ? a->name : "?", a->why);
		else
			log_debug("home assistant: controller %s, action %s: %s", c->id, a->name,
				  hamap_kind_name(a->kind));
	}
}

void ha_ctl_info(struct ha *h, const char *ctl, const cJSON *info)
{
	struct ha_ctl *c;
	if (!ha_enabled(h) || !name_valid(ctl, COMMAND_NAME_MAX) || !(c = ha_ctl_get(h, ctl)))
		return;
	char *sig = ha_signature(info);
	bool same = c->known && sig && c->sig && strcmp(sig, c->sig) == 0;
	c->known = true;
	if (same) {
		free(sig);
		return;
	}
	free(c->sig);
	c->sig = sig;
	cJSON_Delete(c->info);
	c->info = cJSON_Duplicate(info, 1);
	ha_classify(c);
	ha_sync(h, c);
}

void ha_ctl_event(struct ha *h, const char *ctl, const cJSON *msg)
{
	const cJSON *sensor = cJSON_GetObjectItemCaseSensitive(msg, "sensor");
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(msg, "value"), *s;
	struct ha_ctl *c = ha_enabled(h) ? ha_ctl_find(h, ctl) : NULL;
	if (!c || !c->known || !cJSON_IsString(sensor) || !(cJSON_IsNumber(value) || cJSON_IsString(value)))
		return;
	/* Only its declared sensors: a controller's events cannot grow this. */
	bool declared = false;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(c->info, "sensors")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");
		declared = declared || (cJSON_IsString(n) && strcmp(n->valuestring, sensor->valuestring) == 0);
	}
	if (!declared || (!c->numeric && !(c->numeric = cJSON_CreateObject())))
		return;
	/* A number seen once makes it numeric for this run; a string only decides a sensor that
	 * has shown nothing yet (HA reads a later string of a numeric sensor as unknown). */
	const cJSON *seen = cJSON_GetObjectItemCaseSensitive(c->numeric, sensor->valuestring);
	if (cJSON_IsTrue(seen) || (seen && !cJSON_IsNumber(value)))
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(c->numeric, sensor->valuestring);
	cJSON_AddBoolToObject(c->numeric, sensor->valuestring, cJSON_IsNumber(value));
	ha_sync(h, c);
}

/* --- republishing: connect, HA's birth, pruning --- */

static void ha_republish(struct ha *h)
{
	int n = 0;
	for (struct ha_ctl *c = &h->home; c; c = c->next)
		for (struct ha_ret *r = c->rets; r; r = r->next) {
			r->sent = false;
			if (r->want && r->payload) {
				ha_put(h, r);
				n++;
			}
		}
	h->last_full = loop_now(h->loop);
	log_info("home assistant: %d discovery configs, states and attributes published", n);
}

static void ha_prune(void *arg)
{
	struct ha *h = arg;
	struct ha_ctl **pp = &h->home.next;
	h->pruned = true;
	while (*pp) {
		struct ha_ctl *c = *pp;
		if (c->known && ha_enabled(h)) {
			pp = &c->next;
			continue;
		}
		if (c->rets)
			log_info("home assistant: controller %s is not known here: its configs are removed",
				 c->id);
		while (c->rets)
			ha_ret_drop(h, c, c->rets);
		*pp = c->next;
		ha_ctl_free(h, c);
	}
}

void ha_connected(struct ha *h)
{
	if (ha_enabled(h)) {
		/* The home server's device first: the controllers' devices name it as via_device. */
		ha_sync(h, &h->home);
		ha_republish(h);
	}
	loop_timer_start(h->loop, &h->prune_timer, HA_PRUNE_MS);
}

static void ha_birth_due(void *arg) { ha_republish(arg); }

static void ha_birth(struct ha *h)
{
	unsigned char rnd[2] = { 0, 0 };
	if (loop_timer_armed(&h->birth_timer) || !bridge_connected(h->b))
		return;
	RAND_bytes(rnd, sizeof rnd);
	uint64_t now = loop_now(h->loop);
	uint64_t delay = HA_BIRTH_DELAY_MS + (uint64_t)((rnd[0] << 8) | rnd[1]) % HA_BIRTH_JITTER_MS;
	if (h->last_full && now - h->last_full + delay < HA_BIRTH_MIN_MS)
		delay = HA_BIRTH_MIN_MS - (now - h->last_full);
	log_info("home assistant: its birth message: configs published again in %llu ms",
		 (unsigned long long)delay);
	loop_timer_start(h->loop, &h->birth_timer, delay);
}

/* --- what the broker holds: learned from its retained copies --- */

static void ha_learned(struct ha *h, const char *ctl, const char *topic, enum ha_rkind kind,
		       const char *action, const struct mqtt_msg *m)
{
	struct ha_ctl *c = ha_ctl_get(h, ctl);
	struct ha_ret *r = c ? ha_ret_get(h, c, topic, kind, action) : NULL;
	if (!r)
		return;
	r->live = true;
	/* A state or attributes of a previous run (what a toggle flips); what this run set or
	 * computed is newer. */
	if (!r->payload && kind != HA_CONFIG && (r->payload = malloc(m->len + 1))) {
		memcpy(r->payload, m->payload, m->len);
		r->payload[m->len] = '\0';
	}
	bool decided = !ha_enabled(h) || c == &h->home || c->known || h->pruned;
	bool wanted = kind == HA_CONFIG ? r->want : ha_value_wanted(h, c, r);
	if (decided && !wanted) {
		log_info("home assistant: %s is not one of this home server's now: removed", topic);
		ha_ret_drop(h, c, r);
	} else if (kind != HA_CONFIG) {
		r->want = wanted;
	}
}

bool ha_message(struct ha *h, const struct mqtt_msg *m)
{
	char ctl[COMMAND_NAME_MAX + 1], action[COMMAND_NAME_MAX + 1], obj[HAMAP_ID_MAX];
	const char *leaf;
	if (strcmp(m->topic, h->conf->ha_status_topic) == 0) {
		if (ha_enabled(h) && m->len == 6 && memcmp(m->payload, "online", 6) == 0)
			ha_birth(h);
		return true;
	}
	if (hamap_config_topic_parse(&h->x, m->topic, obj)) {
		char name[COMMAND_NAME_MAX + 1];
		/* Only the broker's retained copies (the subscription does not keep Retain As
		 * Published): the live ones are this module's own publishes coming back. */
		if (m->retained && m->len)
			ha_learned(h, hamap_object_parse(obj, ctl, name) == 0 ? ctl : "", m->topic,
				   HA_CONFIG, NULL, m);
		return true;
	}
	if (hamap_topic_parse(&h->x, m->topic, ctl, action, &leaf) < 0)
		return false;
	if (strcmp(leaf, "set") == 0)
		ha_command(h, ctl, action, m);
	else if ((strcmp(leaf, "state") == 0 || strcmp(leaf, "attributes") == 0) && m->retained &&
		 m->len)
		ha_learned(h, ctl, m->topic, leaf[0] == 's' ? HA_STATE : HA_ATTR, action, m);
	return true;
}

/* --- lifecycle --- */

struct ha *ha_new(struct loop *loop, const struct conf *conf, struct bridge *b,
		  const struct ha_ops *ops, void *arg)
{
	struct ha *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->loop = loop;
	h->conf = conf;
	h->b = b;
	h->ops = ops;
	h->arg = arg;
	h->x = (struct hamap_ctx){ conf->prefix, conf->home, conf->ha_prefix, FR_VERSION };
	h->home.known = true;
	loop_timer_init(&h->prune_timer, ha_prune, h);
	loop_timer_init(&h->birth_timer, ha_birth_due, h);
	return h;
}

int ha_start(struct ha *h)
{
	char f[HAMAP_TOPIC_MAX];
	/* Without Retain As Published: the retain flag then marks the broker's copies alone. */
	const struct mqtt_subopts learn = { .no_retain_as_published = true };
	hamap_config_filter(&h->x, f, sizeof f);
	if (bridge_subscribe(h->b, f, 1, &learn) < 0)
		return -1;
	hamap_action_topic(&h->x, "+", "+", "state", f, sizeof f);
	if (bridge_subscribe(h->b, f, 1, &learn) < 0)
		return -1;
	hamap_action_topic(&h->x, "+", "+", "attributes", f, sizeof f);
	if (bridge_subscribe(h->b, f, 1, &learn) < 0)
		return -1;
	if (!ha_enabled(h)) {
		log_info("home assistant discovery is off: configs published before are removed");
		return 0;
	}
	/* QoS 0: a command is never kept by the broker for this home server while it is away. */
	hamap_action_topic(&h->x, "+", "+", "set", f, sizeof f);
	if (bridge_subscribe(h->b, f, 0, NULL) < 0 ||
	    bridge_subscribe(h->b, h->conf->ha_status_topic, 1, NULL) < 0)
		return -1;
	log_info("home assistant discovery under %s/ (HA's birth on %s)", h->conf->ha_prefix,
		 h->conf->ha_status_topic);
	return 0;
}

void ha_free(struct ha *h)
{
	if (!h)
		return;
	loop_timer_stop(h->loop, &h->prune_timer);
	loop_timer_stop(h->loop, &h->birth_timer);
	while (h->home.next) {
		struct ha_ctl *c = h->home.next;
		h->home.next = c->next;
		ha_ctl_free(h, c);
	}
	ha_ctl_free(h, &h->home);
	free(h);
}
