/* req: the request lifecycle; see req.h for the state × event table. */
#include "req_int.h"

#include "command.h"
#include "lanmsg.h"
#include "log.h"
#include "loop.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What an event carries. */
struct req_in {
	const struct lanmsg *msg;      /* ACCEPTED, STARTED, RESULT */
	const struct lanmsg_result *result;   /* RESULT: its fields */
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
	struct lanmsg_result lr = { .id = id, .action = action, .status = status, .reason = reason };
	cJSON *o = lanmsg_result_new(&lr);
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "ctl", ctl);
	if (retry)
		cJSON_AddTrueToObject(o, "retry");
	req_json_set_ts(o);
	return o;
}

/* offline and lost say the request may not have run or that nobody knows: not an outcome; a
 * controller marks answers that left no trace of the id with "recorded": false
 * (docs/lan-protocol.md), frMhs its own with "retry". */
static bool req_is_outcome(const struct lanmsg *m, const struct lanmsg_result *lr)
{
	if (lr->unrecorded || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m->json, "retry")))
		return false;
	return strcmp(lr->status, "lost") != 0 && strcmp(lr->status, "offline") != 0;
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

/* msg as requesters get it (docs/topics.md, "Replies"): with this request's ctl, a ts, the
 * LAN protocol's "recorded": false as the MQTT contract's "retry": true, and duplicate only
 * where it is true for them. A controller's message keeps the bytes it arrived in
 * (lanmsg_forward); serialised once per variant however many requesters wait. */
static char *req_reply_text(const struct req *r, const struct lanmsg *msg, bool unrecorded,
			    bool dup, size_t *len)
{
	static const char *const drop[] = { "duplicate", NULL };
	static const char *const drop_rec[] = { "duplicate", "recorded", NULL };
	cJSON *set = cJSON_CreateObject();
	if (!set)
		return NULL;
	cJSON_AddStringToObject(set, "ctl", r->ctl);
	if (dup)
		cJSON_AddTrueToObject(set, "duplicate");
	if (unrecorded && !cJSON_GetObjectItemCaseSensitive(msg->json, "retry"))
		cJSON_AddTrueToObject(set, "retry");
	if (!cJSON_GetObjectItemCaseSensitive(msg->json, "ts"))
		cJSON_AddNumberToObject(set, "ts", (double)loop_wall_ms());
	char *text = lanmsg_forward(msg, unrecorded ? drop_rec : drop, set, len);
	cJSON_Delete(set);
	return text;
}

static void req_send_to(const struct req *r, const struct route *rt, const char *text, size_t len)
{
	struct req_route pub = { rt->topic, rt->corr, rt->corr_len, rt->final_only };
	r->q->ops->reply(r->q->arg, &pub, text, len);
}

/* o (borrowed), made here, to one requester. */
static void req_reply_json(struct reqs *q, const struct req_route *rt, const cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	if (text)
		q->ops->reply(q->arg, rt, text, strlen(text));
	free(text);
}

/* The first requester sees the controller's duplicate flag (true when the id ran before this
 * request, e.g. before a restart of frMhs), except after frMhs's own re-send on a new link,
 * where it is an artefact. Every later requester asked again: for them it is a duplicate.
 * *first_text (if asked for) is the reply without the flag, kept for a later repeat. */
static void req_fan_out(struct req *r, const struct lanmsg *msg, bool unrecorded, bool progress,
			char **first_text)
{
	bool ctl_dup = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg->json, "duplicate"));
	char *text[2] = { NULL, NULL };   /* without, with "duplicate": true */
	size_t len[2] = { 0, 0 };
	for (int i = 0; i < r->nroutes; i++) {
		if (progress && r->routes[i].final_only)
			continue;
		int v = (i == 0 ? ctl_dup && r->sends <= 1 : true) ? 1 : 0;
		if (!text[v])
			text[v] = req_reply_text(r, msg, unrecorded, v == 1, &len[v]);
		if (text[v])
			req_send_to(r, &r->routes[i], text[v], len[v]);
	}
	if (first_text) {
		if (!text[0])
			text[0] = req_reply_text(r, msg, unrecorded, false, &len[0]);
		*first_text = text[0];
		text[0] = NULL;
	}
	free(text[0]);
	free(text[1]);
}

/* --- transitions --- */

static void req_persist_state(struct req *r) { req_write_step(r->q, r, "state"); }

/* Every final answer goes through here: closed in the state dir, to every requester, then
 * remembered. The close record comes first: libmosquitto writes a publish to the socket at
 * once, so closing after it left a window in which a crash (SIGKILL right as the requester got
 * its answer, as the conformance suite does) made the next frMhs re-send the answer -- a second
 * final result. Closed first, a crash in between loses the answer instead, and the requester's
 * repeat of the id gets it, duplicate (docs/topics.md, "Across restarts of frMhs"). */
static void req_finish(struct req *r, const struct lanmsg *msg, const struct lanmsg_result *lr)
{
	struct reqs *q = r->q;
	bool outcome = req_is_outcome(msg, lr);
	char *text = NULL;
	/* Out of the open set first: a compaction the close record triggers rewrites the open
	 * requests, and must not write this one as open again. */
	loop_timer_stop(q->loop, &r->timer);
	req_unlink(q, r);
	req_write_step(q, r, "close");
	req_fan_out(r, msg, lr->unrecorded, false, &text);
	log_info("request %s (%s): %s%s", r->key, r->action, lr->status, outcome ? "" : " (not final: "
		 "the same id asked again is tried again)");
	if (q->ops->answered)
		q->ops->answered(q->arg, r->ctl, r->action, lr->status);
	if (q->ops->outcome)
		q->ops->outcome(q->arg, r->ctl, r->action,
				cJSON_GetObjectItemCaseSensitive(r->frame, "args"), msg->json);
	req_routes_free(r);
	cJSON_Delete(r->frame);
	r->frame = NULL;
	req_frame_changed(r);
	free(r->final);
	r->final = text;
	r->state = outcome ? REQ_DONE : REQ_GAVEUP;
	req_link_ended(q, r);
}

