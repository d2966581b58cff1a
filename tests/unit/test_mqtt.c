/* test_mqtt: the mqtt module against a real mosquitto on a free loopback port: pub/sub,
 * MQTT 5 response topic + correlation data, 3.1.1, buffering before the first connect,
 * resubscribe after a broker restart, the last will, and the TCP_NODELAY round trip. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "log.h"
#include "loop.h"
#include "mqtt.h"

#define SAFETY_MS 15000
#define RTT_ROUNDS 20

/* --- a real mosquitto --- */

struct broker {
	pid_t pid;
	uint16_t port;
	uint16_t ws_port;   /* also a websockets listener when set */
	uint16_t tls_port;  /* also a TLS listener with dir/srv.crt when set */
	char dir[64];
	char conf[128];
	char log[128];
};

static uint16_t free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static bool port_accepts(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	ck_assert_int_ge(fd, 0);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

static void broker_dump_log(const struct broker *b)
{
	char buf[4096];
	FILE *f = fopen(b->log, "r");
	size_t n;

	if (!f)
		return;
	fprintf(stderr, "--- mosquitto log (%s) ---\n", b->log);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
}

/* Starts mosquitto on b->port (a fresh free port if 0) and waits until it accepts. */
static void broker_start(struct broker *b)
{
	FILE *f;
	int i, st;

	if (!b->dir[0]) {
		strcpy(b->dir, "/tmp/fr-test-mqtt-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(b->dir));
		snprintf(b->conf, sizeof b->conf, "%s/mosquitto.conf", b->dir);
		snprintf(b->log, sizeof b->log, "%s/mosquitto.log", b->dir);
	}
	if (!b->port)
		b->port = free_port();
	f = fopen(b->conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "listener %u 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
		   "persistence false\n", b->port);
	if (b->ws_port)
		fprintf(f, "listener %u 127.0.0.1\nprotocol websockets\n", b->ws_port);
	if (b->tls_port)
		fprintf(f, "listener %u 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/srv.crt\n"
			   "keyfile %s/srv.key\n", b->tls_port, b->dir, b->dir, b->dir);
	/* As root mosquitto would switch to its own user, which clears PR_SET_PDEATHSIG. */
	if (geteuid() == 0)
		fprintf(f, "user root\n");
	fclose(f);

	b->pid = fork();
	ck_assert_int_ge(b->pid, 0);
	if (b->pid == 0) {
		int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		/* Dies with the test process even when an assertion ends it early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("mosquitto", "mosquitto", "-c", b->conf, (char *)NULL);
		_exit(127);
	}
	/* Bounded by attempts, not by speed: 1000 x 10 ms is far beyond any real start-up. */
	for (i = 0; i < 1000; i++) {
		if (port_accepts(b->port) && (!b->ws_port || port_accepts(b->ws_port)) &&
		    (!b->tls_port || port_accepts(b->tls_port)))
			return;
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			broker_dump_log(b);
			ck_abort_msg("mosquitto exited during start-up (status %d)", st);
		}
		usleep(10000);
	}
	broker_dump_log(b);
	ck_abort_msg("mosquitto never accepted on port %u", b->port);
}

static void broker_kill(struct broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGKILL);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

static void broker_cleanup(struct broker *b)
{
	static const char *const files[] = { "mosquitto.conf", "mosquitto.log", "ca.key",
		"ca.crt", "ca.srl", "srv.key", "srv.csr", "srv.crt", "srv.ext" };
	char path[192];
	size_t i;

	broker_kill(b);
	if (!b->dir[0])
		return;
	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", b->dir, files[i]);
		unlink(path);
	}
	rmdir(b->dir);
	b->dir[0] = '\0';
}

/* Runs argv in dir (no shell); aborts the test unless it exits 0. */
static void run_in(const char *dir, char *const argv[])
{
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (chdir(dir) < 0)
			_exit(126);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s failed", argv[0], argv[1]);
}

/* A throw-away CA and a server certificate for san (e.g. "IP:127.0.0.1") in b->dir. */
static void make_certs(struct broker *b, const char *san)
{
	char ext[192];
	FILE *f;
	char *ca[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
		"ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
		"-days", "2", "-subj", "/CN=fr-test-ca", NULL };
	char *req[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt",
		"ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
		"-subj", "/CN=fr-test-broker", NULL };
	char *sign[] = { "openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey",
		"ca.key", "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "srv.ext",
		NULL };

	strcpy(b->dir, "/tmp/fr-test-mqtt-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(b->dir));
	snprintf(b->conf, sizeof b->conf, "%s/mosquitto.conf", b->dir);
	snprintf(b->log, sizeof b->log, "%s/mosquitto.log", b->dir);
	snprintf(ext, sizeof ext, "%s/srv.ext", b->dir);
	f = fopen(ext, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "subjectAltName=%s\n", san);
	fclose(f);
	run_in(b->dir, ca);
	run_in(b->dir, req);
	run_in(b->dir, sign);
}

static void broker_uri(const struct broker *b, char *buf, size_t n)
{
	if (b->ws_port)
		snprintf(buf, n, "ws://127.0.0.1:%u/mqtt", b->ws_port);
	else
		snprintf(buf, n, "mqtt://127.0.0.1:%u", b->port);
}

/* --- per-test context --- */

struct client {
	struct tc *tc;
	struct mqtt *m;
	const char *name;
	int connected, disconnected, messages;
	bool session_present;
	bool synced;                 /* received its own sync message: subscriptions are live */
	char topic[128], payload[256];
	int qos;
	bool retained;
	char rtopic[128];
	bool has_rtopic;
	unsigned char corr[64];
	size_t corr_len;
	void (*next)(struct client *c, const struct mqtt_msg *msg);  /* test-specific step */
};

struct tc {
	struct loop *loop;
	struct broker broker;
	struct loop_timer safety;
	struct client a, b;
	int step;
	uint64_t sent_at;
	double rtt[RTT_ROUNDS];
	int rounds;
	int go_fd;
};

static void on_safety(void *arg)
{
	struct tc *tc = arg;
	broker_dump_log(&tc->broker);
	ck_abort_msg("test did not finish in time (step %d)", tc->step);
}

static void tc_init(struct tc *tc)
{
	memset(tc, 0, sizeof *tc);
	log_init("test_mqtt", true, 1);
	tc->loop = loop_new();
	ck_assert_ptr_nonnull(tc->loop);
	loop_timer_init(&tc->safety, on_safety, tc);
	loop_timer_start(tc->loop, &tc->safety, SAFETY_MS);
	tc->a.tc = tc;
	tc->a.name = "a";
	tc->b.tc = tc;
	tc->b.name = "b";
}

static void tc_free(struct tc *tc)
{
	mqtt_free(tc->a.m);
	mqtt_free(tc->b.m);
	loop_timer_stop(tc->loop, &tc->safety);
	loop_free(tc->loop);
	broker_cleanup(&tc->broker);
}

static void cl_connected(void *arg, bool sp)
{
	struct client *c = arg;
	char t[64];

	c->connected++;
	c->session_present = sp;
	/* Our own message coming back proves the (re)subscriptions sent before it are active. */
	snprintf(t, sizeof t, "fr/sync/%s", c->name);
	ck_assert_int_eq(mqtt_publish(c->m, t, "sync", 4, 1, false, NULL, NULL, 0), 0);
}

static void cl_disconnected(void *arg, const char *reason)
{
	struct client *c = arg;
	ck_assert_ptr_nonnull(reason);
	c->disconnected++;
	if (c->next)
		c->next(c, NULL);
}

static void cl_message(void *arg, const struct mqtt_msg *msg)
{
	struct client *c = arg;

	if (strncmp(msg->topic, "fr/sync/", 8) == 0) {
		c->synced = true;
		if (c->next)
			c->next(c, NULL);
		return;
	}
	c->messages++;
	snprintf(c->topic, sizeof c->topic, "%s", msg->topic);
	ck_assert_uint_lt(msg->len, sizeof c->payload);
	memcpy(c->payload, msg->payload, msg->len);
	c->payload[msg->len] = '\0';
	c->qos = msg->qos;
	c->retained = msg->retained;
	c->has_rtopic = msg->response_topic != NULL;
	snprintf(c->rtopic, sizeof c->rtopic, "%s", msg->response_topic ? msg->response_topic : "");
	ck_assert(msg->correlation_len == 0 || msg->correlation);
	ck_assert_uint_le(msg->correlation_len, sizeof c->corr);
	c->corr_len = msg->correlation_len;
	if (msg->correlation_len)
		memcpy(c->corr, msg->correlation, msg->correlation_len);
	if (c->next)
		c->next(c, msg);
}

static const struct mqtt_ops cl_ops = {
	.on_connected = cl_connected,
	.on_disconnected = cl_disconnected,
	.on_message = cl_message,
};

static void client_new(struct client *c, int version, const struct mqtt_opts *extra)
{
	struct tc *tc = c->tc;
	char uri[64], id[64], sync[64];
	struct mqtt_opts o = { 0 };

	if (extra)
		o = *extra;
	broker_uri(&tc->broker, uri, sizeof uri);
	snprintf(id, sizeof id, "test-%s-%d", c->name, (int)getpid());
	o.uri = uri;
	o.client_id = id;
	o.version = version;
	o.clean = true;
	if (!o.backoff_min_ms) {
		o.backoff_min_ms = 20;
		o.backoff_max_ms = 200;
	}
	c->m = mqtt_new(tc->loop, &o, &cl_ops, c);
	ck_assert_ptr_nonnull(c->m);
	snprintf(sync, sizeof sync, "fr/sync/%s", c->name);
	ck_assert_int_eq(mqtt_subscribe(c->m, sync, 1), 0);
}

/* --- basic publish / subscribe / retained --- */

static void pubsub_next(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	if (!msg) {
		if (!c->synced || tc->step != 0)
			return;
		tc->step = 1;
		/* Retained first: by the time "hello" comes back the broker stores it. */
		ck_assert_int_eq(mqtt_publish(c->m, "fr/ret/a", "R", 1, 1, true, NULL, NULL, 0), 0);
		ck_assert_int_eq(mqtt_publish(c->m, "fr/test/x", "hello", 5, 1, false, "fr/ignored",
					      NULL, 0), 0);
		return;
	}
	if (tc->step == 1) {
		ck_assert_str_eq(c->topic, "fr/test/x");
		ck_assert_str_eq(c->payload, "hello");
		ck_assert_int_eq(c->qos, 1);
		ck_assert(!c->retained);
		tc->step = 2;
		ck_assert_int_eq(mqtt_subscribe(c->m, "fr/ret/#", 1), 0);
	} else if (tc->step == 2) {
		ck_assert_str_eq(c->topic, "fr/ret/a");
		ck_assert_str_eq(c->payload, "R");
		ck_assert(c->retained);
		tc->step = 3;
		loop_stop(tc->loop);
	}
}

static void run_pubsub(int version, bool ws)
{
	struct tc tc;

	tc_init(&tc);
	if (ws)
		tc.broker.ws_port = free_port();
	broker_start(&tc.broker);
	client_new(&tc.a, version, NULL);
	tc.a.next = pubsub_next;
	ck_assert_int_eq(mqtt_subscribe(tc.a.m, "fr/test/#", 1), 0);
	ck_assert(!mqtt_is_connected(tc.a.m));
	ck_assert_int_eq(mqtt_start(tc.a.m), 0);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 3);
	ck_assert(mqtt_is_connected(tc.a.m));
	ck_assert_int_eq(tc.a.connected, 1);
	ck_assert(!tc.a.session_present);
	if (version == 4)
		ck_assert(!tc.a.has_rtopic);   /* 3.1.1 has no properties: dropped, not an error */
	mqtt_stop(tc.a.m, 2000);
	ck_assert(!mqtt_is_connected(tc.a.m));
	tc_free(&tc);
}

START_TEST(test_pubsub_v5)
{
	run_pubsub(5, false);
}
END_TEST

START_TEST(test_pubsub_v311)
{
	run_pubsub(4, false);
}
END_TEST

START_TEST(test_pubsub_websockets)
{
	run_pubsub(5, true);
}
END_TEST

/* Freeing a client whose connect is still in flight (nothing listens) or backing off. */
static void stop_loop(void *arg)
{
	loop_stop(arg);
}

START_TEST(test_free_while_connecting)
{
	struct tc tc;
	struct loop_timer t;
	int i;

	tc_init(&tc);
	tc.broker.port = free_port();   /* nobody listens there */
	for (i = 0; i < 2; i++) {
		client_new(&tc.a, i ? 4 : 5, NULL);
		ck_assert_int_eq(mqtt_start(tc.a.m), 0);
		loop_timer_init(&t, stop_loop, tc.loop);
		loop_timer_start(tc.loop, &t, i ? 0 : 100);
		ck_assert_int_eq(loop_run(tc.loop), 0);
		ck_assert(!mqtt_is_connected(tc.a.m));
		mqtt_stop(tc.a.m, 100);
		ck_assert_int_eq(mqtt_publish(tc.a.m, "x", "", 0, 0, false, NULL, NULL, 0), -ENOTCONN);
		mqtt_free(tc.a.m);
		tc.a.m = NULL;
	}
	ck_assert_int_eq(tc.a.connected, 0);
	tc_free(&tc);
}
END_TEST

/* --- TLS --- */

static void tls_next(struct client *c, const struct mqtt_msg *msg)
{
	(void)msg;
	if (c->synced) {
		c->tc->step = 1;
		loop_stop(c->tc->loop);
	}
}

/* Connects over mqtts:// with the test CA; returns whether it got through before stop_ms. */
static bool tls_try(struct tc *tc, bool insecure, uint64_t stop_ms)
{
	struct mqtt_opts o = { 0 };
	struct loop_timer t;
	char uri[64], ca[128];

	snprintf(uri, sizeof uri, "mqtts://127.0.0.1:%u", tc->broker.tls_port);
	snprintf(ca, sizeof ca, "%s/ca.crt", tc->broker.dir);
	o.uri = uri;
	o.client_id = "test-tls";
	o.ca_file = ca;
	o.insecure = insecure;
	o.clean = true;
	o.backoff_min_ms = 20;
	o.backoff_max_ms = 100;
	tc->a.m = mqtt_new(tc->loop, &o, &cl_ops, &tc->a);
	ck_assert_ptr_nonnull(tc->a.m);
	ck_assert_int_eq(mqtt_subscribe(tc->a.m, "fr/sync/a", 1), 0);
	tc->a.next = tls_next;
	tc->a.synced = false;
	tc->step = 0;
	ck_assert_int_eq(mqtt_start(tc->a.m), 0);
	loop_timer_init(&t, stop_loop, tc->loop);
	if (stop_ms)
		loop_timer_start(tc->loop, &t, stop_ms);
	ck_assert_int_eq(loop_run(tc->loop), 0);
	loop_timer_stop(tc->loop, &t);
	mqtt_free(tc->a.m);
	tc->a.m = NULL;
	return tc->step == 1;
}

START_TEST(test_tls_verified)
{
	struct tc tc;

	tc_init(&tc);
	make_certs(&tc.broker, "IP:127.0.0.1");
	tc.broker.tls_port = free_port();
	broker_start(&tc.broker);
	ck_assert(tls_try(&tc, false, 0));
	tc_free(&tc);
}
END_TEST

START_TEST(test_tls_hostname_mismatch)
{
	struct tc tc;

	tc_init(&tc);
	make_certs(&tc.broker, "DNS:elsewhere.invalid");
	tc.broker.tls_port = free_port();
	broker_start(&tc.broker);
	/* A negative check: it must keep failing; 1 s is several attempts. */
	ck_assert(!tls_try(&tc, false, 1000));
	ck_assert_int_eq(tc.a.connected, 0);
	/* The CA still vouches for the certificate: insecure skips only the name check. */
	ck_assert(tls_try(&tc, true, 0));
	tc_free(&tc);
}
END_TEST

/* --- MQTT 5 request/response properties --- */

static const unsigned char corr_bin[] = { 0x01, 0x00, 0xff, 0x7f, 0x00 };

static void props_next(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	if (!msg) {
		if (!c->synced || tc->step != 0)
			return;
		tc->step = 1;
		ck_assert_int_eq(mqtt_publish(c->m, "fr/req/1", "{}", 2, 2, false, "fr/resp/a",
					      corr_bin, sizeof corr_bin), 0);
		return;
	}
	ck_assert_str_eq(c->topic, "fr/req/1");
	ck_assert_int_eq(c->qos, 2);
	ck_assert(c->has_rtopic);
	ck_assert_str_eq(c->rtopic, "fr/resp/a");
	ck_assert_uint_eq(c->corr_len, sizeof corr_bin);
	ck_assert_mem_eq(c->corr, corr_bin, sizeof corr_bin);
	tc->step = 2;
	loop_stop(tc->loop);
}

START_TEST(test_v5_response_props)
{
	struct tc tc;

	tc_init(&tc);
	broker_start(&tc.broker);
	client_new(&tc.a, 5, NULL);
	tc.a.next = props_next;
	ck_assert_int_eq(mqtt_subscribe(tc.a.m, "fr/req/+", 2), 0);
	ck_assert_int_eq(mqtt_start(tc.a.m), 0);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 2);
	tc_free(&tc);
}
END_TEST

