/* test_subs: frAroundWeb's subscriptions (subs.c) over the real mqtt module and a real
 * mosquitto: overlapping filters each get one copy of a message, Retain As Published per
 * filter (the live copy of a retained publish is marked retained only where it is asked for),
 * a shared filter is one broker subscription, the last consumer unsubscribes, a message
 * without subscription identifiers reaches every matching filter once, and so does every
 * message on an MQTT 3.1.1 connection; a consumer that waits for the broker gets nothing
 * before the SUBACK, and a refused one is told the error and dropped (MQTT 5 and 3.1.1). */
#include "broker.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "subs.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define WAIT_MS 15000

struct seen {
	char topic[96], payload[32];
	bool retained;
};

struct consumer {
	const char *name;
	struct seen v[64];
	int n;
	int acks, err;   /* subs_add_acked's done: calls, last err */
};

static struct test_broker broker;
static struct loop *loop;
static struct mqtt *web, *pub;
static struct subs *subs;
static bool web_up, pub_up;

static void on_consume(void *arg, const struct mqtt_msg *m)
{
	struct consumer *c = arg;
	ck_assert_int_lt(c->n, 64);
	struct seen *s = &c->v[c->n++];
	snprintf(s->topic, sizeof s->topic, "%s", m->topic);
	snprintf(s->payload, sizeof s->payload, "%.*s", (int)m->len, (const char *)m->payload);
	s->retained = m->retained;
}

static void web_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	web_up = true;
}

static void web_message(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	subs_on_message(subs, m);
}

static void pub_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	pub_up = true;
}

static const struct mqtt_ops web_ops = { web_connected, NULL, web_message };
static const struct mqtt_ops pub_ops = { pub_connected, NULL, NULL };

static void run_until(bool (*done)(void *arg), void *arg, const char *what)
{
	test_run_until(loop, &broker, WAIT_MS, done, arg, what);
}

static bool both_up(void *arg)
{
	(void)arg;
	return web_up && pub_up;
}

static int count(const struct consumer *c, const char *topic, bool retained)
{
	int n = 0;
	for (int i = 0; i < c->n; i++)
		n += strcmp(c->v[i].topic, topic) == 0 && c->v[i].retained == retained;
	return n;
}

static int count_any(const struct consumer *c, const char *topic)
{
	return count(c, topic, true) + count(c, topic, false);
}

/* A marker every consumer in the NULL-terminated list has seen: everything the publisher sent
 * before it has been delivered (one connection, so the broker keeps the order). */
struct marker {
	struct consumer **cs;
	char topic[96];
	int sent;
};

static bool marker_seen(void *arg)
{
	struct marker *mk = arg;
	bool all = true;
	for (struct consumer **c = mk->cs; *c; c++)
		all = all && count_any(*c, mk->topic) > 0;
	/* Until the subscriptions are live, a marker can pass unseen: send another now and then. */
	if (!all && mk->sent++ % 20 == 0)
		ck_assert_int_eq(mqtt_publish(pub, mk->topic, "m", 1, 1, false, NULL, NULL, 0), 0);
	return all;
}

static void sync_all(struct consumer **cs, const char *topic)
{
	struct marker mk = { .cs = cs };
	snprintf(mk.topic, sizeof mk.topic, "%s", topic);
	run_until(marker_seen, &mk, topic);
}

static void setup(void)
{
	char uri[64];
	test_broker_start(&broker);
	snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", broker.port);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
	struct mqtt_opts o = { .uri = uri, .client_id = "test-subs-web", .clean = true };
	web = mqtt_new(loop, &o, &web_ops, NULL);
	o.client_id = "test-subs-pub";
	pub = mqtt_new(loop, &o, &pub_ops, NULL);
	subs = subs_new(web);
	ck_assert(web && pub && subs);
	web_up = pub_up = false;
	ck_assert_int_eq(mqtt_start(web), 0);
	ck_assert_int_eq(mqtt_start(pub), 0);
	run_until(both_up, NULL, "both clients connected");
}

static void teardown(void)
{
	subs_free(subs);
	mqtt_free(web);
	mqtt_free(pub);
	loop_free(loop);
	test_broker_stop(&broker);
}

