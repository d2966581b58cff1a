/* test_req: frMhs's request table (agents/frMhs/req*.c). Every state × event pair of the
 * lifecycle is walked against expectations written from docs/topics.md: what the controller is
 * sent, what each requester gets (and with which duplicate flag), and the next state; then the
 * promises of issue 11: a repeat while open joins and gets the final result on its own reply
 * topic, offline / lost / "retry" answers are not final, replies carry ctl and id once, the
 * tables are bounded, and open requests survive a restart through the state dir. */
#include <check.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "lanmsg.h"
#include "log.h"
#include "logcapture.h"
#include "loop.h"
#include "req.h"
#include "store.h"

#define CTL "kitchen"
#define LONG_MS 3600000

struct fx {
	struct loop *loop;
	struct reqs *q;
	struct store *store;
	bool linked;
	uint64_t timeout_ms;      /* the action's own timeout (ops) */
	int sends;
	const char *progress;     /* the last command sent: its "progress", "-" when absent */
	cJSON *replies;           /* [{"topic","corr","msg"}] */
	int answered;
	cJSON *outcomes;          /* ["<action> <args> <status>"] */
	struct loop_timer stop;
};

static struct fx F;
static char dir[64];

static int fx_send(void *arg, const char *ctl, const char *text, size_t len)
{
	(void)arg;
	ck_assert_uint_eq(strlen(text), len);
	cJSON *frame = cJSON_ParseWithLength(text, len);
	ck_assert_ptr_nonnull(frame);
	ck_assert_str_eq(ctl, CTL);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(frame, "type")->valuestring, "command");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(frame, "reply_to"));
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(frame, "progress");
	const char *progress = !pr ? "-" : cJSON_IsFalse(pr) ? "false" : "other";
	cJSON_Delete(frame);
	if (!F.linked)
		return -ENOTCONN;
	F.progress = progress;
	F.sends++;
	return 0;
}

static bool fx_linked(void *arg, const char *ctl)
{
	(void)arg;
	(void)ctl;
	return F.linked;
}

static uint64_t fx_timeout(void *arg, const char *ctl, const char *action)
{
	(void)arg;
	(void)ctl;
	(void)action;
	return F.timeout_ms;
}

static void fx_why(void *arg, const char *ctl, char *buf, size_t n)
{
	(void)arg;
	(void)ctl;
	snprintf(buf, n, "is offline: test");
}

static void fx_reply(void *arg, const struct req_route *rt, const char *text, size_t len)
{
	(void)arg;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "topic", rt->topic);
	char corr[64] = "";
	memcpy(corr, rt->corr ? rt->corr : "", rt->corr_len < 63 ? rt->corr_len : 63);
	cJSON_AddItemToObject(o, "corr", cJSON_CreateString(corr));
	cJSON_AddNumberToObject(o, "corr_len", (double)rt->corr_len);
	ck_assert_uint_eq(strlen(text), len);
	cJSON_AddStringToObject(o, "text", text);
	cJSON *msg = cJSON_ParseWithLength(text, len);
	ck_assert_ptr_nonnull(msg);
	cJSON_AddItemToObject(o, "msg", msg);
	cJSON_AddItemToArray(F.replies, o);
}

static void fx_answered(void *arg, const char *ctl, const char *action, const char *status)
{
	(void)arg;
	(void)ctl;
	(void)action;
	(void)status;
	F.answered++;
}

static void fx_outcome(void *arg, const char *ctl, const char *action, const cJSON *args,
		       const cJSON *result)
{
	(void)arg;
	char line[256];
	char *a = args ? cJSON_PrintUnformatted(args) : NULL;
	ck_assert_str_eq(ctl, CTL);
	snprintf(line, sizeof line, "%s %s %s", action, a ? a : "-",
		 cJSON_GetObjectItemCaseSensitive(result, "status")->valuestring);
	free(a);
	cJSON_AddItemToArray(F.outcomes, cJSON_CreateString(line));
}

