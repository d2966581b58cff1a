/* test_relay: frAroundWeb's relay over the real mqtt module and a real mosquitto, with a stand-in
 * home server (another mqtt client) answering on the MQTT 5 response topic: the request
 * document is the profile's (docs/topics.md: UUID id, args, deadline from the wait or the
 * caller's earlier one, reply_to = response topic = fr/<home>/reply/<user>/web-<instance>,
 * the id as correlation data, progress); accepted and started come as events and the result as
 * the final line; a reply without correlation data (MQTT 3.1.1) is matched by its id; other
 * reply types and other clients' reply topics are ignored; no result within "wait" is error
 * timeout; a request whose home was revoked ends with error forbidden; a detached owner hears
 * nothing; every sent request is audited once, with its final status. */
#include "audit.h"
#include "broker.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "relay.h"
#include "shimproto.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 15000

static struct test_broker broker;
static struct loop *loop;
static struct mqtt *web, *home;
static struct relay *relay;
static struct audit *audit;
static struct metrics metrics;
static char audit_path[64];
static bool web_up, home_up;
static int home_cmds;
/* The last request the stand-in home got: its document, response topic, correlation data. */
static cJSON *last_cmd;
static char last_rt[256], last_corr[64];

/* What the owner got. */
struct owner {
	cJSON *lines[8];
	int n, finals;
};

static void deliver(void *arg, cJSON *line, bool final)
{
	struct owner *o = arg;
	ck_assert_int_lt(o->n, 8);
	o->lines[o->n++] = line ? cJSON_Duplicate(line, true) : NULL;
	o->finals += final;
}

static void owner_clear(struct owner *o)
{
	for (int i = 0; i < o->n; i++)
		cJSON_Delete(o->lines[i]);
	memset(o, 0, sizeof *o);
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* The stand-in home server: answers "rec" with accepted, started and an ok result on the
 * request's response topic with its correlation data; ignores everything else. */
static void home_reply(const struct mqtt_msg *m, const char *json)
{
	ck_assert_int_eq(mqtt_publish(home, m->response_topic, json, strlen(json), 1, false, NULL,
				      m->correlation, m->correlation_len), 0);
}

static void home_answer(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	home_cmds++;
	cJSON *cmd = cJSON_ParseWithLength(m->payload, m->len);
	if (!cJSON_IsObject(cmd)) {
		cJSON_Delete(cmd);   /* the set-up's probe */
		return;
	}
	ck_assert_ptr_nonnull(m->response_topic);
	ck_assert_int_eq((int)m->correlation_len, RELAY_UUID_LEN);
	cJSON_Delete(last_cmd);
	last_cmd = cJSON_Duplicate(cmd, true);
	snprintf(last_rt, sizeof last_rt, "%s", m->response_topic);
	snprintf(last_corr, sizeof last_corr, "%.*s", (int)m->correlation_len, (const char *)m->correlation);
	char buf[512];
	const char *id = str(cmd, "id");
	if (strcmp(str(cmd, "action"), "v311") == 0) {
		/* As an MQTT 3.1.1 home server answers: on reply_to, no correlation data; first a
		 * type the profile ignores, and a result for the same id on another client's topic. */
		const char *rt = str(cmd, "reply_to");
		char other[256];
		snprintf(other, sizeof other, "fr/h/reply/alice/web-other");
		snprintf(buf, sizeof buf, "{\"type\":\"result\",\"id\":\"%s\",\"status\":\"failed\"}", id);
		ck_assert_int_eq(mqtt_publish(home, other, buf, strlen(buf), 1, false, NULL, NULL, 0), 0);
		snprintf(buf, sizeof buf, "{\"type\":\"queued\",\"id\":\"%s\"}", id);
		ck_assert_int_eq(mqtt_publish(home, rt, buf, strlen(buf), 1, false, NULL, NULL, 0), 0);
		snprintf(buf, sizeof buf, "{\"type\":\"accepted\",\"id\":\"%s\",\"ctl\":\"k\"}", id);
		ck_assert_int_eq(mqtt_publish(home, rt, buf, strlen(buf), 1, false, NULL, NULL, 0), 0);
		snprintf(buf, sizeof buf, "{\"type\":\"result\",\"id\":\"%s\",\"status\":\"ok\"}", id);
		ck_assert_int_eq(mqtt_publish(home, rt, buf, strlen(buf), 1, false, NULL, NULL, 0), 0);
	} else if (strcmp(str(cmd, "action"), "rec") == 0) {
		snprintf(buf, sizeof buf, "{\"type\":\"accepted\",\"id\":\"%s\",\"ctl\":\"k\"}", id);
		home_reply(m, buf);
		snprintf(buf, sizeof buf, "{\"type\":\"started\",\"id\":\"%s\",\"ctl\":\"k\",\"pid\":42}", id);
		home_reply(m, buf);
		snprintf(buf, sizeof buf, "{\"type\":\"result\",\"id\":\"%s\",\"ctl\":\"k\",\"action\":\"rec\","
			 "\"status\":\"ok\",\"exit_code\":0,\"stdout\":\"done\\n\"}", id);
		home_reply(m, buf);
	}
	/* Any other action (the tests use "late") is never answered. */
	cJSON_Delete(cmd);
}


static void web_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	web_up = true;
}