START_TEST(overlapping_filters_one_copy_each)
{
	static struct consumer cache = { .name = "cache" }, shim1 = { .name = "shim1" }, all1 = { .name = "all1" },
			       all2 = { .name = "all2" }, late = { .name = "late" };
	const char *k = "fr/h/ctl/k/status";
	ck_assert_int_eq(mqtt_publish(pub, k, "online", 6, 1, true, NULL, NULL, 0), 0);
	/* The cache's filter keeps Retain As Published; the clients' do not. */
	ck_assert_ptr_nonnull(subs_add(subs, "fr/+/ctl/+/status", true, on_consume, &cache));
	ck_assert_ptr_nonnull(subs_add(subs, "fr/h/ctl/+/status", false, on_consume, &shim1));
	struct subs_ref *r1 = subs_add(subs, "fr/h/#", false, on_consume, &all1);
	struct subs_ref *r2 = subs_add(subs, "fr/h/#", false, on_consume, &all2);
	ck_assert(r1 && r2);
	ck_assert_uint_eq(subs_count(subs), 3);
	/* One filter, one Retain As Published choice. */
	ck_assert_ptr_null(subs_add(subs, "fr/+/ctl/+/status", false, on_consume, &late));
	struct consumer *everyone[] = { &cache, &shim1, &all1, &all2, NULL };
	sync_all(everyone, "fr/h/ctl/sync1/status");
	/* The retained value, once per consumer (all2's subscribe repeated fr/h/#'s, so all1 and
	 * all2 may see it twice: docs/shim.md says so), always marked retained. */
	ck_assert_int_eq(count(&cache, k, true), 1);
	ck_assert_int_eq(count(&shim1, k, true), 1);
	ck_assert_int_ge(count(&all1, k, true), 1);
	ck_assert_int_eq(count_any(&cache, k) + count_any(&shim1, k), 2);

	for (struct consumer **c = everyone; *c; c++)
		(*c)->n = 0;
	ck_assert_int_eq(mqtt_publish(pub, k, "offline", 7, 1, true, NULL, NULL, 0), 0);
	ck_assert_int_eq(mqtt_publish(pub, "fr/h/ctl/k/event", "{}", 2, 0, false, NULL, NULL, 0), 0);
	sync_all(everyone, "fr/h/ctl/sync2/status");
	/* The live change: exactly one copy each; retained only where Retain As Published. */
	ck_assert_int_eq(count(&cache, k, true), 1);
	ck_assert_int_eq(count_any(&cache, k), 1);
	ck_assert_int_eq(count(&shim1, k, false), 1);
	ck_assert_int_eq(count_any(&shim1, k), 1);
	ck_assert_int_eq(count(&all1, k, false), 1);
	ck_assert_int_eq(count_any(&all1, k), 1);
	ck_assert_int_eq(count(&all2, k, false), 1);
	ck_assert_int_eq(count_any(&all2, k), 1);
	ck_assert_int_eq(count_any(&all1, "fr/h/ctl/k/event"), 1);
	ck_assert_int_eq(count_any(&cache, "fr/h/ctl/k/event"), 0);

	/* A new consumer of a known filter gets the retained value; the filter's other consumers
	 * see it again, marked retained. */
	for (struct consumer **c = everyone; *c; c++)
		(*c)->n = 0;
	ck_assert_ptr_nonnull(subs_add(subs, "fr/h/ctl/+/status", false, on_consume, &late));
	ck_assert_uint_eq(subs_count(subs), 3);
	struct consumer *with_late[] = { &cache, &shim1, &late, &all1, NULL };
	sync_all(with_late, "fr/h/ctl/sync3/status");
	ck_assert_int_eq(count(&late, k, true), 1);
	ck_assert_int_eq(count(&shim1, k, true), 1);
	ck_assert_int_eq(count_any(&cache, k), 0);
	ck_assert_int_eq(count_any(&all1, k), 0);

	/* The last consumer of fr/h/# unsubscribes it; copies still on the way are dropped. */
	subs_remove(subs, r1);
	ck_assert_uint_eq(subs_count(subs), 3);
	subs_remove(subs, r2);
	ck_assert_uint_eq(subs_count(subs), 2);
	ck_assert_int_eq(mqtt_publish(pub, "fr/h/x", "gone", 4, 1, false, NULL, NULL, 0), 0);
	struct consumer *rest[] = { &cache, &shim1, &late, NULL };
	sync_all(rest, "fr/h/ctl/sync4/status");
	subs_remove(subs, NULL);
}
END_TEST

