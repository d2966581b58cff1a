/* bench_mqtt: the MQTT side of fr's benchmarks, on fr's own mqtt module (libmosquitto underneath), so
 * that a measured path and its baseline use the same client code. Modes:
 *   echo    the baseline responder: answers every fr command on its filter to the request's MQTT 5
 *           response topic (+ correlation) the way a controller would (accepted, started, result;
 *           only the result with "progress":false), optionally running a program per request
 *   rtt     N commands with K in flight (to frMhs or to the echo), latency and requests/s
 *   pub     raw publisher: N event-like messages, paced at R/s or as fast as the client takes them
 *   sub     subscriber: counts messages on a filter (optionally only those with a prefix)
 *   online  subscriber: time until N distinct .../status topics read "online"
 * Every mode is bounded in count and in time (-T) and stops by itself. Figures are printed as
 * one line "RESULT {json}" on stdout; "READY" is printed once the subscriptions are active. */
#include "keys.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "pwfile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

extern char **environ;

enum mode { M_ECHO, M_RTT, M_PUB, M_SUB, M_ONLINE };

struct child;

struct bm {
	enum mode mode;
	struct loop *loop;
	struct mqtt *m;
	const char *topic, *action, *state_topic, *prefix, *spawn;
	char resp[160];
	char probe[160];      /* topic of the probe: its own message back means subscribed */
	char probe_payload[48];
	char idp[24];         /* command id prefix: unique per process */
	int broker_port;      /* for -N: the plain TCP connection whose Nagle is left on */
	int n, warmup, inflight, exit_code;
	bool ready, progress, nagle;
	/* rtt */
	int sent, done, bad, dups;
	double *t_sent;       /* ms, per request (warmup + n); owned */
	char *finished;       /* per request; owned */
	double *lat;          /* ms, per measured round trip; owned */
	int nlat;
	double t_start, t_meas0, t_end;
	uint64_t wall_start;
	/* pub */
	int published;
	double rate;
	/* sub / online / echo */
	int received, ignored;
	uint64_t wall_first, wall_last;
	double t_first, t_last;
	cJSON *online;        /* topic -> true (online mode); owned */
	int n_online;
	double idle_s;
	/* echo */
	struct child *children;
	int nchildren, spawn_failed;
	struct loop_timer t_bound, t_idle, t_pub;
};

/* One process the echo runs for a request; the reply goes out when it has exited. */
struct child {
	struct child *next;
	struct bm *b;
	pid_t pid;
	int pidfd;
	bool progress;
	char *rt, *id;        /* owned */
	void *corr;           /* owned */
	size_t corr_len;
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

static void bm_fail(struct bm *b, const char *what)
{
	fprintf(stderr, "bench_mqtt: %s\n", what);
	b->exit_code = 1;
	loop_stop(b->loop);
}

/* --- rtt --- */

static void bm_rtt_send(struct bm *b)
{
	char body[256], corr[16];
	int i = b->sent++;
	snprintf(corr, sizeof corr, "%d", i);
	snprintf(body, sizeof body, "{\"id\":\"%s-%d\",\"action\":\"%s\",\"progress\":%s}", b->idp, i,
		 b->action, b->progress ? "true" : "false");
	b->t_sent[i] = bm_now_ms();
	if (mqtt_publish(b->m, b->topic, body, strlen(body), 1, false, b->resp, corr,
			 strlen(corr)) < 0)
		bm_fail(b, "publish failed");
}

static void bm_rtt_report(struct bm *b)
{
	qsort(b->lat, (size_t)b->nlat, sizeof *b->lat, bm_cmp);
	double sum = 0;
	for (int i = 0; i < b->nlat; i++)
		sum += b->lat[i];
	double end = b->t_end > 0 ? b->t_end : bm_now_ms();
	double span = (end - b->t_meas0) / 1e3;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "action", b->action);
	cJSON_AddBoolToObject(o, "progress", b->progress);
	cJSON_AddBoolToObject(o, "nagle", b->nagle);
	cJSON_AddNumberToObject(o, "inflight", b->inflight);
	cJSON_AddNumberToObject(o, "requested", b->n);
	cJSON_AddNumberToObject(o, "warmup", b->warmup);
	cJSON_AddNumberToObject(o, "done", b->done);
	cJSON_AddNumberToObject(o, "measured", b->nlat);
	cJSON_AddNumberToObject(o, "not_ok", b->bad);
	cJSON_AddNumberToObject(o, "duplicates", b->dups);
	cJSON_AddNumberToObject(o, "median_ms", bm_pct(b->lat, b->nlat, 50));
	cJSON_AddNumberToObject(o, "p90_ms", bm_pct(b->lat, b->nlat, 90));
	cJSON_AddNumberToObject(o, "p99_ms", bm_pct(b->lat, b->nlat, 99));
	cJSON_AddNumberToObject(o, "max_ms", b->nlat ? b->lat[b->nlat - 1] : 0);
	cJSON_AddNumberToObject(o, "mean_ms", b->nlat ? sum / b->nlat : 0);
	int counted = b->warmup > 0 ? b->nlat - 1 : b->nlat;
	cJSON_AddNumberToObject(o, "req_per_s", span > 0 && counted > 0 ? counted / span : 0);
	cJSON_AddNumberToObject(o, "elapsed_s", (end - b->t_start) / 1e3);
	bm_result(o);
}

