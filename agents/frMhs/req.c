/* req: the request lifecycle; see req.h for the state × event table. */
#include "req_int.h"

#include "command.h"
#include "log.h"
#include "loop.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What an event carries. */
struct req_in {
	const cJSON *msg;              /* ACCEPTED, STARTED, RESULT */
	const char *reason;            /* OFFLINE */
	const struct command *cmd;     /* REPEAT */
	const struct req_route *rt;    /* REPEAT */
	int64_t wait_until;            /* REPEAT */
};

/* --- JSON --- */

void req_json_set(cJSON *o, const char *key, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	if (value)
		cJSON_AddStringToObject(o, key, value);
	else
		cJSON_AddNullToObject(o, key);
}

static void req_json_set_ts(cJSON *o)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, "ts");
	cJSON_AddNumberToObject(o, "ts", (double)loop_wall_ms());
}

cJSON *req_result_json(const char *ctl, const char *id, const char *action, const char *status,
		       const char *reason, bool retry)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "result");
	req_json_set(o, "id", id);
	cJSON_AddStringToObject(o, "ctl", ctl);
	if (action)
		cJSON_AddStringToObject(o, "action", action);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "reason", reason);
	if (retry)
		cJSON_AddTrueToObject(o, "retry");
	req_json_set_ts(o);
	return o;
}

/* offline and lost say the request may not have run or that nobody knows: not an outcome; a
 * controller marks answers that left no trace of the id with "recorded": false
 * (docs/lan-protocol.md), frMhs its own with "retry". */
static bool req_is_outcome(const cJSON *result)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "status");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "retry")) ||
	    cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(result, "recorded")))
		return false;
	return !(cJSON_IsString(st) &&
		 (strcmp(st->valuestring, "lost") == 0 || strcmp(st->valuestring, "offline") == 0));
}

void req_arm(struct req *r)
{
	int64_t now = (int64_t)loop_wall_ms();
	loop_timer_start(r->q->loop, &r->timer, r->until > now ? (uint64_t)(r->until - now) : 0);
}

/* The controller enforces the timeout; this guard only catches a result that never comes. */
static int64_t req_guard_until(const struct req *r)
{
	struct reqs *q = r->q;
	uint64_t t = q->ops->action_timeout(q->arg, r->ctl, r->action);
	/* The request's own timeout can only shorten it (checked by command.c; from the state dir
	 * it is read back bounded). */
	uint64_t own = (uint64_t)store_json_int(cJSON_GetObjectItemCaseSensitive(r->frame, "timeout"),
						 1000.0, 0, 86400000, 0);
	if (own && (!t || own < t))
		t = own;
	if (!t)
		t = 300000;
	return (int64_t)(loop_wall_ms() + t + q->o.result_grace_ms);
}

/* --- replies --- */

/* msg as one requester gets it: this request's ctl and id (once each), a ts, and duplicate set
 * only where it is true for that requester. */
static cJSON *req_reply_msg(const struct req *r, const cJSON *msg, bool dup)
{
	cJSON *o = cJSON_Duplicate(msg, 1);
	req_json_set(o, "ctl", r->ctl);
	req_json_set(o, "id", r->id);
	cJSON_DeleteItemFromObjectCaseSensitive(o, "duplicate");
	if (dup)
		cJSON_AddTrueToObject(o, "duplicate");
	/* The LAN protocol's "recorded": false (the controller left no trace of the id) is what
	 * the MQTT contract calls "retry": true. */
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "recorded"))) {
		cJSON_DeleteItemFromObjectCaseSensitive(o, "recorded");
		if (!cJSON_GetObjectItemCaseSensitive(o, "retry"))
			cJSON_AddTrueToObject(o, "retry");
	}
	if (!cJSON_GetObjectItemCaseSensitive(o, "ts"))
		req_json_set_ts(o);
	return o;
}

