/* fuzz_lanmsg: a frame body through lanmsg_decode and every per-type check, as link.c and its
 * users run them. A rejection must say why and leave nothing behind; what a check accepts must
 * build again (lanmsg_*_new) into a message the same check accepts with the same fields; and
 * lanmsg_forward's bytes must be one JSON object with the members asked for. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "lanmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* By their printed text: cJSON_Compare calls two NULLs different, and an object with a member
 * given twice different from itself. */
static bool same_json(const cJSON *a, const cJSON *b)
{
	if (!a || !b)
		return !a && !b;
	char *sa = cJSON_PrintUnformatted(a), *sb = cJSON_PrintUnformatted(b);
	if (!sa || !sb)
		abort();
	bool eq = strcmp(sa, sb) == 0;
	free(sa);
	free(sb);
	return eq;
}

/* o printed and decoded again, as the peer receives it. */
static void redecode(cJSON *o, struct lanmsg *m, char **text)
{
	char why[200];
	if (!o || !(*text = cJSON_PrintUnformatted(o)))
		abort();
	cJSON_Delete(o);
	if (lanmsg_decode(m, *text, strlen(*text), why, sizeof why) != 0)
		abort();
}

static void check_result(const struct lanmsg *m)
{
	struct lanmsg_result a, b;
	struct lanmsg m2;
	char why[200], *t;
	if (lanmsg_result(m, &a, why, sizeof why) != 0)
		return;
	redecode(lanmsg_result_new(&a), &m2, &t);
	if (lanmsg_result(&m2, &b, why, sizeof why) != 0)
		abort();
	if (!same(a.id, b.id) || !same(a.action, b.action) || !same(a.status, b.status) ||
	    !same(a.reason, b.reason) || a.exited != b.exited || a.exit_code != b.exit_code ||
	    a.signal != b.signal || a.unrecorded != b.unrecorded || a.duplicate != b.duplicate)
		abort();
	if (a.run && (a.duration_ms != b.duration_ms || a.started_ms != b.started_ms ||
		      !same(a.out ? a.out : "", b.out) || !same(a.err ? a.err : "", b.err) ||
		      a.out_truncated != b.out_truncated || a.err_truncated != b.err_truncated))
		abort();
	lanmsg_clear(&m2);
	free(t);
}

static void check_hello(const struct lanmsg *m)
{
	struct lanmsg_hello a, b;
	struct lanmsg m2;
	char why[200], *t;
	int rc = lanmsg_hello(m, &a, why, sizeof why);
	if (rc != 0) {
		if (rc != -EINVAL && rc != -EPROTONOSUPPORT)
			abort();
		return;
	}
	redecode(lanmsg_hello_new(&a), &m2, &t);
	if (lanmsg_hello(&m2, &b, why, sizeof why) != 0)
		abort();
	if (a.controller != b.controller || !same(a.id, b.id) || !same(a.name, b.name) ||
	    !same(a.version, b.version) || !same(a.boot, b.boot) || a.port != b.port ||
	    !same_json(a.actions, b.actions) || !same_json(a.sensors, b.sensors))
		abort();
	lanmsg_clear(&m2);
	free(t);
}

static void check_command(const struct lanmsg *m)
{
	struct command a, b;
	struct lanmsg m2;
	char why[200], *t;
	if (lanmsg_command(m, &a, why, sizeof why) != 0) {
		if (a.args || strlen(a.id) > COMMAND_ID_MAX)
			abort();
		return;
	}
	redecode(lanmsg_command_new(&a), &m2, &t);
	if (m2.type != LANMSG_COMMAND || lanmsg_command(&m2, &b, why, sizeof why) != 0)
		abort();
	if (strcmp(a.id, b.id) || strcmp(a.action, b.action) || !same_json(a.args, b.args) ||
	    a.timeout_ms != b.timeout_ms || a.deadline_ms != b.deadline_ms ||
	    a.final_only != b.final_only)
		abort();
	command_clear(&a);
	command_clear(&b);
	lanmsg_clear(&m2);
	free(t);
}

