/* hamapcfg: the ids and topics of Home Assistant discovery and the config documents of a home's
 * entities; see hamap.h (platforms and payloads are hamap.c). */
#include "hamap.h"
#include "hamap_int.h"

#include "frame.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- ids and topics --- */

void hamap_escape(const char *name, char *out, size_t n)
{
	size_t j = 0;
	for (; *name && j + 2 < n; name++) {
		out[j++] = *name;
		if (*name == '_')
			out[j++] = '-';
	}
	out[j] = '\0';
}

/* [A-Za-z0-9_-]: what names and HA's object ids are made of. */
static bool hamap_idchar(char c)
{
	return c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

int hamap_object_parse(const char *id, char *ctl, char *name)
{
	char *dst = ctl;
	size_t k = 0;
	for (const char *p = id; *p; p++) {
		char c = *p;
		if (c == '_' && p[1] == '_' && dst == ctl) {   /* the separator */
			if (!k)
				return -1;
			ctl[k] = '\0';
			dst = name;
			k = 0;
			p++;
			continue;
		}
		if (c == '_' && p[1] != '-')
			return -1;
		if (c == '_')
			p++;
		if (!hamap_idchar(c) || k >= COMMAND_NAME_MAX)
			return -1;
		dst[k++] = c;
	}
	if (dst != name || !k)
		return -1;
	name[k] = '\0';
	return 0;
}

/* Unique ids and device identifiers: "fr__<home>", "fr__<home>__<ctl>" and entities below
 * them, each name escaped, so no two of them are equal whatever the names. */
static void hamap_home_id(const struct hamap_ctx *x, char *buf, size_t n)
{
	char h[2 * COMMAND_NAME_MAX + 2];
	hamap_escape(x->home, h, sizeof h);
	snprintf(buf, n, "fr__%s", h);
}

static void hamap_ctl_id(const struct hamap_ctx *x, const char *ctl, char *buf, size_t n)
{
	char h[2 * COMMAND_NAME_MAX + 8], c[2 * COMMAND_NAME_MAX + 2];
	hamap_home_id(x, h, sizeof h);
	hamap_escape(ctl, c, sizeof c);
	snprintf(buf, n, "%s__%s", h, c);
}

static void hamap_object_id(const char *ctl, const char *name, char *buf, size_t n)
{
	char c[2 * COMMAND_NAME_MAX + 2], e[2 * COMMAND_NAME_MAX + 2];
	hamap_escape(ctl, c, sizeof c);
	hamap_escape(name, e, sizeof e);
	snprintf(buf, n, "%s__%s", c, e);
}

static void hamap_config_topic(const struct hamap_ctx *x, const char *component,
			       const char *object, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s/fr_%s/%s/config", x->discovery, component, x->home, object);
}

void hamap_config_filter(const struct hamap_ctx *x, char *buf, size_t n)
{
	snprintf(buf, n, "%s/+/fr_%s/+/config", x->discovery, x->home);
}

bool hamap_config_topic_parse(const struct hamap_ctx *x, const char *topic, char *object)
{
	size_t dl = strlen(x->discovery);
	if (strncmp(topic, x->discovery, dl) != 0 || topic[dl] != '/')
		return false;
	const char *p = topic + dl + 1, *e = strchr(p, '/');
	if (!e || e == p)
		return false;
	for (const char *q = p; q < e; q++)
		if (!((*q >= 'a' && *q <= 'z') || *q == '_'))
			return false;
	char node[COMMAND_NAME_MAX + 8];
	snprintf(node, sizeof node, "/fr_%s/", x->home);
	if (strncmp(e, node, strlen(node)) != 0)
		return false;
	p = e + strlen(node);
	e = strchr(p, '/');
	if (!e || e == p || (size_t)(e - p) >= HAMAP_ID_MAX || strcmp(e, "/config") != 0)
		return false;
	memcpy(object, p, (size_t)(e - p));
	object[e - p] = '\0';
	for (const char *q = object; *q; q++)
		if (!hamap_idchar(*q))
			return false;
	return true;
}

void hamap_action_topic(const struct hamap_ctx *x, const char *ctl, const char *action,
			const char *leaf, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s/ha/%s/%s/%s", x->prefix, x->home, ctl, action, leaf);
}

int hamap_topic_parse(const struct hamap_ctx *x, const char *topic, char *ctl, char *action,
		      const char **leaf)
{
	char base[2 * COMMAND_NAME_MAX + 16];
	snprintf(base, sizeof base, "%s/%s/ha/", x->prefix, x->home);
	size_t bl = strlen(base);
	if (strncmp(topic, base, bl) != 0)
		return -1;
	const char *p = topic_level(topic + bl, ctl);
	if (!p || *p != '/' || !(p = topic_level(p + 1, action)) || *p != '/' || !p[1] ||
	    strchr(p + 1, '/'))
		return -1;
	*leaf = p + 1;
	return 0;
}

/* --- configs --- */

static cJSON *hamap_avail(const char *topic)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "topic", topic);
	cJSON_AddStringToObject(o, "payload_available", "online");
	cJSON_AddStringToObject(o, "payload_not_available", "offline");
	return o;
}

