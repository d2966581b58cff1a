/* test_shim: frAroundWeb's shim transport (agents/frAroundWeb/shim.c) with its real sessions,
 * cache, users table and listeners, driven by real TCP and unix-socket clients (docs/shim.md):
 * ping before auth, everything else refused until a token is proved; a wrong token leaves the
 * connection open until the fifth; garbage is bad_request and the connection stays; lines may
 * end in CRLF, come several in one read or split over two; a line over the limit (4096 bytes
 * before auth, max_line after) is too_long, then the connection closes; max_clients counts
 * authenticated clients only; a client that does not read is cut off at max_outq while others
 * are served; a users reload disconnects a client whose token is gone; a stranger that never
 * authenticates is closed without a reply at auth_timeout; the unix socket is mode 0660 and
 * removed at shutdown. These need no broker: the MQTT client is made but never started.
 * The session's ops over a real mosquitto ("ops"): subscribe streams each message once with
 * its topic and payload until unsubscribe, "subscribed" comes only with the broker's SUBACK
 * (a paused broker, a reconnect), a subscription the broker refuses is an error (forbidden),
 * filters outside the granted homes are forbidden,
 * subscriptions count toward max_inflight; publish answers ok once the broker has it and only
 * on the topics the broker's ACL would allow; audit answers the user's own records only; a
 * users reload that takes a home away ends the subscriptions there with forbidden. */
#include "audit.h"
#include "broker.h"
#include "cache.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "relay.h"
#include "shim.h"
#include "subs.h"
#include "users.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_MS 15000
#define TOKEN_A "token-alice"
#define TOKEN_B "token-bob"

static char dir[64], users_path[96], sock_path[96];
static struct loop *loop;
static struct conf conf;
static struct mqtt *mqtt;
static struct cache *cache;
static struct audit *audit;
static struct relay *relay;
static struct subs *subs;
static struct users *users;
static struct metrics metrics;
static struct shim *shim;
/* "ops": a real broker, the shim's MQTT client started, and a client of the test's own. */
static struct test_broker broker;
static struct mqtt *peer;
static bool web_up, peer_up;
static int peer_msgs;
static char peer_last[256];

/* One client connection, read without blocking as the loop runs. */
struct tclient {
	int fd;
	char buf[1 << 16];
	size_t len;
	bool eof;
};

/* The users file: bob with h1, and alice with alice_homes ("\"h1\"", "" for none), or
 * without alice when alice_homes is NULL. */
static void write_users(const char *alice_homes)
{
	FILE *f = fopen(users_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "users = (\n");
	const char *names[] = { "alice", "bob" }, *tokens[] = { TOKEN_A, TOKEN_B };
	const char *homes[] = { alice_homes, "\"h1\"" };
	for (int i = alice_homes ? 0 : 1; i < 2; i++) {
		uint8_t h[32];
		ck_assert_int_eq(users_hash_token(tokens[i], h), 0);
		fprintf(f, "  { name = \"%s\"; token_sha256 = \"", names[i]);
		for (int k = 0; k < 32; k++)
			fprintf(f, "%02x", h[k]);
		fprintf(f, "\"; homes = [%s]; }%s\n", homes[i], i < 1 ? "," : "");
	}
	fprintf(f, ");\n");
	fclose(f);
}