static const struct reqs_ops ops = { fx_send,  fx_linked,   fx_timeout, fx_why,
				     fx_reply, fx_answered, fx_outcome };

static void fx_stop(void *arg)
{
	(void)arg;
	loop_stop(F.loop);
}

static void run_ms(uint64_t ms)
{
	loop_timer_start(F.loop, &F.stop, ms);
	loop_run(F.loop);
}

static void fx_open(size_t dedup_max, size_t open_max)
{
	struct reqs_opts o = { .dedup_max = dedup_max, .open_max = open_max, .result_grace_ms = 5 };
	F.q = reqs_new(F.loop, &o, &ops, NULL, F.store);
	ck_assert_ptr_nonnull(F.q);
}

static void setup(void)
{
	memset(&F, 0, sizeof F);
	F.loop = loop_new();
	loop_timer_init(&F.stop, fx_stop, NULL);
	F.replies = cJSON_CreateArray();
	F.outcomes = cJSON_CreateArray();
	F.timeout_ms = LONG_MS;
	fx_open(100, 100);
}

static void teardown(void)
{
	reqs_free(F.q);
	store_close(F.store);
	loop_timer_stop(F.loop, &F.stop);
	loop_free(F.loop);
	cJSON_Delete(F.replies);
	cJSON_Delete(F.outcomes);
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		ck_assert_int_eq(system(cmd), 0);
		dir[0] = '\0';
	}
}

static void clear_replies(void)
{
	cJSON_Delete(F.replies);
	F.replies = cJSON_CreateArray();
	F.sends = 0;
}

/* A request on topic (correlation data "c-<topic>") that may wait wait_ms for its controller. */
static void ask(const char *id, const char *topic, bool progress, uint64_t wait_ms)
{
	char json[256], corr[64];
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"action\":\"lamp\",\"args\":{\"state\":\"on\"},"
		 "\"progress\":%s}", id, progress ? "true" : "false");
	snprintf(corr, sizeof corr, "c-%s", topic);
	struct command cmd;
	char why[128];
	ck_assert_int_eq(command_parse(json, strlen(json), &cmd, why, sizeof why), 0);
	struct req_route rt = { topic, corr, strlen(corr), cmd.final_only };
	reqs_request(F.q, CTL, &cmd, &rt, (int64_t)loop_wall_ms() + (int64_t)wait_ms);
	command_clear(&cmd);
}

/* accepted / started / result "<status>" from the controller; extra is more JSON members. */
static bool from_ctl(const char *type, const char *id, const char *status, const char *extra)
{
	char json[512];
	snprintf(json, sizeof json, "{\"type\":\"%s\",\"id\":\"%s\"%s%s%s%s%s}", type, id,
		 status ? ",\"status\":\"" : "", status ? status : "", status ? "\"" : "",
		 extra ? "," : "", extra ? extra : "");
	struct lanmsg m;
	char why[200];
	ck_assert_msg(lanmsg_decode(&m, json, strlen(json), why, sizeof why) == 0, "%s", why);
	bool known = reqs_ctl_msg(F.q, CTL, &m);
	lanmsg_clear(&m);
	return known;
}

/* The replies as "topic:kind" (kind: type, or "result <status>"), " dup" when so marked. */
static const char *replies(void)
{
	static char out[1024];
	out[0] = '\0';
	const cJSON *r;
	cJSON_ArrayForEach(r, F.replies) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "msg");
		const char *type = cJSON_GetObjectItemCaseSensitive(m, "type")->valuestring;
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "status");
		size_t n = strlen(out);
		snprintf(out + n, sizeof out - n, "%s%s:%s%s%s%s", n ? "," : "",
			 cJSON_GetObjectItemCaseSensitive(r, "topic")->valuestring, type,
			 st ? " " : "", st ? st->valuestring : "",
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "duplicate")) ? " dup" : "");
	}
	return out;
}

static const cJSON *reply_msg(int i)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(F.replies, i), "msg");
}

