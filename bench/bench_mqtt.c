/* bench_mqtt: the MQTT side of fr's benchmarks, on fr's own mqtt module (libmosquitto underneath), so
 * that a measured path and its baseline use the same client code. Modes:
 *   echo    responder: republishes every request to its MQTT 5 response topic (+ correlation)
 *   rtt     sequential request/response round trips (to frMhs or to the echo responder)
 *   pub     raw publisher: N event-like messages as fast as the client takes them
 *   sub     subscriber: counts messages on a filter, reports the rate first..last
 *   online  subscriber: time until N distinct .../status topics read "online"
 * Every mode is bounded in count and in time (-T) and stops by itself. Figures are printed as
 * one line "RESULT {json}" on stdout; "READY" is printed once the subscriptions are active. */
#include "keys.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

enum mode { M_ECHO, M_RTT, M_PUB, M_SUB, M_ONLINE };

struct bm {
	enum mode mode;
	struct loop *loop;
	struct mqtt *m;
	const char *topic, *resp, *action, *state_topic;
	char probe[96];
	int n, warmup, exit_code;
	bool ready;
	/* rtt */
	int sent, done, ok, bad;
	double t_sent;
	double *lat;      /* ms, one per measured round trip; owned */
	char corr[32];
	char prefix[24];
	/* pub */
	int published;
	/* sub / online / echo */
	int received;
	double t_first, t_last, t_start;
	cJSON *online;    /* topic -> true (online mode); owned */
	int n_online;
	double idle_s;
	struct loop_timer t_bound, t_idle, t_pub;
};

static double bm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int bm_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double bm_pct(const double *v, int n, double p)
{
	if (n <= 0)
		return 0;
	int i = (int)ceil(p / 100.0 * n) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void bm_result(cJSON *o)
{
	char *t = cJSON_PrintUnformatted(o);
	printf("RESULT %s\n", t ? t : "{}");
	fflush(stdout);
	free(t);
	cJSON_Delete(o);
}

/* --- rtt --- */

static void bm_rtt_send(struct bm *b)
{
	char body[256];
	snprintf(b->corr, sizeof b->corr, "c%d", b->sent);
	if (b->action)
		snprintf(body, sizeof body, "{\"id\":\"%s-%d\",\"action\":\"%s\",\"progress\":false}",
			 b->prefix, b->sent, b->action);
	else
		snprintf(body, sizeof body, "{\"id\":\"%s-%d\",\"echo\":true,\"progress\":false}",
			 b->prefix, b->sent);
	b->t_sent = bm_now_ms();
	b->sent++;
	if (mqtt_publish(b->m, b->topic, body, strlen(body), 1, false, b->resp, b->corr,
			 strlen(b->corr)) < 0) {
		b->exit_code = 1;
		loop_stop(b->loop);
	}
}

static void bm_rtt_report(struct bm *b)
{
	int n = b->done - b->warmup > 0 ? b->done - b->warmup : 0;
	qsort(b->lat, (size_t)n, sizeof *b->lat, bm_cmp);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += b->lat[i];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "mode", b->action ? "fr" : "echo");
	cJSON_AddNumberToObject(o, "requested", b->n);
	cJSON_AddNumberToObject(o, "done", b->done);
	cJSON_AddNumberToObject(o, "measured", n);
	cJSON_AddNumberToObject(o, "not_ok", b->bad);
	cJSON_AddNumberToObject(o, "median_ms", bm_pct(b->lat, n, 50));
	cJSON_AddNumberToObject(o, "p90_ms", bm_pct(b->lat, n, 90));
	cJSON_AddNumberToObject(o, "p99_ms", bm_pct(b->lat, n, 99));
	cJSON_AddNumberToObject(o, "max_ms", n ? b->lat[n - 1] : 0);
	cJSON_AddNumberToObject(o, "mean_ms", n ? sum / n : 0);
	cJSON_AddNumberToObject(o, "elapsed_s", (bm_now_ms() - b->t_start) / 1e3);
	bm_result(o);
}

static void bm_rtt_reply(struct bm *b, const struct mqtt_msg *m)
{
	if (!m->correlation || m->correlation_len != strlen(b->corr) ||
	    memcmp(m->correlation, b->corr, m->correlation_len) != 0)
		return;   /* a late reply of an earlier request cannot happen sequentially; ignore */
	double dt = bm_now_ms() - b->t_sent;
	if (b->action) {
		cJSON *p = cJSON_ParseWithLength(m->payload, m->len);
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "status");
		bool final = cJSON_IsString(type) && strcmp(type->valuestring, "result") == 0;
		bool ok = final && cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0;
		if (final && !ok && b->bad++ == 0)
			fprintf(stderr, "bench_mqtt: first non-ok result: %.*s\n", (int)m->len,
				(const char *)m->payload);
		cJSON_Delete(p);
		if (!final)
			return;
	}
	if (b->done >= b->warmup)
		b->lat[b->done - b->warmup] = dt;
	b->done++;
	if (b->done >= b->n + b->warmup) {
		loop_stop(b->loop);
		return;
	}
	bm_rtt_send(b);
}