/* Rewrites the users file and hands the shim the reloaded table, as SIGHUP does. */
static void reload_users(const char *alice_homes)
{
	write_users(alice_homes);
	struct users *u = users_load(users_path);
	ck_assert_ptr_nonnull(u);
	shim_set_users(shim, u);
	users_free(users);
	users = u;
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

static const struct mqtt_ops web_ops = { web_connected, NULL, web_message };

/* Starts a shim on a free loopback port and a unix socket; shim_extra: more shim settings.
 * With the broker running, its MQTT client connects there. */
static void start(const char *shim_extra)
{
	char path[128], uri[64] = "mqtt://127.0.0.1:1";
	if (broker.port)
		snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", broker.port);
	strcpy(dir, "/tmp/fr-test-shim-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(users_path, sizeof users_path, "%s/users.conf", dir);
	snprintf(sock_path, sizeof sock_path, "%s/shim.sock", dir);
	write_users("\"h1\"");
	snprintf(path, sizeof path, "%s/frAroundWeb.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	/* The broker URI is never dialled: nothing here needs a broker. */
	fprintf(f, "instance = \"t\";\nusers_file = \"%s\";\naudit_file = \"%s/audit.log\";\n"
		   "shim = { address = \"127.0.0.1\"; port = 0; unix = \"%s\"; max_line = 8192; %s };\n"
		   "mqtt = { uri = \"%s\"; };\n",
		users_path, dir, sock_path, shim_extra ? shim_extra : "", uri);
	fclose(f);
	ck_assert_int_eq(conf_load(&conf, path), 0);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
	struct mqtt_opts mo = { .uri = uri, .client_id = "test-shim", .clean = true,
				.backoff_min_ms = 100, .backoff_max_ms = 500 };
	ck_assert_ptr_nonnull(mqtt = mqtt_new(loop, &mo, &web_ops, NULL));
	struct cache_limits lim = { 1000, 100, 1 << 20, 3 };
	ck_assert_ptr_nonnull(cache = cache_new("fr", &lim));
	ck_assert_ptr_nonnull(audit = audit_open(conf.audit_file));
	memset(&metrics, 0, sizeof metrics);
	ck_assert_ptr_nonnull(relay = relay_new(loop, mqtt, audit, &metrics, "fr", "t"));
	ck_assert_ptr_nonnull(subs = subs_new(mqtt));
	ck_assert_ptr_nonnull(users = users_load(users_path));
	struct shim_deps d = { loop, &conf, mqtt, cache, relay, audit, &metrics, subs, users, NULL };
	ck_assert_ptr_nonnull(shim = shim_new(&d));
	ck_assert_uint_gt(shim_port(shim), 0);
}

static void teardown(void)
{
	mqtt_free(peer);
	peer = NULL;
	shim_free(shim);
	relay_free(relay);
	subs_free(subs);
	mqtt_free(mqtt);
	audit_free(audit);
	cache_free(cache);
	users_free(users);
	loop_free(loop);
	conf_free(&conf);
	shim = NULL, relay = NULL, subs = NULL, mqtt = NULL, audit = NULL, cache = NULL;
	users = NULL, loop = NULL;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	test_broker_stop(&broker);
}

static void tc_connect_fd(struct tclient *t, int fd, const struct sockaddr *sa, socklen_t sl)
{
	memset(t, 0, sizeof *t);
	t->fd = fd;
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, sa, sl), 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
}

/* rcvbuf > 0: a small receive buffer, set before connecting (a client that does not read). */
static void tc_tcp(struct tclient *t, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(shim_port(shim)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rcvbuf > 0)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
	tc_connect_fd(t, fd, (struct sockaddr *)&sa, sizeof sa);
}

static void tc_unix(struct tclient *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	tc_connect_fd(t, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), (struct sockaddr *)&sa,
		      sizeof sa);
}

static void tc_close(struct tclient *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static void tc_send(struct tclient *t, const char *s)
{
	size_t n = strlen(s);
	ck_assert_int_eq(send(t->fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads what is there; true once a whole line is buffered (or the peer closed). */
static bool tc_readable(void *arg)
{
	struct tclient *t = arg;
	while (!t->eof && t->len < sizeof t->buf) {
		ssize_t r = recv(t->fd, t->buf + t->len, sizeof t->buf - t->len, 0);
		if (r > 0)
			t->len += (size_t)r;
		else if (r == 0 || (errno != EAGAIN && errno != EINTR))
			t->eof = true;
		else
			break;
	}
	return memchr(t->buf, '\n', t->len) != NULL || t->eof;
}

/* The next response line, parsed (the caller frees); fails on EOF. */
static cJSON *tc_line(struct tclient *t)
{
	test_run_until(loop, NULL, WAIT_MS, tc_readable, t, "a response line");
	char *nl = memchr(t->buf, '\n', t->len);
	ck_assert_msg(nl != NULL, "connection closed instead of a line");
	cJSON *o = cJSON_ParseWithLength(t->buf, (size_t)(nl - t->buf));
	ck_assert_msg(cJSON_IsObject(o), "not a JSON object: %.*s", (int)(nl - t->buf), t->buf);
	size_t used = (size_t)(nl + 1 - t->buf);
	memmove(t->buf, nl + 1, t->len - used);
	t->len -= used;
	return o;
}

static bool tc_closed(void *arg)
{
	struct tclient *t = arg;
	tc_readable(t);
	return t->eof;
}

/* The peer closes with nothing more to read. */
static void tc_expect_eof(struct tclient *t)
{
	test_run_until(loop, NULL, WAIT_MS, tc_closed, t, "the connection closed");
	ck_assert_msg(t->len == 0, "unexpected bytes before close: %.*s", (int)t->len, t->buf);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *err_code(const cJSON *o)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
	return e ? jstr(e, "code") : NULL;
}

/* Sends one line and checks the answer is ok (returned, the caller frees) for integer id. */
static cJSON *ok(struct tclient *t, const char *line, int id)
{
	tc_send(t, line);
	cJSON *o = tc_line(t);
	ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")), "not ok: %.200s", t->buf);
	ck_assert_int_eq(cJSON_GetObjectItem(o, "id")->valueint, id);
	return o;
}

/* Sends one line and checks the answer is error code; id NULL: the answer's id is null. */
static void fails(struct tclient *t, const char *line, const char *code, const char *id)
{
	tc_send(t, line);
	cJSON *o = tc_line(t);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")));
	ck_assert_str_eq(err_code(o), code);
	const cJSON *v = cJSON_GetObjectItem(o, "id");
	char *got = cJSON_PrintUnformatted(v);
	ck_assert_str_eq(got, id ? id : "null");
	free(got);
	cJSON_Delete(o);
}

static const enum metrics_disc *disc_why;
static uint64_t disc_want;

static bool disc_counted(void *arg)
{
	(void)arg;
	return metrics.disconnects[*disc_why] >= disc_want;
}

/* Waits until n disconnects for why are counted (the shim counts when it closes its end). */
static void await_disc(enum metrics_disc why, uint64_t n)
{
	disc_why = &why;
	disc_want = n;
	test_run_until(loop, NULL, WAIT_MS, disc_counted, NULL, metrics_disc_name(why));
	ck_assert_uint_eq(metrics.disconnects[why], n);
}

static void auth(struct tclient *t, const char *token, int id)
{
	char line[128];
	snprintf(line, sizeof line, "{\"id\":%d,\"op\":\"auth\",\"token\":\"%s\"}\n", id, token);
	cJSON_Delete(ok(t, line, id));
}

START_TEST(auth_and_framing)
{
	start(NULL);
	struct tclient a, b;
	tc_tcp(&a, 0);
	/* ping needs no auth; the rest does. */
	cJSON *o = ok(&a, "{\"id\":1,\"op\":\"ping\"}\n", 1);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "time")));
	cJSON_Delete(o);
	fails(&a, "{\"id\":2,\"op\":\"list\"}\n", "auth", "2");
	/* Garbage: bad_request, id null, the connection stays. */
	fails(&a, "not json at all\n", "bad_request", NULL);
	/* A wrong token: auth, and the connection stays for a retry. */
	fails(&a, "{\"id\":\"w\",\"op\":\"auth\",\"token\":\"nope\"}\n", "auth", "\"w\"");
	/* CRLF ends a line too. */
	tc_send(&a, "{\"id\":3,\"op\":\"auth\",\"token\":\"" TOKEN_A "\"}\r\n");
	o = tc_line(&a);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
	ck_assert_str_eq(jstr(o, "user"), "alice");
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "homes"), 0)->valuestring, "h1");
	cJSON_Delete(o);
	/* Two lines in one write, then one split over two writes: three answers, in order. */
	tc_send(&a, "{\"id\":10,\"op\":\"ping\"}\n{\"id\":11,\"op\":\"ping\"}\n{\"id\":12,");
	for (int id = 10; id <= 11; id++)
		cJSON_Delete(ok(&a, "", id));
	cJSON_Delete(ok(&a, "\"op\":\"ping\"}\n", 12));
	/* The cache answers get within the granted home; another home is forbidden. */
	ck_assert_int_eq(cache_put(cache, "fr/h1/status", "online", 6, true, 1000), 0);
	o = ok(&a, "{\"id\":13,\"op\":\"get\",\"topic\":\"fr/h1/status\"}\n", 13);
	ck_assert_str_eq(jstr(o, "payload"), "online");
	cJSON_Delete(o);
	fails(&a, "{\"id\":14,\"op\":\"get\",\"topic\":\"fr/h2/status\"}\n", "forbidden", "14");
	/* A second client on the unix socket is a client of its own. */
	tc_unix(&b);
	fails(&b, "{\"id\":1,\"op\":\"list\"}\n", "auth", "1");
	auth(&b, TOKEN_B, 2);
	ck_assert_uint_eq(metrics.connections_total, 2);
	ck_assert_uint_eq(metrics.clients, 2);
	ck_assert_uint_eq(metrics.requests[SHIM_OP_PING], 4);
	ck_assert_uint_eq(metrics.errors[SHIM_E_AUTH], 3);
	ck_assert_uint_eq(metrics.errors[SHIM_E_BAD_REQUEST], 1);
	/* A client that leaves is counted as such; the other goes on. */
	tc_close(&b);
	await_disc(METRICS_DISC_EOF, 1);
	cJSON_Delete(ok(&a, "{\"id\":15,\"op\":\"ping\"}\n", 15));
	ck_assert_uint_eq(metrics.clients, 1);
	tc_close(&a);
	await_disc(METRICS_DISC_EOF, 2);
	ck_assert_uint_eq(metrics.clients, 0);
}
END_TEST