/* Request "x" on t1 brought into state s; short: its timer fires within a few ms. */
static void make(enum req_state s, bool short_timers)
{
	F.timeout_ms = short_timers ? 1 : LONG_MS;
	F.linked = s != REQ_WAITING;
	ask("x", "t1", true, short_timers ? 5 : LONG_MS);
	if (s == REQ_ACCEPTED || s == REQ_STARTED || s == REQ_DONE)
		from_ctl("accepted", "x", NULL, NULL);
	if (s == REQ_STARTED || s == REQ_DONE)
		from_ctl("started", "x", NULL, "\"pid\":42");
	if (s == REQ_DONE)
		from_ctl("result", "x", "ok", "\"exit_code\":0");
	if (s == REQ_GAVEUP)
		reqs_ctl_offline(F.q, CTL, "test");
	ck_assert_int_eq(reqs_state(F.q, CTL, "x"), s);
	clear_replies();
}

static void event(enum req_event e)
{
	switch (e) {
	case REQ_EV_LINKED:
		F.linked = true;
		reqs_ctl_linked(F.q, CTL);
		break;
	case REQ_EV_ACCEPTED:
		from_ctl("accepted", "x", NULL, NULL);
		break;
	case REQ_EV_STARTED:
		from_ctl("started", "x", NULL, "\"pid\":42");
		break;
	case REQ_EV_RESULT:
		from_ctl("result", "x", "ok", "\"exit_code\":0");
		break;
	case REQ_EV_TIMER:
		run_ms(60);
		break;
	case REQ_EV_OFFLINE:
		reqs_ctl_offline(F.q, CTL, "test");
		break;
	case REQ_EV_REPEAT:
		ask("x", "t2", true, LONG_MS);
		break;
	default:
		ck_abort();
	}
}

struct expect {
	enum req_state next;
	int sends;
	const char *replies;
	bool skip;   /* the state has no timer to fire */
};

#define W REQ_WAITING
#define S REQ_SENT
#define A REQ_ACCEPTED
#define R REQ_STARTED
#define D REQ_DONE
#define G REQ_GAVEUP
#define E(n, k, r) { n, k, r, false }
#define SKIP(n) { n, 0, "", true }
static const struct expect table[REQ_NSTATES][REQ_NEVENTS] = {
	/*     LINKED        ACCEPTED                 STARTED                RESULT                   TIMER                          OFFLINE                  REPEAT */
	[W] = { E(S, 1, ""), E(A, 0, "t1:accepted"), E(R, 0, "t1:started"), E(D, 0, "t1:result ok"), E(G, 0, "t1:result offline"), E(W, 0, ""),          E(W, 0, "") },
	[S] = { E(S, 1, ""), E(A, 0, "t1:accepted"), E(R, 0, "t1:started"), E(D, 0, "t1:result ok"), E(G, 0, "t1:result lost"),    E(G, 0, "t1:result lost"), E(S, 0, "") },
	[A] = { E(A, 1, ""), E(A, 0, ""),            E(R, 0, "t1:started"), E(D, 0, "t1:result ok"), E(G, 0, "t1:result lost"),    E(G, 0, "t1:result lost"), E(A, 0, "t2:accepted dup") },
	[R] = { E(R, 1, ""), E(R, 0, ""),            E(R, 0, ""),           E(D, 0, "t1:result ok"), E(G, 0, "t1:result lost"),    E(G, 0, "t1:result lost"), E(R, 0, "t2:started dup") },
	[D] = { E(D, 0, ""), E(D, 0, ""),            E(D, 0, ""),           E(D, 0, ""),             SKIP(D),            E(D, 0, ""),          E(D, 0, "t2:result ok dup") },
	[G] = { E(G, 0, ""), E(G, 0, ""),            E(G, 0, ""),           E(D, 0, ""),             SKIP(G),            E(G, 0, ""),          E(S, 1, "") },
};
#undef E
#undef SKIP
#undef W
#undef S
#undef A
#undef R
#undef D
#undef G

