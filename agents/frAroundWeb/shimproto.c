/* shimproto: parse and validate one shim protocol line; see shimproto.h and docs/shim.md. */
#include "shimproto.h"

#include "command.h"
#include "topic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^53 as text: the largest integer id (docs/shim.md), the last one JavaScript and PHP floats
 * still hold exactly. */
#define SHIM_INT_MAX_TEXT "9007199254740992"

static const char *const op_names[SHIM_OP_COUNT] = {
	"auth", "ping", "publish", "get", "list", "request", "subscribe", "unsubscribe", "audit",
	"history"
};

static const char *const err_names[SHIM_E_COUNT] = {
	"ok", "bad_request", "auth", "forbidden", "not_found", "offline", "timeout", "too_many",
	"too_long", "internal"
};

const char *shimproto_op_name(enum shim_op op)
{
	return (unsigned)op < SHIM_OP_COUNT ? op_names[op] : "?";
}

const char *shimproto_err_name(enum shim_err e)
{
	return (unsigned)e < SHIM_E_COUNT ? err_names[e] : "internal";
}

static enum shim_err bad(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum shim_err bad(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return SHIM_E_BAD_REQUEST;
}

/* Home, controller, action and argument names: the rule every agent uses. */
static bool valid_name(const char *s)
{
	return name_valid(s, SHIM_NAME_MAX);
}

/* Integer ids were replaced by raw items holding their text (shimproto_raw_ints). */
static bool valid_id(const cJSON *id)
{
	if (cJSON_IsString(id))
		return strlen(id->valuestring) <= SHIM_ID_STR_MAX;
	return cJSON_IsRaw(id);
}

/* --- the text of integer ids ---
 * cJSON keeps every number as a double, which turns 8000000000000001 into 8e+15 and cannot tell
 * 2^53 + 1 from 2^53. Ids are echoed verbatim, so an integer id is taken from the line's own
 * text. cJSON has already accepted the line as JSON; these helpers only find where the
 * top-level members lie, the same first-match rule as cJSON_GetObjectItemCaseSensitive. */

/* Blanks as cJSON skips them: every byte up to 32. */
static const char *ws_skip(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= 32)
		p++;
	return p;
}