/* What every entity has: name, unique id, availability (the home's status, and the
 * controller's when ctl is set: all of them online), its device, the origin, QoS 1. */
static cJSON *hamap_entity(const struct hamap_ctx *x, const char *name, const char *uid,
			   const char *ctl, cJSON *device)
{
	char t[HAMAP_TOPIC_MAX];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "unique_id", uid);
	cJSON *av = cJSON_AddArrayToObject(o, "availability");
	snprintf(t, sizeof t, "%s/%s/status", x->prefix, x->home);
	cJSON_AddItemToArray(av, hamap_avail(t));
	if (ctl) {
		snprintf(t, sizeof t, "%s/%s/ctl/%s/status", x->prefix, x->home, ctl);
		cJSON_AddItemToArray(av, hamap_avail(t));
	}
	cJSON_AddStringToObject(o, "availability_mode", "all");
	cJSON_AddItemToObject(o, "device", device);
	cJSON *origin = cJSON_AddObjectToObject(o, "origin");
	cJSON_AddStringToObject(origin, "name", "fr");
	cJSON_AddStringToObject(origin, "sw_version", x->version);
	cJSON_AddNumberToObject(o, "qos", 1);
	return o;
}

static cJSON *hamap_home_device(const struct hamap_ctx *x)
{
	char id[HAMAP_ID_MAX], name[COMMAND_NAME_MAX + 16];
	cJSON *d = cJSON_CreateObject();
	hamap_home_id(x, id, sizeof id);
	cJSON_AddItemToObject(d, "identifiers", cJSON_CreateStringArray((const char *[]){ id }, 1));
	snprintf(name, sizeof name, "fr home %s", x->home);
	cJSON_AddStringToObject(d, "name", name);
	cJSON_AddStringToObject(d, "manufacturer", "fr");
	cJSON_AddStringToObject(d, "model", "frMhs home server");
	cJSON_AddStringToObject(d, "sw_version", x->version);
	return d;
}

static cJSON *hamap_ctl_device(const struct hamap_ctx *x, const char *ctl, const cJSON *info)
{
	char id[HAMAP_ID_MAX], via[HAMAP_ID_MAX];
	const char *name = hamap_str(info, "name"), *version = hamap_str(info, "version");
	cJSON *d = cJSON_CreateObject();
	hamap_ctl_id(x, ctl, id, sizeof id);
	hamap_home_id(x, via, sizeof via);
	cJSON_AddItemToObject(d, "identifiers", cJSON_CreateStringArray((const char *[]){ id }, 1));
	cJSON_AddStringToObject(d, "name", name && name[0] ? name : ctl);
	cJSON_AddStringToObject(d, "manufacturer", "fr");
	cJSON_AddStringToObject(d, "model", "frMhc controller");
	if (version && version[0])
		cJSON_AddStringToObject(d, "sw_version", version);
	cJSON_AddStringToObject(d, "via_device", via);
	return d;
}