START_TEST(without_identifiers_each_match_once)
{
	static struct consumer a = { .name = "a" }, b = { .name = "b" }, c = { .name = "c" };
	struct subs_ref *ra = subs_add(subs, "fr/+/status", true, on_consume, &a);
	struct subs_ref *rb = subs_add(subs, "fr/h/#", false, on_consume, &b);
	struct subs_ref *rc = subs_add(subs, "fr/other/#", false, on_consume, &c);
	ck_assert(ra && rb && rc);
	/* What a broker without Subscription Identifiers would hand over: one copy, no ids. */
	struct mqtt_msg m = { .topic = "fr/h/status", .payload = "online", .len = 6, .qos = 1 };
	subs_on_message(subs, &m);
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(b.n, 1);
	ck_assert_int_eq(c.n, 0);
	/* An identifier nobody holds (a filter dropped meanwhile) reaches no one. */
	uint32_t stale = 1;
	while (stale == subs_id(ra) || stale == subs_id(rb) || stale == subs_id(rc))
		stale++;
	m.sub_ids = &stale;
	m.nsub_ids = 1;
	subs_on_message(subs, &m);
	ck_assert_int_eq(a.n + b.n + c.n, 2);
	/* Nor does an identifier on a topic its filter does not match (a subscription the broker
	 * kept from before, whose identifier was given to another filter since). */
	uint32_t other = subs_id(rc);
	m.sub_ids = &other;
	subs_on_message(subs, &m);
	ck_assert_int_eq(a.n + b.n + c.n, 2);
	uint32_t both[2] = { subs_id(ra), subs_id(rb) };
	m.sub_ids = both;
	m.nsub_ids = 2;
	subs_on_message(subs, &m);
	ck_assert_int_eq(a.n, 2);
	ck_assert_int_eq(b.n, 2);
	ck_assert_int_eq(c.n, 0);
}
END_TEST

static struct subs *subs311;
static bool web311_up;

static void web311_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	web311_up = true;
}

static void web311_message(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	ck_assert_uint_eq(m->nsub_ids, 0);
	subs_on_message(subs311, m);
}

static bool web311_is_up(void *arg)
{
	(void)arg;
	return web311_up;
}

/* A second frAroundWeb client, on MQTT 3.1.1, connected, with subs311 over it. */
static struct mqtt *web311_start(void)
{
	static const struct mqtt_ops ops = { web311_connected, NULL, web311_message };
	char uri[64];
	snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", broker.port);
	struct mqtt_opts o = { .uri = uri, .client_id = "test-subs-web311", .clean = true,
			       .version = 4 };
	struct mqtt *w311 = mqtt_new(loop, &o, &ops, NULL);
	ck_assert_ptr_nonnull(w311);
	ck_assert_ptr_nonnull(subs311 = subs_new(w311));
	web311_up = false;
	ck_assert_int_eq(mqtt_start(w311), 0);
	run_until(web311_is_up, NULL, "the 3.1.1 client connected");
	ck_assert_int_eq(mqtt_version(w311), 4);
	return w311;
}

static void web311_stop(struct mqtt *w311)
{
	subs_free(subs311);
	subs311 = NULL;
	mqtt_free(w311);
}

/* frAroundWeb on an MQTT 3.1.1 connection: no identifiers, the broker sends one copy for all
 * overlapping subscriptions, and each consumer whose filter matches gets it once. */
START_TEST(mqtt311_overlapping_filters_one_copy_each)
{
	static struct consumer cache = { .name = "cache" }, shim1 = { .name = "shim1" },
			       all1 = { .name = "all1" }, other = { .name = "other" };
	struct mqtt *w311 = web311_start();
	ck_assert(subs_add(subs311, "fr/+/ctl/+/status", true, on_consume, &cache) &&
		  subs_add(subs311, "fr/h/ctl/+/status", false, on_consume, &shim1) &&
		  subs_add(subs311, "fr/h/#", false, on_consume, &all1) &&
		  subs_add(subs311, "fr/other/#", false, on_consume, &other));
	struct consumer *matching[] = { &cache, &shim1, &all1, NULL };
	sync_all(matching, "fr/h/ctl/sync1/status");
	for (struct consumer **c = matching; *c; c++)
		(*c)->n = 0;
	const char *k = "fr/h/ctl/k/status";
	ck_assert_int_eq(mqtt_publish(pub, k, "online", 6, 1, true, NULL, NULL, 0), 0);
	ck_assert_int_eq(mqtt_publish(pub, "fr/h/ctl/k/event", "{}", 2, 0, false, NULL, NULL, 0), 0);
	sync_all(matching, "fr/h/ctl/sync2/status");
	/* The live copy of a retained publish is not marked retained on 3.1.1 (3.3.1.3). */
	ck_assert_int_eq(count(&cache, k, false), 1);
	ck_assert_int_eq(count_any(&cache, k), 1);
	ck_assert_int_eq(count_any(&shim1, k), 1);
	ck_assert_int_eq(count_any(&all1, k), 1);
	ck_assert_int_eq(count_any(&all1, "fr/h/ctl/k/event"), 1);
	ck_assert_int_eq(count_any(&cache, "fr/h/ctl/k/event"), 0);
	ck_assert_int_eq(other.n, 0);
	/* A new consumer gets the retained value from the broker's store, marked retained. */
	static struct consumer late = { .name = "late" };
	ck_assert_ptr_nonnull(subs_add(subs311, "fr/h/ctl/+/status", false, on_consume, &late));
	struct consumer *with_late[] = { &late, NULL };
	sync_all(with_late, "fr/h/ctl/sync3/status");
	ck_assert_int_eq(count(&late, k, true), 1);
	web311_stop(w311);
}
END_TEST