START_TEST(fifth_wrong_token_closes)
{
	start(NULL);
	struct tclient a;
	tc_tcp(&a, 0);
	for (int i = 1; i <= 5; i++) {
		char line[96], id[8];
		snprintf(line, sizeof line, "{\"id\":%d,\"op\":\"auth\",\"token\":\"wrong\"}\n", i);
		snprintf(id, sizeof id, "%d", i);
		fails(&a, line, "auth", id);
	}
	tc_expect_eof(&a);
	tc_close(&a);
	await_disc(METRICS_DISC_AUTH, 1);
}
END_TEST

/* A ping line of exactly n bytes with its newline. */
static char *long_ping(int id, size_t n)
{
	char *s = malloc(n + 1);
	int h = snprintf(s, n + 1, "{\"id\":%d,\"op\":\"ping\",\"pad\":\"", id);
	memset(s + h, 'x', n - (size_t)h - 3);
	memcpy(s + n - 3, "\"}\n", 4);
	return s;
}

START_TEST(line_limits)
{
	start(NULL);
	struct tclient stranger, a;
	tc_tcp(&a, 0);
	auth(&a, TOKEN_A, 1);
	/* Authenticated: a 5000-byte line is within max_line (8192). */
	char *line = long_ping(2, 5000);
	cJSON_Delete(ok(&a, line, 2));
	/* Before auth the limit is 4096 bytes: too_long, id null, then closed. */
	tc_tcp(&stranger, 0);
	fails(&stranger, line, "too_long", NULL);
	tc_expect_eof(&stranger);
	free(line);
	/* Over max_line: the same, also when authenticated. */
	line = long_ping(3, 9000);
	fails(&a, line, "too_long", NULL);
	tc_expect_eof(&a);
	free(line);
	tc_close(&a);
	tc_close(&stranger);
	await_disc(METRICS_DISC_TOO_LONG, 2);
}
END_TEST

