/* registry_int.h: what the registry's two files share (registry.c: controllers, announces,
 * what is known from before, queries; reglink.c: their links -- dials, hellos, dialled-in
 * links). Nothing outside them includes it; see registry.h. */
#ifndef MHS_REGISTRY_INT_H
#define MHS_REGISTRY_INT_H

#include "registry.h"

#include "backoff.h"
#include "ctl.h"
#include "loop.h"

/* One link of a controller: dialled to an address, or one it dialled in with. */
struct attempt {
	struct ctl *c;
	struct link *link;
	struct sockaddr_storage addr;   /* dialled address; for a dialled-in link the peer's host */
	bool inbound;
	bool dialing;                   /* holds a dial slot until its TLS is up */
	struct attempt *next;
};

struct ctl {
	struct registry *r;
	char id[64], name[128], version[32], boot[33];
	struct sockaddr_storage addr;   /* verified, configured or remembered; see registry.h */
	bool have_addr, is_static;
	bool restored;                  /* known from a previous run (state dir or retained info) */
	cJSON *actions, *sensors;       /* owned */
	struct ctl_live live;
	struct attempt *up;             /* the link that said hello; owned */
	struct attempt *tries;          /* links not (yet) up; owned */
	int ntries;
	bool dial_wanted;               /* its own address waits for a dial slot */
	struct sockaddr_storage cand;   /* an announced address that waits for a dial slot ... */
	bool cand_wanted;               /* ... (more announce at once than there are slots) */
	struct sockaddr_storage quarantined;   /* a candidate whose link failed ... */
	uint64_t quarantine_until;             /* ... is left alone until then (monotonic ms) */
	int64_t last_seen;              /* unix ms */
	int64_t info_published;         /* unix ms of the last info with last_seen */
	char ann_boot[33];              /* the last announce accepted: seeds the replay guard */
	uint64_t ann_seq;
	int64_t ann_ts;
	struct loop_timer window, redial;
	struct backoff backoff;         /* redials */
	struct ctl *next;
};

/* A link that dialled in and has not said who it is yet. */
struct inbound {
	struct registry *r;
	struct link *link;
	struct peerlimit *pl;           /* the listener's pending budgets */
	struct peerlimit_slot *slot;    /* until the handshake completes */
	struct sockaddr_storage peer;
	struct inbound *next;
};

struct registry {
	struct loop *loop;
	struct link_ctx *lctx;
	struct registry_opts o;
	const struct registry_ops *ops;
	void *arg;
	struct ctl *ctls;
	int count;
	struct inbound *inbound;
	bool shutting_down;
	int dialing;                    /* attempts holding a dial slot */
	struct loop_defer dial_next;    /* hands free dial slots to waiting controllers */
};

/* Handshakes in flight at once: a home server (re)starting among many controllers dials them
 * in waves instead of holding every TLS handshake's buffers at the same moment. */
#define REGISTRY_DIAL_MAX 32

/* registry.c */
struct ctl *ctl_new(struct registry *r, const char *id);
/* Feeds ev to the liveness table (ctl.h) and does what it asks for. */
void ctl_step(struct ctl *c, enum ctl_event ev, const char *detail);
/* Republish status and info. */
void ctl_changed(struct ctl *c);
void ctl_set_json(cJSON **dst, const cJSON *src);
/* Copies src (NULL: nothing) into dst (size n) if it fits; true if dst changed. */
bool ctl_take(char *dst, size_t n, const char *src);
/* The same with the string field key of o. */
bool ctl_take_str(char *dst, size_t n, const cJSON *o, const char *key);
bool registry_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
const char *registry_addr_str(const struct sockaddr_storage *a, char *buf, size_t n);

/* reglink.c */
/* Its own address, while it has no link up (or later, when no dial slot is free). */
void ctl_dial(struct ctl *c);
/* A candidate address whose link failed lately: left alone until quarantine_until. */
bool ctl_quarantined(const struct ctl *c, const struct sockaddr_storage *a);
/* Dials an announced address now, or as soon as a dial slot is free. */
void ctl_dial_announced(struct ctl *c, const struct sockaddr_storage *to);
/* Dials `to` beside whatever links the controller has; false when it cannot now. */
bool ctl_dial_to(struct ctl *c, const struct sockaddr_storage *to);
/* The link being dialled to `to`, if any. */
struct attempt *ctl_try_to(struct ctl *c, const struct sockaddr_storage *to);
void ctl_redial(void *arg);
/* Closes and frees one of the controller's links, silently. */
void attempt_free(struct attempt *a);
/* Deferred call: hands free dial slots to controllers that wait for one. */
void registry_dial_waiting(void *arg);
/* Closes the dialled-in links that have not said who they are. */
void registry_inbound_free_all(struct registry *r);

#endif
