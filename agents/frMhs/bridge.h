/* bridge: the MQTT side of the home server and the topic contract of docs/topics.md. It keeps
 * the retained home/controller status, info and sensor state topics true, turns requests on
 * fr/<home>/ctl/<ctl>/cmd into link commands, and routes accepted/started/result back to the
 * requester (MQTT 5 response topic + correlation data, else reply_to, else .../result). Each
 * request id is remembered (bounded) so a redelivered request is answered, never run twice. */
#ifndef MHS_BRIDGE_H
#define MHS_BRIDGE_H

#include <cjson/cJSON.h>

#include "conf.h"

struct loop;
struct registry;
struct ctl;
struct bridge;

struct bridge *bridge_new(struct loop *loop, const struct conf *conf);
void bridge_set_registry(struct bridge *b, struct registry *reg);
int bridge_start(struct bridge *b);
/* Publishes offline for the home and disconnects (bounded wait). */
void bridge_stop(struct bridge *b);
void bridge_free(struct bridge *b);

/* Registry events (wired by main). */
void bridge_ctl_changed(struct bridge *b, struct ctl *c);
void bridge_ctl_link_up(struct bridge *b, struct ctl *c);
void bridge_ctl_offline(struct bridge *b, struct ctl *c);
void bridge_ctl_msg(struct bridge *b, struct ctl *c, const cJSON *msg);

/* What the displays show. */
struct bridge_status {
	bool broker_up;
	char last_cmd[160];       /* "kitchen/lamp_on ok" */
	char display_text[256];   /* last text published to fr/<home>/display */
	unsigned long long display_seq;
};
const struct bridge_status *bridge_status(const struct bridge *b);
/* Called when bridge_status changes (for the displays); optional. */
void bridge_on_status(struct bridge *b, void (*cb)(void *arg), void *arg);

#endif