/* --- pub --- */

static void bm_pub_tick(void *arg)
{
	struct bm *b = arg;
	/* Batches keep the loop responsive; paho queues what it has not written yet. */
	for (int i = 0; i < 500 && b->published < b->n; i++, b->published++) {
		char body[160];
		int len = snprintf(body, sizeof body,
				   "{\"kind\":\"state\",\"sensor\":\"s\",\"value\":%d,\"ts\":%llu}",
				   b->published, (unsigned long long)loop_wall_ms());
		if (b->state_topic) {
			/* The same MQTT traffic frMhs makes per event: retained state, QoS 1. */
			char st[96];
			int sl = snprintf(st, sizeof st, "{\"value\":%d,\"ts\":%llu}", b->published,
					  (unsigned long long)loop_wall_ms());
			mqtt_publish(b->m, b->state_topic, st, (size_t)sl, 1, true, NULL, NULL, 0);
		}
		if (mqtt_publish(b->m, b->topic, body, (size_t)len, 0, false, NULL, NULL, 0) < 0) {
			b->exit_code = 1;
			loop_stop(b->loop);
			return;
		}
	}
	if (b->published < b->n) {
		loop_timer_start(b->loop, &b->t_pub, 0);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "published", b->published);
	cJSON_AddNumberToObject(o, "enqueue_s", (bm_now_ms() - b->t_start) / 1e3);
	bm_result(o);
	b->exit_code = 0;
	/* Stay connected until the time bound (or a signal): paho still drains its queue. */
}

/* --- sub / online --- */

static void bm_sub_report(struct bm *b)
{
	cJSON *o = cJSON_CreateObject();
	double span = (b->t_last - b->t_first) / 1e3;
	cJSON_AddNumberToObject(o, "expected", b->n);
	cJSON_AddNumberToObject(o, "received", b->received);
	cJSON_AddNumberToObject(o, "first_to_last_s", span);
	cJSON_AddNumberToObject(o, "rate", span > 0 ? (b->received - 1) / span : 0);
	bm_result(o);
}

static void bm_idle(void *arg)
{
	struct bm *b = arg;
	loop_stop(b->loop);
}

static void bm_online_msg(struct bm *b, const struct mqtt_msg *m)
{
	bool on = m->len == 6 && memcmp(m->payload, "online", 6) == 0;
	cJSON *have = cJSON_GetObjectItemCaseSensitive(b->online, m->topic);
	if (on && !have) {
		cJSON_AddTrueToObject(b->online, m->topic);
		b->n_online++;
	} else if (!on && have) {
		cJSON_DeleteItemFromObjectCaseSensitive(b->online, m->topic);
		b->n_online--;
	}
	if (b->n_online >= b->n) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "online", b->n_online);
		cJSON_AddNumberToObject(o, "all_online_wall_ms", (double)loop_wall_ms());
		bm_result(o);
		b->exit_code = 0;
		loop_stop(b->loop);
	}
}

/* --- common --- */

static void bm_on_message(void *arg, const struct mqtt_msg *m)
{
	struct bm *b = arg;
	if (strcmp(m->topic, b->probe) == 0) {
		if (b->ready)
			return;
		/* The probe went through the broker after our SUBSCRIBEs: they are active now. */
		b->ready = true;
		puts("READY");
		fflush(stdout);
		b->t_start = bm_now_ms();
		if (b->mode == M_RTT)
			bm_rtt_send(b);
		else if (b->mode == M_PUB)
			loop_timer_start(b->loop, &b->t_pub, 0);
		return;
	}
	switch (b->mode) {
	case M_ECHO:
		if (m->response_topic)
			mqtt_publish(b->m, m->response_topic, m->payload, m->len, 1, false, NULL,
				     m->correlation, m->correlation_len);
		b->received++;
		break;
	case M_RTT:
		bm_rtt_reply(b, m);
		break;
	case M_SUB:
		b->t_last = bm_now_ms();
		if (b->received++ == 0)
			b->t_first = b->t_last;
		if (b->received >= b->n)
			loop_stop(b->loop);
		else
			loop_timer_start(b->loop, &b->t_idle, (uint64_t)(b->idle_s * 1000));
		break;
	case M_ONLINE:
		bm_online_msg(b, m);
		break;
	case M_PUB:
		break;
	}
}

static void bm_on_connected(void *arg, bool session_present)
{
	struct bm *b = arg;
	(void)session_present;
	if (!b->ready)
		mqtt_publish(b->m, b->probe, "p", 1, 1, false, NULL, NULL, 0);
}

static void bm_bound(void *arg)
{
	struct bm *b = arg;
	if (b->mode != M_PUB && b->mode != M_ECHO)
		fprintf(stderr, "bench_mqtt: time bound reached\n");
	loop_stop(b->loop);
}

static void bm_on_signal(void *arg, const struct signalfd_siginfo *si)
{
	struct bm *b = arg;
	(void)si;
	loop_stop(b->loop);
}

