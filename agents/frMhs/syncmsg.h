/* syncmsg: the two messages of fr/<home>/sync (docs/topics.md) -- the request a consumer sends
 * (any payload asks; a JSON object may carry "id" and "reply_to") and the answer document, the
 * home's whole state. No I/O: the bridge receives and publishes them. */
#ifndef FR_SYNCMSG_H
#define FR_SYNCMSG_H

#include "command.h"

#include <cjson/cJSON.h>
#include <stddef.h>

struct syncmsg_req {
	char id[COMMAND_ID_MAX + 1];            /* "" = none: the answer carries no id */
	char reply_to[COMMAND_TOPIC_MAX + 1];   /* "" = none (an MQTT 5 response topic may be) */
	const char *warning;   /* static text: what of the payload was ignored and why; NULL */
};

/* Never fails: whatever cannot be used is left out and named in r->warning. */
void syncmsg_parse(const void *payload, size_t len, struct syncmsg_req *r);

/* The latest states of controller ctl: a JSON object {"<sensor>": {"value", "ts"}} (owned by
 * the caller of syncmsg_doc, which frees it with the document), NULL when none. */
typedef cJSON *(*syncmsg_states_fn)(void *arg, const char *ctl);

/* The answer: {"type":"sync","id","home","status":"online","ts","heartbeat_interval",
 * "controllers":[each of ctls with its "states"], "truncated":true when controllers were left out
 * to stay within max bytes}. ctls (a JSON array, may be NULL) is consumed. Returns the text
 * (owned by the caller, free()) and its length in *len, or NULL when out of memory. */
char *syncmsg_doc(const char *home, const char *id, int heartbeat_s, uint64_t now_ms, cJSON *ctls,
		  syncmsg_states_fn states, void *arg, size_t max, size_t *len);

#endif