START_TEST(max_clients_counts_the_authenticated)
{
	start("max_clients = 2;");
	struct tclient a, b, c, d;
	tc_tcp(&a, 0);
	tc_unix(&b);
	tc_tcp(&c, 0);   /* a stranger does not take an authenticated client's room */
	auth(&a, TOKEN_A, 1);
	auth(&b, TOKEN_B, 1);
	fails(&c, "{\"id\":1,\"op\":\"auth\",\"token\":\"" TOKEN_A "\"}\n", "too_many", "1");
	tc_expect_eof(&c);
	tc_close(&c);
	await_disc(METRICS_DISC_FULL, 1);
	/* One leaves: room again. */
	tc_close(&a);
	await_disc(METRICS_DISC_EOF, 1);
	tc_tcp(&d, 0);
	auth(&d, TOKEN_A, 1);
	cJSON_Delete(ok(&b, "{\"id\":2,\"op\":\"ping\"}\n", 2));
	tc_close(&b);
	tc_close(&d);
}
END_TEST

static bool killed_outq(void *arg)
{
	(void)arg;
	return metrics.disconnects[METRICS_DISC_OUTQ] > 0;
}

START_TEST(a_client_that_does_not_read_is_cut_off)
{
	start("max_outq = 65536;");
	/* A 16 KiB info: every list answer carries it. */
	char info[16 * 1024 + 32];
	int h = snprintf(info, sizeof info, "{\"name\":\"");
	memset(info + h, 'n', 16 * 1024);
	strcpy(info + h + 16 * 1024, "\"}");
	ck_assert_int_eq(cache_put(cache, "fr/h1/ctl/k/info", info, strlen(info), true, 1000), 0);
	struct tclient slow, other;
	tc_tcp(&slow, 4096);
	tc_tcp(&other, 0);
	auth(&slow, TOKEN_A, 1);
	auth(&other, TOKEN_B, 1);
	/* 600 lists (about 10 MB of answers) without reading: beyond the kernel's buffers the
	 * output queue passes max_outq and the client is cut off. */
	static char many[600 * 32];
	size_t n = 0;
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "{\"id\":%d,\"op\":\"list\"}\n", 100 + i);
	tc_send(&slow, many);
	test_run_until(loop, NULL, WAIT_MS, killed_outq, NULL, "the slow client cut off");
	ck_assert_uint_eq(metrics.disconnects[METRICS_DISC_OUTQ], 1);
	ck_assert_uint_eq(metrics.clients, 1);
	/* The other client is served. */
	cJSON *o = ok(&other, "{\"id\":2,\"op\":\"list\"}\n", 2);
	const cJSON *home = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "homes"), 0);
	ck_assert_str_eq(jstr(home, "home"), "h1");
	cJSON_Delete(o);
	tc_close(&slow);
	tc_close(&other);
}
END_TEST

START_TEST(reload_disconnects_a_revoked_token)
{
	start(NULL);
	struct tclient a, b;
	tc_tcp(&a, 0);
	tc_unix(&b);
	auth(&a, TOKEN_A, 1);
	auth(&b, TOKEN_B, 1);
	reload_users(NULL);
	tc_expect_eof(&a);
	await_disc(METRICS_DISC_REVOKED, 1);
	cJSON_Delete(ok(&b, "{\"id\":2,\"op\":\"ping\"}\n", 2));
	/* The revoked token signs in no more. */
	struct tclient c;
	tc_tcp(&c, 0);
	fails(&c, "{\"id\":1,\"op\":\"auth\",\"token\":\"" TOKEN_A "\"}\n", "auth", "1");
	tc_close(&a);
	tc_close(&b);
	tc_close(&c);
}
END_TEST

