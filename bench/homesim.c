/* homesim: many simulated homes on one broker, for the scale-out measurements (bench/run scale,
 * docs/scale-out.md). One process, one epoll loop, one fr mqtt client (the module frMhs uses,
 * TLS done by mqtttunnel) per simulated home. Modes:
 *   homes  N home servers, each speaking like frMhs at its real message rates (docs/topics.md):
 *          on connect the retained birth (status, each controller's status and info, stats);
 *          then per sensor every -p s its retained state (QoS 1) and its event (QoS 0), stats
 *          every 10 s, each controller's info (last_seen) every 60 s, and a heartbeat every -H s
 *          (the liveness beat of issue 16; -H 0: none); every command on fr/<home>/ctl/+/cmd
 *          is answered "accepted" then "ok" on its reply topic, as frMhs would.
 *   web    one consumer as frAroundWeb subscribes (every home's status, controller status,
 *          info and sensor states, QoS 1), counting what it gets; after SIGUSR1 it sends
 *          commands at -r per second to random homes for -D seconds (MQTT 5 response topic,
 *          as frAroundWeb's shim does) and measures each one's round trip to its final answer.
 * Every mode is bounded in time (-T) and stops by itself. "READY" is printed once every client
 * is connected (homes) or subscribed (web); one line "RESULT {json}" at the end. */
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "pwfile.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define HS_STATS_MS 10000
#define HS_INFO_MS 60000
#define HS_REPLY_SUB "web-scale"

struct hs;

/* One simulated home server. */
struct home {
	struct hs *hs;
	struct mqtt *m;
	char name[32];
	char base[48];          /* fr/<name> */
	int next_sensor;        /* round robin over controllers x sensors */
	bool connected, ever;
	struct loop_timer t_sensor, t_stats, t_info, t_beat;
	unsigned long long beats;
};

struct hs {
	struct loop *loop;
	bool web;
	int n, first, ctls, sensors;  /* homes PREFIX<first>..PREFIX<first+n-1> */
	double period_s, beat_s, rate, duration_s;
	const char *prefix;
	struct home *homes;     /* n of them; owned */
	int n_connected, n_ever;
	uint64_t t0, t_all;
	/* counters */
	uint64_t published, pub_failed, cmds, answers_sent, disconnects;
	/* web */
	struct mqtt *m;
	bool subscribed, measuring;
	uint64_t received, t_measure0;
	struct loop_timer t_cmd, t_window, t_bound;
	int sent, finished, dup_answers, bad;
	double *t_sent;         /* ms, per command; owned */
	char *done;             /* per command; owned */
	double *lat;            /* ms, per answered command; owned */
	int nlat, max_cmds;
};

static uint64_t hs_now(struct hs *h) { return loop_now(h->loop); }

/* Round trips need better than the loop's millisecond. */
static double hs_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void hs_pub(struct home *ho, const char *leaf, const char *payload, int qos, bool retain)
{
	char topic[160];
	snprintf(topic, sizeof topic, "%s/%s", ho->base, leaf);
	if (mqtt_publish(ho->m, topic, payload, strlen(payload), qos, retain, NULL, NULL, 0) == 0)
		ho->hs->published++;
	else
		ho->hs->pub_failed++;
}

static void hs_info(struct home *ho, int c)
{
	char leaf[64], info[512];
	snprintf(leaf, sizeof leaf, "ctl/c%d/info", c);
	/* The shape and size of frMhs's info (docs/topics.md): address, actions, sensors. */
	snprintf(info, sizeof info,
		 "{\"id\":\"c%d\",\"name\":\"controller %d\",\"address\":\"192.0.2.%d:7410\","
		 "\"version\":\"1\",\"actions\":[{\"name\":\"lamp\",\"args\":[{\"name\":\"state\","
		 "\"type\":\"enum\",\"values\":[\"on\",\"off\"]}]}],\"sensors\":[{\"name\":\"temp\","
		 "\"interval\":%d,\"unit\":\"°C\",\"device_class\":\"temperature\"}],"
		 "\"since\":%llu,\"last_seen\":%llu}",
		 c, c, c + 10, (int)ho->hs->period_s, (unsigned long long)loop_wall_ms(),
		 (unsigned long long)loop_wall_ms());
	hs_pub(ho, leaf, info, 1, true);
}