/* A final answer made here (o borrowed). */
static void req_finish_own(struct req *r, const cJSON *o)
{
	struct lanmsg m;
	struct lanmsg_result lr;
	lanmsg_wrap(&m, o);
	if (o && lanmsg_result(&m, &lr, NULL, 0) == 0)
		req_finish(r, &m, &lr);
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
	size_t len;
	const char *text = req_frame_text(r, &len);
	if (!text || q->ops->send(q->arg, r->ctl, text, len) < 0)
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
	enum req_state ns = in->msg->type == LANMSG_ACCEPTED ? REQ_ACCEPTED : REQ_STARTED;
	if (r->state == REQ_WAITING) {
		/* Sent before this process knew it (a previous run): the controller has it now. */
		r->until = req_guard_until(r);
		req_arm(r);
	}
	r->state = ns;
	req_fan_out(r, in->msg, false, true, NULL);
	req_persist_state(r);
}

static void req_ev_finish(struct req *r, const struct req_in *in)
{
	req_finish(r, in->msg, in->result);
}

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
	req_finish_own(r, o);
	cJSON_Delete(o);
}

static void req_ev_lost(struct req *r, const struct req_in *in)
{
	char reason[400];
	snprintf(reason, sizeof reason, "controller went offline: %s; ask again with the same id "
		 "to learn the outcome", in->reason);
	cJSON *o = req_result_json(r->ctl, r->id, r->action, "lost", reason, true);
	req_finish_own(r, o);
	cJSON_Delete(o);
}

static void req_busy(struct reqs *q, const char *ctl, const char *id, const struct req_route *rt,
		     const char *reason)
{
	cJSON *o = req_result_json(ctl, id, NULL, "busy", reason, true);
	req_reply_json(q, rt, o);
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
	cJSON *o = r->state == REQ_STARTED ? lanmsg_started_new(r->id, 0, true)
					   : lanmsg_accepted_new(r->id);
	struct lanmsg m;
	lanmsg_wrap(&m, o);
	size_t len;
	char *text = o ? req_reply_text(r, &m, false, true, &len) : NULL;
	if (text)
		r->q->ops->reply(r->q->arg, rt, text, len);
	free(text);
	cJSON_Delete(o);
}

static void req_ev_answer(struct req *r, const struct req_in *in)
{
	static const char *const drop[] = { "duplicate", "ts", NULL };
	struct lanmsg m;
	if (!r->final || lanmsg_decode(&m, r->final, strlen(r->final), NULL, 0) < 0)
		return;
	log_info("request %s: repeated; answered from the first run, not run again", r->key);
	cJSON *set = cJSON_CreateObject();
	cJSON_AddTrueToObject(set, "duplicate");
	cJSON_AddNumberToObject(set, "ts", (double)loop_wall_ms());
	size_t len;
	char *text = lanmsg_forward(&m, drop, set, &len);
	if (text)
		r->q->ops->reply(r->q->arg, in->rt, text, len);
	free(text);
	cJSON_Delete(set);
	lanmsg_clear(&m);
}

/* A late real outcome of a request answered lost: kept, so a repeat learns it here. */
static void req_ev_settle(struct req *r, const struct req_in *in)
{
	if (!req_is_outcome(in->msg, in->result))
		return;
	char *text = req_reply_text(r, in->msg, false, false, NULL);
	if (!text)
		return;
	free(r->final);
	r->final = text;
	r->state = REQ_DONE;
	log_info("request %s: its outcome arrived after it was answered lost; kept for a repeat",
		 r->key);
}

static cJSON *req_frame(const struct command *cmd) { return lanmsg_command_new(cmd); }

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
	req_frame_changed(r);
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
		req_reply_json(q, rt, o);
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

bool reqs_ctl_msg(struct reqs *q, const char *ctl, const struct lanmsg *msg)
{
	struct lanmsg_result lr;
	struct req_in in = { .msg = msg, .result = &lr };
	char why[256];
	const char *id;
	enum req_event ev;
	if (msg->type == LANMSG_RESULT) {
		if (lanmsg_result(msg, &lr, why, sizeof why) < 0)
			goto bad;
		if (!lr.id)
			return false;   /* the refusal of an unreadable command: nobody's here */
		id = lr.id;
		ev = REQ_EV_RESULT;
	} else if (msg->type == LANMSG_ACCEPTED || msg->type == LANMSG_STARTED) {
		struct lanmsg_progress p;
		if (lanmsg_progress(msg, &p, why, sizeof why) < 0)
			goto bad;
		id = p.id;
		ev = msg->type == LANMSG_ACCEPTED ? REQ_EV_ACCEPTED : REQ_EV_STARTED;
	} else {
		return false;
	}
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl, id);
	struct req *r = req_find(q, key);
	if (!r)
		return false;
	req_dispatch(r, ev, &in);
	return true;
bad:
	log_warnx("controller %s: %s; message dropped", ctl, why);
	return true;
}