START_TEST(auth_timeout_closes_strangers_only)
{
	start("auth_timeout = 0.3;");
	struct tclient idle, pinger, a;
	tc_tcp(&a, 0);
	auth(&a, TOKEN_A, 1);
	tc_tcp(&idle, 0);
	tc_unix(&pinger);
	/* ping does not count as an auth: closed too, after its answer. */
	cJSON_Delete(ok(&pinger, "{\"id\":1,\"op\":\"ping\"}\n", 1));
	tc_expect_eof(&idle);
	tc_expect_eof(&pinger);
	await_disc(METRICS_DISC_AUTH_TIMEOUT, 2);
	/* The authenticated client has no deadline. */
	cJSON_Delete(ok(&a, "{\"id\":2,\"op\":\"ping\"}\n", 2));
	tc_close(&a);
	tc_close(&idle);
	tc_close(&pinger);
}
END_TEST

START_TEST(unix_socket_mode_and_shutdown)
{
	start(NULL);
	struct stat st;
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0660);
	struct tclient a;
	tc_unix(&a);
	auth(&a, TOKEN_A, 1);
	shim_shutdown(shim);
	tc_expect_eof(&a);
	ck_assert_int_eq(stat(sock_path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_uint_eq(metrics.disconnects[METRICS_DISC_SHUTDOWN], 1);
	ck_assert_uint_eq(metrics.clients, 0);
	tc_close(&a);
}
END_TEST


/* --- the session's ops over a real broker --- */

static void peer_connected(void *arg, bool sp)
{
	(void)arg, (void)sp;
	peer_up = true;
}

static void peer_message(void *arg, const struct mqtt_msg *m)
{
	(void)arg;
	peer_msgs++;
	snprintf(peer_last, sizeof peer_last, "%s %.*s", m->topic, (int)m->len, (const char *)m->payload);
}

static const struct mqtt_ops peer_ops = { peer_connected, NULL, peer_message };

static bool both_up(void *arg)
{
	(void)arg;
	return web_up && peer_up;
}

static bool peer_heard(void *arg)
{
	return peer_msgs >= *(int *)arg;
}

/* A broker, the shim's client connected to it, and a peer client subscribed to fr/#. */
static void start_ops(const char *shim_extra)
{
	web_up = peer_up = false;
	peer_msgs = 0;
	peer_last[0] = '\0';
	test_broker_start(&broker);
	start(shim_extra);
	char uri[64];
	snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", broker.port);
	struct mqtt_opts o = { .uri = uri, .client_id = "test-shim-peer", .clean = true,
			       .backoff_min_ms = 100, .backoff_max_ms = 500 };
	ck_assert_ptr_nonnull(peer = mqtt_new(loop, &o, &peer_ops, NULL));
	ck_assert_int_eq(mqtt_subscribe(peer, "fr/#", 1), 0);
	ck_assert_int_eq(mqtt_start(peer), 0);
	ck_assert_int_eq(mqtt_start(mqtt), 0);
	test_run_until(loop, &broker, WAIT_MS, both_up, NULL, "both clients connected");
	/* The peer hears its own probe: its subscription (sent before) is in place. */
	ck_assert_int_eq(mqtt_publish(peer, "fr/h0/probe", "p", 1, 1, false, NULL, NULL, 0), 0);
	int want = 1;
	test_run_until(loop, &broker, WAIT_MS, peer_heard, &want, "the peer's probe");
	peer_msgs = 0;
}

/* start_ops, and alice signed in on a TCP client. */
static void start_alice(struct tclient *a, const char *shim_extra)
{
	start_ops(shim_extra);
	tc_tcp(a, 0);
	auth(a, TOKEN_A, 1);
}

static void peer_publish(const char *topic, const char *payload)
{
	ck_assert_int_eq(mqtt_publish(peer, topic, payload, strlen(payload), 1, false, NULL, NULL, 0), 0);
}

/* The next line of t; for a stream event, checks its id and event name. */
static cJSON *event(struct tclient *t, int id, const char *name)
{
	cJSON *o = tc_line(t);
	ck_assert_int_eq(cJSON_GetObjectItem(o, "id")->valueint, id);
	ck_assert_msg(jstr(o, "event") && strcmp(jstr(o, "event"), name) == 0, "not event %s: %s",
		      name, jstr(o, "event") ? jstr(o, "event") : "(none)");
	return o;
}

START_TEST(subscribe_until_unsubscribed)
{
	struct tclient a;
	start_alice(&a, NULL);
	/* Outside the granted homes, or a wildcard at the home level: forbidden. */
	fails(&a, "{\"id\":2,\"op\":\"subscribe\",\"filter\":\"fr/h2/#\"}\n", "forbidden", "2");
	fails(&a, "{\"id\":3,\"op\":\"subscribe\",\"filter\":\"fr/+/status\"}\n", "forbidden", "3");
	/* A retained value first: the broker sends it when a subscription starts, which also
	 * shows that the subscription is in place ("subscribed" waits for the broker). */
	ck_assert_int_eq(mqtt_publish(peer, "fr/h1/ctl/k/state/temp", "20", 2, 1, true, NULL, NULL,
				      0), 0);
	int want = 1;
	test_run_until(loop, &broker, WAIT_MS, peer_heard, &want, "the retained value stored");
	tc_send(&a, "{\"id\":7,\"op\":\"subscribe\",\"filter\":\"fr/h1/ctl/+/state/#\"}\n");
	cJSON_Delete(event(&a, 7, "subscribed"));
	cJSON *o = event(&a, 7, "message");
	ck_assert_double_eq(cJSON_GetObjectItem(o, "payload")->valuedouble, 20);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "retained")));
	cJSON_Delete(o);
	/* A live message: its topic, its payload as JSON when it is JSON, not retained. */
	peer_publish("fr/h1/ctl/k/state/temp", "21.5");
	o = event(&a, 7, "message");
	ck_assert_str_eq(jstr(o, "topic"), "fr/h1/ctl/k/state/temp");
	ck_assert_double_eq(cJSON_GetObjectItem(o, "payload")->valuedouble, 21.5);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "retained")));
	cJSON_Delete(o);
	/* A second subscription overlapping the first (its retained copy comes to it alone):
	 * then each gets a live message once. */
	tc_send(&a, "{\"id\":8,\"op\":\"subscribe\",\"filter\":\"fr/h1/#\"}\n");
	cJSON_Delete(event(&a, 8, "subscribed"));
	o = event(&a, 8, "message");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "retained")));
	cJSON_Delete(o);
	peer_publish("fr/h1/ctl/k/state/temp", "\"high\"");
	int got7 = 0, got8 = 0;
	for (int i = 0; i < 2; i++) {
		o = tc_line(&a);
		ck_assert_str_eq(jstr(o, "event"), "message");
		ck_assert_str_eq(jstr(o, "payload"), "high");
		int id = cJSON_GetObjectItem(o, "id")->valueint;
		got7 += id == 7, got8 += id == 8;
		cJSON_Delete(o);
	}
	ck_assert_int_eq(got7, 1);
	ck_assert_int_eq(got8, 1);
	/* Unsubscribe ends the stream, then answers; an unknown sub is not_found. */
	o = ok(&a, "{\"id\":9,\"op\":\"unsubscribe\",\"sub\":7}\n", 7);
	ck_assert_str_eq(jstr(o, "ended"), "unsubscribed");
	cJSON_Delete(o);
	cJSON_Delete(ok(&a, "", 9));
	fails(&a, "{\"id\":10,\"op\":\"unsubscribe\",\"sub\":7}\n", "not_found", "10");
	/* The next message reaches subscription 8 only. */
	peer_publish("fr/h1/ctl/k/state/temp", "22");
	o = event(&a, 8, "message");
	cJSON_Delete(o);
	cJSON_Delete(ok(&a, "{\"id\":11,\"op\":\"ping\"}\n", 11));   /* nothing for 7 before it */
	tc_close(&a);
}
END_TEST

