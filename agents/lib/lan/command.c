/* command: parse and validate a command request; see command.h. */
#include "command.h"

#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool command_valid_topic(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > COMMAND_TOPIC_MAX)
		return false;
	/* A reply topic is published to: wildcards and NULs are not allowed (MQTT-4.7.3). */
	return strpbrk(s, "+#") == NULL;
}

#define WHY(...) log_why(why, whylen, __VA_ARGS__)

int command_from_json(const cJSON *obj, struct command *c, char *why, size_t whylen)
{
	memset(c, 0, sizeof *c);
	if (!cJSON_IsObject(obj))
		return WHY("command must be a JSON object");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
	if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "command") == 0))
		return WHY("'type' must be \"command\"");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
	if (!id)
		return WHY("missing 'id'");
	if (!cJSON_IsString(id) || !name_valid_id(id->valuestring, COMMAND_ID_MAX))
		return WHY("'id' must be 1..%d characters of A-Z a-z 0-9 _ - . :", COMMAND_ID_MAX);
	strcpy(c->id, id->valuestring);
	/* From here on every error goes through fail: c must come back cleared. */
	const cJSON *action = cJSON_GetObjectItemCaseSensitive(obj, "action");
	if (!action) {
		WHY("missing 'action'");
		goto fail;
	}
	if (!cJSON_IsString(action) || !name_valid(action->valuestring, COMMAND_NAME_MAX)) {
		WHY("'action' must be 1..%d characters of A-Z a-z 0-9 _ -", COMMAND_NAME_MAX);
		goto fail;
	}
	strcpy(c->action, action->valuestring);

	c->args = cJSON_CreateObject();
	if (!c->args) {
		WHY("out of memory");
		goto fail;
	}
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, "args");
	if (args && !cJSON_IsNull(args)) {
		if (!cJSON_IsObject(args))
			goto fail_args;
		int n = 0;
		const cJSON *a;
		cJSON_ArrayForEach(a, args) {
			if (++n > COMMAND_ARGS_MAX) {
				WHY("more than %d args", COMMAND_ARGS_MAX);
				goto fail;
			}
			if (!name_valid(a->string, COMMAND_NAME_MAX)) {
				WHY("arg name must be 1..%d characters of A-Z a-z 0-9 _ -", COMMAND_NAME_MAX);
				goto fail;
			}
			if (cJSON_GetObjectItemCaseSensitive(c->args, a->string)) {
				WHY("arg '%s' given twice", a->string);
				goto fail;
			}
			char buf[64];
			const char *v;
			if (cJSON_IsString(a))
				v = a->valuestring;
			else if (cJSON_IsBool(a))
				v = cJSON_IsTrue(a) ? "true" : "false";
			else if (cJSON_IsNumber(a) && isfinite(a->valuedouble)) {
				double x = a->valuedouble;
				/* Range first: converting a double beyond long long is undefined.
				 * Non-integers in the shortest form that reads back the same (as
				 * cJSON prints them), so 0.1 stays "0.1", not 0.10000000000000001. */
				if (fabs(x) < 1e15 && x == (double)(long long)x) {
					snprintf(buf, sizeof buf, "%lld", (long long)x);
				} else {
					snprintf(buf, sizeof buf, "%.15g", x);
					if (strtod(buf, NULL) != x)
						snprintf(buf, sizeof buf, "%.17g", x);
				}
				v = buf;
			} else {
				WHY("arg '%s' must be a string, number or boolean", a->string);
				goto fail;
			}
			if (strlen(v) > COMMAND_ARG_LEN_MAX || strchr(v, '\n')) {
				WHY("arg '%s' is longer than %d bytes or has a newline", a->string,
				    COMMAND_ARG_LEN_MAX);
				goto fail;
			}
			if (!cJSON_AddStringToObject(c->args, a->string, v)) {
				WHY("out of memory");
				goto fail;
			}
		}
	}

	const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "timeout");
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsNumber(t) || !(t->valuedouble > 0 && t->valuedouble <= 86400)) {
			WHY("'timeout' must be a number of seconds in (0, 86400]");
			goto fail;
		}
		c->timeout_ms = (uint64_t)(t->valuedouble * 1000.0 + 0.5);
		if (c->timeout_ms == 0)
			c->timeout_ms = 1;
	}
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(obj, "deadline");
	if (d && !cJSON_IsNull(d)) {
		if (!cJSON_IsNumber(d) || !(d->valuedouble > 0 && d->valuedouble < 1e11)) {
			WHY("'deadline' must be a unix time in seconds");
			goto fail;
		}
		/* Rounded: 1075161068.353 * 1000 is 1075161068352.9999 in binary. */
		c->deadline_ms = (int64_t)llround(d->valuedouble * 1000.0);
	}
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "reply_to");
	if (r && !cJSON_IsNull(r)) {
		if (!cJSON_IsString(r) || !command_valid_topic(r->valuestring)) {
			WHY("'reply_to' must be a topic of 1..%d bytes without + or #", COMMAND_TOPIC_MAX);
			goto fail;
		}
		strcpy(c->reply_to, r->valuestring);
	}
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(obj, "progress");
	if (pr && !cJSON_IsNull(pr)) {
		if (!cJSON_IsBool(pr)) {
			WHY("'progress' must be true or false");
			goto fail;
		}
		c->final_only = cJSON_IsFalse(pr);
	}
	return 0;
