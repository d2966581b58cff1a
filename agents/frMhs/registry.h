/* registry: every controller the home server knows, keyed by id, and its liveness. A
 * controller is found by verified announces, by dialling in, from the static list or from the
 * retained info of a previous run. The registry dials controllers it learns about, follows
 * address changes and restarts (new boot id), and decides online/offline: a controller goes
 * offline only when its link is down AND it missed offline_after announce periods, so one lost
 * datagram never flaps it; a clean shutdown (bye) or a failed handshake is final at once.
 * Each offline carries its reason. */
#ifndef MHS_REGISTRY_H
#define MHS_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "announce.h"

struct loop;
struct link_ctx;
struct peerlimit;
struct registry;
struct ctl;   /* owned by the registry; lives as long as the registry */

struct registry_opts {
	uint64_t announce_interval_ms;
	int offline_after;
};

struct registry_ops {
	/* status or info changed: republish the retained status/info */
	void (*on_changed)(void *arg, struct ctl *c);
	/* the link is up and the controller said hello: queued work may be sent */
	void (*on_link_up)(void *arg, struct ctl *c);
	/* the controller went offline (reason as in ctl_offline_reason) */
	void (*on_offline)(void *arg, struct ctl *c);
	/* accepted / started / result / event from the controller (msg borrowed) */
	void (*on_msg)(void *arg, struct ctl *c, const cJSON *msg);
};

struct registry *registry_new(struct loop *loop, struct link_ctx *lctx,
			      const struct registry_opts *o, const struct registry_ops *ops,
			      void *arg);
void registry_free(struct registry *r);

/* A verified, fresh, non-replayed announce from `from`. */
void registry_announce(struct registry *r, const struct announce *a,
		       const struct sockaddr_storage *from);
/* A controller that dialled in (fd from net_tcp_accept; the registry owns it from now on).
 * Until its handshake completes it is a stranger in pl's budgets (pl outlives the registry). */
void registry_accept(struct registry *r, struct peerlimit *pl, int fd,
		     const struct sockaddr_storage *peer);
/* A controller that does not announce: dialled at addr:port, kept forever. */
void registry_add_static(struct registry *r, const char *id, const char *addr, uint16_t port);
/* A controller known from a previous run's retained info: offline unless heard from within
 * offline_after periods. */
void registry_add_known(struct registry *r, const char *id, const cJSON *info);
/* Sends bye to every link and closes them (clean shutdown). */
void registry_shutdown(struct registry *r);

struct ctl *registry_find(struct registry *r, const char *id);
/* Iteration: first, then next (NULL at the end). */
struct ctl *registry_first(struct registry *r);
struct ctl *registry_next(struct ctl *c);
int registry_count(const struct registry *r);
int registry_online_count(const struct registry *r);

const char *ctl_id(const struct ctl *c);
bool ctl_online(const struct ctl *c);
bool ctl_link_up(const struct ctl *c);
const char *ctl_offline_reason(const struct ctl *c);  /* "" while online */
/* Timeout (ms) the controller declared for an action, 0 if unknown. */
uint64_t ctl_action_timeout(const struct ctl *c, const char *action);
/* The retained info document; caller owns. */
cJSON *ctl_info_json(const struct ctl *c);
/* 0, or <0 if the link is not up. */
int ctl_send(struct ctl *c, const cJSON *msg);

#endif