/* --- buffered before the first connect --- */

static void buffered_b_next(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	if (!msg) {
		if (!c->synced || tc->step != 0)
			return;
		tc->step = 1;
		/* a has never connected: the publish is buffered, sent once it connects. */
		client_new(&tc->a, 5, NULL);
		ck_assert_int_eq(mqtt_publish(tc->a.m, "fr/buf", "early", 5, 1, false, NULL, NULL, 0),
				 0);
		ck_assert_int_eq(mqtt_start(tc->a.m), 0);
		return;
	}
	ck_assert_str_eq(c->topic, "fr/buf");
	ck_assert_str_eq(c->payload, "early");
	tc->step = 2;
	loop_stop(tc->loop);
}

START_TEST(test_buffered_before_connect)
{
	struct tc tc;

	tc_init(&tc);
	broker_start(&tc.broker);
	client_new(&tc.b, 5, NULL);
	tc.b.next = buffered_b_next;
	ck_assert_int_eq(mqtt_subscribe(tc.b.m, "fr/buf", 1), 0);
	ck_assert_int_eq(mqtt_start(tc.b.m), 0);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 2);
	tc_free(&tc);
}
END_TEST

/* --- broker restart: reconnect with backoff, resubscribe --- */

static void restart_next(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	if (!msg && tc->step == 0 && c->synced && c->connected == 1) {
		tc->step = 1;
		c->synced = false;
		broker_kill(&tc->broker);
	} else if (!msg && tc->step == 1 && c->disconnected == 1) {
		tc->step = 2;
		ck_assert(!mqtt_is_connected(c->m));
		/* Buffered (sendWhileDisconnected), not refused. */
		ck_assert_int_eq(mqtt_publish(c->m, "fr/rs/offline", "x", 1, 1, false, NULL, NULL, 0),
				 0);
		/* Same port, no persistence: the new broker knows nothing of us. */
		broker_start(&tc->broker);
	} else if (!msg && tc->step == 2 && c->synced) {
		ck_assert_int_eq(c->connected, 2);
		ck_assert(!c->session_present);
		tc->step = 3;
		ck_assert_int_eq(mqtt_publish(c->m, "fr/rs/x", "again", 5, 1, false, NULL, NULL, 0),
				 0);
	} else if (msg && tc->step == 3) {
		ck_assert_str_eq(c->topic, "fr/rs/x");
		ck_assert_str_eq(c->payload, "again");
		tc->step = 4;
		loop_stop(tc->loop);
	}
}

