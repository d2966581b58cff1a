/* lanmsg: the link messages of LAN protocol v1, built and checked in one place; see lanmsg.h
 * and docs/lan-protocol.md. */
#include "lanmsg.h"

#include "command.h"
#include "frame.h"
#include "name.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
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

__attribute__((format(printf, 3, 4)))
static int lm_why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && n)
		vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}
#define WHY(...) lm_why(why, n, __VA_ARGS__)

/* --- field checks, ntpd's way: each type's known fields in a table --- */

enum lm_kind {
	K_STR, K_NAME, K_ID, K_ID_NULL, K_INT, K_INT_NULL, K_NUM, K_BOOL, K_ARRAY, K_ANY,
};

static const char *const lm_kind_str[] = {
	[K_STR] = "a string",
	[K_NAME] = "a name ([A-Za-z0-9_-]{1,63})",
	[K_ID] = "a command id ([A-Za-z0-9_.:-]{1,64})",
	[K_ID_NULL] = "a command id or null",
	[K_INT] = "an integer",
	[K_INT_NULL] = "an integer or null",
	[K_NUM] = "a number",
	[K_BOOL] = "true or false",
	[K_ARRAY] = "an array",
	[K_ANY] = "a value",
};

struct lm_field {
	const char *name;
	enum lm_kind kind;
	bool required;
};

#define LM_FIELDS_MAX 16

/* Integers are exact in a double up to 2^53 - 1 (as the announce's are). */
static bool lm_is_int(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) && floor(v->valuedouble) == v->valuedouble &&
	       fabs(v->valuedouble) <= 9007199254740991.0;
}

static bool lm_kind_ok(const cJSON *v, enum lm_kind k)
{
	switch (k) {
	case K_STR: return cJSON_IsString(v) && v->valuestring;
	case K_NAME: return cJSON_IsString(v) && name_valid(v->valuestring, NAME_LEN_MAX);
	case K_ID: return cJSON_IsString(v) && name_valid_id(v->valuestring, NAME_ID_LEN_MAX);
	case K_ID_NULL: return cJSON_IsNull(v) || lm_kind_ok(v, K_ID);
	case K_INT: return lm_is_int(v);
	case K_INT_NULL: return cJSON_IsNull(v) || lm_is_int(v);
	case K_NUM: return cJSON_IsNumber(v) && isfinite(v->valuedouble);
	case K_BOOL: return cJSON_IsBool(v);
	case K_ARRAY: return cJSON_IsArray(v);
	case K_ANY: return true;
	}
	return false;
}

/* Every member of o that the table names: once, of its kind; then the required ones present.
 * found[i] is the member of f[i] (NULL if absent). Other members are not looked at. */