static void web_message(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	/* The test subscribes to the other client's replies too: they are not the relay's. */
	bool other = strstr(m->topic, "/web-other") != NULL;
	ck_assert(relay_on_message(relay, m) == !other);
}

static void home_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	home_up = true;
}

static const struct mqtt_ops web_ops = { web_connected, NULL, web_message };
static const struct mqtt_ops home_ops = { home_connected, NULL, home_answer };

static bool both_up(void *arg)
{
	(void)arg;
	return web_up && home_up;
}

static int want_finals;

static bool finals(void *arg)
{
	return ((struct owner *)arg)->finals >= want_finals;
}

static bool nothing_pending(void *arg)
{
	(void)arg;
	return relay_pending(relay) == 0;
}

static bool home_heard(void *arg)
{
	(void)arg;
	if (home_cmds == 0)
		mqtt_publish(web, "fr/sync/ctl/s/cmd", "probe", 5, 0, false, NULL, NULL, 0);
	return home_cmds > 0;
}

static void run_until(bool (*done)(void *arg), void *arg, const char *what)
{
	test_run_until(loop, &broker, WAIT_MS, done, arg, what);
}

static struct shim_req req;

static void start(const char *line, struct owner *o, char *uuid)
{
	char why[160];
	shimproto_free(&req);
	ck_assert_int_eq(shimproto_parse(line, strlen(line), &req, why, sizeof why), SHIM_OK);
	ck_assert_int_eq(relay_start(relay, &req, "alice", o, deliver, uuid), 0);
}

/* The status of request uuid in the audit file, or NULL. */
static const char *audited(const char *uuid)
{
	static char status[32];
	cJSON *recs = audit_tail(audit, "alice", 100), *r;
	const char *found = NULL;
	cJSON_ArrayForEach(r, recs) {
		if (strcmp(str(r, "request"), uuid) == 0) {
			ck_assert_ptr_null(found);   /* once */
			snprintf(status, sizeof status, "%s", str(r, "status"));
			found = status;
		}
	}
	cJSON_Delete(recs);
	return found;
}

static void setup(void)
{
	char uri[64];
	test_broker_start(&broker);
	snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", broker.port);
	strcpy(audit_path, "/tmp/fr-test-audit-XXXXXX");
	int fd = mkstemp(audit_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	loop = loop_new();
	audit = audit_open(audit_path);
	struct mqtt_opts o = { .uri = uri, .client_id = "test-relay-web", .clean = true };
	web = mqtt_new(loop, &o, &web_ops, NULL);
	o.client_id = "test-relay-home";
	home = mqtt_new(loop, &o, &home_ops, NULL);
	memset(&metrics, 0, sizeof metrics);
	relay = relay_new(loop, web, audit, &metrics, "fr", "t1");
	ck_assert(loop && audit && web && home && relay);
	ck_assert_str_eq(relay_reply_filter(relay), "fr/+/reply/+/web-t1");
	ck_assert_int_eq(mqtt_subscribe(web, relay_reply_filter(relay), 1), 0);
	ck_assert_int_eq(mqtt_subscribe(web, "fr/+/reply/+/web-other", 1), 0);
	ck_assert_int_eq(mqtt_subscribe(home, "fr/+/ctl/+/cmd", 1), 0);
	web_up = home_up = false;
	home_cmds = 0;
	ck_assert_int_eq(mqtt_start(web), 0);
	ck_assert_int_eq(mqtt_start(home), 0);
	run_until(both_up, NULL, "both clients connected");
	run_until(home_heard, NULL, "the home's subscription");
	want_finals = 1;
}

static void teardown(void)
{
	cJSON_Delete(last_cmd);
	last_cmd = NULL;
	shimproto_free(&req);
	relay_free(relay);
	mqtt_free(web);
	mqtt_free(home);
	audit_free(audit);
	loop_free(loop);
	unlink(audit_path);
	test_broker_stop(&broker);
}

START_TEST(events_then_result_audited)
{
	struct owner o = { 0 };
	char uuid[RELAY_UUID_LEN + 1];
	start("{\"id\":8000000000000001,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\","
	      "\"action\":\"rec\",\"args\":{\"tag\":\"x\"},\"wait\":30}", &o, uuid);
	ck_assert_uint_eq(relay_pending(relay), 1);
	run_until(finals, &o, "the result");
	ck_assert_int_eq(o.n, 3);
	ck_assert_str_eq(str(o.lines[0], "event"), "accepted");
	ck_assert_str_eq(str(o.lines[1], "event"), "started");
	ck_assert_str_eq(str(o.lines[0], "request"), uuid);
	ck_assert_double_eq(cJSON_GetObjectItem(o.lines[1], "pid")->valuedouble, 42);
	cJSON *fin = o.lines[2];
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(fin, "ok")));
	const cJSON *res = cJSON_GetObjectItem(fin, "result");
	ck_assert_str_eq(str(res, "status"), "ok");
	ck_assert_str_eq(str(res, "stdout"), "done\n");
	ck_assert_ptr_null(cJSON_GetObjectItem(res, "type"));
	/* The shim id comes back as written. */
	char *s = cJSON_PrintUnformatted(fin);
	ck_assert_ptr_nonnull(strstr(s, "{\"id\":8000000000000001,\"ok\":true"));
	free(s);
	ck_assert_uint_eq(relay_pending(relay), 0);
	ck_assert_str_eq(audited(uuid), "ok");
	owner_clear(&o);
}
END_TEST

