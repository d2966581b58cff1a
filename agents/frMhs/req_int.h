/* req_int.h: what the three files of the request table share (req.c: the lifecycle table;
 * reqset.c: the set of requests, per-controller open lists and the ended list; reqlog.c: the
 * records in the state dir). Nothing outside them includes it; see req.h. */
#ifndef MHS_REQ_INT_H
#define MHS_REQ_INT_H

#include "req.h"

#include "command.h"
#include "loop.h"

struct route {
	char *topic;             /* owned */
	unsigned char *corr;     /* owned, corr_len bytes */
	size_t corr_len;
	bool final_only;
};

struct reqq;

struct req {
	struct reqs *q;
	char key[COMMAND_NAME_MAX + COMMAND_ID_MAX + 2];   /* "<ctl>/<id>" */
	char ctl[COMMAND_NAME_MAX + 1];
	char id[COMMAND_ID_MAX + 1];
	char action[COMMAND_NAME_MAX + 1];
	enum req_state state;
	cJSON *frame;            /* the link command; owned; NULL once ended */
	char *frame_text;        /* frame printed (req_frame_text), until frame changes; owned */
	size_t frame_len;
	char *final;             /* once ended: the answer as the first requester got it; owned */
	struct route *routes;    /* owned; NULL once ended */
	int nroutes;
	int sends;               /* times the command went over a link since it (re)opened */
	int64_t until;           /* unix ms: end of the wait (WAITING) or of the result guard */
	struct loop_timer timer;
	struct reqq *qq;         /* its controller's open list, while open */
	struct req *hnext;       /* hash chain */
	struct req *prev, *next; /* in qq's list while open, in the ended list once ended */
};

/* One controller's open requests, oldest first. */
struct reqq {
	char ctl[COMMAND_NAME_MAX + 1];
	struct req *first, *last;
	size_t n;
	struct reqq *hnext;
};

struct reqs {
	struct loop *loop;
	struct reqs_opts o;
	const struct reqs_ops *ops;
	void *arg;
	struct store *store;     /* borrowed; NULL = nothing persisted */
	struct req **buckets;
	size_t nbuckets;
	struct reqq **qbuckets;
	size_t nqbuckets;
	struct req *ended_first, *ended_last;
	size_t nopen, nended;
	bool restoring;          /* replaying the state dir: nothing is written back */
};

/* reqset.c */
struct req *req_find(const struct reqs *q, const char *key);
/* ctl's open list, created when asked to; NULL if none. */
struct reqq *reqq_get(struct reqs *q, const char *ctl, bool create);
/* A new request in the table (not open yet; its timer calls req_timer). */
struct req *req_new(struct reqs *q, const char *ctl, const char *id);
/* Into its controller's open list: 0, or -1 without memory. */
int req_open(struct reqs *q, struct req *r);
/* Out of whichever list it is in (open or ended). */
void req_unlink(struct reqs *q, struct req *r);
/* At the end of the ended list; the oldest ended ones beyond dedup_max are forgotten. */
void req_link_ended(struct reqs *q, struct req *r);
void req_free(struct reqs *q, struct req *r);
/* r->frame as text, printed once and kept until req_frame_changed: NULL without memory. */
const char *req_frame_text(struct req *r, size_t *len);
/* r->frame was replaced, edited or freed: the text printed from it is dropped. */
void req_frame_changed(struct req *r);
/* One more requester of r; one that wants progress takes "progress": false off r->frame. */
int req_add_route(struct req *r, const char *topic, const void *corr, size_t corr_len,
		  bool final_only);
void req_routes_free(struct req *r);
enum req_state req_state_parse(const cJSON *v);
/* Calls fn for every open request. */
void reqs_each_open(struct reqs *q, void (*fn)(struct req *r, void *arg), void *arg);

/* reqlog.c */
/* A record of r for requests.log ("open", "route", "state" or "close"); caller owns. */
cJSON *req_record(struct req *r, const char *op);
cJSON *req_route_json(const struct route *rt);
/* Appends rec (taken) unless restoring; rewrites the log when it grew too long. */
void req_write(struct reqs *q, cJSON *rec);
/* The same for r's "state" or "close" record. */
void req_write_step(struct reqs *q, const struct req *r, const char *op);

/* req.c */
void req_timer(void *arg);
void req_arm(struct req *r);

#endif