static void on_done(void *arg, int err)
{
	struct consumer *c = arg;
	c->acks++;
	c->err = err;
}

static bool acked(void *arg)
{
	return ((struct consumer *)arg)->acks > 0;
}

/* A consumer that waits for the broker gets nothing until the SUBACK, then done(0) and
 * messages; one the broker refuses gets done(err) and is gone, its filter unsubscribed (the
 * broker refuses fr/no/#: setup_refusing). On MQTT 5 a refusal is -EACCES (0x87), on 3.1.1
 * -EIO (0x80 says no more). */
static void acked_and_refused(struct subs *ss, int refused_err)
{
	static struct consumer early = { .name = "early" }, waiting = { .name = "waiting" },
			       denied = { .name = "denied" };
	early.n = waiting.n = waiting.acks = denied.n = denied.acks = 0;
	struct mqtt_msg m = { .topic = "fr/h/x", .payload = "1", .len = 1, .qos = 1 };
	ck_assert_ptr_nonnull(subs_add(ss, "fr/h/#", false, on_consume, &early));
	ck_assert_ptr_nonnull(subs_add_acked(ss, "fr/h/#", false, on_consume, on_done, &waiting));
	/* The loop has not run: no SUBACK yet, so a message reaches the early consumer only. */
	subs_on_message(ss, &m);
	ck_assert_int_eq(early.n, 1);
	ck_assert_int_eq(waiting.n, 0);
	run_until(acked, &waiting, "the SUBACK");
	ck_assert_int_eq(waiting.acks, 1);
	ck_assert_int_eq(waiting.err, 0);
	subs_on_message(ss, &m);
	ck_assert_int_eq(early.n, 2);
	ck_assert_int_eq(waiting.n, 1);
	/* Refused: done with the error, the consumer and its filter gone. */
	ck_assert_ptr_nonnull(subs_add_acked(ss, "fr/no/#", false, on_consume, on_done, &denied));
	ck_assert_uint_eq(subs_count(ss), 2);
	run_until(acked, &denied, "the refusing SUBACK");
	ck_assert_int_eq(denied.acks, 1);
	ck_assert_int_eq(denied.err, refused_err);
	ck_assert_uint_eq(subs_count(ss), 1);
	struct mqtt_msg d = { .topic = "fr/no/x", .payload = "1", .len = 1, .qos = 1 };
	subs_on_message(ss, &d);
	ck_assert_int_eq(denied.n, 0);
	ck_assert_int_eq(waiting.acks, 1);
}

static void setup_refusing(void)
{
	test_broker_refuse_subscribe(&broker, "fr/no/#");
	setup();
}

START_TEST(acked_consumers_wait_for_the_suback)
{
	acked_and_refused(subs, -EACCES);
}
END_TEST

START_TEST(acked_consumers_wait_for_the_suback_mqtt311)
{
	struct mqtt *w311 = web311_start();
	acked_and_refused(subs311, -EIO);
	web311_stop(w311);
}
END_TEST

int main(void)
{
	log_init("test_subs", true, 0);
	Suite *s = suite_create("subs");
	TCase *tc = tcase_create("broker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, overlapping_filters_one_copy_each);
	tcase_add_test(tc, without_identifiers_each_match_once);
	tcase_add_test(tc, mqtt311_overlapping_filters_one_copy_each);
	suite_add_tcase(s, tc);
	tc = tcase_create("refusing broker");
	tcase_add_checked_fixture(tc, setup_refusing, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, acked_consumers_wait_for_the_suback);
	tcase_add_test(tc, acked_consumers_wait_for_the_suback_mqtt311);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