START_TEST(subscriptions_count_toward_max_inflight)
{
	struct tclient a;
	start_alice(&a, "max_inflight = 2;");
	for (int id = 2; id <= 3; id++) {
		char line[96];
		snprintf(line, sizeof line, "{\"id\":%d,\"op\":\"subscribe\",\"filter\":\"fr/h1/x%d\"}\n", id, id);
		tc_send(&a, line);
		cJSON_Delete(event(&a, id, "subscribed"));
	}
	fails(&a, "{\"id\":4,\"op\":\"subscribe\",\"filter\":\"fr/h1/x4\"}\n", "too_many", "4");
	/* One ended: room for another. */
	cJSON_Delete(ok(&a, "{\"id\":5,\"op\":\"unsubscribe\",\"sub\":2}\n", 2));
	cJSON_Delete(ok(&a, "", 5));
	tc_send(&a, "{\"id\":6,\"op\":\"subscribe\",\"filter\":\"fr/h1/x6\"}\n");
	cJSON_Delete(event(&a, 6, "subscribed"));
	tc_close(&a);
}
END_TEST

START_TEST(publish_where_the_acl_allows)
{
	struct tclient a;
	start_alice(&a, NULL);
	/* ok comes after the broker's acknowledgment: the peer, subscribed before, gets it. */
	cJSON_Delete(ok(&a, "{\"id\":2,\"op\":\"publish\",\"topic\":\"fr/h1/ctl/k/cmd\","
			    "\"payload\":{\"id\":\"x\",\"action\":\"lamp\"},\"qos\":1}\n", 2));
	int want = 1;
	test_run_until(loop, &broker, WAIT_MS, peer_heard, &want, "the peer got the publish");
	ck_assert_str_eq(peer_last, "fr/h1/ctl/k/cmd {\"id\":\"x\",\"action\":\"lamp\"}");
	cJSON_Delete(ok(&a, "{\"id\":3,\"op\":\"publish\",\"topic\":\"fr/h1/display\",\"payload\":\"hi\"}\n", 3));
	/* What the broker's ACL refuses a user is forbidden here too, and never published. */
	fails(&a, "{\"id\":4,\"op\":\"publish\",\"topic\":\"fr/h1/ctl/k/status\",\"payload\":\"online\"}\n",
	      "forbidden", "4");
	fails(&a, "{\"id\":5,\"op\":\"publish\",\"topic\":\"fr/h2/ctl/k/cmd\",\"payload\":\"{}\"}\n",
	      "forbidden", "5");
	fails(&a, "{\"id\":6,\"op\":\"publish\",\"topic\":\"fr/h1/ctl/k/cmd\",\"payload\":\"{}\","
		  "\"retain\":true}\n", "forbidden", "6");
	/* A marker: everything before it has reached the peer. */
	cJSON_Delete(ok(&a, "{\"id\":7,\"op\":\"publish\",\"topic\":\"fr/h1/display\",\"payload\":\"end\"}\n", 7));
	want = 3;
	test_run_until(loop, &broker, WAIT_MS, peer_heard, &want, "the marker");
	ck_assert_str_eq(peer_last, "fr/h1/display end");
	ck_assert_int_eq(peer_msgs, 3);
	tc_close(&a);
}
END_TEST