fail_args:
	WHY("'args' must be an object of name: value");
fail:
	command_clear(c);
	return -EINVAL;
}

/* The offset of the next \u0000 escape inside a string of text from `from` on (in_string: the
 * state there), or -1. */
static long command_nul_scan(const char *text, size_t len, size_t from, bool in_string)
{
	for (size_t i = from; i < len; i++) {
		if (text[i] == '"') {
			in_string = !in_string;
		} else if (in_string && text[i] == '\\' && i + 1 < len) {
			if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0)
				return (long)i;
			i++;   /* the escaped character, which may be a quote */
		}
	}
	return -1;
}

long command_json_nul(const char *text, size_t len) { return command_nul_scan(text, len, 0, false); }

int command_parse(const char *buf, size_t len, struct command *c, char *why, size_t whylen)
{
	memset(c, 0, sizeof *c);
	if (len > COMMAND_JSON_MAX)
		return WHY("command is longer than %d bytes", COMMAND_JSON_MAX);
	const char *end = NULL;
	cJSON *obj = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (!obj)
		return WHY("not valid JSON (near byte %td)", end ? end - buf : (ptrdiff_t)0);
	long nul = command_json_nul(buf, len);
	if (nul >= 0) {
		cJSON_Delete(obj);
		return WHY("strings must not contain NUL (\\u0000 at byte %ld)", nul);
	}
	int rc = command_from_json(obj, c, why, whylen);
	cJSON_Delete(obj);
	return rc;
}

void command_peek(const char *buf, size_t len, char id[COMMAND_ID_MAX + 1],
		  char reply_to[COMMAND_TOPIC_MAX + 1])
{
	id[0] = reply_to[0] = '\0';
	if (len > COMMAND_JSON_MAX)
		return;
	/* cJSON would cut a value at an escaped NUL and hand back a prefix that was never sent:
	 * each \u0000 becomes \u002b ('+'), which neither an id nor a reply topic may hold. */
	char *text = malloc(len ? len : 1);
	if (!text)
		return;
	memcpy(text, buf, len);
	for (long i = command_json_nul(text, len); i >= 0; i = command_nul_scan(text, len, (size_t)i + 6, true))
		memcpy(text + i + 2, "002b", 4);
	cJSON *obj = cJSON_ParseWithLength(text, len);
	free(text);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "id");
	if (cJSON_IsString(v) && name_valid_id(v->valuestring, COMMAND_ID_MAX))
		strcpy(id, v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(obj, "reply_to");
	if (cJSON_IsString(v) && command_valid_topic(v->valuestring))
		strcpy(reply_to, v->valuestring);
	cJSON_Delete(obj);
}

cJSON *command_to_json(const struct command *c, bool requester)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", c->id);
	cJSON_AddStringToObject(o, "action", c->action);
	cJSON_AddItemToObject(o, "args", c->args ? cJSON_Duplicate(c->args, 1) : cJSON_CreateObject());
	if (c->timeout_ms)
		cJSON_AddNumberToObject(o, "timeout", (double)c->timeout_ms / 1000.0);
	if (c->deadline_ms)
		cJSON_AddNumberToObject(o, "deadline", (double)c->deadline_ms / 1000.0);
	if (requester && c->reply_to[0])
		cJSON_AddStringToObject(o, "reply_to", c->reply_to);
	/* On the link too: a controller that knows it then sends only the result (no accepted,
	 * no started); one that does not ignores the field (docs/lan-protocol.md, command). */
	if (c->final_only)
		cJSON_AddFalseToObject(o, "progress");
	return o;
}

void command_clear(struct command *c)
{
	cJSON_Delete(c->args);
	memset(c, 0, sizeof *c);
}
