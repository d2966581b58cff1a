/* Unit tests of lanmsg: each link message built here parses back to what was given, and each
 * per-type check rejects what docs/lan-protocol.md says it must (a required field missing, a
 * field of the wrong type or twice, a value out of range), naming the type and the field. */
#include "command.h"
#include "lanmsg.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Decodes a NUL-terminated text the way link.c hands a frame over. */
static int dec(struct lanmsg *m, const char *text, char *why, size_t n)
{
	return lanmsg_decode(m, text, strlen(text), why, n);
}

/* A built message as its bytes, decoded again: what the peer's lanmsg sees. */
static char *wire(cJSON *o)
{
	ck_assert_ptr_nonnull(o);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* A refused message: the check returns -EINVAL and why says exactly this. */
struct refusal {
	const char *text, *why;
};
typedef int (*check_fn)(const struct lanmsg *m, char *why, size_t n);

static void expect_refusals(const struct refusal *bad, size_t count, check_fn check)
{
	struct lanmsg m;
	char why[160];
	for (size_t i = 0; i < count; i++) {
		ck_assert_int_eq(dec(&m, bad[i].text, why, sizeof why), 0);
		ck_assert_int_eq(check(&m, why, sizeof why), -EINVAL);
		ck_assert_msg(strcmp(why, bad[i].why) == 0, "case %zu: why '%s'", i, why);
		lanmsg_clear(&m);
	}
}

static int check_progress(const struct lanmsg *m, char *why, size_t n)
{
	struct lanmsg_progress p;
	return lanmsg_progress(m, &p, why, n);
}

static int check_result(const struct lanmsg *m, char *why, size_t n)
{
	struct lanmsg_result r;
	return lanmsg_result(m, &r, why, n);
}

static int check_event(const struct lanmsg *m, char *why, size_t n)
{
	struct lanmsg_event e;
	return lanmsg_event(m, &e, why, n);
}

START_TEST(test_decode_frames)
{
	struct lanmsg m;
	char why[160];

	ck_assert_int_eq(lanmsg_decode(&m, "{\"type\":\"bye\"}\0x", 16, why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "NUL byte"));
	ck_assert_int_eq(dec(&m, "{\"type\":\"bye\",\"reason\":\"\xff\"}", why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "not UTF-8"));
	ck_assert_int_eq(dec(&m, "{\"type\":", why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "not JSON"));
	ck_assert_int_eq(dec(&m, "{\"type\":\"bye\"} x", why, sizeof why), -EINVAL);
	ck_assert_int_eq(dec(&m, "{\"type\":\"bye\",\"reason\":\"a\\u0000b\"}", why, sizeof why),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "\\u0000"));
	ck_assert_int_eq(dec(&m, "[1,2]", why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "not a JSON object"));
	ck_assert_int_eq(dec(&m, "{\"kind\":\"state\"}", why, sizeof why), -EINVAL);
	ck_assert_int_eq(dec(&m, "{\"type\":7}", why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "\"type\""));
	ck_assert_int_eq(dec(&m, "{\"type\":\"ping\"}", why, sizeof why), -EINVAL);
	ck_assert_str_eq(why, "ping: field 'seq' missing");
	ck_assert_int_eq(dec(&m, "{\"type\":\"pong\",\"seq\":\"1\"}", why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "'seq' is not a number"));
	/* A failed decode leaves nothing to free. */
	ck_assert_ptr_null(m.json);

	/* A type of a later version is passed up as "other", not refused. */
	ck_assert_int_eq(dec(&m, "{\"type\":\"telemetry\",\"x\":1}  \n", why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_OTHER);
	ck_assert_str_eq(m.type_name, "telemetry");
	lanmsg_clear(&m);
	ck_assert_int_eq(dec(&m, "{\"type\":\"result\",\"id\":\"a\",\"status\":\"ok\"}", why,
			     sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_RESULT);
	ck_assert_str_eq(lanmsg_type_str(m.type), "result");
	lanmsg_clear(&m);
	/* Without a why buffer too. */
	ck_assert_int_eq(dec(&m, "nope", NULL, 0), -EINVAL);
}
END_TEST

static const char BOOT[] = "0123456789abcdef0123456789abcdef";

START_TEST(test_hello)
{
	struct lanmsg m;
	struct lanmsg_hello h;
	char why[160];
	cJSON *acts = cJSON_Parse("[{\"name\":\"light\",\"args\":[]}]");
	cJSON *sens = cJSON_Parse("[{\"name\":\"temp\",\"interval\":30}]");
	struct lanmsg_hello in = { .controller = true, .id = "ctl-1", .name = "Kitchen",
				   .boot = BOOT, .port = 4711, .actions = acts, .sensors = sens };
	char *s = wire(lanmsg_hello_new(&in));
	ck_assert_ptr_nonnull(strstr(s, "{\"type\":\"hello\","));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_HELLO);
	ck_assert_int_eq(lanmsg_hello(&m, &h, why, sizeof why), 0);
	ck_assert_int_eq(h.proto, LANMSG_PROTO);
	ck_assert(h.controller);
	ck_assert_str_eq(h.id, "ctl-1");
	ck_assert_str_eq(h.name, "Kitchen");
	ck_assert_str_eq(h.version, FR_VERSION);
	ck_assert_str_eq(h.boot, BOOT);
	ck_assert_int_eq(h.port, 4711);
	ck_assert(cJSON_Compare(h.actions, acts, 1));
	ck_assert(cJSON_Compare(h.sensors, sens, 1));
	lanmsg_clear(&m);
	free(s);
	cJSON_Delete(acts);
	cJSON_Delete(sens);

	/* The home side (and frcmd) says little. */
	struct lanmsg_hello home = { .id = "frcmd" };
	s = wire(lanmsg_hello_new(&home));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_hello(&m, &h, why, sizeof why), 0);
	ck_assert(!h.controller);
	ck_assert_str_eq(h.id, "frcmd");
	lanmsg_clear(&m);
	free(s);

	static const struct {
		const char *text;
		int rc;
		const char *why;
	} bad[] = {
		{ "{\"type\":\"hello\",\"proto\":2,\"role\":\"home\",\"version\":\"9\"}",
		  -EPROTONOSUPPORT, "protocol version 2" },
		{ "{\"type\":\"hello\",\"role\":\"home\",\"version\":\"1\"}", -EINVAL,
		  "hello: field 'proto' missing" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"boss\",\"version\":\"1\"}", -EINVAL,
		  "field 'role' is neither" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"home\",\"version\":\"\"}", -EINVAL,
		  "field 'version' is not 1..31 bytes" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"home\",\"role\":\"home\",\"version\":\"1\"}",
		  -EINVAL, "hello: field 'role' given twice" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"home\",\"version\":\"1\",\"id\":\"a b\"}",
		  -EINVAL, "hello: field 'id' is not a name" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"controller\",\"version\":\"1\",\"id\":\"c\","
		  "\"name\":\"c\",\"port\":1,\"actions\":[],\"sensors\":[]}",
		  -EINVAL, "field 'boot' missing (role controller)" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"controller\",\"version\":\"1\",\"id\":\"c\","
		  "\"name\":\"c\",\"boot\":\"0123456789ABCDEF0123456789abcdef\",\"port\":1,"
		  "\"actions\":[],\"sensors\":[]}",
		  -EINVAL, "'boot' is not 32 lowercase hex digits" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"controller\",\"version\":\"1\",\"id\":\"c\","
		  "\"name\":\"c\",\"boot\":\"0123456789abcdef0123456789abcdef\",\"port\":65536,"
		  "\"actions\":[],\"sensors\":[]}",
		  -EINVAL, "'port' out of range" },
		{ "{\"type\":\"hello\",\"proto\":1,\"role\":\"controller\",\"version\":\"1\",\"id\":\"c\","
		  "\"name\":\"c\",\"boot\":\"0123456789abcdef0123456789abcdef\",\"port\":1,"
		  "\"actions\":[{\"args\":[]}],\"sensors\":[]}",
		  -EINVAL, "actions[0] has no string 'name'" },
		{ "{\"type\":\"hello\",\"proto\":1.5,\"role\":\"home\",\"version\":\"1\"}", -EINVAL,
		  "'proto' is not an integer" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(dec(&m, bad[i].text, why, sizeof why), 0);
		why[0] = '\0';
		ck_assert_int_eq(lanmsg_hello(&m, &h, why, sizeof why), bad[i].rc);
		ck_assert_msg(strstr(why, bad[i].why), "case %zu: why '%s'", i, why);
		lanmsg_clear(&m);
	}
}
END_TEST

START_TEST(test_command)
{
	struct lanmsg m;
	struct command c, d;
	char why[160];

	const char *req = "{\"id\":\"r-1\",\"action\":\"light\",\"args\":{\"on\":\"1\"},"
			  "\"timeout\":5,\"reply_to\":\"x/y\"}";
	ck_assert_int_eq(command_parse(req, strlen(req), &c, why, sizeof why), 0);
	char *s = wire(lanmsg_command_new(&c));
	/* The requester's own fields stay on its side. */
	ck_assert_ptr_null(strstr(s, "reply_to"));
	ck_assert_int_eq(strncmp(s, "{\"type\":\"command\",", 18), 0);
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_COMMAND);
	ck_assert_int_eq(lanmsg_command(&m, &d, why, sizeof why), 0);
	ck_assert_str_eq(d.id, "r-1");
	ck_assert_str_eq(d.action, "light");
	ck_assert(cJSON_Compare(c.args, d.args, 1));
	ck_assert_uint_eq(d.timeout_ms, 5000);
	ck_assert(!d.final_only);
	ck_assert_ptr_null(strstr(s, "progress"));
	command_clear(&d);
	lanmsg_clear(&m);
	free(s);
	command_clear(&c);

	/* "progress": false goes over the link (the controller then sends only the result). */
	const char *quiet = "{\"id\":\"r-5\",\"action\":\"light\",\"progress\":false}";
	ck_assert_int_eq(command_parse(quiet, strlen(quiet), &c, why, sizeof why), 0);
	s = wire(lanmsg_command_new(&c));
	ck_assert_ptr_nonnull(strstr(s, "\"progress\":false"));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_command(&m, &d, why, sizeof why), 0);
	ck_assert(d.final_only);
	command_clear(&d);
	lanmsg_clear(&m);
	free(s);
	command_clear(&c);
	ck_assert_int_eq(dec(&m, "{\"type\":\"command\",\"id\":\"r-6\",\"action\":\"a\","
			     "\"progress\":false,\"progress\":true}", why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_command(&m, &c, why, sizeof why), -EINVAL);
	ck_assert_str_eq(why, "command: field 'progress' given twice");
	lanmsg_clear(&m);

	/* A refusal still names a readable id, and only a readable one. */
	ck_assert_int_eq(dec(&m, "{\"type\":\"command\",\"id\":\"r-2\",\"action\":\"no such\"}",
			     why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_command(&m, &c, why, sizeof why), -EINVAL);
	ck_assert_str_eq(c.id, "r-2");
	ck_assert_ptr_null(c.args);
	lanmsg_clear(&m);
	ck_assert_int_eq(dec(&m, "{\"type\":\"command\",\"id\":\"r-3\",\"id\":\"r-4\",\"action\":\"a\"}",
			     why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_command(&m, &c, why, sizeof why), -EINVAL);
	ck_assert_str_eq(why, "command: field 'id' given twice");
	ck_assert_str_eq(c.id, "");
	lanmsg_clear(&m);
	ck_assert_int_eq(dec(&m, "{\"type\":\"command\",\"id\":\"a b\",\"action\":\"a\"}", why,
			     sizeof why), 0);
	ck_assert_int_eq(lanmsg_command(&m, &c, why, sizeof why), -EINVAL);
	ck_assert_str_eq(c.id, "");
	lanmsg_clear(&m);

	/* frcmd --raw: a type is put in front only where none is. */
	char *r = lanmsg_command_raw("{\"id\":\"x\"}");
	ck_assert_str_eq(r, "{\"type\":\"command\",\"id\":\"x\"}");
	free(r);
	r = lanmsg_command_raw("{}");
	ck_assert_str_eq(r, "{\"type\":\"command\"}");
	free(r);
	r = lanmsg_command_raw("{\"type\":\"ping\"}");
	ck_assert_str_eq(r, "{\"type\":\"ping\"}");
	free(r);
	r = lanmsg_command_raw("garbage");
	ck_assert_str_eq(r, "garbage");
	free(r);
}
END_TEST

START_TEST(test_progress)
{
	struct lanmsg m;
	struct lanmsg_progress p;
	char why[160];

	char *s = wire(lanmsg_accepted_new("r-1"));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_ACCEPTED);
	ck_assert_int_eq(lanmsg_progress(&m, &p, why, sizeof why), 0);
	ck_assert_str_eq(p.id, "r-1");
	ck_assert_int_eq(p.pid, 0);
	lanmsg_clear(&m);
	free(s);

	s = wire(lanmsg_started_new("r-1", 4242, false));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_progress(&m, &p, why, sizeof why), 0);
	ck_assert_int_eq(p.pid, 4242);
	ck_assert(!p.duplicate);
	lanmsg_clear(&m);
	free(s);

	s = wire(lanmsg_started_new("r-1", 0, true));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_progress(&m, &p, why, sizeof why), 0);
	ck_assert(p.duplicate);
	lanmsg_clear(&m);
	free(s);

	static const struct refusal bad[] = {
		{ "{\"type\":\"started\",\"id\":\"r\"}", "started: field 'pid' missing" },
		{ "{\"type\":\"started\",\"id\":\"r\",\"pid\":0}", "started: field 'pid' out of range" },
		{ "{\"type\":\"started\",\"id\":\"r\",\"pid\":-3}", "started: field 'pid' out of range" },
		{ "{\"type\":\"accepted\"}", "accepted: field 'id' missing" },
		{ "{\"type\":\"accepted\",\"id\":\"r\",\"duplicate\":1}",
		  "accepted: field 'duplicate' is not true or false" },
		{ "{\"type\":\"result\",\"id\":\"r\"}", "'result' is neither accepted nor started" },
	};
	expect_refusals(bad, sizeof bad / sizeof bad[0], check_progress);
}
END_TEST

