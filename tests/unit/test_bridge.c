/* test_bridge: frMhs's MQTT side (agents/frMhs/bridge.c) against a real mosquitto on a free
 * loopback port, watched by an observer client: the home's birth (retained online) and its
 * clean stop (retained offline); requests on fr/<home>/ctl/<ctl>/cmd handed over with their
 * reply route (the MQTT 5 response topic, else reply_to, else .../result; correlation data;
 * "progress": false); what the bridge refuses itself -- a reply topic outside
 * fr/<home>/reply/, unparseable requests (with the id when it can be read), retained requests
 * (removed from the broker; a known id silently) -- and the deletion of a retained request
 * ignored; replies with their correlation data, unclaimed results with ctl; controller info and
 * status retained; events without "type" and a sensor's retained state at most every 100 ms,
 * always its latest value; events while the broker is away bounded and counted; the display
 * text cut on a character boundary; the retained info of a previous run learned at start;
 * other modules' subscriptions. */
#include "bridge.h"
#include "lanmsg.h"
#include "broker.h"
#include "command.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "req.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 15000
#define SEEN_MAX 4096

static struct test_broker broker;
static struct loop *loop;
static struct conf conf;
static struct bridge *bridge;
static struct mqtt *obs;
static bool obs_up;
static char dir[64];

/* What the observer saw (fr/# and x/#). */
struct seen {
	char topic[256];
	char *payload;       /* NUL-terminated copy */
	size_t len;
	bool retained;
	char corr[64];
};
static struct seen seen[SEEN_MAX];
static int nseen;

/* What the bridge handed to its owner. */
static struct {
	int connected, status_changes, requests;
	char ctl[64], id[80], action[64], topic[256], corr[64];
	bool final_only;
	char known_ctls[256];
	char other[256];
} got;

static void on_connected(void *arg)
{
	(void)arg;
	got.connected++;
}

static void on_request(void *arg, const char *ctl, const struct command *cmd,
		       const struct req_route *rt)
{
	(void)arg;
	got.requests++;
	snprintf(got.ctl, sizeof got.ctl, "%s", ctl);
	snprintf(got.id, sizeof got.id, "%s", cmd->id);
	snprintf(got.action, sizeof got.action, "%s", cmd->action);
	snprintf(got.topic, sizeof got.topic, "%s", rt->topic);
	snprintf(got.corr, sizeof got.corr, "%.*s", (int)rt->corr_len, (const char *)rt->corr);
	got.final_only = rt->final_only;
}

static bool known(void *arg, const char *ctl, const char *id)
{
	(void)arg, (void)ctl;
	return strcmp(id, "known-1") == 0;
}

static void on_known_ctl(void *arg, const char *ctl, const cJSON *info)
{
	(void)arg, (void)info;
	size_t n = strlen(got.known_ctls);
	snprintf(got.known_ctls + n, sizeof got.known_ctls - n, "%s;", ctl);
}

static void on_status(void *arg)
{
	(void)arg;
	got.status_changes++;
}

static void on_other(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	snprintf(got.other, sizeof got.other, "%s", m->topic);
}

/* The controllers the owner knows, for fr/<home>/sync: "k" online, and big_ctls more with
 * a 1000-byte info each (to pass the answer's size bound). */
static int big_ctls;

static cJSON *controllers(void *arg)
{
	(void)arg;
	cJSON *list = cJSON_CreateArray();
	cJSON *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "id", "k");
	cJSON_AddStringToObject(k, "status", "online");
	cJSON_AddItemToObject(k, "info", cJSON_Parse("{\"id\":\"k\",\"name\":\"Kitchen\"}"));
	cJSON_AddItemToArray(list, k);
	static char pad[1001];
	memset(pad, 'p', 1000);
	for (int i = 0; i < big_ctls; i++) {
		char id[16];
		snprintf(id, sizeof id, "b%d", i);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", id);
		cJSON_AddStringToObject(o, "status", "offline");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "info"), "pad", pad);
		cJSON_AddItemToArray(list, o);
	}
	return list;
}

