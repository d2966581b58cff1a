/* ha: Home Assistant MQTT discovery for a home's controllers (docs/topics.md, "Home
 * Assistant"), on by frmhs.conf's homeassistant = { enabled = true; }. The controllers become
 * HA devices behind the home server's own device, their actions buttons, switches, selects,
 * numbers or texts and their sensors HA sensors (hamap.h says which), published as retained
 * configs under <discovery prefix>/<component>/fr_<home>/<object>/config and kept true: a
 * config is republished when a controller's actions or sensors change, removed (an empty
 * retained message) when an action or a controller is gone or discovery is switched off, and
 * sent again when HA's birth message says it (re)started.
 *
 * HA cannot send fr's request JSON, so each action entity has a command topic,
 * fr/<home>/ha/<ctl>/<action>/set, whose plain payload (PRESS, ON, an option, a number) this
 * module turns into a request with an id of its own, handed to the request table exactly as an
 * MQTT request. Every final answer to a request for an exposed action -- whoever asked --
 * becomes the entity's retained attributes (status, exit code, output), and a successful one
 * its retained state.
 *
 * What the broker holds is learned at each subscription (its retained copies), so after a
 * restart of frMhs configs of controllers it no longer knows are removed too: HA_PRUNE_MS after
 * a connect, when the registry has heard of every controller it knows.
 *
 * Ownership: struct ha is the caller's (ha_free); it borrows the loop, the configuration and
 * the bridge, which outlive it. Everything passed in is borrowed for the call. */
#ifndef MHS_HA_H
#define MHS_HA_H

#include <cjson/cJSON.h>
#include <stdbool.h>

struct loop;
struct conf;
struct bridge;
struct command;
struct req_route;
struct mqtt_msg;
struct ha;

struct ha_ops {
	/* A request made from an HA command: into the request table like any MQTT request. */
	void (*request)(void *arg, const char *ctl, const struct command *cmd,
			const struct req_route *rt);
};

struct ha *ha_new(struct loop *loop, const struct conf *conf, struct bridge *b,
		  const struct ha_ops *ops, void *arg);
/* Subscribes to what it learns from and listens to; before the bridge starts. 0 or -1. */
int ha_start(struct ha *h);
void ha_free(struct ha *h);

/* The bridge (re)connected: everything is published again. */
void ha_connected(struct ha *h);
/* A controller of the registry and its info document (docs/topics.md), after every change. */
void ha_ctl_info(struct ha *h, const char *ctl, const cJSON *info);
/* An event from a controller (a sensor's value tells whether it is numeric). */
void ha_ctl_event(struct ha *h, const char *ctl, const cJSON *msg);
/* A request for ctl/action ended: its arguments (the request's "args", may be NULL) and its
 * final result. */
void ha_outcome(struct ha *h, const char *ctl, const char *action, const cJSON *args,
		const cJSON *result);
/* A message the bridge does not handle itself: false if it is none of this module's. */
bool ha_message(struct ha *h, const struct mqtt_msg *m);

#endif
