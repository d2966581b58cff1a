/* relay: the shim's "request" op carried to a controller and back, in the request profile of
 * docs/topics.md ("The request profile of fr's own clients") that the web page (app.js) follows
 * too: a fresh UUID per request, published QoS 1 to <prefix>/<home>/ctl/<ctl>/cmd with the
 * reply topic <prefix>/<home>/reply/<user>/web-<instance> as MQTT 5 response topic and as
 * reply_to, the UUID as correlation data, a deadline from the caller's wait; a reply is
 * matched by its correlation data, else by its id. accepted and started come back as events,
 * the result as the final answer, no result within "wait" as error timeout; after a broker
 * reconnect each open request is asked again with the same id. Every request
 * that was sent gets one audit record when it ends, whether or not its shim client is still
 * there.
 *
 * Ownership: struct relay is owned by the caller (relay_free); it borrows loop, mqtt, audit and
 * metrics, which must outlive it. Lines handed to a deliver callback are owned by the relay
 * and freed after the callback returns. */
#ifndef WEB_RELAY_H
#define WEB_RELAY_H

#include "shimproto.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

struct loop;
struct mqtt;
struct mqtt_msg;
struct audit;
struct metrics;
struct relay;

#define RELAY_UUID_LEN 36
/* A request's deadline is this long before its caller gives up (half the wait when shorter). */
#define RELAY_DEADLINE_MARGIN_S 2.0

/* Called on the loop thread with one response line for the client whose owner pointer started
 * the request; final is true for the last line of the request. line is NULL when it could not
 * be built (no memory): a final call still ends the request. */
typedef void (*relay_deliver_cb)(void *owner, cJSON *line, bool final);

struct relay *relay_new(struct loop *loop, struct mqtt *mqtt, struct audit *audit,
			struct metrics *metrics, const char *prefix, const char *instance);
void relay_free(struct relay *r);
/* The profile's deadline (Unix s) of a request sent at now_s whose caller waits wait_s for
 * its result: now + max(wait - RELAY_DEADLINE_MARGIN_S, wait / 2). */
double relay_deadline(double now_s, double wait_s);
/* The profile's request document (the caller owns it; NULL: no memory): id, action, args
 * (copied; {} when NULL), timeout when > 0, deadline, reply_to, "progress": true. */
cJSON *relay_command(const char *id, const char *action, const cJSON *args, double timeout_s,
		     double deadline_s, const char *reply_to);
/* The filter to subscribe for replies: <prefix>/+/reply/+/web-<instance> (borrowed). */
const char *relay_reply_filter(const struct relay *r);
/* Starts a request parsed by shimproto (op request) for user (a valid name: it is a topic
 * level of the reply topic); its deadline is the profile's, or req's own when earlier; uuid
 * gets the request id
 * (RELAY_UUID_LEN+1 bytes). Returns 0 or -errno (the publish failed; logged). */
int relay_start(struct relay *r, const struct shim_req *req, const char *user, void *owner,
		relay_deliver_cb cb, char *uuid);
/* Handles a message on a reply topic; false if the topic is not one of ours. Replies other
 * than accepted, started and result are ignored. */
bool relay_on_message(struct relay *r, const struct mqtt_msg *m);
/* Ends with error forbidden (a final line to the owner) each request of owner whose home
 * granted() no longer allows; it still runs to its end and is audited, silently. */
void relay_end_ungranted(struct relay *r, void *owner,
			 bool (*granted)(void *owner, const char *home));
/* The owner is gone: its requests still run to their end and are audited, silently. */
void relay_detach(struct relay *r, void *owner);
size_t relay_pending(const struct relay *r);
/* The broker connection dropped / is back: each request published before the drop is asked
 * again with the same id (its progress events marked duplicate are then dropped). */
void relay_on_disconnected(struct relay *r);
void relay_on_connected(struct relay *r);

#endif