static void bm_rtt_reply(struct bm *b, const struct mqtt_msg *m)
{
	char c[16];
	if (!m->correlation || m->correlation_len == 0 || m->correlation_len >= sizeof c)
		return;
	memcpy(c, m->correlation, m->correlation_len);
	c[m->correlation_len] = '\0';
	char *end;
	long i = strtol(c, &end, 10);
	if (*end || i < 0 || i >= b->sent)
		return;
	double t = bm_now_ms();
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
	if (b->finished[i]) {
		b->dups++;   /* a QoS 1 redelivery: counted once */
		return;
	}
	b->finished[i] = 1;
	/* The first `warmup` completions are not measured (connections, caches, page faults);
	 * the rate counts the completions after the first measured one. */
	if (b->done >= b->warmup) {
		if (b->nlat == 0 && b->warmup > 0)
			b->t_meas0 = t;
		b->lat[b->nlat++] = t - b->t_sent[i];
	}
	b->done++;
	if (b->done >= b->n + b->warmup) {
		b->t_end = t;
		b->exit_code = 0;
		loop_stop(b->loop);
		return;
	}
	if (b->sent < b->n + b->warmup)
		bm_rtt_send(b);
}

/* --- echo --- */

static void bm_echo_reply(struct bm *b, const char *rt, const void *corr, size_t corr_len,
			  const char *type, const char *id, const char *extra)
{
	char body[512];
	/* The id came from a JSON string; escaping it again is not needed for the ids rtt sends,
	 * and a strange id only makes a strange reply. */
	int len = snprintf(body, sizeof body, "{\"type\":\"%s\",\"id\":\"%s\",\"ts\":%llu%s}", type,
			   id, (unsigned long long)loop_wall_ms(), extra ? extra : "");
	if (len < 0 || (size_t)len >= sizeof body)
		return;
	mqtt_publish(b->m, rt, body, (size_t)len, 1, false, NULL, corr, corr_len);
}

static void bm_child_free(struct child *c)
{
	free(c->rt);
	free(c->id);
	free(c->corr);
	free(c);
}

