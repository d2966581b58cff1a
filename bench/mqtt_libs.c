/* mqtt_libs: the two MQTT client libraries Debian ships, compared on the agents' own pattern
 * (one epoll loop, MQTT 5 request/response with response topic + correlation data, QoS 1).
 *   paho  paho MQTTAsync; its threads hand every callback to the loop through a queue and an
 *         eventfd, and the loop hands publishes back (what fr's mqtt module did up to #17)
 *   mosq  libmosquitto's external-loop API: its socket in our epoll, no threads at all
 * Modes: "echo" answers every request on its topic (-t, default bench/req) to its response
 * topic; "rtt" sends N requests with K in flight and prints one line "RESULT {json}"
 * (median/p99 round trip for K = 1, requests per second for any K). -U/-F log in (a broker
 * with accounts). Bounded by count and by -T seconds. */
#include "loop.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct msg {
	struct msg *next;
	char *topic, *rtopic;
	void *payload, *corr;
	int len, corr_len;
};

struct bl {
	struct loop *loop;
	bool paho, echo, ready;
	const char *host, *req, *user, *pass;
	int port, n, inflight, sent, done, exit_code;
	char id[64], resp[160];
	double *lat, *t_sent, t_start;
	struct loop_timer bound, misc;
	/* paho */
	MQTTAsync pc;
	struct loop_wake *wake;
	pthread_mutex_t lock;
	struct msg *head, **tail;
	/* libmosquitto */
	struct mosquitto *mc;
	uint32_t ev;
};

static double bl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void bl_publish(struct bl *b, const char *topic, const void *p, int len, const char *rt,
		       const void *corr, int corr_len);

/* --- the application: echo, or the requester --- */

static void bl_send(struct bl *b)
{
	char corr[16], body[64];
	int i = b->sent++;
	snprintf(corr, sizeof corr, "%d", i);
	snprintf(body, sizeof body, "{\"id\":\"r-%d\",\"echo\":true}", i);
	b->t_sent[i] = bl_now_ms();
	bl_publish(b, b->req, body, (int)strlen(body), b->resp, corr, (int)strlen(corr));
}

static int bl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, c = *(const double *)y;
	return a < c ? -1 : a > c;
}

static void bl_report(struct bl *b)
{
	double el = (bl_now_ms() - b->t_start) / 1e3;
	int n = b->done;
	qsort(b->lat, (size_t)n, sizeof *b->lat, bl_cmp);
	printf("RESULT {\"lib\":\"%s\",\"inflight\":%d,\"done\":%d,\"elapsed_s\":%.3f,"
	       "\"req_per_s\":%.1f,\"median_ms\":%.4f,\"p99_ms\":%.4f}\n", b->paho ? "paho" : "mosq",
	       b->inflight, n, el, n / el, n ? b->lat[n / 2] : 0,
	       n ? b->lat[(int)ceil(0.99 * n) - 1] : 0);
	fflush(stdout);
}

static void bl_message(struct bl *b, const char *topic, const char *rt, const void *p, int len,
		       const void *corr, int corr_len)
{
	(void)topic;
	if (b->echo) {
		if (rt)
			bl_publish(b, rt, p, len, NULL, corr, corr_len);
		return;
	}
	char c[16];
	if (!corr || corr_len <= 0 || corr_len >= (int)sizeof c)
		return;
	memcpy(c, corr, (size_t)corr_len);
	c[corr_len] = '\0';
	int i = atoi(c);
	if (i < 0 || i >= b->sent)
		return;
	b->lat[b->done++] = bl_now_ms() - b->t_sent[i];
	if (b->done == b->n) {
		bl_report(b);
		loop_stop(b->loop);
		return;
	}
	if (b->sent < b->n)
		bl_send(b);
}

static void bl_ready(struct bl *b)
{
	if (b->ready)
		return;
	b->ready = true;
	if (b->echo) {
		printf("READY\n");
		fflush(stdout);
		return;
	}
	b->t_start = bl_now_ms();
	while (b->sent < b->inflight && b->sent < b->n)
		bl_send(b);
}

/* --- paho: threads queue, the loop drains --- */

static void bl_paho_lost(void *ctx, char *cause)
{
	(void)ctx;
	fprintf(stderr, "paho: connection lost: %s\n", cause ? cause : "?");
	exit(1);
}