static cJSON *hamap_action_config(const struct hamap_ctx *x, const char *ctl, const cJSON *info,
				  const struct hamap_action *a)
{
	char uid[HAMAP_ID_MAX], t[HAMAP_TOPIC_MAX], e[2 * COMMAND_NAME_MAX + 2];
	hamap_ctl_id(x, ctl, uid, sizeof uid);
	hamap_escape(a->name, e, sizeof e);
	snprintf(uid + strlen(uid), sizeof uid - strlen(uid), "__action__%s", e);
	cJSON *o = hamap_entity(x, a->name, uid, ctl, hamap_ctl_device(x, ctl, info));
	hamap_action_topic(x, ctl, a->name, "set", t, sizeof t);
	cJSON_AddStringToObject(o, "command_topic", t);
	cJSON_AddFalseToObject(o, "retain");
	hamap_action_topic(x, ctl, a->name, "attributes", t, sizeof t);
	cJSON_AddStringToObject(o, "json_attributes_topic", t);
	if (a->kind != HAMAP_BUTTON) {
		hamap_action_topic(x, ctl, a->name, "state", t, sizeof t);
		cJSON_AddStringToObject(o, "state_topic", t);
	}
	switch (a->kind) {
	case HAMAP_BUTTON:
		cJSON_AddStringToObject(o, "payload_press", HAMAP_PRESS);
		break;
	case HAMAP_SWITCH:
		cJSON_AddStringToObject(o, "payload_on", HAMAP_ON);
		cJSON_AddStringToObject(o, "payload_off", HAMAP_OFF);
		cJSON_AddFalseToObject(o, "optimistic");
		break;
	case HAMAP_SELECT:
		cJSON_AddItemToObject(o, "options", cJSON_Duplicate(a->options, 1));
		cJSON_AddFalseToObject(o, "optimistic");
		break;
	case HAMAP_NUMBER:
		cJSON_AddNumberToObject(o, "min", a->min);
		cJSON_AddNumberToObject(o, "max", a->max);
		cJSON_AddNumberToObject(o, "step", a->step);
		cJSON_AddFalseToObject(o, "optimistic");
		break;
	case HAMAP_TEXT:
		cJSON_AddNumberToObject(o, "min", 0);
		cJSON_AddNumberToObject(o, "max", HAMAP_PAYLOAD_MAX);
		cJSON_AddStringToObject(o, "mode", "text");
		break;
	default:
		break;
	}
	return o;
}