static const struct mqtt_ops bm_ops = { bm_on_connected, NULL, bm_on_message };

static void bm_usage(FILE *f)
{
	fputs("usage: bench_mqtt echo|rtt|pub|sub|online -u URI -t TOPIC [options]\n"
	      "  echo:   -t REQUEST_FILTER                       republish to the response topic\n"
	      "  rtt:    -t TOPIC -r RESPONSE_TOPIC -n N [-a ACTION] [-W WARMUP]\n"
	      "          ACTION set: fr commands {id,action,progress:false}, wait for the result\n"
	      "  pub:    -t TOPIC -n N [-s STATE_TOPIC]          N QoS 0 messages (+ retained QoS 1)\n"
	      "  sub:    -t FILTER -n N [-i IDLE_SECS]           count until N or idle\n"
	      "  online: -t FILTER -n N                          until N topics read \"online\"\n"
	      "  common: -T SECS time bound (default 60), -v verbose\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		bm_usage(stderr);
		return 2;
	}
	struct bm b = { .n = 1, .warmup = 20, .exit_code = 1, .idle_s = 3 };
	const char *m = argv[1];
	if (!strcmp(m, "echo"))
		b.mode = M_ECHO;
	else if (!strcmp(m, "rtt"))
		b.mode = M_RTT;
	else if (!strcmp(m, "pub"))
		b.mode = M_PUB;
	else if (!strcmp(m, "sub"))
		b.mode = M_SUB;
	else if (!strcmp(m, "online"))
		b.mode = M_ONLINE;
	else {
		bm_usage(stderr);
		return 2;
	}
	const char *uri = NULL;
	double bound = 60;
	int verbose = 0, ch;
	optind = 2;
	while ((ch = getopt(argc, argv, "u:t:r:n:a:W:s:i:T:v")) != -1) {
		switch (ch) {
		case 'u': uri = optarg; break;
		case 't': b.topic = optarg; break;
		case 'r': b.resp = optarg; break;
		case 'n': b.n = atoi(optarg); break;
		case 'a': b.action = optarg; break;
		case 'W': b.warmup = atoi(optarg); break;
		case 's': b.state_topic = optarg; break;
		case 'i': b.idle_s = atof(optarg); break;
		case 'T': bound = atof(optarg); break;
		case 'v': verbose++; break;
		default: bm_usage(stderr); return 2;
		}
	}
	if (!uri || !b.topic || b.n < 1 || bound <= 0 || b.warmup < 0 ||
	    (b.mode == M_RTT && !b.resp)) {
		bm_usage(stderr);
		return 2;
	}
	log_init("bench_mqtt", true, verbose);
	char cid[40] = "bench-";
	keys_random_hex(cid + 6, 8);
	snprintf(b.probe, sizeof b.probe, "bench/probe/%s", cid);
	snprintf(b.prefix, sizeof b.prefix, "b%.8s", cid + 6);
	if (b.mode == M_RTT && !(b.lat = calloc((size_t)b.n, sizeof *b.lat)))
		return 1;
	b.online = cJSON_CreateObject();
	b.loop = loop_new();
	if (!b.loop)
		return 1;
	struct mqtt_opts o = { .uri = uri, .client_id = cid, .version = 5, .clean = true,
			       .backoff_min_ms = 100, .backoff_max_ms = 1000, .max_buffered = 100000 };
	b.m = mqtt_new(b.loop, &o, &bm_ops, &b);
	if (!b.m)
		return 1;
	if (b.mode == M_RTT)
		mqtt_subscribe(b.m, b.resp, 1);
	else if (b.mode != M_PUB)
		mqtt_subscribe(b.m, b.topic, b.mode == M_SUB ? 0 : 1);
	mqtt_subscribe(b.m, b.probe, 1);
	loop_timer_init(&b.t_bound, bm_bound, &b);
	loop_timer_init(&b.t_idle, bm_idle, &b);
	loop_timer_init(&b.t_pub, bm_pub_tick, &b);
	loop_timer_start(b.loop, &b.t_bound, (uint64_t)(bound * 1000));
	loop_signal_add(b.loop, SIGTERM, bm_on_signal, &b);
	loop_signal_add(b.loop, SIGINT, bm_on_signal, &b);
	mqtt_start(b.m);
	loop_run(b.loop);
	switch (b.mode) {
	case M_RTT:
		bm_rtt_report(&b);
		b.exit_code = b.done > b.warmup && b.bad == 0 ? 0 : 1;
		break;
	case M_SUB:
		bm_sub_report(&b);
		b.exit_code = b.received > 0 ? 0 : 1;
		break;
	case M_ECHO:
		b.exit_code = 0;
		break;
	case M_ONLINE:
		if (b.exit_code) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddNumberToObject(r, "online", b.n_online);
			bm_result(r);
		}
		break;
	case M_PUB:
		break;
	}
	mqtt_free(b.m);
	loop_free(b.loop);
	cJSON_Delete(b.online);
	free(b.lat);
	return b.exit_code;
}
