/* homemsg: see homemsg.h. */
#include "homemsg.h"

#include "name.h"

#include <stdio.h>
#include <string.h>

int64_t homemsg_heartbeat_ms(const void *payload, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(payload, len);
	const cJSON *iv = cJSON_GetObjectItemCaseSensitive(o, "interval");
	double s = cJSON_IsNumber(iv) ? iv->valuedouble : 0;
	cJSON_Delete(o);
	return s >= 1 && s <= 3600 ? (int64_t)(s * 1000) : -1;
}

int homemsg_sync(const char *prefix, const char *home, const char *id, const void *payload,
		 size_t len, homemsg_part_fn part, void *arg, int *skipped)
{
	char topic[512];
	int parts = 0;
	*skipped = 0;
	cJSON *o = cJSON_ParseWithLength(payload, len);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
	const char *h = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "home"));
	const char *aid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
	if (!type || strcmp(type, "sync") != 0 || !h || strcmp(h, home) != 0) {
		cJSON_Delete(o);
		return HOMEMSG_NOT_SYNC;
	}
	if (!aid || strcmp(aid, id) != 0) {
		cJSON_Delete(o);
		return HOMEMSG_OTHER_ID;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "status");
	if (v) {
		snprintf(topic, sizeof topic, "%s/%s/status", prefix, home);
		part(arg, topic, v);
		parts++;
	}
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(o, "controllers")) {
		const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
		/* The name becomes a topic level: "a/state" would land on another topic. */
		if (!name_valid(cid, NAME_LEN_MAX)) {
			++*skipped;
			continue;
		}
		static const char *const leaves[] = { "status", "info" };
		for (size_t i = 0; i < 2; i++) {
			v = cJSON_GetObjectItemCaseSensitive(c, leaves[i]);
			if (!v)
				continue;
			snprintf(topic, sizeof topic, "%s/%s/ctl/%s/%s", prefix, home, cid, leaves[i]);
			part(arg, topic, v);
			parts++;
		}
		const cJSON *st, *states = cJSON_GetObjectItemCaseSensitive(c, "states");
		if (!cJSON_IsObject(states))
			continue;
		cJSON_ArrayForEach(st, states) {
			if (!name_valid(st->string, NAME_LEN_MAX)) {
				++*skipped;
				continue;
			}
			snprintf(topic, sizeof topic, "%s/%s/ctl/%s/state/%s", prefix, home, cid,
				 st->string);
			part(arg, topic, st);
			parts++;
		}
	}
	cJSON_Delete(o);
	return parts;
}