START_TEST(wait_expiry_is_timeout)
{
	struct owner o = { 0 };
	char uuid[RELAY_UUID_LEN + 1];
	start("{\"id\":\"w\",\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\",\"action\":\"late\","
	      "\"wait\":0.2}", &o, uuid);
	run_until(finals, &o, "the wait expiry");
	ck_assert_int_eq(o.n, 1);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o.lines[0], "ok")));
	ck_assert_str_eq(str(cJSON_GetObjectItem(o.lines[0], "error"), "code"), "timeout");
	ck_assert_str_eq(str(o.lines[0], "request"), uuid);
	ck_assert_str_eq(audited(uuid), "timeout");
	ck_assert_uint_eq(relay_pending(relay), 0);
	owner_clear(&o);
}
END_TEST

static bool grant_kept(void *owner, const char *home_name)
{
	(void)owner;
	return strcmp(home_name, "kept") == 0;
}

START_TEST(revoked_home_ends_request)
{
	struct owner o = { 0 };
	char ua[RELAY_UUID_LEN + 1], ub[RELAY_UUID_LEN + 1];
	start("{\"id\":\"a\",\"op\":\"request\",\"home\":\"gone\",\"ctl\":\"k\",\"action\":\"late\","
	      "\"wait\":0.5}", &o, ua);
	start("{\"id\":\"b\",\"op\":\"request\",\"home\":\"kept\",\"ctl\":\"k\",\"action\":\"late\","
	      "\"wait\":0.5}", &o, ub);
	relay_end_ungranted(relay, &o, grant_kept);
	ck_assert_int_eq(o.n, 1);
	ck_assert_int_eq(o.finals, 1);
	ck_assert_str_eq(str(cJSON_GetObjectItem(o.lines[0], "error"), "code"), "forbidden");
	ck_assert_str_eq(str(o.lines[0], "id"), "a");
	ck_assert_str_eq(str(o.lines[0], "request"), ua);
	/* Both still run to their end and are audited; the revoked one is silent from now on. */
	ck_assert_uint_eq(relay_pending(relay), 2);
	run_until(nothing_pending, NULL, "both requests' wait");
	ck_assert_int_eq(o.n, 2);
	ck_assert_str_eq(str(o.lines[1], "id"), "b");
	ck_assert_str_eq(str(cJSON_GetObjectItem(o.lines[1], "error"), "code"), "timeout");
	ck_assert_str_eq(audited(ua), "timeout");
	ck_assert_str_eq(audited(ub), "timeout");
	owner_clear(&o);
}
END_TEST

START_TEST(detached_owner_hears_nothing)
{
	struct owner o = { 0 };
	char uuid[RELAY_UUID_LEN + 1];
	start("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\",\"action\":\"rec\","
	      "\"wait\":30}", &o, uuid);
	relay_detach(relay, &o);
	run_until(nothing_pending, NULL, "the result");
	ck_assert_int_eq(o.n, 0);
	ck_assert_str_eq(audited(uuid), "ok");
}
END_TEST

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(cJSON_IsNumber(v), "no number %s", name);
	return v->valuedouble;
}

