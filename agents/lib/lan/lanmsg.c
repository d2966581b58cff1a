/* lanmsg: the link messages of LAN protocol v1, built and checked in one place; see lanmsg.h
 * and docs/lan-protocol.md. */
#include "lanmsg.h"

#include "command.h"
#include "fields.h"
#include "frame.h"
#include "log.h"
#include "name.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const lm_names[] = {
	[LANMSG_OTHER] = "?",          [LANMSG_HELLO] = "hello",   [LANMSG_COMMAND] = "command",
	[LANMSG_ACCEPTED] = "accepted", [LANMSG_STARTED] = "started", [LANMSG_RESULT] = "result",
	[LANMSG_EVENT] = "event",       [LANMSG_BYE] = "bye",       [LANMSG_PING] = "ping",
	[LANMSG_PONG] = "pong",
};

const char *lanmsg_type_str(enum lanmsg_type t)
{
	return (unsigned)t < sizeof lm_names / sizeof lm_names[0] ? lm_names[t] : "?";
}

#define WHY(...) log_why(why, n, __VA_ARGS__)

static const char *lm_str(const cJSON *v) { return cJSON_IsString(v) ? v->valuestring : NULL; }

static bool lm_len_ok(const char *s, size_t lo, size_t hi)
{
	size_t l = strlen(s);
	return l >= lo && l <= hi;
}

/* --- decoding --- */

int lanmsg_decode(struct lanmsg *m, const char *text, size_t len, char *why, size_t n)
{
	memset(m, 0, sizeof *m);
	/* The order of docs/lan-protocol.md, "Frames". */
	if (strlen(text) != len)
		return WHY("NUL byte in a %zu-byte frame", len);
	if (!frame_utf8_valid(text, len))
		return WHY("%zu-byte frame is not UTF-8", len);
	/* require_null_terminated: nothing but white space may follow the object. */
	cJSON *o = cJSON_ParseWithOpts(text, NULL, 1);
	if (!o)
		return WHY("%zu-byte frame is not JSON", len);
	/* Escaped, a NUL is still a NUL: cJSON would cut the string there, silently. */
	long nul = command_json_nul(text, len);
	int rc;
	if (nul >= 0) {
		rc = WHY("NUL (\\u0000) in a string at byte %ld of a %zu-byte frame", nul, len);
		goto fail;
	}
	if (!cJSON_IsObject(o)) {
		rc = WHY("frame is not a JSON object");
		goto fail;
	}
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (!cJSON_IsString(type) || !type->valuestring) {
		rc = WHY("frame without a string \"type\"");
		goto fail;
	}
	m->type = LANMSG_OTHER;
	for (size_t i = 1; i < sizeof lm_names / sizeof lm_names[0]; i++)
		if (strcmp(type->valuestring, lm_names[i]) == 0)
			m->type = (enum lanmsg_type)i;
	if (m->type == LANMSG_PING || m->type == LANMSG_PONG) {
		static const struct field f[] = { { "type", FIELD_STR, true }, { "seq", FIELD_NUM, true },
						     { NULL, 0, false } };
		const cJSON *found[2];
		if ((rc = fields_check(o, type->valuestring, f, found, why, n)) < 0)
			goto fail;
	}
	m->type_name = type->valuestring;
	m->json = o;
	m->owned = true;
	m->text = text;
	m->len = len;
	return 0;
fail:
	cJSON_Delete(o);
	memset(m, 0, sizeof *m);
	return rc;
}

void lanmsg_wrap(struct lanmsg *m, const cJSON *o)
{
	memset(m, 0, sizeof *m);
	m->json = (cJSON *)o;
	const char *t = lm_str(cJSON_GetObjectItemCaseSensitive(o, "type"));
	m->type_name = t ? t : "?";
	m->type = LANMSG_OTHER;
	for (size_t i = 1; t && i < sizeof lm_names / sizeof lm_names[0]; i++)
		if (strcmp(t, lm_names[i]) == 0)
			m->type = (enum lanmsg_type)i;
}

void lanmsg_clear(struct lanmsg *m)
{
	if (m->owned)
		cJSON_Delete(m->json);
	memset(m, 0, sizeof *m);
}