static const struct bridge_ops ops = { on_connected, on_request, known, on_known_ctl, on_status,
				       on_other, controllers };

static void obs_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	obs_up = true;
}

static void obs_message(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	ck_assert_int_lt(nseen, SEEN_MAX);
	struct seen *s = &seen[nseen++];
	snprintf(s->topic, sizeof s->topic, "%s", m->topic);
	s->payload = malloc(m->len + 1);
	memcpy(s->payload, m->payload, m->len);
	s->payload[m->len] = '\0';
	s->len = m->len;
	s->retained = m->retained;
	snprintf(s->corr, sizeof s->corr, "%.*s", (int)m->correlation_len,
		 m->correlation ? (const char *)m->correlation : "");
}

static const struct mqtt_ops obs_ops = { obs_connected, NULL, obs_message };

/* The last message seen on topic (NULL if none). */
static const struct seen *last_on(const char *topic)
{
	for (int i = nseen - 1; i >= 0; i--)
		if (strcmp(seen[i].topic, topic) == 0)
			return &seen[i];
	return NULL;
}

static int count_on(const char *topic)
{
	int n = 0;
	for (int i = 0; i < nseen; i++)
		n += strcmp(seen[i].topic, topic) == 0;
	return n;
}

static const char *wait_topic;
static int wait_count;

static bool topic_seen(void *arg)
{
	(void)arg;
	return count_on(wait_topic) >= wait_count;
}

