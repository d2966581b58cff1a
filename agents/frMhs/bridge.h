/* bridge: the MQTT side of the home server and the topic contract of docs/topics.md. It
 * keeps the home's will/birth status and its heartbeat (every heartbeat_interval s while
 * connected, and at once on every connect), publishes what it is handed (controller status, info,
 * sensor state and events, replies, stats), and turns messages on fr/<home>/ctl/<ctl>/cmd
 * into requests for the request table: retained ones are refused, malformed ones answered
 * rejected, and a reply topic outside fr/<home>/reply/ is refused (docs/topics.md,
 * "Replies"). It knows nothing of controllers or requests beyond that: main wires it.
 * A request on fr/<home>/sync is answered with the home's whole state (controllers from
 * ops->controllers, each with the latest state of its sensors as the bridge last had it), on
 * the same reply routes as commands: consumers need no retained message (docs/topics.md).
 *
 * Events (QoS 0) are published while the broker is connected (and a small allowance while it
 * is away); each one is counted as published or dropped. A sensor's retained state is
 * published at most every 100 ms, always its latest value, and what changed while the broker
 * was away goes out on reconnect: neither crowds the replies out of the MQTT client's queue. */
#ifndef MHS_BRIDGE_H
#define MHS_BRIDGE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "conf.h"

struct loop;
struct bridge;
struct lanmsg;
struct lanmsg_event;
struct command;
struct req_route;
struct mqtt_msg;
struct mqtt_subopts;

struct bridge_ops {
	/* After every (re)connect: republish what is retained (controllers' status and info). */
	void (*on_connected)(void *arg);
	/* A well-formed, non-retained request whose reply route is allowed (all borrowed). */
	void (*on_request)(void *arg, const char *ctl, const struct command *cmd,
			   const struct req_route *rt);
	/* Whether this home server knows ctl/id (a retained copy of a request it already ran). */
	bool (*known)(void *arg, const char *ctl, const char *id);
	/* Retained info of a previous run, heard in the first seconds after start (borrowed). */
	void (*on_known_ctl)(void *arg, const char *ctl, const cJSON *info);
	/* bridge_status changed (displays); may be NULL. */
	void (*on_status)(void *arg);
	/* A message on a topic the bridge does not handle itself (bridge_subscribe); may be NULL. */
	void (*on_other)(void *arg, const struct mqtt_msg *m);
	/* For an answer on fr/<home>/sync: a new array (the caller owns it) of
	 * {"id", "status": "online"|"offline", "info": {...}}, one per known controller. */
	cJSON *(*controllers)(void *arg);
};

struct bridge_counters {
	unsigned long long requests;          /* messages on .../cmd */
	unsigned long long refused;           /* answered rejected by the bridge itself */
	unsigned long long events_in;         /* events from controllers */
	unsigned long long events_out;        /* ... published */
	unsigned long long events_dropped;    /* ... not published (broker away or refused) */
	unsigned long long publish_failed;    /* other publishes the MQTT client refused */
};

struct bridge *bridge_new(struct loop *loop, const struct conf *conf, const struct bridge_ops *ops,
			  void *arg);
int bridge_start(struct bridge *b);
/* Publishes offline for the home and disconnects (bounded wait). */
void bridge_stop(struct bridge *b);
void bridge_free(struct bridge *b);

/* Retained status and info of a controller (info borrowed). */
void bridge_publish_ctl(struct bridge *b, const char *ctl, const cJSON *info, bool online);
/* A reply (len bytes of JSON, borrowed) to one requester. */
void bridge_reply(struct bridge *b, const struct req_route *rt, const char *msg, size_t len);
/* An event from a controller (msg as its link delivered it, e its fields; both borrowed):
 * .../event (the bytes it arrived in without the LAN protocol's "type"), and
 * .../state/<sensor> for a state event. */
void bridge_ctl_event(struct bridge *b, const char *ctl, const struct lanmsg *msg,
		      const struct lanmsg_event *e);
/* A result no request of this home server waits for: on .../ctl/<ctl>/result, the bytes it
 * arrived in with "ctl" added. */
void bridge_unclaimed_result(struct bridge *b, const char *ctl, const struct lanmsg *msg);
/* Retained fr/<home>/<leaf> (borrowed). */
void bridge_publish_retained(struct bridge *b, const char *leaf, const cJSON *doc);
/* For other modules of frMhs (ha.c): a subscription of their own, remembered across
 * reconnects (opts may be NULL), and a message published as is; a refused publish is counted
 * in publish_failed. 0 or <0 (mqtt.h). */
int bridge_subscribe(struct bridge *b, const char *filter, int qos, const struct mqtt_subopts *opts);
int bridge_publish_raw(struct bridge *b, const char *topic, const void *payload, size_t len,
		       int qos, bool retain);
/* A request ended (the displays show the last one). */
void bridge_note_answer(struct bridge *b, const char *ctl, const char *action, const char *status);
const struct bridge_counters *bridge_counters(const struct bridge *b);
bool bridge_connected(const struct bridge *b);

/* What the displays show. */
struct bridge_status {
	bool broker_up;
	char last_cmd[160];       /* "kitchen/lamp_on ok" */
	char display_text[256];   /* last text published to fr/<home>/display */
	unsigned long long display_seq;
};
const struct bridge_status *bridge_status(const struct bridge *b);

#endif