START_TEST(request_document_is_the_profile)
{
	struct owner o = { 0 };
	char uuid[RELAY_UUID_LEN + 1];
	double before = (double)loop_wall_ms() / 1000.0;
	start("{\"id\":1,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\",\"action\":\"rec\","
	      "\"args\":{\"tag\":\"x\"},\"wait\":30}", &o, uuid);
	double after = (double)loop_wall_ms() / 1000.0;
	run_until(finals, &o, "the result");
	ck_assert_ptr_nonnull(last_cmd);
	ck_assert_str_eq(str(last_cmd, "id"), uuid);
	ck_assert_str_eq(last_corr, uuid);
	ck_assert_str_eq(str(last_cmd, "action"), "rec");
	ck_assert_str_eq(str(cJSON_GetObjectItem(last_cmd, "args"), "tag"), "x");
	ck_assert_str_eq(last_rt, "fr/h/reply/alice/web-t1");
	ck_assert_str_eq(str(last_cmd, "reply_to"), last_rt);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(last_cmd, "progress")));
	ck_assert_ptr_null(cJSON_GetObjectItem(last_cmd, "timeout"));
	/* wait 30: the deadline is 28 s after sending. */
	double d = num(last_cmd, "deadline");
	ck_assert_msg(d >= before + 28 - 0.01 && d <= after + 28 + 0.01, "deadline %f", d);
	ck_assert_int_eq(cJSON_GetArraySize(last_cmd), 6);
	owner_clear(&o);

	/* No args: {}; a timeout goes as given; an earlier deadline of the caller's wins, a
	 * later one does not. */
	start("{\"id\":2,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\",\"action\":\"rec\","
	      "\"timeout\":3,\"deadline\":4000000000.5,\"wait\":3}", &o, uuid);
	run_until(finals, &o, "the result");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(last_cmd, "args")), 0);
	ck_assert_double_eq(num(last_cmd, "timeout"), 3);
	d = num(last_cmd, "deadline");
	ck_assert_msg(d < 4000000000.0 && d <= (double)loop_wall_ms() / 1000.0 + 1.5, "deadline %f", d);
	owner_clear(&o);
	start("{\"id\":3,\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\",\"action\":\"rec\","
	      "\"deadline\":1000000000.25,\"wait\":30}", &o, uuid);
	run_until(finals, &o, "the result");
	ck_assert_double_eq(num(last_cmd, "deadline"), 1000000000.25);
	owner_clear(&o);
}
END_TEST

START_TEST(deadline_rule)
{
	ck_assert_double_eq(relay_deadline(1000, 30), 1028);
	ck_assert_double_eq(relay_deadline(1000, 4), 1002);
	ck_assert_double_eq(relay_deadline(1000, 3), 1001.5);
	ck_assert_double_eq(relay_deadline(1000, 0.5), 1000.25);
}
END_TEST

START_TEST(v311_reply_matched_by_id)
{
	struct owner o = { 0 };
	char uuid[RELAY_UUID_LEN + 1];
	start("{\"id\":\"v\",\"op\":\"request\",\"home\":\"h\",\"ctl\":\"k\","
	      "\"action\":\"v311\",\"wait\":30}", &o, uuid);
	run_until(finals, &o, "the result");
	/* The other client's result and the unknown type did not reach the owner. */
	ck_assert_int_eq(o.n, 2);
	ck_assert_str_eq(str(o.lines[0], "event"), "accepted");
	ck_assert_str_eq(str(cJSON_GetObjectItem(o.lines[1], "result"), "status"), "ok");
	ck_assert_str_eq(audited(uuid), "ok");
	owner_clear(&o);
}
END_TEST

int main(void)
{
	log_init("test_relay", true, 0);
	Suite *s = suite_create("relay");
	TCase *tc = tcase_create("broker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, events_then_result_audited);
	tcase_add_test(tc, request_document_is_the_profile);
	tcase_add_test(tc, v311_reply_matched_by_id);
	tcase_add_test(tc, wait_expiry_is_timeout);
	tcase_add_test(tc, revoked_home_ends_request);
	tcase_add_test(tc, detached_owner_hears_nothing);
	suite_add_tcase(s, tc);
	TCase *rule = tcase_create("rule");
	tcase_add_test(rule, deadline_rule);
	suite_add_tcase(s, rule);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