START_TEST(test_resubscribe_after_restart)
{
	struct tc tc;
	struct mqtt_opts o = { .backoff_min_ms = 10, .backoff_max_ms = 100 };

	tc_init(&tc);
	broker_start(&tc.broker);
	client_new(&tc.a, 5, &o);
	tc.a.next = restart_next;
	ck_assert_int_eq(mqtt_subscribe(tc.a.m, "fr/rs/#", 1), 0);
	ck_assert_int_eq(mqtt_start(tc.a.m), 0);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 4);
	ck_assert_int_eq(tc.a.disconnected, 1);
	ck_assert_int_eq(tc.a.connected, 2);
	tc_free(&tc);
}
END_TEST

/* A client started while the broker is down keeps retrying until it comes up. */
static void late_next(struct client *c, const struct mqtt_msg *msg)
{
	(void)msg;
	if (c->synced) {
		c->tc->step = 1;
		loop_stop(c->tc->loop);
	}
}

static void late_start(void *arg)
{
	struct tc *tc = arg;
	broker_start(&tc->broker);
}

START_TEST(test_connect_retries_until_broker_up)
{
	struct tc tc;
	struct loop_timer t;

	tc_init(&tc);
	tc.broker.port = free_port();
	client_new(&tc.a, 5, NULL);
	tc.a.next = late_next;
	ck_assert_int_eq(mqtt_start(tc.a.m), 0);
	/* Started from the loop so the client has already failed at least once. */
	loop_timer_init(&t, late_start, &tc);
	loop_timer_start(tc.loop, &t, 100);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 1);
	ck_assert_int_eq(tc.a.connected, 1);
	ck_assert_int_eq(tc.a.disconnected, 0);
	tc_free(&tc);
}
END_TEST