static int bl_paho_arrived(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	struct bl *b = ctx;
	struct msg *x = calloc(1, sizeof *x);
	MQTTProperty *p;

	x->topic = tlen > 0 ? strndup(topic, (size_t)tlen) : strdup(topic);
	x->len = m->payloadlen;
	x->payload = malloc((size_t)m->payloadlen + 1);
	memcpy(x->payload, m->payload, (size_t)m->payloadlen);
	if ((p = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC)))
		x->rtopic = strndup(p->value.data.data, (size_t)p->value.data.len);
	if ((p = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA))) {
		x->corr = malloc((size_t)p->value.data.len + 1);
		memcpy(x->corr, p->value.data.data, (size_t)p->value.data.len);
		x->corr_len = p->value.data.len;
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	pthread_mutex_lock(&b->lock);
	*b->tail = x;
	b->tail = &x->next;
	pthread_mutex_unlock(&b->lock);
	loop_wake_notify(b->wake);
	return 1;
}

static void bl_paho_wake(void *arg)
{
	struct bl *b = arg;
	struct msg *x, *next;

	pthread_mutex_lock(&b->lock);
	x = b->head;
	b->head = NULL;
	b->tail = &b->head;
	pthread_mutex_unlock(&b->lock);
	for (; x; x = next) {
		next = x->next;
		if (!x->topic)   /* the subscription is in place */
			bl_ready(b);
		else
			bl_message(b, x->topic, x->rtopic, x->payload, x->len, x->corr, x->corr_len);
		free(x->topic);
		free(x->rtopic);
		free(x->payload);
		free(x->corr);
		free(x);
	}
}

static void bl_paho_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
	struct bl *b = ctx;
	struct msg *x = calloc(1, sizeof *x);
	(void)r;
	pthread_mutex_lock(&b->lock);
	*b->tail = x;
	b->tail = &x->next;
	pthread_mutex_unlock(&b->lock);
	loop_wake_notify(b->wake);
}

static void bl_paho_connected(void *ctx, MQTTAsync_successData5 *r)
{
	struct bl *b = ctx;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	(void)r;
	ro.context = b;
	ro.onSuccess5 = bl_paho_subscribed;
	MQTTAsync_subscribe(b->pc, b->echo ? b->req : b->resp, 1, &ro);
}

static void bl_paho_failed(void *ctx, MQTTAsync_failureData5 *r)
{
	(void)ctx;
	fprintf(stderr, "paho: %s\n", r && r->message ? r->message : "connect failed");
	exit(1);
}

static void bl_paho_start(struct bl *b)
{
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	char uri[128];

	pthread_mutex_init(&b->lock, NULL);
	b->tail = &b->head;
	b->wake = loop_wake_new(b->loop, bl_paho_wake, b);
	snprintf(uri, sizeof uri, "tcp://%s:%d", b->host, b->port);
	cro.MQTTVersion = MQTTVERSION_5;
	if (MQTTAsync_createWithOptions(&b->pc, uri, b->id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
					&cro) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setCallbacks(b->pc, b, bl_paho_lost, bl_paho_arrived, NULL) !=
		    MQTTASYNC_SUCCESS) {
		fprintf(stderr, "paho: create failed\n");
		exit(1);
	}
	co.cleanstart = 1;
	co.keepAliveInterval = 30;
	co.username = b->user;
	co.password = b->pass;
	co.context = b;
	co.onSuccess5 = bl_paho_connected;
	co.onFailure5 = bl_paho_failed;
	if (MQTTAsync_connect(b->pc, &co) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "paho: connect failed\n");
		exit(1);
	}
}

/* paho never sets TCP_NODELAY (paho.mqtt.c #530): set it the way fr's module did, on the
 * socket whose peer is the broker, once the first message shows the connection is up. */
static void bl_paho_nodelay(struct bl *b);

/* --- libmosquitto: its socket in our epoll --- */

static void bl_mosq_update(struct bl *b)
{
	uint32_t ev = EPOLLIN | (mosquitto_want_write(b->mc) ? EPOLLOUT : 0);
	if (ev != b->ev && loop_io_mod(b->loop, mosquitto_socket(b->mc), ev) == 0)
		b->ev = ev;
}

static void bl_mosq_io(void *arg, int fd, uint32_t events)
{
	struct bl *b = arg;
	(void)fd;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		if (mosquitto_loop_read(b->mc, 1) != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "mosq: connection lost\n");
			exit(1);
		}
	/* What the callbacks queued goes out now, not one epoll round later. */
	if ((events & EPOLLOUT) || mosquitto_want_write(b->mc))
		mosquitto_loop_write(b->mc, 1);
	bl_mosq_update(b);
}

static void bl_mosq_misc(void *arg)
{
	struct bl *b = arg;
	mosquitto_loop_misc(b->mc);
	bl_mosq_update(b);
	loop_timer_start(b->loop, &b->misc, 1000);
}