/* A new message: "type" first, as lanmsg_forward's fast path wants it. */
static cJSON *lm_new(enum lanmsg_type t)
{
	cJSON *o = cJSON_CreateObject();
	if (o && !cJSON_AddStringToObject(o, "type", lm_names[t])) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* --- hello --- */

cJSON *lanmsg_hello_new(const struct lanmsg_hello *h)
{
	cJSON *o = lm_new(LANMSG_HELLO);
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "proto", LANMSG_PROTO);
	cJSON_AddStringToObject(o, "role", h->controller ? "controller" : "home");
	if (h->id)
		cJSON_AddStringToObject(o, "id", h->id);
	if (h->name)
		cJSON_AddStringToObject(o, "name", h->name);
	cJSON_AddStringToObject(o, "version", h->version ? h->version : FR_VERSION);
	if (h->boot)
		cJSON_AddStringToObject(o, "boot", h->boot);
	if (h->port)
		cJSON_AddNumberToObject(o, "port", h->port);
	if (h->actions)
		cJSON_AddItemToObject(o, "actions", cJSON_Duplicate(h->actions, 1));
	if (h->sensors)
		cJSON_AddItemToObject(o, "sensors", cJSON_Duplicate(h->sensors, 1));
	return o;
}

/* actions and sensors: arrays of objects, each with a string "name" (the announce's rule,
 * docs/lan-protocol.md "Body fields"), once: it is what frMhs files the entry under. */
static int lm_list(const cJSON *list, const char *field, char *why, size_t n)
{
	int i = 0;
	const cJSON *e, *it;
	cJSON_ArrayForEach(e, list) {
		if (!cJSON_IsObject(e) || !lm_str(cJSON_GetObjectItemCaseSensitive(e, "name")))
			return WHY("hello: %s[%d] has no string 'name'", field, i);
		int names = 0;
		cJSON_ArrayForEach(it, e)
			names += it->string && strcmp(it->string, "name") == 0;
		if (names != 1)
			return WHY("hello: %s[%d] gives 'name' twice", field, i);
		i++;
	}
	return 0;
}