static void req_send_to(const struct req *r, const struct route *rt, const cJSON *msg)
{
	struct req_route pub = { rt->topic, rt->corr, rt->corr_len, rt->final_only };
	r->q->ops->reply(r->q->arg, &pub, msg);
}

/* The first requester sees the controller's duplicate flag (true when the id ran before this
 * request, e.g. before a restart of frMhs), except after frMhs's own re-send on a new link,
 * where it is an artefact. Every later requester asked again: for them it is a duplicate. */
static void req_fan_out(struct req *r, const cJSON *msg, bool progress, char **first_text)
{
	bool ctl_dup = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "duplicate"));
	for (int i = 0; i < r->nroutes; i++) {
		if (progress && r->routes[i].final_only)
			continue;
		cJSON *m = req_reply_msg(r, msg, i == 0 ? ctl_dup && r->sends <= 1 : true);
		if (i == 0 && first_text) {
			/* Kept without the flag: a later repeat gets it with duplicate: true. */
			cJSON *k = cJSON_Duplicate(m, 1);
			cJSON_DeleteItemFromObjectCaseSensitive(k, "duplicate");
			*first_text = cJSON_PrintUnformatted(k);
			cJSON_Delete(k);
		}
		req_send_to(r, &r->routes[i], m);
		cJSON_Delete(m);
	}
}

/* --- transitions --- */

static void req_persist_state(struct req *r) { req_write_step(r->q, r, "state"); }

/* Every final answer goes through here: closed in the state dir, to every requester, then
 * remembered. The close record comes first: libmosquitto writes a publish to the socket at
 * once, so closing after it left a window in which a crash (SIGKILL right as the requester got
 * its answer, as the conformance suite does) made the next frMhs re-send the answer -- a second
 * final result. Closed first, a crash in between loses the answer instead, and the requester's
 * repeat of the id gets it, duplicate (docs/topics.md, "Across restarts of frMhs"). */
static void req_finish(struct req *r, const cJSON *result)
{
	struct reqs *q = r->q;
	bool outcome = req_is_outcome(result);
	char *text = NULL;
	/* Out of the open set first: a compaction the close record triggers rewrites the open
	 * requests, and must not write this one as open again. */
	loop_timer_stop(q->loop, &r->timer);
	req_unlink(q, r);
	req_write_step(q, r, "close");
	req_fan_out(r, result, false, &text);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "status");
	const char *status = cJSON_IsString(st) ? st->valuestring : "?";
	log_info("request %s (%s): %s%s", r->key, r->action, status, outcome ? "" : " (not final: "
		 "the same id asked again is tried again)");
	if (q->ops->answered)
		q->ops->answered(q->arg, r->ctl, r->action, status);
	if (q->ops->outcome)
		q->ops->outcome(q->arg, r->ctl, r->action,
				cJSON_GetObjectItemCaseSensitive(r->frame, "args"), result);
	req_routes_free(r);
	cJSON_Delete(r->frame);
	r->frame = NULL;
	free(r->final);
	r->final = text;
	r->state = outcome ? REQ_DONE : REQ_GAVEUP;
	req_link_ended(q, r);
}

static void req_ev_ignore(struct req *r, const struct req_in *in)
{
	(void)r;
	(void)in;
}

static void req_ev_send(struct req *r, const struct req_in *in)
{
	struct reqs *q = r->q;
	(void)in;
	if (q->ops->send(q->arg, r->ctl, r->frame) < 0)
		return;   /* still waiting; sent on the next link-up */
	r->sends++;
	if (r->state == REQ_WAITING)
		r->state = REQ_SENT;
	r->until = req_guard_until(r);
	req_arm(r);
	req_persist_state(r);
}