static void bl_mosq_connected(struct mosquitto *m, void *obj, int rc, int flags,
			      const mosquitto_property *props)
{
	struct bl *b = obj;
	(void)flags;
	(void)props;
	if (rc) {
		fprintf(stderr, "mosq: connect refused: %s\n", mosquitto_reason_string(rc));
		exit(1);
	}
	mosquitto_subscribe_v5(m, NULL, b->echo ? b->req : b->resp, 1, 0, NULL);
}

static void bl_mosq_subscribed(struct mosquitto *m, void *obj, int mid, int n, const int *q,
			       const mosquitto_property *props)
{
	(void)m;
	(void)mid;
	(void)n;
	(void)q;
	(void)props;
	bl_ready(obj);
}

static void bl_mosq_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
			    const mosquitto_property *props)
{
	char *rt = NULL;
	void *corr = NULL;
	uint16_t clen = 0;
	(void)m;
	mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
	mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &clen, false);
	bl_message(obj, msg->topic, rt, msg->payload, msg->payloadlen, corr, clen);
	free(rt);
	free(corr);
}

static void bl_mosq_start(struct bl *b)
{
	int fd;

	mosquitto_lib_init();
	b->mc = mosquitto_new(b->id, true, b);
	if (!b->mc) {
		fprintf(stderr, "mosq: new failed\n");
		exit(1);
	}
	mosquitto_int_option(b->mc, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(b->mc, MOSQ_OPT_TCP_NODELAY, 1);
	if (b->user)
		mosquitto_username_pw_set(b->mc, b->user, b->pass);
	mosquitto_connect_v5_callback_set(b->mc, bl_mosq_connected);
	mosquitto_subscribe_v5_callback_set(b->mc, bl_mosq_subscribed);
	mosquitto_message_v5_callback_set(b->mc, bl_mosq_message);
	if (mosquitto_connect_bind_async(b->mc, b->host, b->port, 30, NULL) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mosq: connect failed\n");
		exit(1);
	}
	fd = mosquitto_socket(b->mc);
	b->ev = EPOLLIN | EPOLLOUT;
	loop_io_add(b->loop, fd, b->ev, bl_mosq_io, b);
	loop_timer_init(&b->misc, bl_mosq_misc, b);
	loop_timer_start(b->loop, &b->misc, 1000);
}

/* --- common --- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void bl_paho_nodelay(struct bl *b)
{
	static bool done;
	int one = 1;
	if (done)
		return;
	done = true;
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_in sa;
		socklen_t l = sizeof sa;
		if (getpeername(fd, (struct sockaddr *)&sa, &l) == 0 && sa.sin_family == AF_INET &&
		    ntohs(sa.sin_port) == b->port)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
}

static void bl_publish(struct bl *b, const char *topic, const void *p, int len, const char *rt,
		       const void *corr, int corr_len)
{
	if (b->paho) {
		MQTTAsync_message m = MQTTAsync_message_initializer;
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		MQTTProperty pr;
		bl_paho_nodelay(b);
		m.payload = (void *)p;
		m.payloadlen = len;
		m.qos = 1;
		if (rt) {
			pr = (MQTTProperty){ .identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC };
			pr.value.data.data = (char *)rt;
			pr.value.data.len = (int)strlen(rt);
			MQTTProperties_add(&m.properties, &pr);
		}
		if (corr) {
			pr = (MQTTProperty){ .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
			pr.value.data.data = (char *)corr;
			pr.value.data.len = corr_len;
			MQTTProperties_add(&m.properties, &pr);
		}
		if (MQTTAsync_sendMessage(b->pc, topic, &m, &ro) != MQTTASYNC_SUCCESS) {
			fprintf(stderr, "paho: publish failed\n");
			exit(1);
		}
		MQTTProperties_free(&m.properties);
	} else {
		mosquitto_property *props = NULL;
		if (rt)
			mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, rt);
		if (corr)
			mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
						      (uint16_t)corr_len);
		if (mosquitto_publish_v5(b->mc, NULL, topic, len, p, 1, false, props) !=
		    MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "mosq: publish failed\n");
			exit(1);
		}
		mosquitto_property_free_all(&props);
		bl_mosq_update(b);
	}
}

static void bl_bound(void *arg)
{
	struct bl *b = arg;
	fprintf(stderr, "mqtt_libs: time bound reached (%d of %d done)\n", b->done, b->n);
	if (!b->echo)
		bl_report(b);
	b->exit_code = b->echo ? 0 : 1;
	loop_stop(b->loop);
}

int main(int argc, char **argv)
{
	struct bl b = { .host = "127.0.0.1", .n = 2000, .inflight = 1, .req = "bench/req" };
	const char *resp = "bench/resp", *pwfile = NULL;
	char pw[256] = "";
	int opt, secs = 60;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: mqtt_libs echo|rtt -l paho|mosq -p PORT [-n N] [-k IN_FLIGHT]\n"
		       "                 [-t REQUEST_TOPIC] [-r RESPONSE_PREFIX] [-U USER -F PASSWORD_FILE]\n"
		       "                 [-T SECONDS]\n"
		       "  echo: answers every request on REQUEST_TOPIC (default bench/req) to its MQTT 5\n"
		       "        response topic, with its correlation data, until -T.\n"
		       "  rtt:  sends N requests (default 2000), K in flight (default 1), with response\n"
		       "        topic RESPONSE_PREFIX/<client id>; prints RESULT {json}: requests/s and,\n"
		       "        per round trip, median and p99.\n"
		       "  -l:   paho (MQTTAsync, its threads handing over to the loop) or mosq\n"
		       "        (libmosquitto's external-loop API). Exit 0 when all N completed.\n");
		return 0;
	}
	while ((opt = getopt(argc, argv, "l:p:n:k:t:r:U:F:T:")) != -1) {
		switch (opt) {
		case 'l': b.paho = strcmp(optarg, "paho") == 0; break;
		case 'p': b.port = atoi(optarg); break;
		case 'n': b.n = atoi(optarg); break;
		case 'k': b.inflight = atoi(optarg); break;
		case 't': b.req = optarg; break;
		case 'r': resp = optarg; break;
		case 'U': b.user = optarg; break;
		case 'F': pwfile = optarg; break;
		case 'T': secs = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: mqtt_libs echo|rtt -l paho|mosq -p PORT [-n N] [-k "
					"IN_FLIGHT] [-t REQUEST_TOPIC] [-r RESPONSE_PREFIX] [-U USER "
					"-F PASSWORD_FILE] [-T SECONDS]\n");
			return 2;
		}
	}
	if (optind >= argc || !b.port || b.n <= 0 || b.inflight <= 0) {
		fprintf(stderr, "mqtt_libs: need a mode and -p PORT (see -h)\n");
		return 2;
	}
	b.echo = strcmp(argv[optind], "echo") == 0;
	/* The shipped broker binds client ids to accounts: "<account>:<anything>" (docs/broker.md). */
	snprintf(b.id, sizeof b.id, "%s%sbench-%s-%s-%d", b.user ? b.user : "", b.user ? ":" : "",
		 b.echo ? "echo" : "rtt", b.paho ? "paho" : "mosq", (int)getpid());
	snprintf(b.resp, sizeof b.resp, "%s/bench-%s-%s-%d", resp, b.echo ? "echo" : "rtt",
		 b.paho ? "paho" : "mosq", (int)getpid());
	if (pwfile) {
		FILE *f = fopen(pwfile, "r");
		if (!f || !fgets(pw, sizeof pw, f)) {
			fprintf(stderr, "mqtt_libs: cannot read %s\n", pwfile);
			return 2;
		}
		fclose(f);
		pw[strcspn(pw, "\r\n")] = '\0';
		b.pass = pw;
	}
	b.lat = calloc((size_t)b.n, sizeof *b.lat);
	b.t_sent = calloc((size_t)b.n, sizeof *b.t_sent);
	b.loop = loop_new();
	if (!b.lat || !b.t_sent || !b.loop)
		return 1;
	loop_timer_init(&b.bound, bl_bound, &b);
	loop_timer_start(b.loop, &b.bound, (uint64_t)secs * 1000);
	if (b.paho)
		bl_paho_start(&b);
	else
		bl_mosq_start(&b);
	loop_run(b.loop);
	/* No DISCONNECT: the broker sees the connection close, as when a process ends. */
	if (b.paho) {
		MQTTAsync_destroy(&b.pc);
		loop_wake_free(b.wake);
		pthread_mutex_destroy(&b.lock);
		for (struct msg *x = b.head, *next; x; x = next) {
			next = x->next;
			free(x->topic);
			free(x->rtopic);
			free(x->payload);
			free(x->corr);
			free(x);
		}
	} else {
		loop_timer_stop(b.loop, &b.misc);
		loop_io_del(b.loop, mosquitto_socket(b.mc));
		mosquitto_destroy(b.mc);
		mosquitto_lib_cleanup();
	}
	loop_timer_stop(b.loop, &b.bound);
	loop_free(b.loop);
	free(b.lat);
	free(b.t_sent);
	return b.exit_code;
}