static bool lm_boot_ok(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int lanmsg_hello(const struct lanmsg *m, struct lanmsg_hello *h, char *why, size_t n)
{
	/* The version first: a later one may change the rest. */
	static const struct field fv[] = { { "type", FIELD_STR, true }, { "proto", FIELD_INT, true },
					      { NULL, 0, false } };
	enum { T, PROTO, ROLE, ID, NAME, VERSION, BOOT, PORT, ACTIONS, SENSORS };
	static const struct field f[] = {
		{ "type", FIELD_STR, true },     { "proto", FIELD_INT, true },    { "role", FIELD_STR, true },
		{ "id", FIELD_NAME, false },     { "name", FIELD_STR, false },    { "version", FIELD_STR, true },
		{ "boot", FIELD_STR, false },    { "port", FIELD_INT, false },    { "actions", FIELD_ARRAY, false },
		{ "sensors", FIELD_ARRAY, false }, { NULL, 0, false }
	};
	const cJSON *v[FIELDS_MAX];
	int rc;

	memset(h, 0, sizeof *h);
	if ((rc = fields_check(m->json, "hello", fv, v, why, n)) < 0)
		return rc;
	if (v[PROTO]->valuedouble != LANMSG_PROTO) {
		WHY("hello with protocol version %.0f; this side speaks %d", v[PROTO]->valuedouble,
		    LANMSG_PROTO);
		return -EPROTONOSUPPORT;
	}
	h->proto = LANMSG_PROTO;
	if ((rc = fields_check(m->json, "hello", f, v, why, n)) < 0)
		return rc;
	const char *role = v[ROLE]->valuestring;
	if (strcmp(role, "controller") == 0)
		h->controller = true;
	else if (strcmp(role, "home") != 0)
		return WHY("hello: field 'role' is neither \"home\" nor \"controller\"");
	h->id = lm_str(v[ID]);
	h->name = lm_str(v[NAME]);
	h->version = v[VERSION]->valuestring;
	h->boot = lm_str(v[BOOT]);
	h->actions = v[ACTIONS];
	h->sensors = v[SENSORS];
	if (!lm_len_ok(h->version, 1, 31))
		return WHY("hello: field 'version' is not 1..31 bytes");
	if (!h->controller)
		return 0;
	/* A controller describes itself as its announce does. */
	static const char *const need[] = { "id", "name", "boot", "port", "actions", "sensors" };
	static const int need_i[] = { ID, NAME, BOOT, PORT, ACTIONS, SENSORS };
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (!v[need_i[i]])
			return WHY("hello: field '%s' missing (role controller)", need[i]);
	if (!lm_len_ok(h->name, 1, 127))
		return WHY("hello: field 'name' is not 1..127 bytes");
	if (!lm_boot_ok(h->boot))
		return WHY("hello: field 'boot' is not 32 lowercase hex digits");
	if (v[PORT]->valuedouble < 1 || v[PORT]->valuedouble > 65535)
		return WHY("hello: field 'port' out of range 1..65535");
	h->port = (int)v[PORT]->valuedouble;
	if ((rc = lm_list(h->actions, "actions", why, n)) < 0 ||
	    (rc = lm_list(h->sensors, "sensors", why, n)) < 0)
		return rc;
	return 0;
}

/* --- command --- */

cJSON *lanmsg_command_new(const struct command *c)
{
	cJSON *o = lm_new(LANMSG_COMMAND);
	cJSON *f = command_to_json(c, false);
	if (!o || !f) {
		cJSON_Delete(o);
		cJSON_Delete(f);
		return NULL;
	}
	/* command.c owns the fields (an MQTT request carries the same object): moved behind the
	 * type, keys and all. */
	while (f->child)
		cJSON_AddItemToArray(o, cJSON_DetachItemViaPointer(f, f->child));
	cJSON_Delete(f);
	return o;
}

int lanmsg_command(const struct lanmsg *m, struct command *c, char *why, size_t n)
{
	/* Their values are command.c's to check, with the words an MQTT requester gets too. */
	static const struct field f[] = {
		{ "type", FIELD_STR, true }, { "id", FIELD_ANY, false },      { "action", FIELD_ANY, false },
		{ "args", FIELD_ANY, false }, { "timeout", FIELD_ANY, false }, { "deadline", FIELD_ANY, false },
		{ "progress", FIELD_ANY, false }, { NULL, 0, false }
	};
	const cJSON *v[FIELDS_MAX];
	int rc = fields_check(m->json, "command", f, v, why, n);
	if (rc == 0 && command_from_json(m->json, c, why, n) < 0)
		rc = -EINVAL;
	if (rc < 0) {
		memset(c, 0, sizeof *c);
		/* The refusal names the id where it can be read -- a valid one, given once -- and
		 * says "id": null otherwise (docs/lan-protocol.md, command). */
		const cJSON *it, *id = NULL;
		int ids = 0;
		cJSON_ArrayForEach(it, m->json)
			if (it->string && strcmp(it->string, "id") == 0) {
				id = it;
				ids++;
			}
		if (ids == 1 && cJSON_IsString(id) && name_valid_id(id->valuestring, COMMAND_ID_MAX))
			snprintf(c->id, sizeof c->id, "%s", id->valuestring);
	}
	return rc;
}

char *lanmsg_command_raw(const char *text)
{
	cJSON *o = cJSON_Parse(text);
	const char *brace = strchr(text, '{');
	char *s = NULL;
	if (!cJSON_IsObject(o) || !brace || cJSON_GetObjectItemCaseSensitive(o, "type")) {
		s = strdup(text);
	} else if (asprintf(&s, "{\"type\":\"%s\"%s%s", lm_names[LANMSG_COMMAND],
			    cJSON_GetArraySize(o) ? "," : "", brace + 1) < 0) {
		s = NULL;
	}
	cJSON_Delete(o);
	return s;
}

/* --- accepted, started --- */

cJSON *lanmsg_accepted_new(const char *id)
{
	cJSON *o = lm_new(LANMSG_ACCEPTED);
	if (o)
		cJSON_AddStringToObject(o, "id", id);
	return o;
}

cJSON *lanmsg_started_new(const char *id, long pid, bool duplicate)
{
	cJSON *o = lm_new(LANMSG_STARTED);
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", id);
	if (pid > 0)
		cJSON_AddNumberToObject(o, "pid", (double)pid);
	if (duplicate)
		cJSON_AddTrueToObject(o, "duplicate");
	return o;
}

int lanmsg_progress(const struct lanmsg *m, struct lanmsg_progress *p, char *why, size_t n)
{
	enum { T, ID, PID, DUP };
	static const struct field f[] = {
		{ "type", FIELD_STR, true }, { "id", FIELD_ID, true }, { "pid", FIELD_INT, false },
		{ "duplicate", FIELD_BOOL, false }, { NULL, 0, false }
	};
	const cJSON *v[FIELDS_MAX];
	const char *what = lanmsg_type_str(m->type);
	int rc;

	memset(p, 0, sizeof *p);
	if (m->type != LANMSG_ACCEPTED && m->type != LANMSG_STARTED)
		return WHY("'%s' is neither accepted nor started", m->type_name);
	if ((rc = fields_check(m->json, what, f, v, why, n)) < 0)
		return rc;
	p->id = v[ID]->valuestring;
	p->duplicate = cJSON_IsTrue(v[DUP]);
	if (v[PID]) {
		if (v[PID]->valuedouble < 1 || v[PID]->valuedouble > 4194304)
			return WHY("%s: field 'pid' out of range", what);
		p->pid = (long)v[PID]->valuedouble;
	}
	/* A repeat of a running id says duplicate; a fresh start says which process. */
	if (m->type == LANMSG_STARTED && !p->pid && !p->duplicate)
		return WHY("started: field 'pid' missing");
	return 0;
}

/* --- result --- */

cJSON *lanmsg_result_new(const struct lanmsg_result *r)
{
	cJSON *o = lm_new(LANMSG_RESULT);
	if (!o)
		return NULL;
	if (r->id)
		cJSON_AddStringToObject(o, "id", r->id);
	else
		cJSON_AddNullToObject(o, "id");
	if (r->action)
		cJSON_AddStringToObject(o, "action", r->action);
	cJSON_AddStringToObject(o, "status", r->status);
	if (r->run) {
		if (r->exited)
			cJSON_AddNumberToObject(o, "exit_code", r->exit_code);
		else
			cJSON_AddNullToObject(o, "exit_code");
		if (r->signal)
			cJSON_AddNumberToObject(o, "signal", r->signal);
		else
			cJSON_AddNullToObject(o, "signal");
		cJSON_AddNumberToObject(o, "duration_ms", (double)r->duration_ms);
		cJSON_AddNumberToObject(o, "started", (double)r->started_ms);
		cJSON_AddStringToObject(o, "stdout", r->out ? r->out : "");
		cJSON_AddStringToObject(o, "stderr", r->err ? r->err : "");
		cJSON_AddBoolToObject(o, "stdout_truncated", r->out_truncated);
		cJSON_AddBoolToObject(o, "stderr_truncated", r->err_truncated);
	}
	if (r->reason)
		cJSON_AddStringToObject(o, "reason", r->reason);
	if (r->unrecorded)
		cJSON_AddFalseToObject(o, "recorded");
	if (r->duplicate)
		cJSON_AddTrueToObject(o, "duplicate");
	return o;
}

int lanmsg_result(const struct lanmsg *m, struct lanmsg_result *r, char *why, size_t n)
{
	enum { T, ID, ACTION, STATUS, REASON, EXIT, SIG, DUR, STARTED, OUT, ERR, OUTT, ERRT, REC, DUP };
	static const struct field f[] = {
		{ "type", FIELD_STR, true },              { "id", FIELD_ID_NULL, true },
		{ "action", FIELD_NAME, false },          { "status", FIELD_STR, true },
		{ "reason", FIELD_STR, false },           { "exit_code", FIELD_INT_NULL, false },
		{ "signal", FIELD_INT_NULL, false },      { "duration_ms", FIELD_INT, false },
		{ "started", FIELD_INT, false },          { "stdout", FIELD_STR, false },
		{ "stderr", FIELD_STR, false },           { "stdout_truncated", FIELD_BOOL, false },
		{ "stderr_truncated", FIELD_BOOL, false }, { "recorded", FIELD_BOOL, false },
		{ "duplicate", FIELD_BOOL, false },       { NULL, 0, false }
	};
	const cJSON *v[FIELDS_MAX];
	int rc;

	memset(r, 0, sizeof *r);
	if (m->type != LANMSG_RESULT)
		return WHY("'%s' is not a result", m->type_name);
	if ((rc = fields_check(m->json, "result", f, v, why, n)) < 0)
		return rc;
	r->id = lm_str(v[ID]);
	r->action = lm_str(v[ACTION]);
	r->status = v[STATUS]->valuestring;
	if (!r->status[0])
		return WHY("result: field 'status' is empty");
	r->reason = lm_str(v[REASON]);
	/* Any of a run's fields makes it a run's result: passed on with all of them. */
	r->run = v[EXIT] || v[SIG] || v[DUR] || v[STARTED] || v[OUT] || v[ERR] || v[OUTT] || v[ERRT];
	r->exited = fields_is_int(v[EXIT]);
	/* What waitpid can tell: an exit status is a byte, a signal a small number. */
	if (r->exited && (v[EXIT]->valuedouble < 0 || v[EXIT]->valuedouble > 255))
		return WHY("result: field 'exit_code' out of range 0..255");
	r->exit_code = r->exited ? (int)v[EXIT]->valuedouble : 0;
	if (fields_is_int(v[SIG]) && (v[SIG]->valuedouble < 1 || v[SIG]->valuedouble > 127))
		return WHY("result: field 'signal' out of range 1..127");
	r->signal = fields_is_int(v[SIG]) ? (int)v[SIG]->valuedouble : 0;
	if (v[DUR] && v[DUR]->valuedouble < 0)
		return WHY("result: field 'duration_ms' is negative");
	r->duration_ms = v[DUR] ? (uint64_t)v[DUR]->valuedouble : 0;
	r->started_ms = v[STARTED] ? (int64_t)v[STARTED]->valuedouble : 0;
	r->out = lm_str(v[OUT]);
	r->err = lm_str(v[ERR]);
	r->out_truncated = cJSON_IsTrue(v[OUTT]);
	r->err_truncated = cJSON_IsTrue(v[ERRT]);
	r->unrecorded = cJSON_IsFalse(v[REC]);
	r->duplicate = cJSON_IsTrue(v[DUP]);
	return 0;
}

/* --- event --- */

int lanmsg_event_state(char *buf, size_t n, const char *sensor, const char *value_json,
		       int64_t ts_ms)
{
	if (!name_valid(sensor, NAME_LEN_MAX))
		return -EINVAL;
	int len = snprintf(buf, n, "{\"type\":\"%s\",\"kind\":\"state\",\"sensor\":\"%s\",\"value\":%s,"
			   "\"ts\":%" PRId64 "}", lm_names[LANMSG_EVENT], sensor, value_json, ts_ms);
	return len < 0 || (size_t)len >= n ? -EMSGSIZE : len;
}

int lanmsg_event(const struct lanmsg *m, struct lanmsg_event *e, char *why, size_t n)
{
	enum { T, KIND, SENSOR, VALUE, TS };
	static const struct field f[] = {
		{ "type", FIELD_STR, true }, { "kind", FIELD_STR, true }, { "sensor", FIELD_NAME, false },
		{ "value", FIELD_ANY, false }, { "ts", FIELD_INT, false }, { NULL, 0, false }
	};
	const cJSON *v[FIELDS_MAX];
	int rc;

	memset(e, 0, sizeof *e);
	if (m->type != LANMSG_EVENT)
		return WHY("'%s' is not an event", m->type_name);
	if ((rc = fields_check(m->json, "event", f, v, why, n)) < 0)
		return rc;
	e->kind = v[KIND]->valuestring;
	e->sensor = lm_str(v[SENSOR]);
	e->value = v[VALUE];
	e->ts_ms = v[TS] ? (int64_t)v[TS]->valuedouble : 0;
	if (strcmp(e->kind, "state") != 0)
		return 0;   /* a kind of a later version: passed on as it is */
	if (!e->sensor)
		return WHY("event: field 'sensor' missing (kind state)");
	if (!e->value || !(cJSON_IsNumber(e->value) || cJSON_IsString(e->value)))
		return WHY("event: field 'value' is not a number or a string (kind state)");
	if (!v[TS] || e->ts_ms < 0)
		return WHY("event: field 'ts' missing or negative (kind state)");
	return 0;
}

/* --- bye --- */

cJSON *lanmsg_bye_new(const char *reason)
{
	cJSON *o = lm_new(LANMSG_BYE);
	if (o && reason)
		cJSON_AddStringToObject(o, "reason", reason);
	return o;
}

int lanmsg_bye(const struct lanmsg *m, const char **reason, char *why, size_t n)
{
	static const struct field f[] = { { "type", FIELD_STR, true }, { "reason", FIELD_STR, false },
					     { NULL, 0, false } };
	const cJSON *v[FIELDS_MAX];
	*reason = NULL;
	int rc = fields_check(m->json, "bye", f, v, why, n);
	if (rc == 0)
		*reason = lm_str(v[1]);
	return rc;
}

/* --- ping, pong --- */

int lanmsg_ping(char *buf, size_t n, uint64_t seq)
{
	int len = snprintf(buf, n, "{\"type\":\"%s\",\"seq\":%" PRIu64 "}", lm_names[LANMSG_PING], seq);
	return len < 0 || (size_t)len >= n ? -EMSGSIZE : len;
}

int lanmsg_pong(char *buf, size_t n, const struct lanmsg *ping)
{
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(ping->json, "seq");
	int len = snprintf(buf, n, "{\"type\":\"%s\",\"seq\":%.17g}", lm_names[LANMSG_PONG],
			   cJSON_IsNumber(seq) ? seq->valuedouble : 0.0);
	return len < 0 || (size_t)len >= n ? -EMSGSIZE : len;
}

/* --- passing on --- */

char *lanmsg_forward(const struct lanmsg *m, const char *const *drop, const cJSON *set,
		     size_t *len)
{
	/* A received "type" is the first member, written plainly, as lm_new writes it. */
	return fields_forward(m->json, m->text, m->len, drop, set, len);
}