static void hs_stats(struct home *ho)
{
	char s[320];
	snprintf(s, sizeof s,
		 "{\"requests\":{\"received\":%d,\"refused\":0,\"open\":0},\"events\":{\"received\":0,"
		 "\"published\":0,\"dropped\":0},\"publish_failed\":0,\"state_write_errors\":0,"
		 "\"controllers\":{\"known\":%d,\"online\":%d},\"since\":0,\"ts\":%llu}",
		 0, ho->hs->ctls, ho->hs->ctls, (unsigned long long)loop_wall_ms());
	hs_pub(ho, "stats", s, 1, true);
}

static void hs_sensor_tick(void *arg)
{
	struct home *ho = arg;
	struct hs *h = ho->hs;
	int k = ho->next_sensor++ % (h->ctls * h->sensors);
	char leaf[64], v[96];
	snprintf(v, sizeof v, "{\"value\":%.1f,\"ts\":%llu}", 15 + (rand() % 100) / 10.0,
		 (unsigned long long)loop_wall_ms());
	snprintf(leaf, sizeof leaf, "ctl/c%d/state/s%d", k / h->sensors, k % h->sensors);
	hs_pub(ho, leaf, v, 1, true);
	char ev[160];
	snprintf(ev, sizeof ev, "{\"sensor\":\"s%d\",\"value\":%.1f,\"ts\":%llu}", k % h->sensors,
		 15 + (rand() % 100) / 10.0, (unsigned long long)loop_wall_ms());
	snprintf(leaf, sizeof leaf, "ctl/c%d/event", k / h->sensors);
	hs_pub(ho, leaf, ev, 0, false);
	loop_timer_start(h->loop, &ho->t_sensor, (uint64_t)(h->period_s * 1000 / (h->ctls * h->sensors)));
}

static void hs_stats_tick(void *arg)
{
	struct home *ho = arg;
	hs_stats(ho);
	loop_timer_start(ho->hs->loop, &ho->t_stats, HS_STATS_MS);
}

static void hs_info_tick(void *arg)
{
	struct home *ho = arg;
	for (int c = 0; c < ho->hs->ctls; c++)
		hs_info(ho, c);
	loop_timer_start(ho->hs->loop, &ho->t_info, HS_INFO_MS);
}

static void hs_beat_tick(void *arg)
{
	struct home *ho = arg;
	char b[128];
	/* frMhs's payload (docs/topics.md, fr/<home>/heartbeat). */
	snprintf(b, sizeof b, "{\"ts\":%llu,\"seq\":%llu,\"interval\":%g}",
		 (unsigned long long)loop_wall_ms(), ++ho->beats, ho->hs->beat_s);
	hs_pub(ho, "heartbeat", b, 0, false);
	loop_timer_start(ho->hs->loop, &ho->t_beat, (uint64_t)(ho->hs->beat_s * 1000));
}

/* A random phase in [0, period): homes do not beat in step (they start at different times). */
static uint64_t hs_phase(double period_ms) { return (uint64_t)(period_ms * (rand() / (RAND_MAX + 1.0))); }