static void req_ev_progress(struct req *r, const struct req_in *in)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(in->msg, "type");
	enum req_state ns = strcmp(type->valuestring, "accepted") == 0 ? REQ_ACCEPTED : REQ_STARTED;
	if (r->state == REQ_WAITING) {
		/* Sent before this process knew it (a previous run): the controller has it now. */
		r->until = req_guard_until(r);
		req_arm(r);
	}
	r->state = ns;
	req_fan_out(r, in->msg, true, NULL);
	req_persist_state(r);
}

static void req_ev_finish(struct req *r, const struct req_in *in) { req_finish(r, in->msg); }

static void req_ev_timer(struct req *r, const struct req_in *in)
{
	char why[256], reason[400];
	(void)in;
	cJSON *o;
	if (r->state == REQ_WAITING) {
		r->q->ops->why_not(r->q->arg, r->ctl, why, sizeof why);
		snprintf(reason, sizeof reason, "controller %s %s; not sent (waited for it as long as "
			 "the request allowed)", r->ctl, why);
		o = req_result_json(r->ctl, r->id, r->action, "offline", reason, true);
	} else {
		o = req_result_json(r->ctl, r->id, r->action, "lost",
				    "no result from the controller within the action's timeout + "
				    "result_grace; ask again with the same id to learn the outcome", true);
	}
	req_finish(r, o);
	cJSON_Delete(o);
}

static void req_ev_lost(struct req *r, const struct req_in *in)
{
	char reason[400];
	snprintf(reason, sizeof reason, "controller went offline: %s; ask again with the same id "
		 "to learn the outcome", in->reason);
	cJSON *o = req_result_json(r->ctl, r->id, r->action, "lost", reason, true);
	req_finish(r, o);
	cJSON_Delete(o);
}

static void req_busy(struct reqs *q, const char *ctl, const char *id, const struct req_route *rt,
		     const char *reason)
{
	cJSON *o = req_result_json(ctl, id, NULL, "busy", reason, true);
	q->ops->reply(q->arg, rt, o);
	cJSON_Delete(o);
}

static bool req_same_route(const struct route *a, const struct req_route *b)
{
	return strcmp(a->topic, b->topic) == 0 && a->corr_len == b->corr_len &&
	       (a->corr_len == 0 || memcmp(a->corr, b->corr, a->corr_len) == 0);
}

static void req_ev_join(struct req *r, const struct req_in *in)
{
	const struct req_route *rt = in->rt;
	bool known = false;
	for (int i = 0; i < r->nroutes && !known; i++)
		known = req_same_route(&r->routes[i], rt);
	if (!known) {
		if (r->nroutes >= REQ_ROUTES_MAX) {
			req_busy(r->q, r->ctl, r->id, rt, "too many requesters already wait for this id; "
				 "ask again once it has ended");
			return;
		}
		if (req_add_route(r, rt->topic, rt->corr, rt->corr_len, rt->final_only) < 0)
			return;
		cJSON *rec = req_record(r, "route");
		cJSON_AddItemToObject(rec, "route", req_route_json(&r->routes[r->nroutes - 1]));
		req_write(r->q, rec);
	}
	log_info("request %s: repeated while open (%s); it gets the final result too", r->key,
		 req_state_name(r->state));
	if (rt->final_only || r->state < REQ_ACCEPTED)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", r->state == REQ_STARTED ? "started" : "accepted");
	cJSON *m = req_reply_msg(r, o, true);
	r->q->ops->reply(r->q->arg, rt, m);
	cJSON_Delete(m);
	cJSON_Delete(o);
}

static void req_ev_answer(struct req *r, const struct req_in *in)
{
	cJSON *o = r->final ? cJSON_Parse(r->final) : NULL;
	if (!o)
		return;
	log_info("request %s: repeated; answered from the first run, not run again", r->key);
	cJSON_AddTrueToObject(o, "duplicate");
	req_json_set_ts(o);
	r->q->ops->reply(r->q->arg, in->rt, o);
	cJSON_Delete(o);
}

