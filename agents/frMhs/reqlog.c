/* reqlog.c: the request table's records in the state dir (store.h has the format). */
#include "req_int.h"

#include "lanmsg.h"
#include "log.h"
#include "store.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *req_route_json(const struct route *rt)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "topic", rt->topic);
	char *hex = NULL;
	if (rt->corr_len && (hex = OPENSSL_zalloc(rt->corr_len * 2 + 1)))
		OPENSSL_buf2hexstr_ex(hex, rt->corr_len * 2 + 1, NULL, rt->corr, rt->corr_len, '\0');
	if (hex)
		cJSON_AddStringToObject(o, "corr", hex);
	else
		cJSON_AddNullToObject(o, "corr");
	OPENSSL_free(hex);
	cJSON_AddBoolToObject(o, "progress", !rt->final_only);
	return o;
}

cJSON *req_record(struct req *r, const char *op)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "op", op);
	cJSON_AddStringToObject(o, "ctl", r->ctl);
	cJSON_AddStringToObject(o, "id", r->id);
	if (strcmp(op, "close") == 0)
		return o;
	cJSON_AddStringToObject(o, "state", req_state_name(r->state));
	cJSON_AddNumberToObject(o, "until", (double)r->until);
	cJSON_AddNumberToObject(o, "sends", r->sends);
	if (strcmp(op, "open") == 0) {
		cJSON_AddStringToObject(o, "action", r->action);
		/* The text the link gets: the command is printed once per request. */
		size_t len;
		const char *cmd = req_frame_text(r, &len);
		if (cmd)
			cJSON_AddRawToObject(o, "cmd", cmd);
		else
			cJSON_AddNullToObject(o, "cmd");
		cJSON *a = cJSON_AddArrayToObject(o, "routes");
		for (int i = 0; i < r->nroutes; i++)
			cJSON_AddItemToArray(a, req_route_json(&r->routes[i]));
	}
	return o;
}

static void req_collect(struct req *r, void *arg)
{
	cJSON_AddItemToArray(arg, req_record(r, "open"));
}

/* One "open" record per open request. */
static void req_compact(struct reqs *q)
{
	cJSON *all = cJSON_CreateArray();
	reqs_each_open(q, req_collect, all);
	store_log_rewrite(q->store, all);
	cJSON_Delete(all);
}

/* Bounded: rewritten once it holds far more records than there are open requests. */
static void req_maybe_compact(struct reqs *q)
{
	if (store_log_lines(q->store) > 1024 + 4 * q->nopen)
		req_compact(q);
}

void req_write(struct reqs *q, cJSON *rec)
{
	if (q->store && !q->restoring) {
		store_log_append(q->store, rec);
		req_maybe_compact(q);
	}
	cJSON_Delete(rec);
}

/* "state" and "close" come with every step of every request: printed directly (ctl and id are
 * names and ids of characters JSON never escapes), which keeps the state dir off the round
 * trip's path (bench/: rtt). */
void req_write_step(struct reqs *q, const struct req *r, const char *op)
{
	if (!q->store || q->restoring)
		return;
	char line[64 + sizeof r->ctl + sizeof r->id + 64];
	int n;
	if (strcmp(op, "close") == 0)
		n = snprintf(line, sizeof line, "{\"op\":\"close\",\"ctl\":\"%s\",\"id\":\"%s\"}",
			     r->ctl, r->id);
	else
		n = snprintf(line, sizeof line, "{\"op\":\"state\",\"ctl\":\"%s\",\"id\":\"%s\","
			     "\"state\":\"%s\",\"until\":%lld,\"sends\":%d}", r->ctl, r->id,
			     req_state_name(r->state), (long long)r->until, r->sends);
	if (n <= 0 || (size_t)n >= sizeof line - 1)
		return;
	store_log_append_text(q->store, line, (size_t)n);
	req_maybe_compact(q);
}