/* A unit as HA shows it ("°C", "%", "kWh"): 1..31 bytes of UTF-8 without control characters. */
static bool hamap_unit_ok(const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > 31 || !frame_utf8_valid(u, n))
		return false;
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* A device class name: [a-z0-9_]{1,63} (HA's own list is checked by HA). */
static bool hamap_class_ok(const char *c)
{
	size_t n = strlen(c);
	if (n == 0 || n > 63)
		return false;
	for (; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

/* A sensor's config, or NULL while its kind is unknown. Numeric: its unit or a device class
 * that measures something, or a number seen; HA's "null" makes a non-number read as unknown
 * instead of an error. Text: at most HA's 255 characters of state. */
static cJSON *hamap_sensor_config(const struct hamap_ctx *x, const char *ctl, const cJSON *info,
				  const cJSON *sensor, const cJSON *numeric)
{
	char uid[HAMAP_ID_MAX], t[HAMAP_TOPIC_MAX], e[2 * COMMAND_NAME_MAX + 2];
	const char *name = hamap_str(sensor, "name");
	const char *unit = hamap_str(sensor, "unit"), *dc = hamap_str(sensor, "device_class");
	if (unit && !hamap_unit_ok(unit))
		unit = NULL;
	if (dc && !hamap_class_ok(dc))
		dc = NULL;
	bool textual = dc && (strcmp(dc, "enum") == 0 || strcmp(dc, "timestamp") == 0 ||
			      strcmp(dc, "date") == 0);
	const cJSON *seen = cJSON_GetObjectItemCaseSensitive(numeric, name);
	int num = textual ? 0 : (unit || dc || cJSON_IsTrue(seen)) ? 1 : cJSON_IsFalse(seen) ? 0 : -1;
	if (num < 0)
		return NULL;
	hamap_ctl_id(x, ctl, uid, sizeof uid);
	hamap_escape(name, e, sizeof e);
	snprintf(uid + strlen(uid), sizeof uid - strlen(uid), "__sensor__%s", e);
	cJSON *o = hamap_entity(x, name, uid, ctl, hamap_ctl_device(x, ctl, info));
	snprintf(t, sizeof t, "%s/%s/ctl/%s/state/%s", x->prefix, x->home, ctl, name);
	cJSON_AddStringToObject(o, "state_topic", t);
	cJSON_AddStringToObject(o, "value_template",
				num ? "{{ value_json.value if value_json.value is number else 'null' }}"
				    : "{{ (value_json.value | string)[:255] }}");
	if (num)
		cJSON_AddStringToObject(o, "state_class", "measurement");
	if (unit)
		cJSON_AddStringToObject(o, "unit_of_measurement", unit);
	if (dc)
		cJSON_AddStringToObject(o, "device_class", dc);
	return o;
}

cJSON *hamap_ctl_configs(const struct hamap_ctx *x, const char *ctl, const cJSON *info,
			 const struct hamap_action *acts, int nacts, const cJSON *numeric)
{
	char obj[HAMAP_ID_MAX], t[HAMAP_TOPIC_MAX];
	cJSON *out = cJSON_CreateObject();
	for (int i = 0; i < nacts; i++) {
		if (acts[i].kind == HAMAP_NONE)
			continue;
		hamap_object_id(ctl, acts[i].name, obj, sizeof obj);
		hamap_config_topic(x, hamap_kind_name(acts[i].kind), obj, t, sizeof t);
		cJSON_AddItemToObject(out, t, hamap_action_config(x, ctl, info, &acts[i]));
	}
	const cJSON *s;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(info, "sensors")) {
		const char *name = hamap_str(s, "name");
		if (!name || !name_valid(name, COMMAND_NAME_MAX))
			continue;
		hamap_object_id(ctl, name, obj, sizeof obj);
		hamap_config_topic(x, "sensor", obj, t, sizeof t);
		if (cJSON_GetObjectItemCaseSensitive(out, t))
			continue;   /* the same sensor twice in a hostile info: the first counts */
		cJSON *c = hamap_sensor_config(x, ctl, info, s, numeric);
		cJSON_AddItemToObject(out, t, c ? c : cJSON_CreateNull());
	}
	return out;
}

cJSON *hamap_home_configs(const struct hamap_ctx *x)
{
	static const struct { const char *word, *name, *tpl; } sensors[] = {
		{ "controllers-online", "controllers online", "{{ value_json.controllers.online }}" },
		{ "controllers-known", "controllers known", "{{ value_json.controllers.known }}" },
		{ "requests-open", "requests open", "{{ value_json.requests.open }}" },
	};
	char uid[HAMAP_ID_MAX], t[HAMAP_TOPIC_MAX], obj[64];
	cJSON *out = cJSON_CreateObject();
	for (size_t i = 0; i < sizeof sensors / sizeof *sensors; i++) {
		hamap_home_id(x, uid, sizeof uid);
		snprintf(uid + strlen(uid), sizeof uid - strlen(uid), "__home__%s", sensors[i].word);
		/* "home-..." has no "__": no controller's object id can be equal to it. */
		snprintf(obj, sizeof obj, "home-%s", sensors[i].word);
		cJSON *o = hamap_entity(x, sensors[i].name, uid, NULL, hamap_home_device(x));
		snprintf(t, sizeof t, "%s/%s/stats", x->prefix, x->home);
		cJSON_AddStringToObject(o, "state_topic", t);
		cJSON_AddStringToObject(o, "value_template", sensors[i].tpl);
		cJSON_AddStringToObject(o, "state_class", "measurement");
		cJSON_AddStringToObject(o, "entity_category", "diagnostic");
		hamap_config_topic(x, "sensor", obj, t, sizeof t);
		cJSON_AddItemToObject(out, t, o);
	}
	return out;
}