/* A late real outcome of a request answered lost: kept, so a repeat learns it here. */
static void req_ev_settle(struct req *r, const struct req_in *in)
{
	if (!req_is_outcome(in->msg))
		return;
	cJSON *m = req_reply_msg(r, in->msg, false);
	free(r->final);
	r->final = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	r->state = REQ_DONE;
	log_info("request %s: its outcome arrived after it was answered lost; kept for a repeat",
		 r->key);
}

static cJSON *req_frame(const struct command *cmd)
{
	cJSON *f = command_to_json(cmd);
	if (!f)
		return NULL;
	/* Requester-side fields the controller has no use for. */
	cJSON_DeleteItemFromObjectCaseSensitive(f, "reply_to");
	cJSON_DeleteItemFromObjectCaseSensitive(f, "progress");
	cJSON_AddStringToObject(f, "type", "command");
	return f;
}

/* Waiting, or sent at once when the controller's link is up. */
static void req_start(struct req *r)
{
	struct reqs *q = r->q;
	req_write(q, req_record(r, "open"));
	if (q->ops->linked(q->arg, r->ctl)) {
		req_ev_send(r, NULL);
		if (r->state != REQ_WAITING)
			return;
	}
	log_info("request %s: waiting for controller %s", r->key, r->ctl);
	req_arm(r);
}

/* The same id after an answer that was not its outcome: asked again, so tried again. */
static void req_ev_reopen(struct req *r, const struct req_in *in)
{
	struct reqs *q = r->q;
	if (q->nopen >= q->o.open_max) {
		req_busy(q, r->ctl, r->id, in->rt, "the home server has too many requests in flight");
		return;
	}
	cJSON *frame = req_frame(in->cmd);
	if (!frame || req_add_route(r, in->rt->topic, in->rt->corr, in->rt->corr_len,
				    in->rt->final_only) < 0) {
		cJSON_Delete(frame);
		req_routes_free(r);
		return;
	}
	req_unlink(q, r);
	if (req_open(q, r) < 0) {
		req_link_ended(q, r);   /* back where it was */
		cJSON_Delete(frame);
		req_routes_free(r);
		return;
	}
	log_info("request %s: asked again after '%s'; tried again", r->key, req_state_name(r->state));
	free(r->final);
	r->final = NULL;
	r->frame = frame;
	snprintf(r->action, sizeof r->action, "%s", in->cmd->action);
	r->state = REQ_WAITING;
	r->sends = 0;
	r->until = in->wait_until;
	req_start(r);
}

typedef void (*req_handler)(struct req *r, const struct req_in *in);

#define IGN req_ev_ignore
static const req_handler req_table[REQ_NSTATES][REQ_NEVENTS] = {
	/*               LINKED       ACCEPTED         STARTED          RESULT         TIMER         OFFLINE      REPEAT */
	[REQ_WAITING]  = { req_ev_send, req_ev_progress, req_ev_progress, req_ev_finish, req_ev_timer, IGN,         req_ev_join },
	[REQ_SENT]     = { req_ev_send, req_ev_progress, req_ev_progress, req_ev_finish, req_ev_timer, req_ev_lost, req_ev_join },
	[REQ_ACCEPTED] = { req_ev_send, IGN,             req_ev_progress, req_ev_finish, req_ev_timer, req_ev_lost, req_ev_join },
	[REQ_STARTED]  = { req_ev_send, IGN,             IGN,             req_ev_finish, req_ev_timer, req_ev_lost, req_ev_join },
	[REQ_DONE]     = { IGN,         IGN,             IGN,             IGN,           IGN,          IGN,         req_ev_answer },
	[REQ_GAVEUP]   = { IGN,         IGN,             IGN,             req_ev_settle, IGN,          IGN,         req_ev_reopen },
};
#undef IGN

static void req_dispatch(struct req *r, enum req_event ev, const struct req_in *in)
{
	log_debug("request %s: %s + event %d", r->key, req_state_name(r->state), (int)ev);
	req_table[r->state][ev](r, in);
}