START_TEST(test_every_transition)
{
	for (int s = 0; s < REQ_NSTATES; s++)
		for (int e = 0; e < REQ_NEVENTS; e++) {
			const struct expect *x = &table[s][e];
			if (x->skip)
				continue;
			reqs_free(F.q);
			fx_open(100, 100);
			make((enum req_state)s, e == REQ_EV_TIMER);
			event((enum req_event)e);
			enum req_state got = reqs_state(F.q, CTL, "x");
			ck_assert_msg(got == x->next && F.sends == x->sends && strcmp(replies(), x->replies) == 0,
				      "%s + event %d: got %s, %d sends, replies '%s'; want %s, %d, '%s'",
				      req_state_name((enum req_state)s), e, req_state_name(got), F.sends,
				      replies(), req_state_name(x->next), x->sends, x->replies);
		}
}
END_TEST

/* #11.5: a second requester of the same id (another reply topic, asking for progress or not)
 * gets the final result on its own topic, with its correlation data, marked duplicate. */
START_TEST(test_repeat_joins)
{
	F.linked = true;
	ask("j", "t1", true, LONG_MS);
	from_ctl("accepted", "j", NULL, NULL);
	ask("j", "t2", false, LONG_MS);    /* final only: nothing yet */
	ask("j", "t3", true, LONG_MS);     /* gets the progress so far */
	ask("j", "t1", true, LONG_MS);     /* a redelivery of the first: no second route */
	from_ctl("started", "j", NULL, "\"pid\":7");
	from_ctl("result", "j", "ok", "\"exit_code\":0,\"stdout\":\"on\\n\"");
	ck_assert_str_eq(replies(), "t1:accepted,t3:accepted dup,t1:accepted dup,t1:started,"
			 "t3:started dup,t1:result ok,t2:result ok dup,t3:result ok dup");
	ck_assert_int_eq(F.sends, 1);
	const cJSON *r;
	cJSON_ArrayForEach(r, F.replies) {
		const char *topic = cJSON_GetObjectItemCaseSensitive(r, "topic")->valuestring;
		char corr[64];
		snprintf(corr, sizeof corr, "c-%s", topic);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "corr")->valuestring, corr);
	}
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(reply_msg(6), "stdout")->valuestring, "on\n");
}
END_TEST

/* docs/lan-protocol.md, command: a request whose requesters all asked "progress": false is
 * sent saying so (the controller then sends only the result); a requester that wants progress
 * and joins before the command goes out takes the field off again. A controller that sends
 * accepted and started anyway (one that predates the field) is still filtered here. */
START_TEST(test_link_progress)
{
	F.linked = true;
	ask("q", "t1", false, LONG_MS);
	ck_assert_int_eq(F.sends, 1);
	ck_assert_str_eq(F.progress, "false");
	from_ctl("accepted", "q", NULL, NULL);
	from_ctl("started", "q", NULL, "\"pid\":7");
	from_ctl("result", "q", "ok", "\"exit_code\":0");
	ck_assert_str_eq(replies(), "t1:result ok");
	clear_replies();

	ask("p", "t1", true, LONG_MS);
	ck_assert_str_eq(F.progress, "-");

	/* Waiting for the link: a requester with progress joins, the command goes without. */
	F.linked = false;
	ask("w", "t1", false, LONG_MS);
	ask("w", "t2", true, LONG_MS);
	F.linked = true;
	F.progress = NULL;
	reqs_ctl_linked(F.q, CTL);
	ck_assert_ptr_nonnull(F.progress);
	ck_assert_str_eq(F.progress, "-");
}
END_TEST

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* #11.13: every reply names ctl and id once, also an answer from the table to a repeat. */
START_TEST(test_keys_once)
{
	F.linked = true;
	ask("k", "t1", true, LONG_MS);
	/* A controller that echoes ctl and id itself. */
	from_ctl("result", "k", "ok", "\"ctl\":\"kitchen\",\"exit_code\":0");
	ask("k", "t2", true, LONG_MS);
	ask("k", "t2", true, LONG_MS);
	ck_assert_int_eq(cJSON_GetArraySize(F.replies), 3);
	const cJSON *r;
	cJSON_ArrayForEach(r, F.replies) {
		const char *text = cJSON_GetObjectItemCaseSensitive(r, "text")->valuestring;
		ck_assert_msg(count(text, "\"ctl\":") == 1 && count(text, "\"id\":") == 1 &&
			      count(text, "\"duplicate\":") <= 1 && count(text, "\"ts\":") == 1, "%s", text);
	}
}
END_TEST