START_TEST(test_result)
{
	struct lanmsg m;
	struct lanmsg_result r;
	char why[160];

	struct lanmsg_result in = { .id = "r-1", .action = "light", .status = "failed", .run = true,
				    .exited = true, .exit_code = 3, .duration_ms = 12,
				    .started_ms = 1700000000123, .out = "on\n", .err = "",
				    .err_truncated = true };
	char *s = wire(lanmsg_result_new(&in));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_result(&m, &r, why, sizeof why), 0);
	ck_assert_str_eq(r.id, "r-1");
	ck_assert_str_eq(r.action, "light");
	ck_assert_str_eq(r.status, "failed");
	ck_assert(r.run && r.exited);
	ck_assert_int_eq(r.exit_code, 3);
	ck_assert_int_eq(r.signal, 0);
	ck_assert_uint_eq(r.duration_ms, 12);
	ck_assert(r.started_ms == 1700000000123);
	ck_assert_str_eq(r.out, "on\n");
	ck_assert_str_eq(r.err, "");
	ck_assert(!r.out_truncated && r.err_truncated);
	ck_assert(!r.unrecorded && !r.duplicate);
	/* A run's fields are all sent, a killed one with "exit_code": null. */
	ck_assert_ptr_nonnull(strstr(s, "\"signal\":null"));
	lanmsg_clear(&m);
	free(s);

	struct lanmsg_result refused = { .status = "rejected", .reason = "bad id", .unrecorded = true };
	s = wire(lanmsg_result_new(&refused));
	ck_assert_ptr_nonnull(strstr(s, "\"id\":null"));
	ck_assert_ptr_null(strstr(s, "exit_code"));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_result(&m, &r, why, sizeof why), 0);
	ck_assert_ptr_null(r.id);
	ck_assert_ptr_null(r.action);
	ck_assert_str_eq(r.reason, "bad id");
	ck_assert(!r.run && r.unrecorded);
	lanmsg_clear(&m);
	free(s);

	static const struct refusal bad[] = {
		{ "{\"type\":\"result\",\"id\":\"r\"}", "result: field 'status' missing" },
		{ "{\"type\":\"result\",\"status\":\"ok\"}", "result: field 'id' missing" },
		{ "{\"type\":\"result\",\"id\":\"r\",\"status\":\"\"}", "result: field 'status' is empty" },
		{ "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"exit_code\":\"0\"}",
		  "result: field 'exit_code' is not an integer or null" },
		{ "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"duration_ms\":-1}",
		  "result: field 'duration_ms' is negative" },
		{ "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"stdout\":\"a\",\"stdout\":\"b\"}",
		  "result: field 'stdout' given twice" },
		{ "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"action\":\"a/b\"}",
		  "result: field 'action' is not a name ([A-Za-z0-9_-]{1,63})" },
		{ "{\"type\":\"event\",\"kind\":\"x\"}", "'event' is not a result" },
	};
	expect_refusals(bad, sizeof bad / sizeof bad[0], check_result);
	/* Fields a later version adds are ignored. */
	ck_assert_int_eq(dec(&m, "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"new\":[1]}",
			     why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_result(&m, &r, why, sizeof why), 0);
	lanmsg_clear(&m);
}
END_TEST