/* --- last will --- */

/* In a child forked before the parent made any paho thread: connect with a will, then die
 * without DISCONNECT, as a crashed agent would. */
static void will_child_connected(void *arg, bool sp)
{
	(void)arg;
	(void)sp;
	_exit(0);
}

static void will_child(const struct broker *b, int go_fd)
{
	static const struct mqtt_ops ops = { .on_connected = will_child_connected };
	struct mqtt_opts o = { 0 };
	struct loop *loop;
	struct mqtt *m;
	char uri[64], c;

	alarm(20);
	if (read(go_fd, &c, 1) != 1)
		_exit(2);
	loop = loop_new();
	if (!loop)
		_exit(3);
	broker_uri(b, uri, sizeof uri);
	o.uri = uri;
	o.client_id = "test-will-child";
	o.version = 5;
	o.clean = true;
	o.will_topic = "fr/will/child";
	o.will_payload = "child-gone";
	o.will_qos = 1;
	m = mqtt_new(loop, &o, &ops, NULL);
	if (!m || mqtt_start(m) < 0)
		_exit(4);
	loop_run(loop);
	_exit(5);
}

static void will_a_next(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	(void)msg;
	if (!c->synced || tc->step != 1)
		return;
	tc->step = 2;
	mqtt_stop(c->m, 2000);
	/* Only now let the child connect and die: a's socket is long gone by then. */
	ck_assert_int_eq(write(tc->go_fd, "g", 1), 1);
}