/* A request with a deadline, on topic; wait_until is what frMhs derives from it. */
static void ask_deadline(const char *id, const char *topic, int64_t deadline_ms)
{
	char json[256];
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"action\":\"lamp\",\"deadline\":%.3f}", id,
		 (double)deadline_ms / 1000.0);
	struct command cmd;
	char why[128];
	ck_assert_int_eq(command_parse(json, strlen(json), &cmd, why, sizeof why), 0);
	struct req_route rt = { topic, "c", 1, cmd.final_only };
	reqs_request(F.q, CTL, &cmd, &rt, cmd.deadline_ms);
	command_clear(&cmd);
}

/* #11.2: a request whose deadline passed before it reached frMhs (queued by the broker through
 * an outage) is answered expired at once, linked or not, and never sent; not an outcome. A
 * repeat of an id that is open or done still gets that request's answer. */
START_TEST(test_expired_on_arrival)
{
	int64_t past = (int64_t)loop_wall_ms() - 1000;
	for (int linked = 0; linked <= 1; linked++) {
		F.linked = linked;
		clear_replies();
		ask_deadline(linked ? "e1" : "e0", "t1", past);
		ck_assert_str_eq(replies(), "t1:result expired");
		ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply_msg(0), "retry")));
		ck_assert_int_eq(F.sends, 0);
		ck_assert_int_eq(reqs_state(F.q, CTL, linked ? "e1" : "e0"), REQ_NSTATES);
	}
	/* Asked again with a later deadline: it runs. */
	clear_replies();
	ask_deadline("e1", "t1", past + 3600000);
	ck_assert_int_eq(F.sends, 1);
	from_ctl("result", "e1", "ok", NULL);
	/* A late copy of it with the old deadline gets the outcome, not expired. */
	clear_replies();
	ask_deadline("e1", "t2", past);
	ck_assert_str_eq(replies(), "t2:result ok dup");
	/* So does one that joins an open request. */
	ask("e2", "t1", false, LONG_MS);
	clear_replies();
	ask_deadline("e2", "t2", past);
	ck_assert_int_eq(reqs_state(F.q, CTL, "e2"), REQ_SENT);
	from_ctl("result", "e2", "ok", NULL);
	ck_assert_str_eq(replies(), "t1:result ok,t2:result ok dup");
}
END_TEST

/* #11.2/#11.4: offline is not an outcome -- the same id asked again is tried again. */
START_TEST(test_offline_then_again)
{
	F.linked = false;
	ask("o", "t1", false, 5);
	run_ms(60);
	ck_assert_str_eq(replies(), "t1:result offline");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply_msg(0), "retry")));
	ck_assert_int_eq(reqs_state(F.q, CTL, "o"), REQ_GAVEUP);
	clear_replies();
	ask("o", "t2", false, LONG_MS);
	ck_assert_int_eq(reqs_state(F.q, CTL, "o"), REQ_WAITING);
	ck_assert_int_eq(reqs_open_count(F.q), 1);
	F.linked = true;
	reqs_ctl_linked(F.q, CTL);
	ck_assert_int_eq(F.sends, 1);
	from_ctl("result", "o", "ok", NULL);
	/* The new requester only, as a first answer (the old one was told offline). */
	ck_assert_str_eq(replies(), "t2:result ok");
}
END_TEST

/* #11.4: a controller's answer marked retry (it could not record the id) is not final either;
 * after lost, a real outcome that arrives late is kept and answers the repeat. */