START_TEST(audit_answers_own_records)
{
	start(NULL);
	for (int i = 0; i < 5; i++) {
		cJSON *rec = cJSON_CreateObject();
		cJSON_AddStringToObject(rec, "user", i % 2 ? "bob" : "alice");
		cJSON_AddNumberToObject(rec, "seq", i);
		ck_assert_int_eq(audit_append(audit, rec), 0);
		cJSON_Delete(rec);
	}
	struct tclient a;
	tc_tcp(&a, 0);
	auth(&a, TOKEN_A, 1);
	cJSON *o = ok(&a, "{\"id\":2,\"op\":\"audit\",\"limit\":2}\n", 2);
	const cJSON *recs = cJSON_GetObjectItem(o, "records");
	ck_assert_int_eq(cJSON_GetArraySize(recs), 2);
	/* alice's are 0, 2, 4: the newest two. */
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, 0), "seq")->valueint, 4);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, 1), "seq")->valueint, 2);
	for (int i = 0; i < 2; i++)
		ck_assert_str_eq(jstr(cJSON_GetArrayItem(recs, i), "user"), "alice");
	cJSON_Delete(o);
	tc_close(&a);
}
END_TEST

START_TEST(reload_ends_subscriptions_in_a_home_taken_away)
{
	struct tclient a;
	start_alice(&a, NULL);
	tc_send(&a, "{\"id\":7,\"op\":\"subscribe\",\"filter\":\"fr/h1/#\"}\n");
	cJSON_Delete(event(&a, 7, "subscribed"));
	/* alice keeps her token but loses h1. */
	reload_users("");
	cJSON *o = tc_line(&a);
	ck_assert_int_eq(cJSON_GetObjectItem(o, "id")->valueint, 7);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")));
	ck_assert_str_eq(err_code(o), "forbidden");
	cJSON_Delete(o);
	/* Its broker subscription is gone (the shim held no other), and the connection stays. */
	ck_assert_uint_eq(subs_count(subs), 0);
	peer_publish("fr/h1/ctl/k/state/temp", "1");
	int want = 1;
	test_run_until(loop, &broker, WAIT_MS, peer_heard, &want, "the peer got the message");
	cJSON_Delete(ok(&a, "{\"id\":8,\"op\":\"ping\"}\n", 8));
	fails(&a, "{\"id\":9,\"op\":\"get\",\"topic\":\"fr/h1/status\"}\n", "forbidden", "9");
	tc_close(&a);
}
END_TEST

struct quiet {
	struct tclient *t;
	struct loop_timer timer;
	bool over;
};

static void quiet_over(void *arg)
{
	((struct quiet *)arg)->over = true;
}

static bool quiet_done(void *arg)
{
	struct quiet *q = arg;
	return q->over || tc_readable(q->t);
}

/* Runs the loop for ms and checks that nothing came to t meanwhile (an absence needs a window:
 * what is asserted is that no line came, not how fast anything is). */
static void tc_expect_quiet(struct tclient *t, uint64_t ms)
{
	struct quiet q = { .t = t };
	loop_timer_init(&q.timer, quiet_over, &q);
	loop_timer_start(loop, &q.timer, ms);
	test_run_until(loop, NULL, ms + WAIT_MS, quiet_done, &q, "the quiet window");
	loop_timer_stop(loop, &q.timer);
	ck_assert_msg(t->len == 0 && !t->eof, "unexpected: %.*s", (int)t->len, t->buf);
}

/* "subscribed" means the broker has acknowledged the subscription (SUBACK), so what is
 * published after it arrives: with the broker paused (SIGSTOP) the SUBSCRIBE stays unanswered
 * and so does the client, while a ping sent after it is answered; once the broker runs again
 * "subscribed" comes, and a message published right after it reaches the client. */
