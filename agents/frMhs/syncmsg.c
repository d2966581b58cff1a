/* syncmsg: see syncmsg.h and docs/topics.md, "fr/<home>/sync". */
#include "syncmsg.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void syncmsg_parse(const void *payload, size_t len, struct syncmsg_req *r)
{
	memset(r, 0, sizeof *r);
	cJSON *o = len ? cJSON_ParseWithLength(payload, len) : NULL;
	if (!cJSON_IsObject(o))
		goto out;   /* any payload asks: the common case is an empty one */
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(o, "reply_to");
	if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof r->id)
		memcpy(r->id, id->valuestring, strlen(id->valuestring) + 1);
	else if (id)
		r->warning = "\"id\" not a string of at most 64 bytes: not echoed";
	if (cJSON_IsString(rt) && strlen(rt->valuestring) < sizeof r->reply_to)
		memcpy(r->reply_to, rt->valuestring, strlen(rt->valuestring) + 1);
	else if (rt)
		r->warning = "\"reply_to\" not a topic of at most 255 bytes: ignored";
out:
	cJSON_Delete(o);
}

char *syncmsg_doc(const char *home, const char *id, int heartbeat_s, uint64_t now_ms, cJSON *ctls,
		  syncmsg_states_fn states, void *arg, size_t max, size_t *len)
{
	cJSON *doc = cJSON_CreateObject();
	char *text = NULL;
	if (!doc)
		goto out;
	cJSON_AddStringToObject(doc, "type", "sync");
	if (id)
		cJSON_AddStringToObject(doc, "id", id);
	cJSON_AddStringToObject(doc, "home", home);
	cJSON_AddStringToObject(doc, "status", "online");
	cJSON_AddNumberToObject(doc, "ts", (double)now_ms);
	cJSON_AddNumberToObject(doc, "heartbeat_interval", heartbeat_s);
	cJSON *list = cJSON_AddArrayToObject(doc, "controllers");
	size_t used = 256;   /* the fields above, generously */
	bool truncated = false;
	cJSON *c;
	while (list && cJSON_IsArray(ctls) && (c = cJSON_DetachItemFromArray(ctls, 0))) {
		const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
		cJSON *st = cid ? states(arg, cid) : NULL;
		if (st)
			cJSON_AddItemToObject(c, "states", st);
		char *one = cJSON_PrintUnformatted(c);
		size_t n = one ? strlen(one) + 1 : 0;
		free(one);
		/* Whole controllers or none: a smaller one further on may still fit. */
		if (!one || used + n > max) {
			truncated = true;
			cJSON_Delete(c);
			continue;
		}
		used += n;
		cJSON_AddItemToArray(list, c);
	}
	if (truncated)
		cJSON_AddBoolToObject(doc, "truncated", true);
	text = cJSON_PrintUnformatted(doc);
	if (text)
		*len = strlen(text);
out:
	cJSON_Delete(ctls);
	cJSON_Delete(doc);
	return text;
}
