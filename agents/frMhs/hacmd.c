/* hacmd: the ha module's side of requests: HA's plain commands turned into requests, and every
 * request's outcome turned into an entity's attributes and state; see ha.h. */
#include "ha.h"
#include "ha_int.h"

#include "bridge.h"
#include "keys.h"
#include "log.h"
#include "mqtt.h"
#include "req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ha_refuse(struct ha *h, const char *ctl, const char *action, bool attributes,
		      const char *reason)
{
	char t[HAMAP_TOPIC_MAX];
	cJSON *o = req_result_json(ctl, NULL, action, "rejected", reason, false);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return;
	hamap_action_topic(&h->x, ctl, action, "result", t, sizeof t);
	bridge_publish_raw(h->b, t, s, strlen(s), 1, false);
	struct ha_ctl *c = ha_ctl_find(h, ctl);
	struct ha_ret *r;
	hamap_action_topic(&h->x, ctl, action, "attributes", t, sizeof t);
	if (attributes && c && (r = ha_ret_get(h, c, t, HA_ATTR, action))) {
		ha_ret_set(h, r, s);
		return;
	}
	free(s);
}

void ha_command(struct ha *h, const char *ctl, const char *action, const struct mqtt_msg *m)
{
	char why[300], value[HAMAP_PAYLOAD_MAX + 1], t[HAMAP_TOPIC_MAX], hex[33];
	if (m->retained) {
		if (m->len == 0)
			return;   /* the removal of a retained command (ours, below) */
		/* It would run again on every reconnect: taken off the broker, never run. */
		bridge_publish_raw(h->b, m->topic, "", 0, 1, true);
		log_warnx("home assistant: command for %s/%s: retained message not run (it would run "
			  "again on every reconnect); removed from the broker", ctl, action);
		ha_refuse(h, ctl, action, false, "retained commands are never run; publish with retain=false");
		return;
	}
	struct ha_ctl *c = ha_ctl_find(h, ctl);
	const struct hamap_action *a = c && c->known ? ha_act(c, action) : NULL;
	if (!a || a->kind == HAMAP_NONE) {
		snprintf(why, sizeof why, "controller %s has no Home Assistant entity for action %s",
			 ctl, action);
		log_warnx("home assistant: command refused: %s", why);
		ha_refuse(h, ctl, action, false, why);
		return;
	}
	if (hamap_value(a, m->payload, m->len, value, sizeof value, why, sizeof why) < 0) {
		log_warnx("home assistant: command for %s/%s refused: %s", ctl, action, why);
		ha_refuse(h, ctl, action, true, why);
		return;
	}
	if (keys_random_hex(hex, 16) < 0) {
		ha_refuse(h, ctl, action, true, "no random id could be made; not run");
		return;
	}
	/* A fresh id per message: HA's commands come at most once (the subscription is QoS 0, so
	 * the broker never keeps one for this home server while it is away, to run hours later). */
	struct command cmd = { .final_only = true };
	snprintf(cmd.id, sizeof cmd.id, "ha-%s", hex);
	snprintf(cmd.action, sizeof cmd.action, "%s", action);
	if (!(cmd.args = cJSON_CreateObject()))
		return;
	if (a->kind != HAMAP_BUTTON)
		cJSON_AddStringToObject(cmd.args, a->arg, value);
	hamap_action_topic(&h->x, ctl, action, "result", t, sizeof t);
	struct req_route rt = { t, NULL, 0, true };
	log_info("home assistant: %s/%s %.*s: request %s", ctl, action, (int)(m->len > 40 ? 40 : m->len),
		 (const char *)m->payload, cmd.id);
	h->ops->request(h->arg, ctl, &cmd, &rt);
	command_clear(&cmd);
}

void ha_outcome(struct ha *h, const char *ctl, const char *action, const cJSON *args,
		const cJSON *result)
{
	char t[HAMAP_TOPIC_MAX];
	struct ha_ctl *c = ha_enabled(h) ? ha_ctl_find(h, ctl) : NULL;
	const struct hamap_action *a = c && c->known ? ha_act(c, action) : NULL;
	struct ha_ret *r;
	if (!a || a->kind == HAMAP_NONE)
		return;
	/* The attributes: the result as requesters get it, with the arguments it ran with. */
	cJSON *attr = cJSON_Duplicate(result, 1);
	cJSON_DeleteItemFromObjectCaseSensitive(attr, "type");
	req_json_set(attr, "ctl", ctl);
	if (!cJSON_GetObjectItemCaseSensitive(attr, "ts"))
		cJSON_AddNumberToObject(attr, "ts", (double)loop_wall_ms());
	if (cJSON_IsObject(args))
		cJSON_AddItemToObject(attr, "args", cJSON_Duplicate(args, 1));
	hamap_action_topic(&h->x, ctl, action, "attributes", t, sizeof t);
	if ((r = ha_ret_get(h, c, t, HA_ATTR, action)))
		ha_ret_set(h, r, cJSON_PrintUnformatted(attr));
	cJSON_Delete(attr);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "status");
	if (!cJSON_IsString(st) || strcmp(st->valuestring, "ok") != 0 || a->kind == HAMAP_BUTTON)
		return;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, a->arg);
	const char *value = cJSON_IsString(v) ? v->valuestring : a->def;
	hamap_action_topic(&h->x, ctl, action, "state", t, sizeof t);
	if (!(r = ha_ret_get(h, c, t, HA_STATE, action)))
		return;
	const char *state = hamap_state(a, value, r->payload);
	char *copy = state ? strdup(state) : NULL;
	if (copy)
		ha_ret_set(h, r, copy);
}