static void will_next(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;
	struct mqtt_opts o = { .will_topic = "fr/will/clean", .will_payload = "clean-gone",
			       .will_qos = 1 };

	if (!msg) {
		if (!c->synced || tc->step != 0)
			return;
		tc->step = 1;
		/* A clean stop sends DISCONNECT (reason 0): this will must never arrive. */
		client_new(&tc->a, 5, &o);
		tc->a.next = will_a_next;
		ck_assert_int_eq(mqtt_start(tc->a.m), 0);
		return;
	}
	ck_assert_str_eq(c->topic, "fr/will/child");
	ck_assert_str_eq(c->payload, "child-gone");
	ck_assert_int_eq(c->qos, 1);
	tc->step = 3;
	loop_stop(tc->loop);
}

START_TEST(test_last_will)
{
	struct tc tc;
	int p[2], st;
	pid_t child;

	tc_init(&tc);
	broker_start(&tc.broker);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(p[1]);
		will_child(&tc.broker, p[0]);
	}
	close(p[0]);
	tc.go_fd = p[1];

	client_new(&tc.b, 5, NULL);
	tc.b.next = will_next;
	ck_assert_int_eq(mqtt_subscribe(tc.b.m, "fr/will/#", 1), 0);
	ck_assert_int_eq(mqtt_start(tc.b.m), 0);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 3);
	ck_assert_int_eq(tc.b.messages, 1);   /* the child's will only, never a's */
	close(p[1]);
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	tc_free(&tc);
}
END_TEST