static int lm_fields(const cJSON *o, const char *what, const struct lm_field *f,
		     const cJSON **found, char *why, size_t n)
{
	size_t nf = 0;
	while (f[nf].name)
		nf++;
	memset(found, 0, nf * sizeof *found);
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		for (size_t i = 0; i < nf; i++) {
			if (!it->string || strcmp(it->string, f[i].name) != 0)
				continue;
			if (found[i])
				return WHY("%s: field '%s' given twice", what, f[i].name);
			if (!lm_kind_ok(it, f[i].kind))
				return WHY("%s: field '%s' is not %s", what, f[i].name, lm_kind_str[f[i].kind]);
			found[i] = it;
			break;
		}
	}
	for (size_t i = 0; i < nf; i++)
		if (f[i].required && !found[i])
			return WHY("%s: field '%s' missing", what, f[i].name);
	return 0;
}

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
		static const struct lm_field f[] = { { "type", K_STR, true }, { "seq", K_NUM, true },
						     { NULL, 0, false } };
		const cJSON *found[2];
		if ((rc = lm_fields(o, type->valuestring, f, found, why, n)) < 0)
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
	static const struct lm_field fv[] = { { "type", K_STR, true }, { "proto", K_INT, true },
					      { NULL, 0, false } };
	enum { T, PROTO, ROLE, ID, NAME, VERSION, BOOT, PORT, ACTIONS, SENSORS };
	static const struct lm_field f[] = {
		{ "type", K_STR, true },     { "proto", K_INT, true },    { "role", K_STR, true },
		{ "id", K_NAME, false },     { "name", K_STR, false },    { "version", K_STR, true },
		{ "boot", K_STR, false },    { "port", K_INT, false },    { "actions", K_ARRAY, false },
		{ "sensors", K_ARRAY, false }, { NULL, 0, false }
	};
	const cJSON *v[LM_FIELDS_MAX];
	int rc;

	memset(h, 0, sizeof *h);
	if ((rc = lm_fields(m->json, "hello", fv, v, why, n)) < 0)
		return rc;
	if (v[PROTO]->valuedouble != LANMSG_PROTO) {
		WHY("hello with protocol version %.0f; this side speaks %d", v[PROTO]->valuedouble,
		    LANMSG_PROTO);
		return -EPROTONOSUPPORT;
	}
	h->proto = LANMSG_PROTO;
	if ((rc = lm_fields(m->json, "hello", f, v, why, n)) < 0)
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
	static const struct lm_field f[] = {
		{ "type", K_STR, true }, { "id", K_ANY, false },      { "action", K_ANY, false },
		{ "args", K_ANY, false }, { "timeout", K_ANY, false }, { "deadline", K_ANY, false },
		{ NULL, 0, false }
	};
	const cJSON *v[LM_FIELDS_MAX];
	int rc = lm_fields(m->json, "command", f, v, why, n);
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
	static const struct lm_field f[] = {
		{ "type", K_STR, true }, { "id", K_ID, true }, { "pid", K_INT, false },
		{ "duplicate", K_BOOL, false }, { NULL, 0, false }
	};
	const cJSON *v[LM_FIELDS_MAX];
	const char *what = lanmsg_type_str(m->type);
	int rc;

	memset(p, 0, sizeof *p);
	if (m->type != LANMSG_ACCEPTED && m->type != LANMSG_STARTED)
		return WHY("'%s' is neither accepted nor started", m->type_name);
	if ((rc = lm_fields(m->json, what, f, v, why, n)) < 0)
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
	static const struct lm_field f[] = {
		{ "type", K_STR, true },              { "id", K_ID_NULL, true },
		{ "action", K_NAME, false },          { "status", K_STR, true },
		{ "reason", K_STR, false },           { "exit_code", K_INT_NULL, false },
		{ "signal", K_INT_NULL, false },      { "duration_ms", K_INT, false },
		{ "started", K_INT, false },          { "stdout", K_STR, false },
		{ "stderr", K_STR, false },           { "stdout_truncated", K_BOOL, false },
		{ "stderr_truncated", K_BOOL, false }, { "recorded", K_BOOL, false },
		{ "duplicate", K_BOOL, false },       { NULL, 0, false }
	};
	const cJSON *v[LM_FIELDS_MAX];
	int rc;

	memset(r, 0, sizeof *r);
	if (m->type != LANMSG_RESULT)
		return WHY("'%s' is not a result", m->type_name);
	if ((rc = lm_fields(m->json, "result", f, v, why, n)) < 0)
		return rc;
	r->id = lm_str(v[ID]);
	r->action = lm_str(v[ACTION]);
	r->status = v[STATUS]->valuestring;
	if (!r->status[0])
		return WHY("result: field 'status' is empty");
	r->reason = lm_str(v[REASON]);
	/* Any of a run's fields makes it a run's result: passed on with all of them. */
	r->run = v[EXIT] || v[SIG] || v[DUR] || v[STARTED] || v[OUT] || v[ERR] || v[OUTT] || v[ERRT];
	r->exited = lm_is_int(v[EXIT]);
	/* What waitpid can tell: an exit status is a byte, a signal a small number. */
	if (r->exited && (v[EXIT]->valuedouble < 0 || v[EXIT]->valuedouble > 255))
		return WHY("result: field 'exit_code' out of range 0..255");
	r->exit_code = r->exited ? (int)v[EXIT]->valuedouble : 0;
	if (lm_is_int(v[SIG]) && (v[SIG]->valuedouble < 1 || v[SIG]->valuedouble > 127))
		return WHY("result: field 'signal' out of range 1..127");
	r->signal = lm_is_int(v[SIG]) ? (int)v[SIG]->valuedouble : 0;
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
	static const struct lm_field f[] = {
		{ "type", K_STR, true }, { "kind", K_STR, true }, { "sensor", K_NAME, false },
		{ "value", K_ANY, false }, { "ts", K_INT, false }, { NULL, 0, false }
	};
	const cJSON *v[LM_FIELDS_MAX];
	int rc;

	memset(e, 0, sizeof *e);
	if (m->type != LANMSG_EVENT)
		return WHY("'%s' is not an event", m->type_name);
	if ((rc = lm_fields(m->json, "event", f, v, why, n)) < 0)
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
	static const struct lm_field f[] = { { "type", K_STR, true }, { "reason", K_STR, false },
					     { NULL, 0, false } };
	const cJSON *v[LM_FIELDS_MAX];
	*reason = NULL;
	int rc = lm_fields(m->json, "bye", f, v, why, n);
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