static void check_progress(const struct lanmsg *m)
{
	struct lanmsg_progress a, b;
	struct lanmsg m2;
	char why[200], *t;
	if (lanmsg_progress(m, &a, why, sizeof why) != 0)
		return;
	redecode(m->type == LANMSG_ACCEPTED ? lanmsg_accepted_new(a.id)
					    : lanmsg_started_new(a.id, a.pid, a.duplicate),
		 &m2, &t);
	if (lanmsg_progress(&m2, &b, why, sizeof why) != 0 || strcmp(a.id, b.id) ||
	    (m->type == LANMSG_STARTED && (a.pid != b.pid || a.duplicate != b.duplicate)))
		abort();
	lanmsg_clear(&m2);
	free(t);
}

static void check_event(const struct lanmsg *m)
{
	struct lanmsg_event a, b;
	struct lanmsg m2;
	char why[200], buf[4096];
	if (lanmsg_event(m, &a, why, sizeof why) != 0 || strcmp(a.kind, "state") != 0)
		return;
	char *value = cJSON_PrintUnformatted(a.value);
	if (!value)
		abort();
	int len = lanmsg_event_state(buf, sizeof buf, a.sensor, value, a.ts_ms);
	free(value);
	if (len == -EMSGSIZE)
		return;   /* a long string value: the controller never makes one this size */
	if (len < 0 || lanmsg_decode(&m2, buf, (size_t)len, why, sizeof why) != 0 ||
	    lanmsg_event(&m2, &b, why, sizeof why) != 0)
		abort();
	if (strcmp(a.sensor, b.sensor) || a.ts_ms != b.ts_ms || !same_json(a.value, b.value))
		abort();
	lanmsg_clear(&m2);
}

static void check_forward(const struct lanmsg *m)
{
	static const char *const drop[] = { "type", NULL };
	cJSON *set = cJSON_CreateObject();
	cJSON_AddStringToObject(set, "ctl", "fuzz");
	size_t len;
	char *s = lanmsg_forward(m, drop, set, &len);
	if (!s || strlen(s) != len)
		abort();
	cJSON *o = cJSON_Parse(s);
	if (!cJSON_IsObject(o) || cJSON_GetObjectItemCaseSensitive(o, "type"))
		abort();
	const cJSON *ctl = cJSON_GetObjectItemCaseSensitive(o, "ctl");
	if (!cJSON_IsString(ctl) || strcmp(ctl->valuestring, "fuzz") != 0)
		abort();
	cJSON_Delete(o);
	free(s);
	cJSON_Delete(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* frame.c hands a body over NUL-terminated. */
	char *text = malloc(size + 1);
	struct lanmsg m;
	char why[200];
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	why[0] = '\0';
	if (lanmsg_decode(&m, text, size, why, sizeof why) != 0) {
		if (!why[0] || m.json)
			abort();
		free(text);
		return 0;
	}
	switch (m.type) {
	case LANMSG_HELLO: check_hello(&m); break;
	case LANMSG_COMMAND: check_command(&m); break;
	case LANMSG_ACCEPTED:
	case LANMSG_STARTED: check_progress(&m); break;
	case LANMSG_RESULT: check_result(&m); break;
	case LANMSG_EVENT: check_event(&m); break;
	case LANMSG_BYE: {
		const char *reason;
		if (lanmsg_bye(&m, &reason, why, sizeof why) != 0 && reason)
			abort();
		break;
	}
	case LANMSG_PING: {
		char pong[64];
		if (lanmsg_pong(pong, sizeof pong, &m) < 0)
			abort();
		break;
	}
	default: break;
	}
	/* A check of another type refuses, it does not crash. */
	struct lanmsg_result r;
	struct lanmsg_progress p;
	struct lanmsg_event e;
	if (m.type != LANMSG_RESULT && lanmsg_result(&m, &r, why, sizeof why) == 0)
		abort();
	if (m.type != LANMSG_ACCEPTED && m.type != LANMSG_STARTED &&
	    lanmsg_progress(&m, &p, why, sizeof why) == 0)
		abort();
	if (m.type != LANMSG_EVENT && lanmsg_event(&m, &e, why, sizeof why) == 0)
		abort();
	check_forward(&m);
	lanmsg_clear(&m);
	free(text);
	return 0;
}