/* Runs the loop until the observer has seen n messages on topic; returns the last. */
static const struct seen *await(const char *topic, int n)
{
	wait_topic = topic;
	wait_count = n;
	test_run_until(loop, &broker, WAIT_MS, topic_seen, NULL, topic);
	return last_on(topic);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool obs_ready(void *arg)
{
	(void)arg;
	return obs_up;
}

static bool bridge_ready(void *arg)
{
	(void)arg;
	return got.connected > 0;
}

static void start_bridge(void)
{
	bridge = bridge_new(loop, &conf, &ops, NULL);
	ck_assert_ptr_nonnull(bridge);
	ck_assert_int_eq(bridge_start(bridge), 0);
	test_run_until(loop, &broker, WAIT_MS, bridge_ready, NULL, "the bridge connected");
}

static void setup(void)
{
	char path[128], uri[64];
	memset(&got, 0, sizeof got);
	nseen = 0;
	obs_up = false;
	test_broker_start(&broker);
	strcpy(dir, "/tmp/fr-test-bridge-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/frmhs.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "home = \"h1\";\nsecret_file = \"%s/home.secret\";\nstate_dir = \"%s/state\";\n"
		   "mqtt = { uri = \"mqtt://127.0.0.1:%u\"; backoff_min = 0.1; backoff_max = 0.5; };\n",
		dir, dir, broker.port);
	fclose(f);
	ck_assert_int_eq(conf_load(&conf, path), 0);
	loop = loop_new();
	snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", broker.port);
	struct mqtt_opts o = { .uri = uri, .client_id = "test-bridge-obs", .clean = true,
			       .backoff_min_ms = 100, .backoff_max_ms = 500 };
	obs = mqtt_new(loop, &o, &obs_ops, NULL);
	ck_assert_ptr_nonnull(obs);
	ck_assert_int_eq(mqtt_subscribe(obs, "fr/#", 1), 0);
	ck_assert_int_eq(mqtt_subscribe(obs, "x/#", 1), 0);
	ck_assert_int_eq(mqtt_start(obs), 0);
	test_run_until(loop, &broker, WAIT_MS, obs_ready, NULL, "the observer connected");
}

static void teardown(void)
{
	bridge_free(bridge);
	bridge = NULL;
	mqtt_free(obs);
	loop_free(loop);
	conf_free(&conf);
	for (int i = 0; i < nseen; i++)
		free(seen[i].payload);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	test_broker_stop(&broker);
}

/* The observer publishes a request (QoS 1) on ctl k's cmd topic. */
static void cmd(const char *json, const char *response_topic, const char *corr, bool retain)
{
	ck_assert_int_eq(mqtt_publish(obs, "fr/h1/ctl/k/cmd", json, strlen(json), 1, retain,
				      response_topic, corr, corr ? strlen(corr) : 0), 0);
}

static int want_requests;

static bool requests_in(void *arg)
{
	(void)arg;
	return got.requests >= want_requests;
}

static void await_request(int n)
{
	want_requests = n;
	test_run_until(loop, &broker, WAIT_MS, requests_in, NULL, "the request handed over");
}

START_TEST(birth_routes_and_stop)
{
	start_bridge();
	const struct seen *s = await("fr/h1/status", 1);
	ck_assert_str_eq(s->payload, "online");
	ck_assert(s->retained);
	ck_assert(bridge_connected(bridge));
	ck_assert(bridge_status(bridge)->broker_up);

	/* The MQTT 5 response topic wins, with its correlation data. */
	cmd("{\"id\":\"r1\",\"action\":\"lamp\",\"reply_to\":\"fr/h1/reply/u/other\"}",
	    "fr/h1/reply/u/x", "c1", false);
	await_request(1);
	ck_assert_str_eq(got.ctl, "k");
	ck_assert_str_eq(got.id, "r1");
	ck_assert_str_eq(got.action, "lamp");
	ck_assert_str_eq(got.topic, "fr/h1/reply/u/x");
	ck_assert_str_eq(got.corr, "c1");
	ck_assert(!got.final_only);
	/* Else reply_to (an MQTT 3.1.1 requester); "progress": false is final only. */
	cmd("{\"id\":\"r2\",\"action\":\"lamp\",\"reply_to\":\"fr/h1/reply/u/y\",\"progress\":false}",
	    NULL, NULL, false);
	await_request(2);
	ck_assert_str_eq(got.topic, "fr/h1/reply/u/y");
	ck_assert_str_eq(got.corr, "");
	ck_assert(got.final_only);
	/* Else the controller's result topic. */
	cmd("{\"id\":\"r3\",\"action\":\"lamp\"}", NULL, NULL, false);
	await_request(3);
	ck_assert_str_eq(got.topic, "fr/h1/ctl/k/result");
	ck_assert_uint_eq(bridge_counters(bridge)->requests, 3);
	ck_assert_uint_eq(bridge_counters(bridge)->refused, 0);

	bridge_stop(bridge);
	s = await("fr/h1/status", 2);
	ck_assert_str_eq(s->payload, "offline");
	ck_assert(s->retained);
}
END_TEST

/* docs/topics.md, fr/<home>/heartbeat: one at once after the connect, then every interval;
 * QoS 0, not retained, with ts, seq and interval. */
START_TEST(heartbeat)
{
	ck_assert_int_eq(conf.heartbeat_interval_s, 30);   /* the default */
	conf.heartbeat_interval_s = 1;
	start_bridge();
	for (int n = 1; n <= 2; n++) {
		const struct seen *s = await("fr/h1/heartbeat", n);
		ck_assert(!s->retained);
		cJSON *o = cJSON_Parse(s->payload);
		ck_assert_ptr_nonnull(o);
		ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(o, "seq")->valueint, n);
		ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(o, "interval")->valueint, 1);
		ck_assert(cJSON_GetObjectItemCaseSensitive(o, "ts")->valuedouble > 1.7e12);
		cJSON_Delete(o);
	}
}
END_TEST