START_TEST(test_retry_and_late_outcome)
{
	F.linked = true;
	ask("r", "t1", false, LONG_MS);
	from_ctl("result", "r", "failed", "\"reason\":\"could not record the command durably\",\"retry\":true");
	ck_assert_int_eq(reqs_state(F.q, CTL, "r"), REQ_GAVEUP);
	ask("r", "t1", false, LONG_MS);
	ck_assert_int_eq(reqs_state(F.q, CTL, "r"), REQ_SENT);
	ck_assert_int_eq(F.sends, 2);
	ask("l", "t1", false, LONG_MS);
	reqs_ctl_offline(F.q, CTL, "link lost and 3 announces missed");
	ck_assert_int_eq(reqs_state(F.q, CTL, "l"), REQ_GAVEUP);
	ck_assert_int_eq(reqs_state(F.q, CTL, "r"), REQ_GAVEUP);
	ck_assert(from_ctl("result", "l", "ok", "\"exit_code\":0"));
	ck_assert_int_eq(reqs_state(F.q, CTL, "l"), REQ_DONE);
	clear_replies();
	ask("l", "t9", false, LONG_MS);
	ck_assert_str_eq(replies(), "t9:result ok dup");
	ck_assert_int_eq(F.sends, 0);
	ck_assert(!from_ctl("result", "nobody", "ok", NULL));
}
END_TEST

/* After frMhs's own re-send on a new link the controller's duplicate flag is an artefact; on a
 * first send it is real (the id ran before this request) and reaches the requester. */
START_TEST(test_duplicate_flag)
{
	F.linked = true;
	ask("d1", "t1", false, LONG_MS);
	from_ctl("result", "d1", "ok", "\"duplicate\":true");
	ask("d2", "t1", false, LONG_MS);
	reqs_ctl_linked(F.q, CTL);
	from_ctl("result", "d2", "ok", "\"duplicate\":true");
	ck_assert_str_eq(replies(), "t1:result ok dup,t1:result ok");
}
END_TEST

/* Whoever follows outcomes (Home Assistant's states, ha.h) hears of every final answer once,
 * with the request's arguments: a real result, frMhs's own offline, not a repeat's answer. */
START_TEST(test_outcome)
{
	F.linked = true;
	ask("u1", "t1", false, LONG_MS);
	from_ctl("result", "u1", "ok", "\"exit_code\":0");
	ask("u1", "t2", false, LONG_MS);   /* answered from the table: no second outcome */
	F.linked = false;
	ask("u2", "t1", false, 5);
	run_ms(60);
	ck_assert_int_eq(cJSON_GetArraySize(F.outcomes), 2);
	ck_assert_str_eq(cJSON_GetArrayItem(F.outcomes, 0)->valuestring, "lamp {\"state\":\"on\"} ok");
	ck_assert_str_eq(cJSON_GetArrayItem(F.outcomes, 1)->valuestring, "lamp {\"state\":\"on\"} offline");
	ck_assert_int_eq(F.answered, 2);
}
END_TEST

START_TEST(test_bounds)
{
	F.linked = true;
	/* REQ_ROUTES_MAX requesters per id; beyond, busy (not an outcome). */
	char topic[16];
	for (int i = 0; i < REQ_ROUTES_MAX + 1; i++) {
		snprintf(topic, sizeof topic, "t%d", i);
		ask("b", topic, false, LONG_MS);
	}
	ck_assert_str_eq(replies(), "t8:result busy");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply_msg(0), "retry")));
	/* open_max requests open at once. */
	reqs_free(F.q);
	fx_open(16, 3);
	clear_replies();
	ask("o1", "t1", false, LONG_MS);
	ask("o2", "t1", false, LONG_MS);
	ask("o3", "t1", false, LONG_MS);
	ask("o4", "t1", false, LONG_MS);
	ck_assert_str_eq(replies(), "t1:result busy");
	ck_assert_int_eq(reqs_state(F.q, CTL, "o4"), REQ_NSTATES);
	for (int i = 1; i <= 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "o%d", i);
		from_ctl("result", id, "ok", NULL);
	}
	/* dedup_max answered ids remembered, the oldest forgotten first. */
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "e%d", i);
		ask(id, "t1", false, LONG_MS);
		from_ctl("result", id, "ok", NULL);
	}
	ck_assert_int_eq(reqs_state(F.q, CTL, "e3"), REQ_NSTATES);
	ck_assert_int_eq(reqs_state(F.q, CTL, "e4"), REQ_DONE);
	ck_assert_int_eq(reqs_count(F.q), 16);
}
END_TEST

