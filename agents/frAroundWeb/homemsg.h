/* homemsg: what a home says about itself that frAroundWeb's cache takes -- its heartbeat
 * (fr/<home>/heartbeat) and its answer to fr/<home>/sync (docs/topics.md). Parsing only: the
 * caller owns the cache. */
#ifndef FR_HOMEMSG_H
#define FR_HOMEMSG_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* A heartbeat's period in ms (its "interval", 1..3600 s); -1 when the payload is not a
 * heartbeat. */
int64_t homemsg_heartbeat_ms(const void *payload, size_t len);

/* One part of a sync answer: the topic it would have arrived on and its value (borrowed, valid
 * during the call; a string is the payload itself, anything else its JSON text). */
typedef void (*homemsg_part_fn)(void *arg, const char *topic, const cJSON *value);

/* A sync answer of home (prefix "fr") to the request with id: calls part for the home's status
 * and for each controller's status, info and state/<sensor>, as topics under <prefix>/<home>/.
 * Controllers and sensors whose names are not fr names (docs/topics.md) are skipped and counted
 * in *skipped. Returns the number of parts; nothing is called and it returns
 * HOMEMSG_NOT_SYNC when the payload is not a sync answer of that home, HOMEMSG_OTHER_ID when it
 * answers another request (an earlier one: its state may be older than what arrived since). */
#define HOMEMSG_NOT_SYNC (-1)
#define HOMEMSG_OTHER_ID (-2)
int homemsg_sync(const char *prefix, const char *home, const char *id, const void *payload,
		 size_t len, homemsg_part_fn part, void *arg, int *skipped);

#endif