START_TEST(refusals)
{
	start_bridge();
	/* A reply topic outside the reply space: not run, refused on the default topic with the
	 * request's id and correlation data. */
	cmd("{\"id\":\"bad-rt\",\"action\":\"lamp\"}", "fr/h1/ctl/k/status", "c2", false);
	const struct seen *s = await("fr/h1/ctl/k/result", 1);
	cJSON *o = cJSON_Parse(s->payload);
	ck_assert_str_eq(jstr(o, "type"), "result");
	ck_assert_str_eq(jstr(o, "status"), "rejected");
	ck_assert_str_eq(jstr(o, "id"), "bad-rt");
	ck_assert_ptr_nonnull(strstr(jstr(o, "reason"), "fr/h1/reply/"));
	ck_assert_str_eq(s->corr, "c2");
	cJSON_Delete(o);
	/* A wildcard in reply_to is refused the same way. */
	cmd("{\"id\":\"bad-wild\",\"action\":\"lamp\",\"reply_to\":\"fr/h1/reply/+\"}", NULL, NULL,
	    false);
	s = await("fr/h1/ctl/k/result", 2);
	ck_assert_ptr_nonnull(strstr(s->payload, "\"bad-wild\""));
	/* Unparseable: rejected on the requester's topic, "id" null; a readable id is echoed. */
	cmd("not json", "fr/h1/reply/u/g", "c3", false);
	s = await("fr/h1/reply/u/g", 1);
	o = cJSON_Parse(s->payload);
	ck_assert_str_eq(jstr(o, "status"), "rejected");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "id")));
	ck_assert_str_eq(s->corr, "c3");
	cJSON_Delete(o);
	cmd("{\"id\":\"no-action\"}", "fr/h1/reply/u/g", NULL, false);
	s = await("fr/h1/reply/u/g", 2);
	o = cJSON_Parse(s->payload);
	ck_assert_str_eq(jstr(o, "id"), "no-action");
	ck_assert_str_eq(jstr(o, "status"), "rejected");
	cJSON_Delete(o);
	/* Retained: never run, answered, and removed from the broker (an empty retained
	 * message); the broker's removal coming back is no request. */
	cmd("{\"id\":\"ret-1\",\"action\":\"lamp\"}", "fr/h1/reply/u/r", NULL, true);
	s = await("fr/h1/reply/u/r", 1);
	ck_assert_ptr_nonnull(strstr(s->payload, "\"rejected\""));
	ck_assert_ptr_nonnull(strstr(s->payload, "retain"));
	s = await("fr/h1/ctl/k/cmd", 2);
	ck_assert_uint_eq(s->len, 0);
	ck_assert(s->retained);
	/* A retained copy of a request this home server knows: removed, not answered. */
	cmd("{\"id\":\"known-1\",\"action\":\"lamp\"}", "fr/h1/reply/u/k", NULL, true);
	s = await("fr/h1/ctl/k/cmd", 4);
	ck_assert_uint_eq(s->len, 0);
	/* A marker after it: the known request's answer would have come first. */
	cmd("{\"id\":\"after\",\"action\":\"lamp\"}", "fr/h1/reply/u/m", NULL, false);
	await_request(1);
	ck_assert_str_eq(got.id, "after");
	ck_assert_int_eq(count_on("fr/h1/reply/u/k"), 0);
	const struct bridge_counters *n = bridge_counters(bridge);
	ck_assert_uint_eq(n->refused, 5);
	/* Every message on cmd but the two removals: 7 requests. */
	ck_assert_uint_eq(n->requests, 7);
}
END_TEST

/* A link message as frMhs's link hands it on: decoded, its fields checked by lanmsg. */
static void decode(struct lanmsg *m, const char *text)
{
	char why[160];
	ck_assert_msg(lanmsg_decode(m, text, strlen(text), why, sizeof why) == 0, "%s", why);
}

static void feed_event(const char *text)
{
	struct lanmsg m;
	struct lanmsg_event e;
	char why[160];
	decode(&m, text);
	ck_assert_msg(lanmsg_event(&m, &e, why, sizeof why) == 0, "%s", why);
	bridge_ctl_event(bridge, "k", &m, &e);
	lanmsg_clear(&m);
}