/* --- TCP_NODELAY: request/response latency --- */

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void rtt_send(struct tc *tc)
{
	unsigned char corr = (unsigned char)tc->rounds;

	tc->sent_at = now_us();
	ck_assert_int_eq(mqtt_publish(tc->a.m, "fr/rtt/req", "ping", 4, 1, false, "fr/rtt/resp",
				      &corr, 1), 0);
}

static void rtt_responder(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	if (!msg) {
		if (c->synced && tc->a.synced && tc->step == 0) {
			tc->step = 1;
			rtt_send(tc);
		}
		return;
	}
	ck_assert_ptr_nonnull(msg->response_topic);
	ck_assert_int_eq(mqtt_publish(c->m, msg->response_topic, "pong", 4, 1, false, NULL,
				      msg->correlation, msg->correlation_len), 0);
}

static void rtt_requester(struct client *c, const struct mqtt_msg *msg)
{
	struct tc *tc = c->tc;

	if (!msg) {
		if (c->synced && tc->b.synced && tc->step == 0) {
			tc->step = 1;
			rtt_send(tc);
		}
		return;
	}
	ck_assert_uint_eq(c->corr_len, 1);
	ck_assert_uint_eq(c->corr[0], (unsigned char)tc->rounds);
	tc->rtt[tc->rounds++] = (double)(now_us() - tc->sent_at) / 1000.0;
	if (tc->rounds == RTT_ROUNDS) {
		tc->step = 2;
		loop_stop(tc->loop);
		return;
	}
	rtt_send(tc);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

START_TEST(test_nodelay_round_trip)
{
	struct tc tc;
	double median;

	tc_init(&tc);
	broker_start(&tc.broker);
	client_new(&tc.a, 5, NULL);
	client_new(&tc.b, 5, NULL);
	tc.a.next = rtt_requester;
	tc.b.next = rtt_responder;
	ck_assert_int_eq(mqtt_subscribe(tc.a.m, "fr/rtt/resp", 1), 0);
	ck_assert_int_eq(mqtt_subscribe(tc.b.m, "fr/rtt/req", 1), 0);
	ck_assert_int_eq(mqtt_start(tc.a.m), 0);
	ck_assert_int_eq(mqtt_start(tc.b.m), 0);
	ck_assert_int_eq(loop_run(tc.loop), 0);
	ck_assert_int_eq(tc.step, 2);
	qsort(tc.rtt, RTT_ROUNDS, sizeof tc.rtt[0], cmp_double);
	median = (tc.rtt[RTT_ROUNDS / 2 - 1] + tc.rtt[RTT_ROUNDS / 2]) / 2;
	fprintf(stderr, "mqtt request/response: median %.3f ms, min %.3f, max %.3f\n", median,
		tc.rtt[0], tc.rtt[RTT_ROUNDS - 1]);
	/* The one timing check: Nagle + delayed ACK costs a 40 ms quantum; the real cost is
	 * ~0.2 ms, so 20 ms separates the two with a 100x margin. */
	ck_assert_msg(median < 20.0, "median round trip %.3f ms: TCP_NODELAY missing?", median);
	tc_free(&tc);
}
END_TEST

/* --- argument checking --- */

START_TEST(test_bad_options)
{
	struct loop *loop = loop_new();
	struct mqtt_opts o = { .client_id = "x" };
	struct mqtt *m;

	log_init("test_mqtt", true, 0);
	ck_assert_ptr_nonnull(loop);
	ck_assert_ptr_null(mqtt_new(loop, &o, NULL, NULL));
	o.uri = "http://127.0.0.1:1883";
	ck_assert_ptr_null(mqtt_new(loop, &o, NULL, NULL));
	o.uri = "mqtt://127.0.0.1:99999";
	ck_assert_ptr_null(mqtt_new(loop, &o, NULL, NULL));
	o.uri = "mqtt://127.0.0.1:1883";
	o.version = 3;
	ck_assert_ptr_null(mqtt_new(loop, &o, NULL, NULL));
	o.version = 4;
	m = mqtt_new(loop, &o, NULL, NULL);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(mqtt_subscribe(m, "a/#", 3), -EINVAL);
	ck_assert_int_eq(mqtt_subscribe(m, "a/#", 1), 0);
	ck_assert_int_eq(mqtt_unsubscribe(m, "a/#"), 0);
	ck_assert_int_eq(mqtt_unsubscribe(m, "a/#"), -ENOENT);
	ck_assert_int_eq(mqtt_publish(m, "a", "", 0, 5, false, NULL, NULL, 0), -EINVAL);
	mqtt_free(m);
	o.uri = "wss://[::1]:8443/mqtt";
	o.ca_file = "/nonexistent/ca.pem";
	m = mqtt_new(loop, &o, NULL, NULL);
	ck_assert_ptr_nonnull(m);
	mqtt_free(m);
	loop_free(loop);
}
END_TEST

/* One TCase per test, so CK_RUN_CASE=<name> runs just one. */
#define ADD(s, t) do { \
		TCase *tc_ = tcase_create(#t); \
		tcase_set_timeout(tc_, 60); \
		tcase_add_test(tc_, t); \
		suite_add_tcase(s, tc_); \
	} while (0)

static Suite *mqtt_suite(void)
{
	Suite *s = suite_create("mqtt");

	ADD(s, test_bad_options);
	ADD(s, test_pubsub_v5);
	ADD(s, test_pubsub_v311);
	ADD(s, test_pubsub_websockets);
	ADD(s, test_free_while_connecting);
	ADD(s, test_tls_verified);
	ADD(s, test_tls_hostname_mismatch);
	ADD(s, test_v5_response_props);
	ADD(s, test_buffered_before_connect);
	ADD(s, test_resubscribe_after_restart);
	ADD(s, test_connect_retries_until_broker_up);
	ADD(s, test_last_will);
	ADD(s, test_nodelay_round_trip);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mqtt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