static void bm_child_exit(void *arg, int fd, uint32_t events)
{
	struct child *c = arg;
	struct bm *b = c->b;
	(void)events;
	int st = 0;
	while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
		;
	loop_io_del(b->loop, fd);
	close(fd);
	char extra[96];
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	snprintf(extra, sizeof extra, ",\"status\":\"%s\",\"exit_code\":%d", code == 0 ? "ok" : "failed",
		 code);
	bm_echo_reply(b, c->rt, c->corr, c->corr_len, "result", c->id, extra);
	for (struct child **pp = &b->children; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	b->nchildren--;
	bm_child_free(c);
}

/* posix_spawn + a pidfd in the loop: what a minimal responder that runs a program needs. */
static int bm_echo_spawn(struct bm *b, const struct mqtt_msg *m, const char *id, bool progress)
{
	struct child *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->b = b;
	c->progress = progress;
	c->rt = strdup(m->response_topic);
	c->id = strdup(id);
	if (m->correlation_len && (c->corr = malloc(m->correlation_len))) {
		memcpy(c->corr, m->correlation, m->correlation_len);
		c->corr_len = m->correlation_len;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = { (char *)b->spawn, NULL };
	int rc = posix_spawn(&c->pid, b->spawn, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0 || !c->rt || !c->id) {
		bm_child_free(c);
		return rc ? -rc : -ENOMEM;
	}
	c->pidfd = pidfd_open(c->pid, 0);
	if (c->pidfd < 0 || loop_io_add(b->loop, c->pidfd, EPOLLIN, bm_child_exit, c) < 0) {
		rc = -errno;
		waitpid(c->pid, NULL, 0);
		if (c->pidfd >= 0)
			close(c->pidfd);
		bm_child_free(c);
		return rc;
	}
	if (progress)
		bm_echo_reply(b, c->rt, c->corr, c->corr_len, "started", id, NULL);
	c->next = b->children;
	b->children = c;
	b->nchildren++;
	return 0;
}

static void bm_echo(struct bm *b, const struct mqtt_msg *m)
{
	b->received++;
	if (!m->response_topic)
		return;
	cJSON *p = cJSON_ParseWithLength(m->payload, m->len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
	bool progress = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "progress"));
	if (!cJSON_IsString(id)) {
		cJSON_Delete(p);
		return;
	}
	if (progress)
		bm_echo_reply(b, m->response_topic, m->correlation, m->correlation_len, "accepted",
			      id->valuestring, NULL);
	if (b->spawn) {
		int rc = bm_echo_spawn(b, m, id->valuestring, progress);
		if (rc < 0) {
			if (b->spawn_failed++ == 0)
				fprintf(stderr, "bench_mqtt: spawn %s: %s\n", b->spawn, strerror(-rc));
			bm_echo_reply(b, m->response_topic, m->correlation, m->correlation_len, "result",
				      id->valuestring, ",\"status\":\"failed\"");
		}
	} else {
		if (progress)
			bm_echo_reply(b, m->response_topic, m->correlation, m->correlation_len,
				      "started", id->valuestring, NULL);
		bm_echo_reply(b, m->response_topic, m->correlation, m->correlation_len, "result",
			      id->valuestring, ",\"status\":\"ok\",\"exit_code\":0");
	}
	cJSON_Delete(p);
}

/* --- pub --- */

static void bm_pub_tick(void *arg)
{
	struct bm *b = arg;
	/* Paced: as many as the schedule says by now; unpaced: batches keep the loop responsive.
	 * Either way at most 500 per turn, so the socket gets written between batches. */
	int due = b->n;
	if (b->rate > 0) {
		due = (int)((bm_now_ms() - b->t_start) * b->rate / 1000.0) + 1;
		if (due > b->n)
			due = b->n;
	}
	for (int i = 0; i < 500 && b->published < due; i++, b->published++) {
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
			bm_fail(b, "publish failed");
			return;
		}
	}
	if (b->published < b->n) {
		loop_timer_start(b->loop, &b->t_pub, b->rate > 0 && b->published >= due ? 1 : 0);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "published", b->published);
	cJSON_AddNumberToObject(o, "rate", b->rate);
	cJSON_AddNumberToObject(o, "start_wall_ms", (double)b->wall_start);
	cJSON_AddNumberToObject(o, "enqueue_s", (bm_now_ms() - b->t_start) / 1e3);
	bm_result(o);
	b->exit_code = 0;
	/* Stay connected until the time bound (or a signal): the client still drains its queue. */
}

/* --- sub / online --- */