START_TEST(replies_info_and_states)
{
	start_bridge();
	struct req_route rt = { "fr/h1/reply/u/z", "corr-9", 6, false };
	const char *acc = "{\"type\":\"accepted\",\"id\":\"r9\",\"ctl\":\"k\"}";
	bridge_reply(bridge, &rt, acc, strlen(acc));
	const struct seen *s = await("fr/h1/reply/u/z", 1);
	ck_assert_str_eq(s->corr, "corr-9");
	ck_assert(!s->retained);
	ck_assert_ptr_nonnull(strstr(s->payload, "\"accepted\""));

	struct lanmsg m;
	decode(&m, "{\"type\":\"result\",\"id\":\"x\",\"status\":\"ok\"}");
	bridge_unclaimed_result(bridge, "k", &m);
	lanmsg_clear(&m);
	s = await("fr/h1/ctl/k/result", 1);
	cJSON *o = cJSON_Parse(s->payload);
	ck_assert_str_eq(jstr(o, "ctl"), "k");
	ck_assert_str_eq(jstr(o, "id"), "x");
	cJSON_Delete(o);

	cJSON *info = cJSON_Parse("{\"id\":\"k\",\"name\":\"Kitchen\"}");
	bridge_publish_ctl(bridge, "k", info, true);
	cJSON_Delete(info);
	s = await("fr/h1/ctl/k/status", 1);
	ck_assert_str_eq(s->payload, "online");
	ck_assert(s->retained);
	s = last_on("fr/h1/ctl/k/info");
	ck_assert_ptr_nonnull(s);
	ck_assert(s->retained);
	ck_assert_ptr_nonnull(strstr(s->payload, "Kitchen"));

	/* Five values of one sensor at once: the first goes now, the latest within the 100 ms
	 * throttle; the ones between are skipped. Every event goes out, without "type". */
	for (int i = 1; i <= 5; i++) {
		char e[128];
		snprintf(e, sizeof e, "{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"temp\","
			 "\"value\":%d,\"ts\":%d}", i, 1000 + i);
		feed_event(e);
	}
	s = await("fr/h1/ctl/k/event", 5);
	ck_assert_ptr_null(strstr(s->payload, "\"type\""));
	ck_assert_ptr_nonnull(strstr(s->payload, "\"value\":5"));
	s = await("fr/h1/ctl/k/state/temp", 2);
	o = cJSON_Parse(s->payload);
	ck_assert_double_eq(cJSON_GetObjectItem(o, "value")->valuedouble, 5);
	ck_assert_double_eq(cJSON_GetObjectItem(o, "ts")->valuedouble, 1005);
	ck_assert(s->retained);
	cJSON_Delete(o);
	ck_assert_str_eq(seen[nseen - 1].topic, s->topic);   /* nothing after the latest */
	ck_assert_int_eq(count_on("fr/h1/ctl/k/state/temp"), 2);
	const struct bridge_counters *n = bridge_counters(bridge);
	ck_assert_uint_eq(n->events_in, 5);
	ck_assert_uint_eq(n->events_out, 5);
	ck_assert_uint_eq(n->events_dropped, 0);

	/* A retained document of the home's own, and a raw publish for other modules. */
	cJSON *doc = cJSON_Parse("{\"requests\":{\"open\":0}}");
	bridge_publish_retained(bridge, "stats", doc);
	cJSON_Delete(doc);
	s = await("fr/h1/stats", 1);
	ck_assert(s->retained);
	ck_assert_int_eq(bridge_publish_raw(bridge, "x/raw", "r", 1, 1, false), 0);
	s = await("x/raw", 1);
	ck_assert_str_eq(s->payload, "r");
}
END_TEST

/* The observer asks fr/h1/sync (QoS 1). */
static void ask_sync(const char *payload, const char *response_topic, const char *corr,
		     bool retain)
{
	ck_assert_int_eq(mqtt_publish(obs, "fr/h1/sync", payload, strlen(payload), 1, retain,
				      response_topic, corr, corr ? strlen(corr) : 0), 0);
}