START_TEST(subscribed_waits_for_the_suback)
{
	struct tclient a;
	start_alice(&a, NULL);
	ck_assert_int_eq(kill(broker.pid, SIGSTOP), 0);
	tc_send(&a, "{\"id\":7,\"op\":\"subscribe\",\"filter\":\"fr/h1/ctl/+/state/#\"}\n");
	/* Requests are run in order: before the fix "subscribed" came ahead of this answer. */
	cJSON_Delete(ok(&a, "{\"id\":8,\"op\":\"ping\"}\n", 8));
	tc_expect_quiet(&a, 1000);
	ck_assert_int_eq(kill(broker.pid, SIGCONT), 0);
	cJSON_Delete(event(&a, 7, "subscribed"));
	peer_publish("fr/h1/ctl/k/state/temp", "21");
	cJSON *o = event(&a, 7, "message");
	ck_assert_str_eq(jstr(o, "topic"), "fr/h1/ctl/k/state/temp");
	cJSON_Delete(o);
	tc_close(&a);
}
END_TEST

static bool web_down(void *arg)
{
	(void)arg;
	return !mqtt_is_connected(mqtt);
}

/* Subscribed while frAroundWeb has no broker connection: "subscribed" comes with the SUBACK of
 * the resubscribe on reconnect, and then messages flow. */
START_TEST(subscribed_after_a_reconnect)
{
	struct tclient a;
	start_alice(&a, NULL);
	test_broker_kill(&broker);
	test_run_until(loop, NULL, WAIT_MS, web_down, NULL, "the broker connection lost");
	tc_send(&a, "{\"id\":7,\"op\":\"subscribe\",\"filter\":\"fr/h1/#\"}\n");
	cJSON_Delete(ok(&a, "{\"id\":8,\"op\":\"ping\"}\n", 8));
	web_up = peer_up = false;
	test_broker_start(&broker);
	cJSON_Delete(event(&a, 7, "subscribed"));
	test_run_until(loop, &broker, WAIT_MS, both_up, NULL, "both clients reconnected");
	peer_publish("fr/h1/display", "back");
	cJSON *o = event(&a, 7, "message");
	ck_assert_str_eq(jstr(o, "payload"), "back");
	cJSON_Delete(o);
	tc_close(&a);
}
END_TEST

/* A subscription the broker refuses ends with an error (forbidden: not authorized), frees its
 * place in max_inflight and leaves no broker subscription; others are unaffected. */
START_TEST(a_refused_subscription_is_an_error)
{
	struct tclient a;
	test_broker_refuse_subscribe(&broker, "fr/h1/secret/#");
	start_alice(&a, "max_inflight = 1;");
	tc_send(&a, "{\"id\":7,\"op\":\"subscribe\",\"filter\":\"fr/h1/secret/#\"}\n");
	cJSON *o = tc_line(&a);
	ck_assert_int_eq(cJSON_GetObjectItem(o, "id")->valueint, 7);
	ck_assert_msg(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")), "not an error: %s",
		      jstr(o, "event") ? jstr(o, "event") : "?");
	ck_assert_str_eq(err_code(o), "forbidden");
	cJSON_Delete(o);
	ck_assert_uint_eq(subs_count(subs), 0);
	ck_assert_uint_eq(metrics.errors[SHIM_E_FORBIDDEN], 1);
	tc_send(&a, "{\"id\":8,\"op\":\"subscribe\",\"filter\":\"fr/h1/ctl/#\"}\n");
	cJSON_Delete(event(&a, 8, "subscribed"));
	peer_publish("fr/h1/secret/x", "s");
	peer_publish("fr/h1/ctl/k/status", "online");
	o = event(&a, 8, "message");
	ck_assert_str_eq(jstr(o, "topic"), "fr/h1/ctl/k/status");
	cJSON_Delete(o);
	tc_close(&a);
}
END_TEST

int main(void)
{
	log_init("test_shim", true, 0);
	Suite *s = suite_create("shim");
	TCase *tc = tcase_create("transport");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, auth_and_framing);
	tcase_add_test(tc, fifth_wrong_token_closes);
	tcase_add_test(tc, line_limits);
	tcase_add_test(tc, max_clients_counts_the_authenticated);
	tcase_add_test(tc, a_client_that_does_not_read_is_cut_off);
	tcase_add_test(tc, reload_disconnects_a_revoked_token);
	tcase_add_test(tc, auth_timeout_closes_strangers_only);
	tcase_add_test(tc, unix_socket_mode_and_shutdown);
	tcase_add_test(tc, audit_answers_own_records);
	suite_add_tcase(s, tc);
	tc = tcase_create("ops");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, subscribe_until_unsubscribed);
	tcase_add_test(tc, subscriptions_count_toward_max_inflight);
	tcase_add_test(tc, publish_where_the_acl_allows);
	tcase_add_test(tc, reload_ends_subscriptions_in_a_home_taken_away);
	tcase_add_test(tc, subscribed_waits_for_the_suback);
	tcase_add_test(tc, subscribed_after_a_reconnect);
	tcase_add_test(tc, a_refused_subscription_is_an_error);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