/* p at a '"': the end of that string token (after its closing quote), or NULL. */
static const char *str_skip(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* p at the start of a value: the end of that value, or NULL. */
static const char *value_skip(const char *p, const char *end)
{
	if (p < end && *p == '"')
		return str_skip(p, end);
	if (p < end && (*p == '{' || *p == '[')) {
		int depth = 0;
		while (p < end) {
			if (*p == '"') {
				if (!(p = str_skip(p, end)))
					return NULL;
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if ((*p == '}' || *p == ']') && --depth == 0)
				return p + 1;
			p++;
		}
		return NULL;
	}
	while (p < end && (unsigned char)*p > 32 && *p != ',' && *p != '}' && *p != ']')
		p++;
	return p;
}

/* Whether the string token [k, e) names key once unescaped (as cJSON compares member names). */
static bool key_is(const char *k, const char *e, const char *key)
{
	size_t n = (size_t)(e - k) - 2;
	if (!memchr(k + 1, '\\', n))
		return n == strlen(key) && memcmp(k + 1, key, n) == 0;
	cJSON *s = cJSON_ParseWithLength(k, (size_t)(e - k));
	bool same = cJSON_IsString(s) && strcmp(s->valuestring, key) == 0;
	cJSON_Delete(s);
	return same;
}

/* The text [*vs, *ve) of the first top-level member named key; false if there is none. */
static bool member_text(const char *line, size_t len, const char *key, const char **vs,
			const char **ve)
{
	const char *p = line, *end = line + len;
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;   /* cJSON skips a UTF-8 byte order mark too */
	p = ws_skip(p, end);
	if (p == end || *p != '{')
		return false;
	for (p = ws_skip(p + 1, end); p < end && *p == '"';) {
		const char *k = p, *ke = str_skip(p, end);
		if (!ke)
			return false;
		p = ws_skip(ke, end);
		if (p == end || *p != ':')
			return false;
		p = ws_skip(p + 1, end);
		const char *v = p, *e = value_skip(p, end);
		if (!e)
			return false;
		if (key_is(k, ke, key)) {
			*vs = v;
			*ve = e;
			return true;
		}
		p = ws_skip(e, end);
		if (p == end || *p != ',')
			return false;
		p = ws_skip(p + 1, end);
	}
	return false;
}

/* A JSON integer literal -?(0|[1-9][0-9]*) of magnitude at most 2^53. */
static bool int_text_ok(const char *s, size_t n)
{
	if (n > 0 && *s == '-') {
		s++;
		n--;
	}
	if (n == 0 || (n > 1 && *s == '0'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	size_t maxn = strlen(SHIM_INT_MAX_TEXT);
	return n < maxn || (n == maxn && memcmp(s, SHIM_INT_MAX_TEXT, n) <= 0);
}

/* If the member key of o is a number, replaces it by a raw item holding its text when that is
 * an integer literal within 2^53; otherwise leaves it (valid_id then refuses it). */
static int raw_int(cJSON *o, const char *line, size_t len, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	const char *vs, *ve;
	if (!cJSON_IsNumber(v) || !member_text(line, len, key, &vs, &ve) ||
	    !int_text_ok(vs, (size_t)(ve - vs)))
		return 0;
	char text[24];
	snprintf(text, sizeof text, "%.*s", (int)(ve - vs), vs);
	cJSON *raw = cJSON_CreateRaw(text);
	if (!raw || !cJSON_ReplaceItemInObjectCaseSensitive(o, key, raw)) {
		cJSON_Delete(raw);
		return -1;
	}
	return 0;
}

/* A string member: missing -> *out NULL (error if required); non-string or too long -> error. */
static int get_str(const cJSON *o, const char *name, bool required, size_t max, const char **out,
		   char *why, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	*out = NULL;
	if (!v) {
		if (required) {
			bad(why, n, "missing '%s'", name);
			return -1;
		}
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max) {
		bad(why, n, "'%s' must be a string of 1..%zu bytes", name, max);
		return -1;
	}
	*out = v->valuestring;
	return 0;
}

static int get_name(const cJSON *o, const char *name, bool required, const char **out, char *why,
		    size_t n)
{
	if (get_str(o, name, required, SHIM_NAME_MAX, out, why, n) < 0)
		return -1;
	if (*out && !valid_name(*out)) {
		bad(why, n, "'%s' must be 1..63 of A-Z a-z 0-9 _ -", name);
		return -1;
	}
	return 0;
}

/* A number member in [min, max]; missing -> def. */
static int get_num(const cJSON *o, const char *name, double def, double min, double max,
		   bool integer, double *out, char *why, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	*out = def;
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
	    v->valuedouble > max || (integer && v->valuedouble != floor(v->valuedouble))) {
		bad(why, n, "'%s' must be %s in %g..%g", name, integer ? "an integer" : "a number",
		    min, max);
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

static int get_bool(const cJSON *o, const char *name, bool def, bool *out, char *why, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	*out = def;
	if (!v)
		return 0;
	if (!cJSON_IsBool(v)) {
		bad(why, n, "'%s' must be true or false", name);
		return -1;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

static int parse_request(const cJSON *o, struct shim_req *r, char *why, size_t n)
{
	if (get_name(o, "home", true, &r->home, why, n) || get_name(o, "ctl", true, &r->ctl, why, n) ||
	    get_name(o, "action", true, &r->action, why, n))
		return -1;
	r->args = cJSON_GetObjectItemCaseSensitive(o, "args");
	if (r->args) {
		if (!cJSON_IsObject(r->args))
			return bad(why, n, "'args' must be an object"), -1;
		int count = 0;
		const cJSON *a;
		cJSON_ArrayForEach(a, r->args) {
			if (++count > 32)
				return bad(why, n, "more than 32 args"), -1;
			if (!a->string || !valid_name(a->string))
				return bad(why, n, "arg names must be 1..63 of A-Z a-z 0-9 _ -"), -1;
			if (cJSON_IsString(a)) {
				if (strlen(a->valuestring) > 1024)
					return bad(why, n, "arg '%s' longer than 1024 bytes", a->string), -1;
			} else if (!cJSON_IsBool(a) && !(cJSON_IsNumber(a) && isfinite(a->valuedouble))) {
				return bad(why, n, "arg '%s' must be a string, number or boolean",
					   a->string), -1;
			}
		}
	}
	double max_wait = SHIM_WAIT_MAX_S;
	if (get_num(o, "timeout", 0, 0.001, 86400, false, &r->timeout_s, why, n) ||
	    get_num(o, "deadline", 0, 1, 1e11, false, &r->deadline_s, why, n) ||
	    get_num(o, "wait", r->timeout_s > 0 ? fmin(r->timeout_s + 5, max_wait) : 30, 0.001,
		    max_wait, false, &r->wait_s, why, n))
		return -1;
	return 0;
}

enum shim_err shimproto_parse(const char *line, size_t len, struct shim_req *r, char *why,
			      size_t whylen)
{
	memset(r, 0, sizeof *r);
	r->qos = 1;
	r->limit = 50;
	if (whylen)
		why[0] = '\0';
	if (len == 0)
		return bad(why, whylen, "empty line");
	const char *end = NULL;
	r->root = cJSON_ParseWithLengthOpts(line, len, &end, false);
	if (!r->root)
		return bad(why, whylen, "not JSON");
	/* One object per line: anything but blanks after it is an error, not ignored. */
	for (; end && end < line + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\r')
			return bad(why, whylen, "junk after the JSON object");
	const cJSON *o = r->root;
	if (!cJSON_IsObject(o))
		return bad(why, whylen, "not a JSON object");
	/* cJSON would cut a string at an escaped NUL and a request would go on with the rest. */
	if (command_json_nul(line, len) >= 0)
		return bad(why, whylen, "strings must not contain NUL (\\u0000)");
	if (raw_int(r->root, line, len, "id") < 0 || raw_int(r->root, line, len, "sub") < 0)
		return bad(why, whylen, "out of memory");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (!id)
		return bad(why, whylen, "missing 'id'");
	if (!valid_id(id))
		return bad(why, whylen, "'id' must be a string of at most %d bytes or an integer "
			   "(digits only) of magnitude at most 2^53", SHIM_ID_STR_MAX);
	r->id = id;
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
	if (!cJSON_IsString(op))
		return bad(why, whylen, "missing 'op'");
	int i;
	for (i = 0; i < SHIM_OP_COUNT; i++)
		if (strcmp(op->valuestring, op_names[i]) == 0)
			break;
	if (i == SHIM_OP_COUNT)
		return bad(why, whylen, "unknown op");
	r->op = (enum shim_op)i;
	double d;
	switch (r->op) {
	case SHIM_OP_AUTH:
		if (get_str(o, "token", true, SHIM_TOKEN_MAX, &r->token, why, whylen))
			return SHIM_E_BAD_REQUEST;
		break;
	case SHIM_OP_PING:
		break;
	case SHIM_OP_PUBLISH:
		if (get_str(o, "topic", true, SHIM_TOPIC_MAX, &r->topic, why, whylen) ||
		    get_num(o, "qos", 1, 0, 2, true, &d, why, whylen) ||
		    get_bool(o, "retain", false, &r->retain, why, whylen))
			return SHIM_E_BAD_REQUEST;
		r->qos = (int)d;
		r->payload = cJSON_GetObjectItemCaseSensitive(o, "payload");
		if (!r->payload)
			return bad(why, whylen, "missing 'payload'");
		break;
	case SHIM_OP_GET:
		if (get_str(o, "topic", true, SHIM_TOPIC_MAX, &r->topic, why, whylen))
			return SHIM_E_BAD_REQUEST;
		break;
	case SHIM_OP_LIST:
		if (get_name(o, "home", false, &r->home, why, whylen))
			return SHIM_E_BAD_REQUEST;
		break;
	case SHIM_OP_REQUEST:
		if (parse_request(o, r, why, whylen))
			return SHIM_E_BAD_REQUEST;
		break;
	case SHIM_OP_SUBSCRIBE:
		if (get_str(o, "filter", true, SHIM_TOPIC_MAX, &r->filter, why, whylen))
			return SHIM_E_BAD_REQUEST;
		break;
	case SHIM_OP_UNSUBSCRIBE:
		r->sub = cJSON_GetObjectItemCaseSensitive(o, "sub");
		if (!r->sub)
			return bad(why, whylen, "missing 'sub'");
		if (!valid_id(r->sub))
			return bad(why, whylen, "'sub' must be the id of a subscribe request");
		break;
	case SHIM_OP_HISTORY:
		if (get_name(o, "home", true, &r->home, why, whylen) ||
		    get_name(o, "ctl", true, &r->ctl, why, whylen) ||
		    get_name(o, "sensor", true, &r->sensor, why, whylen) ||
		    get_num(o, "from", -1, 0, 9007199254740992.0, true, &d, why, whylen))
			return SHIM_E_BAD_REQUEST;
		r->from_ms = (int64_t)d;
		if (get_num(o, "to", -1, 0, 9007199254740992.0, true, &d, why, whylen))
			return SHIM_E_BAD_REQUEST;
		r->to_ms = (int64_t)d;
		if (get_num(o, "max_points", SHIM_HISTORY_POINTS_DEFAULT, 1, SHIM_HISTORY_POINTS_MAX,
			    true, &d, why, whylen))
			return SHIM_E_BAD_REQUEST;
		r->max_points = (long)d;
		if (r->from_ms >= 0 && r->to_ms >= 0 && r->from_ms > r->to_ms)
			return bad(why, whylen, "'from' is after 'to'");
		break;
	case SHIM_OP_AUDIT:
		if (get_num(o, "limit", 50, 1, SHIM_AUDIT_LIMIT_MAX, true, &d, why, whylen))
			return SHIM_E_BAD_REQUEST;
		r->limit = (int)d;
		break;
	default:
		return bad(why, whylen, "unknown op");
	}
	return SHIM_OK;
}

void shimproto_free(struct shim_req *r)
{
	cJSON_Delete(r->root);
	memset(r, 0, sizeof *r);
}

bool shimproto_topic_home(const char *prefix, const char *topic, bool filter, char *home)
{
	size_t pl = strlen(prefix);
	if (strncmp(topic, prefix, pl) != 0 || topic[pl] != '/')
		return false;
	const char *h = topic + pl + 1, *slash = strchr(h, '/');
	if (!slash || (size_t)(slash - h) > SHIM_NAME_MAX || slash == h)
		return false;
	char buf[SHIM_NAME_MAX + 1];
	memcpy(buf, h, (size_t)(slash - h));
	buf[slash - h] = '\0';
	if (!valid_name(buf))
		return false;
	/* The levels after the home: none empty, wildcards only where MQTT allows them. */
	const char *p = slash + 1;
	if (!*p)
		return false;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0)
			return false;
		for (size_t i = 0; i < n; i++) {
			if (p[i] != '+' && p[i] != '#')
				continue;
			if (!filter || n != 1 || (p[i] == '#' && e))
				return false;
		}
		if (!e)
			break;
		p = e + 1;
	}
	memcpy(home, buf, strlen(buf) + 1);
	return true;
}

bool shimproto_publish_allowed(const char *prefix, const char *topic, bool retain)
{
	struct topic t;
	switch (topic_parse(prefix, topic, &t)) {
	case TOPIC_DISPLAY:
		return true;
	case TOPIC_CTL:
		/* A retained command would run again on every reconnect (docs/topics.md). */
		return !retain && strcmp(t.leaf, "cmd") == 0;
	default:
		return false;
	}
}

bool shimproto_topic_match(const char *f, const char *t)
{
	/* Topics starting with '$' are never matched by a leading wildcard (MQTT 4.7.2). */
	if ((*f == '+' || *f == '#') && *t == '$')
		return false;
	for (;;) {
		if (f[0] == '#' && f[1] == '\0')
			return true;
		if (f[0] == '+') {
			while (*t && *t != '/')
				t++;
			f++;
		} else {
			while (*f && *f != '/' && *f == *t) {
				f++;
				t++;
			}
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		if (!*f && !*t)
			return true;
		if (*f != '/' || *t != '/') {
			/* "a/#" also matches "a" itself. */
			return !*t && f[0] == '/' && f[1] == '#' && f[2] == '\0';
		}
		f++;
		t++;
	}
}

cJSON *shimproto_line(const cJSON *id)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *v = id ? cJSON_Duplicate(id, true) : cJSON_CreateNull();
	if (!o || !v || !cJSON_AddItemToObject(o, "id", v)) {
		cJSON_Delete(o);
		cJSON_Delete(v);
		return NULL;
	}
	return o;
}

cJSON *shimproto_ok(const cJSON *id)
{
	cJSON *o = shimproto_line(id);
	if (o && !cJSON_AddTrueToObject(o, "ok")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *shimproto_error(const cJSON *id, enum shim_err code, const char *msg)
{
	cJSON *o = shimproto_line(id), *e;
	if (!o)
		return NULL;
	if (!cJSON_AddFalseToObject(o, "ok") || !(e = cJSON_AddObjectToObject(o, "error")) ||
	    !cJSON_AddStringToObject(e, "code", shimproto_err_name(code)) ||
	    !cJSON_AddStringToObject(e, "message", msg)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *shimproto_event(const cJSON *id, const char *event)
{
	cJSON *o = shimproto_line(id);
	if (o && !cJSON_AddStringToObject(o, "event", event)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *shimproto_payload(const void *p, size_t len)
{
	/* The whole payload must be one JSON value: "21 degrees" stays a string, not 21. */
	const char *end = NULL;
	cJSON *v = len ? cJSON_ParseWithLengthOpts(p, len, &end, false) : NULL;
	if (v && end && ws_skip(end, (const char *)p + len) != (const char *)p + len) {
		cJSON_Delete(v);
		v = NULL;
	}
	if (v)
		return v;
	char *s = strndup(p, len);
	v = cJSON_CreateString(s ? s : "");
	free(s);
	return v;
}
