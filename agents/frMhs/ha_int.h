/* ha_int.h: what the two files of the ha module share (ha.c: the retained topics, controllers
 * and republishing; hacmd.c: HA's commands and the outcomes of requests). Nothing outside them
 * includes it; see ha.h. */
#ifndef MHS_HA_INT_H
#define MHS_HA_INT_H

#include "ha.h"

#include "command.h"
#include "hamap.h"
#include "loop.h"

#include <stdint.h>

/* Retained topics this module keeps track of in all (its own are a few per action and
 * sensor); beyond, learned copies are not tracked (logged). */
#define HA_RETS_MAX 65536

enum ha_rkind { HA_CONFIG, HA_STATE, HA_ATTR };

/* A retained topic of this module: a discovery config, or an action's state or attributes. */
struct ha_ret {
	char *topic;          /* owned */
	char *payload;        /* owned: what it holds; NULL = not decided yet (a sensor's config) */
	enum ha_rkind kind;
	char action[COMMAND_NAME_MAX + 1];   /* HA_STATE, HA_ATTR */
	bool want;            /* it belongs to what this module publishes now */
	bool sent;            /* payload went out on the current connection */
	bool live;            /* the broker may hold a copy (published, or seen there) */
	struct ha_ret *next;
};

/* A controller, or (id "") the home server with whatever config has no controller's id. */
struct ha_ctl {
	char id[COMMAND_NAME_MAX + 1];
	bool known;                   /* the registry knows it (its info arrived) */
	char *sig;                    /* owned: the info its entities were made from */
	cJSON *info;                  /* owned */
	struct hamap_action *acts;    /* owned, nacts */
	int nacts;
	cJSON *numeric;               /* owned: sensor -> whether a number was seen */
	struct ha_ret *rets;
	struct ha_ctl *next;
};

struct ha {
	struct loop *loop;
	const struct conf *conf;
	struct bridge *b;
	const struct ha_ops *ops;
	void *arg;
	struct hamap_ctx x;
	struct ha_ctl home;           /* first of the list */
	size_t nrets;
	bool pruned, full_logged;
	struct loop_timer prune_timer, birth_timer;
	uint64_t last_full;           /* monotonic ms when everything was last published */
};

/* The tracked retained topic of c (made when missing; NULL beyond HA_RETS_MAX or without
 * memory). */
struct ha_ret *ha_ret_get(struct ha *h, struct ha_ctl *c, const char *topic, enum ha_rkind kind,
			  const char *action);
/* payload (taken) is what r holds from now on: published when it changed or has not gone
 * out on this connection. */
void ha_ret_set(struct ha *h, struct ha_ret *r, char *payload);
struct ha_ctl *ha_ctl_find(struct ha *h, const char *id);
/* c's classified action, or NULL. */
const struct hamap_action *ha_act(const struct ha_ctl *c, const char *action);
bool ha_enabled(const struct ha *h);
/* hacmd.c: a message on fr/<home>/ha/<ctl>/<action>/set. */
void ha_command(struct ha *h, const char *ctl, const char *action, const struct mqtt_msg *m);

#endif