static void bm_sub_report(struct bm *b)
{
	cJSON *o = cJSON_CreateObject();
	double span = (b->t_last - b->t_first) / 1e3;
	cJSON_AddNumberToObject(o, "expected", b->n);
	cJSON_AddNumberToObject(o, "received", b->received);
	cJSON_AddNumberToObject(o, "ignored", b->ignored);
	cJSON_AddNumberToObject(o, "first_to_last_s", span);
	cJSON_AddNumberToObject(o, "rate", span > 0 ? (b->received - 1) / span : 0);
	cJSON_AddNumberToObject(o, "first_wall_ms", (double)b->wall_first);
	cJSON_AddNumberToObject(o, "last_wall_ms", (double)b->wall_last);
	bm_result(o);
}

static void bm_sub_msg(struct bm *b, const struct mqtt_msg *m)
{
	size_t pl = b->prefix ? strlen(b->prefix) : 0;
	if (m->retained || (pl && (m->len < pl || memcmp(m->payload, b->prefix, pl) != 0))) {
		b->ignored++;
		return;
	}
	b->t_last = bm_now_ms();
	b->wall_last = loop_wall_ms();
	if (b->received++ == 0) {
		b->t_first = b->t_last;
		b->wall_first = b->wall_last;
	}
	if (b->received >= b->n)
		loop_stop(b->loop);
	else
		loop_timer_start(b->loop, &b->t_idle, (uint64_t)(b->idle_s * 1000));
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

static void bm_begin(struct bm *b)
{
	b->ready = true;
	puts("READY");
	fflush(stdout);
	b->t_start = bm_now_ms();
	b->wall_start = loop_wall_ms();
	if (b->mode == M_RTT) {
		if (b->warmup == 0)
			b->t_meas0 = b->t_start;
		for (int i = 0; i < b->inflight && b->sent < b->n + b->warmup; i++)
			bm_rtt_send(b);
	} else if (b->mode == M_PUB) {
		loop_timer_start(b->loop, &b->t_pub, 0);
	}
}

static void bm_on_message(void *arg, const struct mqtt_msg *m)
{
	struct bm *b = arg;
	size_t pl = strlen(b->probe_payload);
	if (m->len == pl && memcmp(m->payload, b->probe_payload, pl) == 0) {
		/* The probe went through the broker after our SUBSCRIBEs: they are active now. */
		if (!b->ready)
			bm_begin(b);
		return;
	}
	if (strcmp(m->topic, b->probe) == 0 && strcmp(b->probe, b->topic) != 0)
		return;   /* someone else's message on the probe topic */
	switch (b->mode) {
	case M_ECHO:
		bm_echo(b, m);
		break;
	case M_RTT:
		bm_rtt_reply(b, m);
		break;
	case M_SUB:
		bm_sub_msg(b, m);
		break;
	case M_ONLINE:
		bm_online_msg(b, m);
		break;
	case M_PUB:
		break;
	}
}

/* -N: leave Nagle's algorithm on, as client libraries do by default (libmosquitto without
 * MOSQ_OPT_TCP_NODELAY, paho, mqtt.js): fr's mqtt module sets TCP_NODELAY on connect, so it
 * is cleared again on the socket whose peer is the broker. Plain mqtt:// only. */
static void bm_nagle_on(struct bm *b)
{
	int zero = 0, found = 0;
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_in sa;
		socklen_t l = sizeof sa;
		if (getpeername(fd, (struct sockaddr *)&sa, &l) == 0 && sa.sin_family == AF_INET &&
		    ntohs(sa.sin_port) == b->broker_port &&
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &zero, sizeof zero) == 0)
			found++;
	}
	if (found != 1)
		fprintf(stderr, "bench_mqtt: -N: %d sockets to port %d found (want 1)\n", found,
			b->broker_port);
}