START_TEST(test_event)
{
	struct lanmsg m;
	struct lanmsg_event e;
	char buf[256], why[160];

	int len = lanmsg_event_state(buf, sizeof buf, "temp", "21.5", 1700000000000);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(lanmsg_decode(&m, buf, (size_t)len, why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_event(&m, &e, why, sizeof why), 0);
	ck_assert_str_eq(e.kind, "state");
	ck_assert_str_eq(e.sensor, "temp");
	ck_assert(cJSON_IsNumber(e.value) && e.value->valuedouble == 21.5);
	ck_assert(e.ts_ms == 1700000000000);
	lanmsg_clear(&m);
	ck_assert_int_eq(lanmsg_event_state(buf, sizeof buf, "a\"b", "1", 0), -EINVAL);
	ck_assert_int_eq(lanmsg_event_state(buf, 20, "temp", "1", 0), -EMSGSIZE);

	/* A kind of a later version passes, to be forwarded as it is. */
	ck_assert_int_eq(dec(&m, "{\"type\":\"event\",\"kind\":\"log\",\"line\":\"x\"}", why,
			     sizeof why), 0);
	ck_assert_int_eq(lanmsg_event(&m, &e, why, sizeof why), 0);
	ck_assert_str_eq(e.kind, "log");
	lanmsg_clear(&m);

	static const struct refusal bad[] = {
		{ "{\"type\":\"event\",\"sensor\":\"t\"}", "event: field 'kind' missing" },
		{ "{\"type\":\"event\",\"kind\":\"state\",\"value\":1,\"ts\":1}",
		  "event: field 'sensor' missing (kind state)" },
		{ "{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"t\",\"value\":[1],\"ts\":1}",
		  "event: field 'value' is not a number or a string (kind state)" },
		{ "{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"t\",\"value\":1}",
		  "event: field 'ts' missing or negative (kind state)" },
		{ "{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"t\",\"value\":1,\"ts\":-5}",
		  "event: field 'ts' missing or negative (kind state)" },
		{ "{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"t/u\",\"value\":1,\"ts\":1}",
		  "event: field 'sensor' is not a name ([A-Za-z0-9_-]{1,63})" },
	};
	expect_refusals(bad, sizeof bad / sizeof bad[0], check_event);
}
END_TEST

START_TEST(test_bye_ping_pong)
{
	struct lanmsg m;
	const char *reason;
	char buf[64], why[160];

	char *s = wire(lanmsg_bye_new("shutdown"));
	ck_assert_int_eq(dec(&m, s, why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_BYE);
	ck_assert_int_eq(lanmsg_bye(&m, &reason, why, sizeof why), 0);
	ck_assert_str_eq(reason, "shutdown");
	lanmsg_clear(&m);
	free(s);
	ck_assert_int_eq(dec(&m, "{\"type\":\"bye\",\"reason\":3}", why, sizeof why), 0);
	ck_assert_int_eq(lanmsg_bye(&m, &reason, why, sizeof why), -EINVAL);
	ck_assert_ptr_null(reason);
	lanmsg_clear(&m);

	int len = lanmsg_ping(buf, sizeof buf, 123456789012ULL);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(lanmsg_decode(&m, buf, (size_t)len, why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_PING);
	char pong[64];
	len = lanmsg_pong(pong, sizeof pong, &m);
	lanmsg_clear(&m);
	ck_assert_str_eq(pong, "{\"type\":\"pong\",\"seq\":123456789012}");
	ck_assert_int_eq(lanmsg_decode(&m, pong, (size_t)len, why, sizeof why), 0);
	ck_assert_int_eq(m.type, LANMSG_PONG);
	lanmsg_clear(&m);
	ck_assert_int_eq(lanmsg_ping(buf, 10, 1), -EMSGSIZE);
}
END_TEST

/* Passing on: the bytes that arrived, not a re-encoding, wherever nothing in them changes. */
START_TEST(test_forward)
{
	struct lanmsg m;
	char why[160];
	size_t len;
	/* A result with an output cJSON would print differently ("\/" and a float). */
	const char *res = "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"stdout\":\"a\\/b\","
			  "\"duration_ms\":1.0}";
	ck_assert_int_eq(dec(&m, res, why, sizeof why), 0);

	cJSON *set = cJSON_CreateObject();
	cJSON_AddStringToObject(set, "ctl", "kitchen");
	char *s = lanmsg_forward(&m, NULL, set, &len);
	ck_assert_str_eq(s, "{\"type\":\"result\",\"id\":\"r\",\"status\":\"ok\",\"stdout\":\"a\\/b\","
			    "\"duration_ms\":1.0,\"ctl\":\"kitchen\"}");
	ck_assert_uint_eq(len, strlen(s));
	free(s);

	static const char *const drop_type[] = { "type", NULL };
	s = lanmsg_forward(&m, drop_type, NULL, &len);
	ck_assert_str_eq(s, "{\"id\":\"r\",\"status\":\"ok\",\"stdout\":\"a\\/b\",\"duration_ms\":1.0}");
	free(s);
	s = lanmsg_forward(&m, drop_type, set, NULL);
	ck_assert_str_eq(s, "{\"id\":\"r\",\"status\":\"ok\",\"stdout\":\"a\\/b\",\"duration_ms\":1.0,"
			    "\"ctl\":\"kitchen\"}");
	free(s);

	/* A member that changes: re-serialised once, with the new value and no old copy. */
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "status", "lost");
	s = lanmsg_forward(&m, NULL, st, &len);
	cJSON *o = cJSON_Parse(s);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "status")->valuestring, "lost");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "stdout")->valuestring, "a/b");
	ck_assert_int_eq(cJSON_GetArraySize(o), 5);
	cJSON_Delete(o);
	free(s);
	static const char *const drop_id[] = { "id", NULL };
	s = lanmsg_forward(&m, drop_id, NULL, NULL);
	o = cJSON_Parse(s);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "id"));
	ck_assert_int_eq(cJSON_GetArraySize(o), 4);
	cJSON_Delete(o);
	free(s);
	lanmsg_clear(&m);

	/* White space around the members (another implementation's printer) is kept or, where
	 * the type cannot be cut off plainly, re-serialised. */
	ck_assert_int_eq(dec(&m, "{ \"type\" : \"event\", \"kind\":\"x\" }\n", why, sizeof why), 0);
	s = lanmsg_forward(&m, drop_type, NULL, NULL);
	ck_assert_str_eq(s, "{\"kind\":\"x\"}");
	free(s);
	s = lanmsg_forward(&m, NULL, set, NULL);
	ck_assert_str_eq(s, "{ \"type\" : \"event\", \"kind\":\"x\" ,\"ctl\":\"kitchen\"}");
	o = cJSON_Parse(s);
	ck_assert_ptr_nonnull(o);
	cJSON_Delete(o);
	free(s);
	lanmsg_clear(&m);

	/* Nothing but the type: dropping it leaves an empty object. */
	ck_assert_int_eq(dec(&m, "{\"type\":\"event\"}", why, sizeof why), 0);
	s = lanmsg_forward(&m, drop_type, NULL, NULL);
	ck_assert_str_eq(s, "{}");
	free(s);
	lanmsg_clear(&m);

	/* A message made here (no bytes yet): serialised once. */
	cJSON *built = lanmsg_accepted_new("r-9");
	lanmsg_wrap(&m, built);
	ck_assert_int_eq(m.type, LANMSG_ACCEPTED);
	s = lanmsg_forward(&m, NULL, set, NULL);
	ck_assert_str_eq(s, "{\"type\":\"accepted\",\"id\":\"r-9\",\"ctl\":\"kitchen\"}");
	free(s);
	lanmsg_clear(&m);
	cJSON_Delete(built);
	cJSON_Delete(set);
	cJSON_Delete(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lanmsg");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_decode_frames);
	tcase_add_test(tc, test_hello);
	tcase_add_test(tc, test_command);
	tcase_add_test(tc, test_progress);
	tcase_add_test(tc, test_result);
	tcase_add_test(tc, test_event);
	tcase_add_test(tc, test_bye_ping_pong);
	tcase_add_test(tc, test_forward);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
