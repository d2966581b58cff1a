/* registry: every controller the home server knows, keyed by id, with its links and its
 * liveness (ctl.h). A controller is found by verified announces, by dialling in, from the
 * static list, from the state dir or from the retained info of a previous run.
 *
 * Addresses: a controller's address is the one where a link last completed the TLS-PSK
 * handshake and said hello (or the configured / remembered one). An announce naming another
 * address, or another boot, only makes the registry try that address beside the current link
 * (at most REGISTRY_TRIES_MAX links per controller at once); the controller moves there only
 * when that link says hello, and the old link stays until then. So a replayed announce (a
 * stranger cannot complete the handshake) can neither move a controller nor take it offline.
 *
 * Ownership: struct ctl belongs to the registry and lives as long as it. */
#ifndef MHS_REGISTRY_H
#define MHS_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "announce.h"

/* Links per controller at once: its own address plus candidates an announce named. */
#define REGISTRY_TRIES_MAX 3
/* A candidate address whose link failed is not tried again for this long (ms). */
#define REGISTRY_QUARANTINE_MS 30000

struct loop;
struct lanmsg;
struct link_ctx;
struct peerlimit;
struct registry;
struct ctl;

struct registry_opts {
	uint64_t announce_interval_ms;
	int offline_after;
};

struct registry_ops {
	/* status or info changed: republish the retained status/info (and save the registry) */
	void (*on_changed)(void *arg, struct ctl *c);
	/* a link said hello: queued work may be sent */
	void (*on_link_up)(void *arg, struct ctl *c);
	/* the controller went offline (reason as in ctl_offline_reason) */
	void (*on_offline)(void *arg, struct ctl *c);
	/* accepted / started / result / event (or a type of a later version) from the
	 * controller, as the link delivered it (lanmsg.h; borrowed) */
	void (*on_msg)(void *arg, struct ctl *c, const struct lanmsg *msg);
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
/* A controller known from a previous run's retained info: offline unless
 * heard from within offline_after periods. */
void registry_add_known(struct registry *r, const char *id, const cJSON *info);
/* The state dir's snapshot (store.h: registry.json): what a previous run knew. */
void registry_restore(struct registry *r, const cJSON *doc);
/* The snapshot to save; caller owns. */
cJSON *registry_snapshot(struct registry *r);
/* Sends bye to every link (clean shutdown). */
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
/* Sends one link message, len bytes of JSON text (borrowed): 0, or <0 if the link is not up. */
int ctl_send(struct ctl *c, const char *text, size_t len);
/* The last announce accepted from it (boot "" if none), to seed the replay guard. */
void ctl_announce_state(const struct ctl *c, const char **boot, uint64_t *seq, int64_t *ts);

#endif