static void req_restore_route(struct req *r, const cJSON *o)
{
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(o, "topic");
	const cJSON *corr = cJSON_GetObjectItemCaseSensitive(o, "corr");
	const cJSON *progress = cJSON_GetObjectItemCaseSensitive(o, "progress");
	if (!cJSON_IsString(topic) || r->nroutes >= REQ_ROUTES_MAX)
		return;
	unsigned char *buf = NULL;
	long n = 0;
	if (cJSON_IsString(corr) && corr->valuestring[0])
		buf = OPENSSL_hexstr2buf(corr->valuestring, &n);
	req_add_route(r, topic->valuestring, buf, buf ? (size_t)n : 0, cJSON_IsFalse(progress));
	OPENSSL_free(buf);
}

/* The link command a previous run wrote, checked as a received one (lanmsg) and built again:
 * a state dir damaged or edited by hand can hold anything. NULL if it is not a command for
 * this request. */
static cJSON *req_restore_frame(const cJSON *cmd, const char *id)
{
	struct lanmsg m;
	struct command c;
	char why[200];
	cJSON *frame = NULL;
	lanmsg_wrap(&m, cmd);
	if (m.type != LANMSG_COMMAND || lanmsg_command(&m, &c, why, sizeof why) < 0) {
		log_warnx("state dir: request %s: command not restored: %s", id,
			  m.type != LANMSG_COMMAND ? "not a command" : why);
		return NULL;
	}
	if (strcmp(c.id, id) == 0)
		frame = lanmsg_command_new(&c);
	command_clear(&c);
	return frame;
}

static void req_restore_one(void *arg, const cJSON *rec)
{
	struct reqs *q = arg;
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(rec, "op");
	const cJSON *ctl = cJSON_GetObjectItemCaseSensitive(rec, "ctl");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
	if (!cJSON_IsString(op) || !cJSON_IsString(ctl) || !cJSON_IsString(id) ||
	    !name_valid(ctl->valuestring, COMMAND_NAME_MAX) ||
	    strlen(id->valuestring) > COMMAND_ID_MAX)
		return;
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl->valuestring, id->valuestring);
	struct req *r = req_find(q, key);
	const cJSON *until = cJSON_GetObjectItemCaseSensitive(rec, "until");
	const cJSON *sends = cJSON_GetObjectItemCaseSensitive(rec, "sends");
	enum req_state st = req_state_parse(cJSON_GetObjectItemCaseSensitive(rec, "state"));
	if (strcmp(op->valuestring, "open") == 0) {
		const cJSON *action = cJSON_GetObjectItemCaseSensitive(rec, "action");
		const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(rec, "cmd");
		const cJSON *routes = cJSON_GetObjectItemCaseSensitive(rec, "routes");
		if (r)
			req_free(q, r);
		if (st == REQ_NSTATES || !cJSON_IsString(action) || !cJSON_IsObject(cmd) ||
		    !cJSON_IsArray(routes) || q->nopen >= q->o.open_max)
			return;
		if (!(r = req_new(q, ctl->valuestring, id->valuestring)))
			return;
		snprintf(r->action, sizeof r->action, "%s", action->valuestring);
		r->frame = req_restore_frame(cmd, id->valuestring);
		const cJSON *rt;
		cJSON_ArrayForEach(rt, routes)
			req_restore_route(r, rt);
		if (!r->frame || !r->nroutes || req_open(q, r) < 0) {
			req_free(q, r);
			return;
		}
	} else if (r && strcmp(op->valuestring, "route") == 0) {
		req_restore_route(r, cJSON_GetObjectItemCaseSensitive(rec, "route"));
		return;
	} else if (r && strcmp(op->valuestring, "close") == 0) {
		req_free(q, r);
		return;
	} else if (!r || strcmp(op->valuestring, "state") != 0 || st == REQ_NSTATES) {
		return;
	}
	r->state = st;
	r->until = store_json_int(until, 1, 0, INT64_MAX / 2, 0);
	r->sends = (int)store_json_int(sends, 1, 0, 1000000, 0);
}

static void req_arm_each(struct req *r, void *arg)
{
	(void)arg;
	req_arm(r);
}

void reqs_restore(struct reqs *q)
{
	if (!q->store)
		return;
	q->restoring = true;
	store_log_load(q->store, req_restore_one, q);
	q->restoring = false;
	reqs_each_open(q, req_arm_each, NULL);
	if (q->nopen)
		log_info("state dir: %zu request(s) open at the last stop; their answers will follow",
			 q->nopen);
	req_compact(q);
}