START_TEST(sync_answers)
{
	big_ctls = 0;
	start_bridge();
	feed_event("{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"temp\","
		   "\"value\":21.5,\"ts\":1234}");
	await("fr/h1/ctl/k/state/temp", 1);

	/* MQTT 5: the response topic and the correlation data; the id echoed. */
	ask_sync("{\"id\":\"s1\"}", "fr/h1/reply/u/s", "corr-s", false);
	const struct seen *s = await("fr/h1/reply/u/s", 1);
	ck_assert_str_eq(s->corr, "corr-s");
	ck_assert(!s->retained);
	cJSON *o = cJSON_Parse(s->payload);
	ck_assert_str_eq(jstr(o, "type"), "sync");
	ck_assert_str_eq(jstr(o, "id"), "s1");
	ck_assert_str_eq(jstr(o, "home"), "h1");
	ck_assert_str_eq(jstr(o, "status"), "online");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "ts")));
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "truncated"));
	const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "controllers"), 0);
	ck_assert_str_eq(jstr(c, "id"), "k");
	ck_assert_str_eq(jstr(c, "status"), "online");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(c, "info"), "name"), "Kitchen");
	const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "states"), "temp");
	ck_assert_double_eq(cJSON_GetObjectItem(t, "value")->valuedouble, 21.5);
	ck_assert_double_eq(cJSON_GetObjectItem(t, "ts")->valuedouble, 1234);
	cJSON_Delete(o);

	/* Refused or ignored: a reply_to outside fr/h1/reply/, a retained request, no route at
	 * all, garbage with no route. Then reply_to (3.1.1 style), answered: nothing came before. */
	ask_sync("{\"id\":\"bad\",\"reply_to\":\"fr/h1/status\"}", NULL, NULL, false);
	ask_sync("{\"id\":\"ret\",\"reply_to\":\"fr/h1/reply/u/r\"}", NULL, NULL, true);
	ask_sync("{\"id\":\"none\"}", NULL, NULL, false);
	ask_sync("\xff garbage", NULL, NULL, false);
	ask_sync("{\"id\":\"s2\",\"reply_to\":\"fr/h1/reply/u/r\"}", NULL, NULL, false);
	s = await("fr/h1/reply/u/r", 1);
	o = cJSON_Parse(s->payload);
	ck_assert_str_eq(jstr(o, "id"), "s2");
	cJSON_Delete(o);
	ck_assert_int_eq(count_on("fr/h1/reply/u/r"), 1);
	ck_assert_int_eq(count_on("fr/h1/status"), 1);   /* the birth only */

	/* Too many controllers for one answer: bounded, and said so. */
	big_ctls = 400;
	ask_sync("", "fr/h1/reply/u/big", NULL, false);
	s = await("fr/h1/reply/u/big", 1);
	ck_assert_uint_le(s->len, 256 * 1024);
	o = cJSON_Parse(s->payload);
	ck_assert_ptr_nonnull(o);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, "controllers"));
	ck_assert_int_gt(n, 100);
	ck_assert_int_lt(n, 401);
	cJSON_Delete(o);
	big_ctls = 0;
}
END_TEST

static bool bridge_down(void *arg)
{
	(void)arg;
	return !bridge_connected(bridge) && !bridge_status(bridge)->broker_up;
}

static bool reconnected(void *arg)
{
	return got.connected > *(int *)arg && bridge_status(bridge)->broker_up;
}

/* Kills the broker, waits until the bridge has seen it go, and hands it n events. */
static void events_while_away(int n)
{
	int changes = got.status_changes;
	test_broker_kill(&broker);
	test_run_until(loop, NULL, WAIT_MS, bridge_down, NULL, "the bridge to see the broker gone");
	ck_assert_int_gt(got.status_changes, changes);
	for (int i = 0; i < n; i++)
		feed_event("{\"type\":\"event\",\"kind\":\"state\",\"sensor\":\"tick\","
			   "\"value\":1,\"ts\":1}");
}

static void broker_back(void)
{
	int connected = got.connected;
	test_broker_start(&broker);
	test_run_until(loop, &broker, WAIT_MS, reconnected, &connected, "the bridge reconnected");
}