/* #11.3: open requests survive a restart (a crash: nothing closed) with their state, routes
 * and correlation data; answered ones are not reopened. */
START_TEST(test_restart)
{
	strcpy(dir, "/tmp/fr-tst-req-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	reqs_free(F.q);
	capture_start();
	F.store = store_open(F.loop, dir, "home1");
	capture_end();
	ck_assert_ptr_nonnull(F.store);
	fx_open(100, 100);
	F.linked = false;
	ask("w", "t1", true, LONG_MS);
	F.linked = true;
	ask("s", "t2", false, LONG_MS);
	from_ctl("accepted", "s", NULL, NULL);
	ask("s", "t3", true, LONG_MS);
	ask("done", "t4", false, LONG_MS);
	from_ctl("result", "done", "ok", NULL);
	/* Binary correlation data with a zero byte. */
	char json[] = "{\"id\":\"bin\",\"action\":\"lamp\"}";
	struct command cmd;
	ck_assert_int_eq(command_parse(json, strlen(json), &cmd, NULL, 0), 0);
	struct req_route rt = { "t5", "\x01\x00\xff", 3, false };
	reqs_request(F.q, CTL, &cmd, &rt, (int64_t)loop_wall_ms() + LONG_MS);
	command_clear(&cmd);
	reqs_free(F.q);          /* as if killed: the log is all that is left */
	store_close(F.store);
	capture_start();
	F.store = store_open(F.loop, dir, "home1");
	fx_open(100, 100);
	reqs_restore(F.q);
	capture_end();
	ck_assert_int_eq(reqs_open_count(F.q), 3);
	ck_assert_int_eq(reqs_state(F.q, CTL, "w"), REQ_WAITING);
	ck_assert_int_eq(reqs_state(F.q, CTL, "s"), REQ_ACCEPTED);
	ck_assert_int_eq(reqs_state(F.q, CTL, "bin"), REQ_SENT);
	ck_assert_int_eq(reqs_state(F.q, CTL, "done"), REQ_NSTATES);
	ck_assert_int_le(store_log_lines(F.store), 3);   /* rewritten: one record per open one */
	clear_replies();
	reqs_ctl_linked(F.q, CTL);
	ck_assert_int_eq(F.sends, 3);
	from_ctl("started", "s", NULL, "\"pid\":9");
	from_ctl("result", "s", "ok", "\"duplicate\":true");
	from_ctl("result", "bin", "ok", NULL);
	/* Progress only to those that asked for it; the controller's duplicate flag after the
	 * re-send is not shown to the first requester. */
	ck_assert_str_eq(replies(), "t3:started dup,t2:result ok,t3:result ok dup,t5:result ok");
	const cJSON *last = cJSON_GetArrayItem(F.replies, 3);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(last, "corr_len")->valueint, 3);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(F.replies, 1), "corr_len")->valueint, 4);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(F.replies, 1), "corr")->valuestring, "c-t2");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("req");
	TCase *tc = tcase_create("lifecycle");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_every_transition);
	tcase_add_test(tc, test_repeat_joins);
	tcase_add_test(tc, test_link_progress);
	tcase_add_test(tc, test_keys_once);
	tcase_add_test(tc, test_offline_then_again);
	tcase_add_test(tc, test_expired_on_arrival);
	tcase_add_test(tc, test_retry_and_late_outcome);
	tcase_add_test(tc, test_duplicate_flag);
	tcase_add_test(tc, test_outcome);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_restart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_init("test_req", true, 0);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