static void bm_on_connected(void *arg, bool session_present)
{
	struct bm *b = arg;
	(void)session_present;
	if (b->nagle)
		bm_nagle_on(b);
	if (b->ready)
		return;
	/* MQTT keeps the order of one connection's packets: commands published after the
	 * SUBSCRIBE find the reply subscription in place, so rtt needs no probe. */
	if (b->mode == M_RTT)
		bm_begin(b);
	else
		mqtt_publish(b->m, b->probe, b->probe_payload, strlen(b->probe_payload), 1, false,
			     NULL, NULL, 0);
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
	fputs("NAME\n"
	      "    bench_mqtt - the MQTT client of fr's benchmarks (bench/run drives it)\n"
	      "\n"
	      "SYNOPSIS\n"
	      "    bench_mqtt echo -u URI -t FILTER [-x PROGRAM] [common]\n"
	      "    bench_mqtt rtt -u URI -t TOPIC -r RESPONSE_PREFIX -a ACTION -n N [-k K] [-W WARMUP]\n"
	      "               [-p] [-N] [common]\n"
	      "    bench_mqtt pub -u URI -t TOPIC -n N [-s STATE_TOPIC] [-R RATE] [common]\n"
	      "    bench_mqtt sub -u URI -t FILTER -n N [-m PREFIX] [-i IDLE] [common]\n"
	      "    bench_mqtt online -u URI -t FILTER -n N [common]\n"
	      "    common: [-U USER -F PASSWORD_FILE] [-C CA_FILE] [-o PROBE_TOPIC] [-T SECONDS] [-v]\n"
	      "\n"
	      "DESCRIPTION\n"
	      "    echo: answers every fr command (docs/topics.md) arriving on FILTER to its MQTT 5\n"
	      "        response topic with its correlation data: accepted, started and a result, or\n"
	      "        only the result when the command says \"progress\":false. With -x it runs\n"
	      "        PROGRAM (no arguments, stdio on /dev/null) per command and answers once it\n"
	      "        has exited. Runs until -T or a signal.\n"
	      "    rtt: sends N + WARMUP (default 20) commands {id, action, progress} to TOPIC, K\n"
	      "        (default 1) in flight, each with response topic RESPONSE_PREFIX/<client id>,\n"
	      "        and waits for each final result. -p asks for progress replies; -N leaves\n"
	      "        Nagle's algorithm on for this client (plain mqtt:// only). Prints median,\n"
	      "        p90, p99 and max round trip and requests/s of the N measured ones.\n"
	      "    pub: N QoS 0 messages to TOPIC (and a retained QoS 1 one to STATE_TOPIC each),\n"
	      "        RATE per second (default: as fast as the client takes them).\n"
	      "    sub: counts live messages on FILTER (with -m, only payloads starting with\n"
	      "        PREFIX) until N, IDLE seconds (default 3) without one, or -T.\n"
	      "    online: until N distinct topics on FILTER read \"online\".\n"
	      "    -o: where the probe goes (a topic this account may publish and read; default\n"
	      "        bench/probe/<client id>). -T: time bound in seconds (default 60).\n"
	      "\n"
	      "OUTPUT\n"
	      "    READY once the subscriptions are active (a probe went through the broker; rtt:\n"
	      "    once connected), then one line RESULT {json}.\n"
	      "\n"
	      "EXIT STATUS\n"
	      "    0 when the figures are complete, 1 otherwise, 2 on a usage error.\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		bm_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	struct bm b = { .n = 1, .warmup = 20, .inflight = 1, .exit_code = 1, .idle_s = 3 };
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
	const char *uri = NULL, *user = NULL, *pwfile = NULL, *ca = NULL, *resp = NULL, *probe = NULL;
	double bound = 60;
	int verbose = 0, ch;
	optind = 2;
	while ((ch = getopt(argc, argv, "u:t:r:n:a:W:k:pNs:R:m:i:x:o:U:F:C:T:v")) != -1) {
		switch (ch) {
		case 'u': uri = optarg; break;
		case 't': b.topic = optarg; break;
		case 'r': resp = optarg; break;
		case 'n': b.n = atoi(optarg); break;
		case 'a': b.action = optarg; break;
		case 'W': b.warmup = atoi(optarg); break;
		case 'k': b.inflight = atoi(optarg); break;
		case 'p': b.progress = true; break;
		case 'N': b.nagle = true; break;
		case 's': b.state_topic = optarg; break;
		case 'R': b.rate = atof(optarg); break;
		case 'm': b.prefix = optarg; break;
		case 'i': b.idle_s = atof(optarg); break;
		case 'x': b.spawn = optarg; break;
		case 'o': probe = optarg; break;
		case 'U': user = optarg; break;
		case 'F': pwfile = optarg; break;
		case 'C': ca = optarg; break;
		case 'T': bound = atof(optarg); break;
		case 'v': verbose++; break;
		default: bm_usage(stderr); return 2;
		}
	}
	if (!uri || !b.topic || b.n < 1 || bound <= 0 || b.warmup < 0 || b.inflight < 1 ||
	    b.rate < 0 || (b.mode == M_RTT && (!resp || !b.action))) {
		bm_usage(stderr);
		return 2;
	}
	if (b.nagle) {
		const char *colon = strrchr(uri, ':');
		if (strncmp(uri, "mqtt://", 7) != 0 || !colon || (b.broker_port = atoi(colon + 1)) <= 0) {
			fprintf(stderr, "bench_mqtt: -N needs a mqtt://HOST:PORT URI\n");
			return 2;
		}
	}
	char password[256] = "";
	if (pwfile && pwfile_read("bench_mqtt", pwfile, password, sizeof password) < 0)
		return 2;
	log_init("bench_mqtt", true, verbose);
	char cid[40] = "bench-";
	keys_random_hex(cid + 6, 8);
	/* The shipped broker binds client ids to accounts: "<account>:<anything>" (docs/broker.md). */
	char client_id[120];
	snprintf(client_id, sizeof client_id, "%s%s%s", user ? user : "", user ? ":" : "", cid);
	snprintf(b.probe, sizeof b.probe, "%s", probe ? probe : "bench/probe");
	if (!probe)
		snprintf(b.probe + strlen(b.probe), sizeof b.probe - strlen(b.probe), "/%s", cid);
	snprintf(b.probe_payload, sizeof b.probe_payload, "probe-%s", cid);
	snprintf(b.idp, sizeof b.idp, "b%.12s", cid + 6);
	if (resp)
		snprintf(b.resp, sizeof b.resp, "%s/%s", resp, cid);
	if (b.mode == M_RTT) {
		size_t total = (size_t)b.n + (size_t)b.warmup;
		b.t_sent = calloc(total, sizeof *b.t_sent);
		b.finished = calloc(total, 1);
		b.lat = calloc(total, sizeof *b.lat);
		if (!b.t_sent || !b.finished || !b.lat)
			return 1;
	}
	b.online = cJSON_CreateObject();
	b.loop = loop_new();
	if (!b.loop)
		return 1;
	struct mqtt_opts o = { .uri = uri, .client_id = client_id, .version = 5, .clean = true,
			       .username = user, .password = pwfile ? password : NULL, .ca_file = ca,
			       .backoff_min_ms = 100, .backoff_max_ms = 1000, .max_buffered = 200000 };
	b.m = mqtt_new(b.loop, &o, &bm_ops, &b);
	if (!b.m)
		return 1;
	if (b.mode == M_RTT)
		mqtt_subscribe(b.m, b.resp, 1);
	else if (b.mode != M_PUB)
		mqtt_subscribe(b.m, b.topic, b.mode == M_SUB ? 0 : 1);
	if (b.mode != M_RTT && (b.mode == M_PUB || strcmp(b.probe, b.topic) != 0))
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
		b.exit_code = b.done >= b.n + b.warmup && b.bad == 0 ? 0 : 1;
		break;
	case M_SUB:
		bm_sub_report(&b);
		b.exit_code = b.received > 0 ? 0 : 1;
		break;
	case M_ECHO: {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddNumberToObject(r, "received", b.received);
		cJSON_AddNumberToObject(r, "spawn_failed", b.spawn_failed);
		bm_result(r);
		b.exit_code = 0;
		break;
	}
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
	while (b.children) {
		struct child *c = b.children;
		b.children = c->next;
		waitpid(c->pid, NULL, 0);
		close(c->pidfd);
		bm_child_free(c);
	}
	mqtt_free(b.m);
	loop_free(b.loop);
	cJSON_Delete(b.online);
	free(b.t_sent);
	free(b.finished);
	free(b.lat);
	return b.exit_code;
}