static void home_connected(void *arg, bool session_present)
{
	struct home *ho = arg;
	struct hs *h = ho->hs;
	(void)session_present;
	ho->connected = true;
	h->n_connected++;
	if (!ho->ever) {
		ho->ever = true;
		if (++h->n_ever == h->n) {
			h->t_all = hs_now(h);
			printf("READY {\"connect_all_ms\":%llu}\n", (unsigned long long)(h->t_all - h->t0));
			fflush(stdout);
		}
	}
	/* frMhs's birth: its status, each controller's status and info, its stats. */
	hs_pub(ho, "status", "online", 1, true);
	for (int c = 0; c < h->ctls; c++) {
		char leaf[48];
		snprintf(leaf, sizeof leaf, "ctl/c%d/status", c);
		hs_pub(ho, leaf, "online", 1, true);
		hs_info(ho, c);
	}
	hs_stats(ho);
	if (!loop_timer_armed(&ho->t_sensor)) {
		loop_timer_start(h->loop, &ho->t_sensor, hs_phase(h->period_s * 1000 / (h->ctls * h->sensors)));
		loop_timer_start(h->loop, &ho->t_stats, hs_phase(HS_STATS_MS));
		loop_timer_start(h->loop, &ho->t_info, HS_INFO_MS / 2 + hs_phase(HS_INFO_MS / 2));
		if (h->beat_s > 0)
			loop_timer_start(h->loop, &ho->t_beat, hs_phase(h->beat_s * 1000));
	}
}

static void home_disconnected(void *arg, const char *reason)
{
	struct home *ho = arg;
	(void)reason;
	ho->connected = false;
	ho->hs->n_connected--;
	ho->hs->disconnects++;
}

/* A command: answered like frMhs, "accepted" then the final "ok", to the MQTT 5 response topic
 * (with the correlation data), else reply_to, else the controller's result topic. */
