/* req: the lifecycle of the requests to a home's controllers, from their arrival on MQTT to
 * their one final answer, as an explicit state × event table (req.c). Open requests are kept
 * per controller, so a link that comes up or a controller that goes offline touches only its
 * own. Every id is remembered (answered ones up to dedup_max, oldest forgotten first), so a
 * repeated id is answered and never run twice; a repeat while it runs joins it (its requester
 * gets the final result too, on its own reply topic). An answer that is not the request's
 * outcome (offline, lost, or a controller's result marked "retry") is not kept as final: the
 * same id asked again is tried again, and the controller's journal tells the truth. Open
 * requests are written to the state dir (store.h) so that a restarted frMhs still answers them.
 *
 *   state \ event  LINKED    ACCEPTED  STARTED   RESULT    TIMER     OFFLINE   REPEAT
 *   WAITING        send      progress  progress  finish    offline   -         join
 *   SENT           resend    progress  progress  finish    lost      lost      join
 *   ACCEPTED       resend    -         progress  finish    lost      lost      join
 *   STARTED        resend    -         -         finish    lost      lost      join
 *   DONE           -         -         -         -         -         -         answer
 *   GAVEUP         -         -         -         settle    -         -         reopen
 *
 * WAITING waits for the controller's link until the request's deadline (or request_wait); the
 * TIMER of SENT..STARTED is the result guard (the action's timeout + result_grace). DONE holds
 * a real outcome, GAVEUP an answer that is not one (offline, lost, retry). */
#ifndef MHS_REQ_H
#define MHS_REQ_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lanmsg;
struct loop;
struct store;
struct command;
struct reqs;

/* Requesters that may wait for one id at once (the first one and its repeats). */
#define REQ_ROUTES_MAX 8

enum req_state { REQ_WAITING, REQ_SENT, REQ_ACCEPTED, REQ_STARTED, REQ_DONE, REQ_GAVEUP,
		 REQ_NSTATES };
enum req_event { REQ_EV_LINKED, REQ_EV_ACCEPTED, REQ_EV_STARTED, REQ_EV_RESULT, REQ_EV_TIMER,
		 REQ_EV_OFFLINE, REQ_EV_REPEAT, REQ_NEVENTS };

/* Where one requester's replies go; everything borrowed. */
struct req_route {
	const char *topic;
	const void *corr;      /* MQTT 5 correlation data, copied back on every reply */
	size_t corr_len;
	bool final_only;       /* "progress": false */
};

struct reqs_ops {
	/* Sends the link command (len bytes of JSON text, borrowed; lanmsg_command_new, printed
	 * once per request and kept for its re-sends and its state dir record) to the controller:
	 * 0, or <0 if its link is not up. */
	int (*send)(void *arg, const char *ctl, const char *frame, size_t len);
	/* The controller's link is up (its hello arrived): a request may be sent now. */
	bool (*linked)(void *arg, const char *ctl);
	/* The controller's own timeout of the action in ms, 0 if unknown. */
	uint64_t (*action_timeout)(void *arg, const char *ctl, const char *action);
	/* Why the controller cannot take the request ("offline: shut down cleanly"). */
	void (*why_not)(void *arg, const char *ctl, char *buf, size_t n);
	/* Publishes a reply (len bytes of JSON, borrowed) to one requester. */
	void (*reply)(void *arg, const struct req_route *rt, const char *msg, size_t len);
	/* A request got its final answer (displays, stats); may be NULL. */
	void (*answered)(void *arg, const char *ctl, const char *action, const char *status);
	/* The same with the request's arguments (its "args", NULL if none) and the final result
	 * (both borrowed), for whoever follows an action's outcomes (ha.h); may be NULL. */
	void (*outcome)(void *arg, const char *ctl, const char *action, const cJSON *args,
			const cJSON *result);
};

struct reqs_opts {
	size_t dedup_max;          /* answered ids remembered */
	size_t open_max;           /* requests open at once; beyond, new ones are answered busy */
	uint64_t result_grace_ms;  /* beyond the action's timeout before a sent request is lost */
};

/* store may be NULL (nothing persisted). Caller owns; reqs_free. */
struct reqs *reqs_new(struct loop *loop, const struct reqs_opts *o, const struct reqs_ops *ops,
		      void *arg, struct store *store);
/* Reopens the requests the state dir holds (a previous run's open ones); call once, before
 * any other event. They wait for their controllers as new ones do. */
void reqs_restore(struct reqs *q);
void reqs_free(struct reqs *q);

/* A request from MQTT (cmd and rt borrowed): new, or a repeat of a known id. It may wait for
 * its controller's link until wait_until (unix ms). */
void reqs_request(struct reqs *q, const char *ctl, const struct command *cmd,
		  const struct req_route *rt, int64_t wait_until);
/* The controller's link is up: its waiting requests are sent, sent ones sent again (its
 * journal answers a repeat, so a link that dropped mid-run still yields the result). */
void reqs_ctl_linked(struct reqs *q, const char *ctl);
/* The controller went offline: its sent requests end lost; waiting ones go on waiting. */
void reqs_ctl_offline(struct reqs *q, const char *ctl, const char *reason);
/* accepted / started / result from the controller, as its link delivered it (borrowed); one
 * that fails lanmsg's checks is logged and dropped. false if no request of this frMhs has that
 * id (a result nobody here waits for). A result is passed on as the bytes it arrived in, with
 * the reply's own fields added (lanmsg_forward). */
bool reqs_ctl_msg(struct reqs *q, const char *ctl, const struct lanmsg *msg);

/* A final result made by the home server itself (not run by it, or lost): "retry" is set when
 * it is not the request's outcome. id NULL gives "id": null. Caller owns. */
cJSON *req_result_json(const char *ctl, const char *id, const char *action, const char *status,
		       const char *reason, bool retry);
/* Sets key to a string, replacing any member of that name (never two "id"s). */
void req_json_set(cJSON *o, const char *key, const char *value);

size_t reqs_open_count(const struct reqs *q);
size_t reqs_count(const struct reqs *q);
/* The state of ctl/id, REQ_NSTATES if unknown (tests, logs). */
enum req_state reqs_state(const struct reqs *q, const char *ctl, const char *id);
const char *req_state_name(enum req_state s);

#endif