START_TEST(events_while_the_broker_is_away)
{
	start_bridge();
	/* 1000 events are kept for the reconnect, the rest dropped and counted. */
	events_while_away(1005);
	const struct bridge_counters *n = bridge_counters(bridge);
	ck_assert_uint_eq(n->events_in, 1005);
	ck_assert_uint_eq(n->events_out, 1000);
	ck_assert_uint_eq(n->events_dropped, 5);
	/* Back: the birth again (the restarted broker keeps nothing: persistence off). */
	int births = count_on("fr/h1/status");
	broker_back();
	const struct seen *s = await("fr/h1/status", births + 1);
	ck_assert_str_eq(s->payload, "online");
	ck_assert(s->retained);
	/* Away again: a fresh allowance of 1000, not what is left of the first. */
	events_while_away(1001);
	ck_assert_uint_eq(n->events_in, 2006);
	ck_assert_uint_eq(n->events_out, 2000);
	ck_assert_uint_eq(n->events_dropped, 6);
	broker_back();
}
END_TEST

static bool display_changed(void *arg)
{
	return bridge_status(bridge)->display_seq >= *(unsigned long long *)arg;
}

START_TEST(display_text_cut_whole)
{
	start_bridge();
	/* 254 ASCII bytes and a 3-byte character: 257 bytes, kept up to the last whole one. */
	char text[300];
	memset(text, 'a', 254);
	strcpy(text + 254, "\xe2\x82\xac");
	ck_assert_int_eq(mqtt_publish(obs, "fr/h1/display", text, strlen(text), 1, false, NULL, NULL, 0), 0);
	unsigned long long want = 1;
	test_run_until(loop, &broker, WAIT_MS, display_changed, &want, "the display text");
	const struct bridge_status *st = bridge_status(bridge);
	ck_assert_uint_eq(strlen(st->display_text), 254);
	/* The same text again is a new publication. */
	ck_assert_int_eq(mqtt_publish(obs, "fr/h1/display", "hi", 2, 1, false, NULL, NULL, 0), 0);
	want = 2;
	test_run_until(loop, &broker, WAIT_MS, display_changed, &want, "the second text");
	ck_assert_str_eq(st->display_text, "hi");
}
END_TEST

static bool learned(void *arg)
{
	return strstr(got.known_ctls, arg) != NULL;
}

static bool other_probe(void *arg)
{
	(void)arg;
	if (strcmp(got.other, "x/probe") == 0)
		return true;
	mqtt_publish(obs, "x/probe", "p", 1, 0, false, NULL, NULL, 0);
	return false;
}

START_TEST(learns_previous_run_and_others)
{
	/* The retained info a previous run left: learned in the first seconds. */
	const char *info = "{\"id\":\"old\",\"address\":\"127.0.0.9\"}";
	ck_assert_int_eq(mqtt_publish(obs, "fr/h1/ctl/old/info", info, strlen(info), 1, true, NULL,
				      NULL, 0), 0);
	await("fr/h1/ctl/old/info", 1);
	start_bridge();
	test_run_until(loop, &broker, WAIT_MS, learned, "old;", "the old controller learned");
	ck_assert_int_eq(bridge_subscribe(bridge, "x/#", 1, NULL), 0);
	/* Once the broker has the subscription, its messages go to on_other (no hook says when:
	 * a probe is sent on every poll until one comes). */
	test_run_until(loop, &broker, WAIT_MS, other_probe, NULL, "a message for another module");
	/* The live info after the first seconds is not a previous run's. */
	ck_assert_int_eq(count_on("fr/h1/ctl/old/info"), 1);
}
END_TEST

int main(void)
{
	log_init("test_bridge", true, 0);
	Suite *s = suite_create("bridge");
	TCase *tc = tcase_create("broker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, birth_routes_and_stop);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, heartbeat);
	tcase_add_test(tc, replies_info_and_states);
	tcase_add_test(tc, sync_answers);
	tcase_add_test(tc, events_while_the_broker_is_away);
	tcase_add_test(tc, display_text_cut_whole);
	tcase_add_test(tc, learns_previous_run_and_others);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