void req_timer(void *arg)
{
	struct req *r = arg;
	req_dispatch(r, REQ_EV_TIMER, &(struct req_in){ 0 });
}

/* --- events from outside --- */

void reqs_request(struct reqs *q, const char *ctl, const struct command *cmd,
		  const struct req_route *rt, int64_t wait_until)
{
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl, cmd->id);
	struct req *r = req_find(q, key);
	/* Past its deadline already (queued by the broker through an outage of this home server,
	 * say): whatever the controller's link, it would only answer expired. Not an outcome, as
	 * the controller's own expired is not; an open request or a known outcome of the id still
	 * answers a repeat. */
	if (cmd->deadline_ms && cmd->deadline_ms <= (int64_t)loop_wall_ms() &&
	    (!r || r->state == REQ_GAVEUP)) {
		log_info("request %s (%s): its deadline had passed when it arrived; not sent", key,
			 cmd->action);
		cJSON *o = req_result_json(ctl, cmd->id, cmd->action, "expired",
					   "its deadline had passed when the home server received it; "
					   "not sent", true);
		q->ops->reply(q->arg, rt, o);
		cJSON_Delete(o);
		return;
	}
	if (r) {
		struct req_in in = { .cmd = cmd, .rt = rt, .wait_until = wait_until };
		req_dispatch(r, REQ_EV_REPEAT, &in);
		return;
	}
	if (q->nopen >= q->o.open_max) {
		req_busy(q, ctl, cmd->id, rt, "the home server has too many requests in flight");
		return;
	}
	r = req_new(q, ctl, cmd->id);
	if (!r)
		return;
	snprintf(r->action, sizeof r->action, "%s", cmd->action);
	r->frame = req_frame(cmd);
	r->state = REQ_WAITING;
	r->until = wait_until;
	if (!r->frame || req_add_route(r, rt->topic, rt->corr, rt->corr_len, rt->final_only) < 0 ||
	    req_open(q, r) < 0) {
		req_free(q, r);
		return;
	}
	req_start(r);
}

/* Events that walk a controller's open list: a handler may end the request it is given. */
static void reqs_ctl_event(struct reqs *q, const char *ctl, enum req_event ev, const char *reason)
{
	struct reqq *qq = reqq_get(q, ctl, false);
	if (!qq)
		return;
	/* Only the requests open now: the handlers cannot add any to this list, and a request that
	 * ends leaves it. The count bounds the walk if the list's own struct goes away. */
	size_t n = qq->n;
	struct req *r = qq->first;
	struct req_in in = { .reason = reason };
	while (r && n--) {
		struct req *next = r->next;
		req_dispatch(r, ev, &in);
		r = next;
	}
}

void reqs_ctl_linked(struct reqs *q, const char *ctl) { reqs_ctl_event(q, ctl, REQ_EV_LINKED, NULL); }

void reqs_ctl_offline(struct reqs *q, const char *ctl, const char *reason)
{
	reqs_ctl_event(q, ctl, REQ_EV_OFFLINE, reason);
}

bool reqs_ctl_msg(struct reqs *q, const char *ctl, const cJSON *msg)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (!cJSON_IsString(type) || !cJSON_IsString(id) || strlen(id->valuestring) > COMMAND_ID_MAX)
		return false;
	enum req_event ev;
	if (strcmp(type->valuestring, "accepted") == 0)
		ev = REQ_EV_ACCEPTED;
	else if (strcmp(type->valuestring, "started") == 0)
		ev = REQ_EV_STARTED;
	else if (strcmp(type->valuestring, "result") == 0)
		ev = REQ_EV_RESULT;
	else
		return false;
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl, id->valuestring);
	struct req *r = req_find(q, key);
	if (!r)
		return false;
	req_dispatch(r, ev, &(struct req_in){ .msg = msg });
	return true;
}