static void home_message(void *arg, const struct mqtt_msg *msg)
{
	struct home *ho = arg;
	struct hs *h = ho->hs;
	h->cmds++;
	cJSON *req = cJSON_ParseWithLength(msg->payload, msg->len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(req, "reply_to");
	if (!cJSON_IsString(id)) {
		cJSON_Delete(req);
		return;
	}
	char deftopic[160];
	const char *ctl = strstr(msg->topic, "/ctl/");
	snprintf(deftopic, sizeof deftopic, "%s/ctl/%.*s/result", ho->base,
		 ctl ? (int)strcspn(ctl + 5, "/") : 1, ctl ? ctl + 5 : "?");
	const char *topic = msg->response_topic ? msg->response_topic
			    : cJSON_IsString(rt) ? rt->valuestring : deftopic;
	/* frMhs's shapes (docs/topics.md, Replies): accepted, then the final result. */
	for (int i = 0; i < 2; i++) {
		char a[320];
		if (i == 0)
			snprintf(a, sizeof a, "{\"type\":\"accepted\",\"id\":\"%.64s\",\"ctl\":\"c0\",\"ts\":%llu}",
				 id->valuestring, (unsigned long long)loop_wall_ms());
		else
			snprintf(a, sizeof a, "{\"type\":\"result\",\"id\":\"%.64s\",\"ctl\":\"c0\",\"action\":\"lamp\","
				 "\"status\":\"ok\",\"exit_code\":0,\"signal\":null,\"duration_ms\":1,"
				 "\"stdout\":\"\",\"stderr\":\"\",\"ts\":%llu}",
				 id->valuestring, (unsigned long long)loop_wall_ms());
		if (mqtt_publish(ho->m, topic, a, strlen(a), 1, false, NULL, msg->correlation,
				 msg->correlation_len) == 0)
			h->answers_sent++;
		else
			h->pub_failed++;
	}
	cJSON_Delete(req);
}

static const struct mqtt_ops home_ops = {
	.on_connected = home_connected,
	.on_disconnected = home_disconnected,
	.on_message = home_message,
};

/* --- web ---------------------------------------------------------------------------------- */

static void web_connected(void *arg, bool session_present)
{
	struct hs *h = arg;
	(void)session_present;
	if (!h->subscribed) {
		h->subscribed = true;
		printf("READY\n");
		fflush(stdout);
	}
}

static void web_disconnected(void *arg, const char *reason)
{
	struct hs *h = arg;
	(void)reason;
	h->disconnects++;
}

static void web_message(void *arg, const struct mqtt_msg *msg)
{
	struct hs *h = arg;
	h->received++;
	if (!strstr(msg->topic, "/reply/" HS_REPLY_SUB))
		return;
	cJSON *a = cJSON_ParseWithLength(msg->payload, msg->len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
	const cJSON *ty = cJSON_GetObjectItemCaseSensitive(a, "type");
	if (cJSON_IsString(id) && cJSON_IsString(ty) && strcmp(ty->valuestring, "result") == 0) {
		int i = id->valuestring[0] == 'w' ? atoi(id->valuestring + 1) : -1;
		if (i < 0 || i >= h->sent)
			h->bad++;
		else if (h->done[i])
			h->dup_answers++;
		else {
			h->done[i] = 1;
			h->finished++;
			h->lat[h->nlat++] = hs_ms() - h->t_sent[i];
		}
	}
	cJSON_Delete(a);
}

static const struct mqtt_ops web_ops = {
	.on_connected = web_connected,
	.on_disconnected = web_disconnected,
	.on_message = web_message,
};

static void web_cmd_tick(void *arg)
{
	struct hs *h = arg;
	/* Commands due by now at the stated rate (timer granularity is 1 ms). */
	double due = (double)(hs_now(h) - h->t_measure0) * h->rate / 1000.0;
	while (h->sent < h->max_cmds && h->sent < (int)due) {
		int i = h->sent;
		char topic[96], rtopic[96], req[160];
		int home = rand() % h->n;
		snprintf(topic, sizeof topic, "fr/%s%d/ctl/c%d/cmd", h->prefix, home, rand() % h->ctls);
		snprintf(rtopic, sizeof rtopic, "fr/%s%d/reply/" HS_REPLY_SUB, h->prefix, home);
		snprintf(req, sizeof req, "{\"id\":\"w%d\",\"action\":\"lamp\",\"args\":{\"state\":\"on\"}}", i);
		h->t_sent[i] = hs_ms();
		h->sent++;
		if (mqtt_publish(h->m, topic, req, strlen(req), 1, false, rtopic, &i, sizeof i) != 0)
			h->pub_failed++;
	}
	if (h->sent < h->max_cmds)
		loop_timer_start(h->loop, &h->t_cmd, 5);
}

static void web_window_end(void *arg)
{
	struct hs *h = arg;
	loop_timer_stop(h->loop, &h->t_cmd);
	loop_stop(h->loop);
}

static void web_start(void *arg, const struct signalfd_siginfo *si)
{
	struct hs *h = arg;
	(void)si;
	if (h->measuring)
		return;
	h->measuring = true;
	h->t_measure0 = hs_now(h);
	h->received = 0;
	loop_timer_start(h->loop, &h->t_cmd, 1);
	/* The commands go out for duration_s; their answers get 5 s more. */
	loop_timer_start(h->loop, &h->t_window, (uint64_t)(h->duration_s * 1000) + 5000);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
	if (n == 0)
		return NAN;
	int i = (int)ceil(p * n) - 1;
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* --- common ---------------------------------------------------------------------------------- */

static void hs_bound(void *arg)
{
	struct hs *h = arg;
	fprintf(stderr, "homesim: bound reached\n");
	loop_stop(h->loop);
}

static void hs_on_signal(void *arg, const struct signalfd_siginfo *si)
{
	struct hs *h = arg;
	(void)si;
	loop_stop(h->loop);
}

static void hs_usage(FILE *f)
{
	fputs("NAME\n"
	      "    homesim - many simulated fr homes on one broker (bench/run scale)\n"
	      "\n"
	      "SYNOPSIS\n"
	      "    homesim homes -u URI -d PWDIR [-C CA] -n N [-o FIRST] [-x PREFIX] [-c CTLS]\n"
	      "                  [-s SENSORS] [-p PERIOD] [-H BEAT] [-T BOUND] [-v]\n"
	      "    homesim web -u URI -U USER -F PWFILE -n N [-x PREFIX] [-c CTLS] [-r RATE]\n"
	      "                [-D SECONDS] [-T BOUND] [-v]\n"
	      "\n"
	      "DESCRIPTION\n"
	      "    homes: N home servers named PREFIX<FIRST>..PREFIX<FIRST+N-1> (default prefix\n"
	      "    \"s\", FIRST 0; each TLS connection takes 6 descriptors here, so several\n"
	      "    processes share a large N), each\n"
	      "    with its own fr account home-<name> (password in PWDIR/<name>.pw), client id\n"
	      "    home-<name>:sim, a persistent session, the will fr/<name>/status offline and\n"
	      "    keepalive 30 s, as frMhs connects. On each connect it publishes frMhs's birth\n"
	      "    (status online, and per controller its status and info; stats), then: per\n"
	      "    sensor (CTLS controllers x SENSORS sensors, default 3 x 2) every PERIOD s\n"
	      "    (default 10) its retained state (QoS 1) and an event (QoS 0), spread evenly over\n"
	      "    the period; stats (retained, QoS 1) every 10 s; every controller's info (its\n"
	      "    last_seen) every 60 s; fr/<name>/heartbeat (QoS 0) every BEAT s (default 30;\n"
	      "    0 = none). Every command on fr/<name>/ctl/+/cmd is answered as frMhs does:\n"
	      "    \"accepted\", then the final \"result\" (status ok).\n"
	      "    All clients connect at once (the storm after a broker restart); READY\n"
	      "    {\"connect_all_ms\":...} once every home has connected.\n"
	      "\n"
	      "    web: one client subscribed as frAroundWeb is (fr/+/status, fr/+/ctl/+/status,\n"
	      "    fr/+/ctl/+/info, fr/+/ctl/+/state/+, QoS 1) and to the reply topics\n"
	      "    fr/+/reply/" HS_REPLY_SUB "; READY once subscribed. On SIGUSR1 it counts what it\n"
	      "    receives and sends RATE commands per second (default 10) to random homes and\n"
	      "    controllers for SECONDS (default 30) with an MQTT 5 response topic, then waits\n"
	      "    5 s for the last answers and reports.\n"
	      "\n"
	      "    Both stop at BOUND seconds (default 300) or SIGTERM, whatever comes first.\n"
	      "\n"
	      "OUTPUT\n"
	      "    One line RESULT {json}: homes: connected, ever_connected, published,\n"
	      "    publish_failed, commands, answers, disconnects; web: received, received_per_s,\n"
	      "    sent, answered, duplicate_answers, rtt_median_ms, rtt_p99_ms, rtt_max_ms.\n"
	      "\n"
	      "EXIT STATUS\n"
	      "    0 when every client connected (homes) or every command was answered once (web),\n"
	      "    1 otherwise, 2 on a usage error.\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		hs_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	struct hs h = { .ctls = 3, .sensors = 2, .period_s = 10, .beat_s = 30, .rate = 10,
			.duration_s = 30, .prefix = "s" };
	if (!strcmp(argv[1], "web"))
		h.web = true;
	else if (strcmp(argv[1], "homes") != 0) {
		hs_usage(stderr);
		return 2;
	}
	const char *uri = NULL, *user = NULL, *pwfile = NULL, *pwdir = NULL, *ca = NULL;
	double bound = 300;
	int verbose = 0, ch;
	optind = 2;
	while ((ch = getopt(argc, argv, "u:d:C:n:o:x:c:s:p:H:U:F:r:D:T:v")) != -1) {
		switch (ch) {
		case 'u': uri = optarg; break;
		case 'd': pwdir = optarg; break;
		case 'C': ca = optarg; break;
		case 'n': h.n = atoi(optarg); break;
		case 'o': h.first = atoi(optarg); break;
		case 'x': h.prefix = optarg; break;
		case 'c': h.ctls = atoi(optarg); break;
		case 's': h.sensors = atoi(optarg); break;
		case 'p': h.period_s = atof(optarg); break;
		case 'H': h.beat_s = atof(optarg); break;
		case 'U': user = optarg; break;
		case 'F': pwfile = optarg; break;
		case 'r': h.rate = atof(optarg); break;
		case 'D': h.duration_s = atof(optarg); break;
		case 'T': bound = atof(optarg); break;
		case 'v': verbose++; break;
		default: hs_usage(stderr); return 2;
		}
	}
	if (!uri || h.n < 1 || h.n > 100000 || h.first < 0 || h.ctls < 1 || h.sensors < 1 || h.period_s <= 0 ||
	    h.beat_s < 0 || bound <= 0 || strlen(h.prefix) > 12 ||
	    (h.web ? (!user || !pwfile || h.rate <= 0 || h.duration_s <= 0) : !pwdir)) {
		hs_usage(stderr);
		return 2;
	}
	log_init("homesim", true, verbose);
	srand((unsigned)getpid() ^ (unsigned)loop_wall_ms());
	h.loop = loop_new();
	if (!h.loop)
		return 1;
	h.t0 = hs_now(&h);
	int rc = 1;
	char password[256] = "";
	if (h.web) {
		if (pwfile_read("homesim", pwfile, password, sizeof password) < 0)
			return 2;
		h.max_cmds = (int)(h.rate * h.duration_s) + 1;
		h.t_sent = calloc((size_t)h.max_cmds, sizeof *h.t_sent);
		h.done = calloc((size_t)h.max_cmds, 1);
		h.lat = calloc((size_t)h.max_cmds, sizeof *h.lat);
		if (!h.t_sent || !h.done || !h.lat)
			return 1;
		char cid[96];
		snprintf(cid, sizeof cid, "%s:scale", user);
		struct mqtt_opts o = { .uri = uri, .client_id = cid, .version = 5, .clean = true,
				       .username = user, .password = password, .ca_file = ca,
				       .max_buffered = 100000 };
		h.m = mqtt_new(h.loop, &o, &web_ops, &h);
		if (!h.m)
			return 1;
		static const char *const filters[] = { "fr/+/status", "fr/+/ctl/+/status", "fr/+/ctl/+/info",
						       "fr/+/ctl/+/state/+", ("fr/+/reply/" HS_REPLY_SUB) };
		for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
			mqtt_subscribe(h.m, filters[i], 1);
		loop_timer_init(&h.t_cmd, web_cmd_tick, &h);
		loop_timer_init(&h.t_window, web_window_end, &h);
		loop_signal_add(h.loop, SIGUSR1, web_start, &h);
		mqtt_start(h.m);
	} else {
		h.homes = calloc((size_t)h.n, sizeof *h.homes);
		if (!h.homes)
			return 1;
		for (int i = 0; i < h.n; i++) {
			struct home *ho = &h.homes[i];
			char file[512], account[64], cid[80];
			ho->hs = &h;
			snprintf(ho->name, sizeof ho->name, "%s%d", h.prefix, h.first + i);
			snprintf(ho->base, sizeof ho->base, "fr/%s", ho->name);
			snprintf(file, sizeof file, "%s/%s.pw", pwdir, ho->name);
			if (pwfile_read("homesim", file, password, sizeof password) < 0)
				return 2;
			snprintf(account, sizeof account, "home-%s", ho->name);
			snprintf(cid, sizeof cid, "%s:sim", account);
			char will[64], filter[80];
			snprintf(will, sizeof will, "%s/status", ho->base);
			struct mqtt_opts o = { .uri = uri, .client_id = cid, .version = 5, .clean = false,
					       .clean_first = true, .username = account, .password = password,
					       .ca_file = ca, .will_topic = will, .will_payload = "offline",
					       .will_qos = 1, .will_retain = true };
			ho->m = mqtt_new(h.loop, &o, &home_ops, ho);
			if (!ho->m)
				return 1;
			snprintf(filter, sizeof filter, "%s/ctl/+/cmd", ho->base);
			mqtt_subscribe(ho->m, filter, 1);
			snprintf(filter, sizeof filter, "%s/display", ho->base);
			mqtt_subscribe(ho->m, filter, 1);
			loop_timer_init(&ho->t_sensor, hs_sensor_tick, ho);
			loop_timer_init(&ho->t_stats, hs_stats_tick, ho);
			loop_timer_init(&ho->t_info, hs_info_tick, ho);
			loop_timer_init(&ho->t_beat, hs_beat_tick, ho);
		}
		for (int i = 0; i < h.n; i++)
			mqtt_start(h.homes[i].m);
	}
	loop_timer_init(&h.t_bound, hs_bound, &h);
	loop_timer_start(h.loop, &h.t_bound, (uint64_t)(bound * 1000));
	loop_signal_add(h.loop, SIGTERM, hs_on_signal, &h);
	loop_signal_add(h.loop, SIGINT, hs_on_signal, &h);
	loop_run(h.loop);

	cJSON *r = cJSON_CreateObject();
	if (h.web) {
		double secs = (double)(hs_now(&h) - h.t_measure0) / 1000.0;
		qsort(h.lat, (size_t)h.nlat, sizeof *h.lat, cmp_d);
		cJSON_AddNumberToObject(r, "received", (double)h.received);
		cJSON_AddNumberToObject(r, "received_per_s", h.measuring && secs > 0 ? round(h.received / secs) : 0);
		cJSON_AddNumberToObject(r, "sent", h.sent);
		cJSON_AddNumberToObject(r, "answered", h.finished);
		cJSON_AddNumberToObject(r, "duplicate_answers", h.dup_answers);
		cJSON_AddNumberToObject(r, "bad_answers", h.bad);
		cJSON_AddNumberToObject(r, "rtt_median_ms", pct(h.lat, h.nlat, 0.5));
		cJSON_AddNumberToObject(r, "rtt_p99_ms", pct(h.lat, h.nlat, 0.99));
		cJSON_AddNumberToObject(r, "rtt_max_ms", pct(h.lat, h.nlat, 1.0));
		cJSON_AddNumberToObject(r, "disconnects", (double)h.disconnects);
		cJSON_AddNumberToObject(r, "publish_failed", (double)h.pub_failed);
		rc = h.measuring && h.sent > 0 && h.finished == h.sent && h.dup_answers == 0 ? 0 : 1;
	} else {
		cJSON_AddNumberToObject(r, "homes", h.n);
		cJSON_AddNumberToObject(r, "connected", h.n_connected);
		cJSON_AddNumberToObject(r, "ever_connected", h.n_ever);
		cJSON_AddNumberToObject(r, "connect_all_ms", h.t_all ? (double)(h.t_all - h.t0) : -1);
		cJSON_AddNumberToObject(r, "published", (double)h.published);
		cJSON_AddNumberToObject(r, "publish_failed", (double)h.pub_failed);
		cJSON_AddNumberToObject(r, "commands", (double)h.cmds);
		cJSON_AddNumberToObject(r, "answers", (double)h.answers_sent);
		cJSON_AddNumberToObject(r, "disconnects", (double)h.disconnects);
		rc = h.n_ever == h.n ? 0 : 1;
	}
	/* The figures first: stopping thousands of clients takes a while. */
	char *s = cJSON_PrintUnformatted(r);
	printf("RESULT %s\n", s ? s : "{}");
	fflush(stdout);
	free(s);
	cJSON_Delete(r);
	mqtt_free(h.m);
	for (int i = 0; h.homes && i < h.n; i++)
		mqtt_free(h.homes[i].m);
	free(h.homes);
	free(h.t_sent);
	free(h.done);
	free(h.lat);
	loop_free(h.loop);
	return rc;
}