static bool lm_listed(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Where m's bytes can be kept: the offset after which its members start (past a leading
 * "type" member that is dropped), or -1 when something of m itself would change. */
static long lm_keep_from(const struct lanmsg *m, const char *const *drop, const cJSON *set)
{
	if (!m->text || m->len < 2 || m->text[0] != '{')
		return -1;
	long from = 1;
	const cJSON *it;
	cJSON_ArrayForEach(it, m->json) {
		if (!it->string)
			return -1;
		if (cJSON_GetObjectItemCaseSensitive(set, it->string))
			return -1;
		if (!lm_listed(drop, it->string))
			continue;
		if (strcmp(it->string, "type") != 0 || it != m->json->child)
			return -1;
		/* Written first and plainly, as lm_new writes it, then a comma. */
		char head[96];
		int hl = snprintf(head, sizeof head, "{\"type\":\"%s\",", m->type_name);
		if (hl < 0 || (size_t)hl >= sizeof head || (size_t)hl >= m->len ||
		    memcmp(m->text, head, (size_t)hl) != 0)
			return -1;
		from = hl;
	}
	return from;
}

char *lanmsg_forward(const struct lanmsg *m, const char *const *drop, const cJSON *set,
		     size_t *len)
{
	char *out = NULL, *members = NULL;
	size_t ol = 0;
	long from = lm_keep_from(m, drop, set);

	if (from >= 0) {
		size_t end = m->len;
		while (end > 0 && m->text[end - 1] != '}')
			end--;   /* white space after the object */
		size_t ml = 0;
		if (set && set->child) {
			if (!(members = cJSON_PrintUnformatted(set)))
				return NULL;
			ml = strlen(members) - 2;   /* without the braces */
		}
		size_t kl = end - 1 - (size_t)from;   /* m's members, without the closing brace */
		if (!(out = malloc(1 + kl + 1 + ml + 2)))
			goto out;
		out[ol++] = '{';
		memcpy(out + ol, m->text + from, kl);
		ol += kl;
		if (kl && ml)
			out[ol++] = ',';
		if (ml) {
			memcpy(out + ol, members + 1, ml);
			ol += ml;
		}
		out[ol++] = '}';
		out[ol] = '\0';
	} else {
		cJSON *o = cJSON_Duplicate(m->json, 1);
		if (!o)
			return NULL;
		/* Every copy: a member given twice must not survive as its second copy. */
		for (const char *const *d = drop; d && *d; d++)
			while (cJSON_GetObjectItemCaseSensitive(o, *d))
				cJSON_DeleteItemFromObjectCaseSensitive(o, *d);
		const cJSON *it;
		cJSON_ArrayForEach(it, set) {
			while (cJSON_GetObjectItemCaseSensitive(o, it->string))
				cJSON_DeleteItemFromObjectCaseSensitive(o, it->string);
			cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
		}
		out = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		ol = out ? strlen(out) : 0;
	}
out:
	free(members);
	if (out && len)
		*len = ol;
	return out;
}
