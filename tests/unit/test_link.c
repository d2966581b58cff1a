/* test_link: TLS-PSK links over real loopback TCP, both ends in one loop in this process:
 * handshakes in both dial directions, refused keys and identities, peers that send garbage,
 * bad frames, stay silent, stop reading or never read, and link_free from a callback. */
#include "frame.h"
#include "keys.h"
#include "link.h"
#include "loop.h"
#include "net.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

enum ep_mode {
	EP_PLAIN,       /* only records */
	EP_ECHO,        /* sends every message back */
	EP_COUNTER,     /* sends n+1 for every n received, until limit */
	EP_FREE_ON_MSG, /* link_free inside on_msg */
	EP_SEND3,       /* sends three messages on up */
	EP_FLOOD,       /* on up, sends until link_send fails */
	EP_FREE_ON_UP,  /* link_free inside on_up */
};

struct ep {
	struct link *l;
	enum ep_mode mode;
	int limit;
	int ups, downs, msgs;
	int rxs;                /* on_rx calls */
	int last_n;
	int send_rc;
	enum link_down why;
	char detail[256];
	char peer_id[64];
	char last_type[64];
};

static const uint8_t secret_a[32] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
				      0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
				      0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
				      0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };
static const uint8_t secret_b[32] = { 0x22 };

/* One test's world; each test runs in its own forked process. */
static struct {
	struct loop *loop;
	struct link_ctx *srv_ctx, *cli_ctx;
	int lfd;
	uint16_t port;
	const char *expect_id;
	enum ep_mode srv_mode;
	struct ep srv[4];
	int nsrv;
	struct ep cli;
	struct loop_timer safety, deadline;
	bool timed_out;
	bool (*done)(void);
	int plain_fd;
} T;

static void check_done(void)
{
	if (T.done && T.done())
		loop_stop(T.loop);
}

static void on_up(struct link *l, void *arg)
{
	struct ep *e = arg;
	e->ups++;
	snprintf(e->peer_id, sizeof e->peer_id, "%s", link_peer_id(l));
	if (e->mode == EP_SEND3) {
		for (int i = 0; i < 3; i++) {
			char buf[64];
			int n = snprintf(buf, sizeof buf, "{\"type\":\"m\",\"n\":%d}", i);
			ck_assert_int_eq(link_send_raw(l, buf, (size_t)n), 0);
		}
	} else if (e->mode == EP_FREE_ON_UP) {
		link_free(l);
		e->l = NULL;
	} else if (e->mode == EP_FLOOD) {
		static char big[16384];
		memset(big, 'x', sizeof big);
		memcpy(big, "{\"type\":\"bulk\",\"d\":\"", 20);
		memcpy(big + sizeof big - 2, "\"}", 2);
		e->send_rc = 0;
		for (int i = 0; i < 100000 && e->send_rc == 0; i++)
			e->send_rc = link_send_raw(l, big, sizeof big);
		/* The drop is reported later, from the loop. */
		ck_assert_int_eq(e->downs, 0);
	}
	check_done();
}

static void on_msg(struct link *l, const struct lanmsg *lm, void *arg)
{
	struct ep *e = arg;
	const cJSON *msg = lm->json;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(msg, "n");

	e->msgs++;
	/* The bytes as they came, and the type they say. */
	ck_assert_uint_eq(strlen(lm->text), lm->len);
	ck_assert_ptr_nonnull(strstr(lm->text, lm->type_name));
	snprintf(e->last_type, sizeof e->last_type, "%s", lm->type_name);
	e->last_n = cJSON_IsNumber(n) ? n->valueint : -1;
	ck_assert_str_ne(e->last_type, "ping");
	ck_assert_str_ne(e->last_type, "pong");
	if (e->mode == EP_ECHO) {
		ck_assert_int_eq(link_send(l, msg), 0);
	} else if (e->mode == EP_COUNTER && e->last_n + 1 < e->limit) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "type", "echo");
		cJSON_AddNumberToObject(m, "n", e->last_n + 1);
		ck_assert_int_eq(link_send(l, m), 0);
		cJSON_Delete(m);
	} else if (e->mode == EP_FREE_ON_MSG) {
		link_free(l);
		e->l = NULL;
	}
	check_done();
}

static void on_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct ep *e = arg;
	e->downs++;
	e->why = why;
	snprintf(e->detail, sizeof e->detail, "%s", detail);
	ck_assert_ptr_eq(l, e->l);
	ck_assert(!link_is_up(l));
	ck_assert_int_eq(link_send_raw(l, "{}", 2), -ENOTCONN);
	link_free(l);
	e->l = NULL;
	check_done();
}

/* The first handshake bytes of an accepted link: once, before on_up. */
static void on_rx(struct link *l, void *arg)
{
	struct ep *e = arg;
	ck_assert(!link_is_up(l));
	ck_assert_int_eq(e->ups, 0);
	e->rxs++;
}

static const struct link_ops ops = { on_up, on_msg, on_down, on_rx };

static void on_accept(void *arg, int fd, uint32_t events)
{
	(void)arg;
	(void)fd;
	(void)events;
	for (;;) {
		struct sockaddr_storage peer;
		int c = net_tcp_accept(T.lfd, &peer);
		if (c < 0)
			break;
		ck_assert_int_lt(T.nsrv, 4);
		struct ep *e = &T.srv[T.nsrv++];
		e->mode = T.srv_mode;
		e->l = link_accept(T.srv_ctx, T.loop, c, &peer, T.expect_id, &ops, e);
		ck_assert_ptr_nonnull(e->l);
	}
}

static void on_safety(void *arg)
{
	(void)arg;
	T.timed_out = true;
	loop_stop(T.loop);
}

static void on_deadline(void *arg)
{
	(void)arg;
	loop_stop(T.loop);
}

/* Runs the loop until done() holds; a generous safety timer turns a hang into a failure. */
static void run(bool (*done)(void))
{
	T.done = done;
	if (done())
		return;
	loop_timer_start(T.loop, &T.safety, 10000);
	loop_run(T.loop);
	loop_timer_stop(T.loop, &T.safety);
	T.done = NULL;
	ck_assert_msg(!T.timed_out, "safety timer fired");
}

static void run_for(uint64_t ms)
{
	loop_timer_start(T.loop, &T.deadline, ms);
	loop_run(T.loop);
}

static struct link_ctx *mkctx(const uint8_t *secret, uint64_t ping_iv, uint64_t ping_to,
			      uint64_t hs_to, size_t max_outq)
{
	struct link_ctx_opts o = {
		.secret = secret,
		.ping_interval_ms = ping_iv,
		.ping_timeout_ms = ping_to,
		.handshake_timeout_ms = hs_to,
		.max_outq = max_outq,
	};
	struct link_ctx *c = link_ctx_new(&o);
	ck_assert_ptr_nonnull(c);
	return c;
}

static void to_addr(uint16_t port, struct sockaddr_storage *ss)
{
	ck_assert_int_eq(net_addr_parse("127.0.0.1", port, ss, NULL), 0);
}

static void dial(struct link_ctx *c, const char *id, enum ep_mode mode)
{
	struct sockaddr_storage ss;
	to_addr(T.port, &ss);
	T.cli.mode = mode;
	T.cli.l = link_dial(c, T.loop, &ss, NULL, id, &ops, &T.cli);
	ck_assert_ptr_nonnull(T.cli.l);
}

/* A blocking connect to our listener (it completes from the backlog), left non-blocking. */
static int plain_connect(void)
{
	struct sockaddr_storage ss;
	to_addr(T.port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	/* Else Nagle holds back what the raw TLS client writes right after its Finished. */
	net_set_nodelay(fd);
	return fd;
}

static void setup(void)
{
	memset(&T, 0, sizeof T);
	T.plain_fd = -1;
	T.loop = loop_new();
	ck_assert_ptr_nonnull(T.loop);
	loop_timer_init(&T.safety, on_safety, NULL);
	loop_timer_init(&T.deadline, on_deadline, NULL);
	T.lfd = net_tcp_listen("127.0.0.1", 0, 16);
	ck_assert_int_ge(T.lfd, 0);
	T.port = net_local_port(T.lfd);
	ck_assert_int_ne(T.port, 0);
	ck_assert_int_eq(loop_io_add(T.loop, T.lfd, EPOLLIN, on_accept, NULL), 0);
	T.srv_mode = EP_ECHO;
}

static void teardown(void)
{
	link_free(T.cli.l);
	for (int i = 0; i < T.nsrv; i++)
		link_free(T.srv[i].l);
	link_ctx_free(T.srv_ctx);
	link_ctx_free(T.cli_ctx);
	loop_io_del(T.loop, T.lfd);
	close(T.lfd);
	if (T.plain_fd >= 0)
		close(T.plain_fd);
	loop_free(T.loop);
}

/* --- a raw TLS-PSK client that we control byte by byte --- */

struct rawtls {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	const char *id;
	const void *payload;
	size_t plen;
	bool up, failed;
};

static int raw_psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		       SSL_SESSION **sess)
{
	struct rawtls *r = SSL_get_app_data(ssl);
	static const unsigned char aes128gcm[2] = { 0x13, 0x01 };
	uint8_t key[32];
	(void)md;
	ck_assert_int_eq(keys_link_psk(secret_a, r->id, key), 0);
	SSL_SESSION *s = SSL_SESSION_new();
	ck_assert(SSL_SESSION_set1_master_key(s, key, sizeof key));
	ck_assert(SSL_SESSION_set_cipher(s, SSL_CIPHER_find(ssl, aes128gcm)));
	ck_assert(SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION));
	*sess = s;
	*id = (const unsigned char *)r->id;
	*idlen = strlen(r->id);
	return 1;
}

static void raw_step(struct rawtls *r)
{
	int rc = SSL_do_handshake(r->ssl);
	if (rc == 1) {
		r->up = true;
		if (r->plen)
			ck_assert_int_eq(SSL_write(r->ssl, r->payload, (int)r->plen), (int)r->plen);
		/* From now on this peer neither reads nor writes: the socket stays open. */
		loop_io_del(T.loop, r->fd);
		check_done();
		return;
	}
	int err = SSL_get_error(r->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		loop_io_mod(T.loop, r->fd, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
		return;
	}
	r->failed = true;
	loop_io_del(T.loop, r->fd);
	check_done();
}

static void raw_on_io(void *arg, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	raw_step(arg);
}

static void raw_start(struct rawtls *r, const char *id, const void *payload, size_t plen)
{
	memset(r, 0, sizeof *r);
	r->id = id;
	r->payload = payload;
	r->plen = plen;
	r->fd = plain_connect();
	r->ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(r->ctx);
	SSL_CTX_set_min_proto_version(r->ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(r->ctx, "TLS_AES_128_GCM_SHA256");
	SSL_CTX_set_psk_use_session_callback(r->ctx, raw_psk_use);
	r->ssl = SSL_new(r->ctx);
	SSL_set_app_data(r->ssl, r);
	SSL_set_fd(r->ssl, r->fd);
	SSL_set_connect_state(r->ssl);
	ck_assert_int_eq(loop_io_add(T.loop, r->fd, EPOLLIN, raw_on_io, r), 0);
	raw_step(r);
}

static void raw_free(struct rawtls *r)
{
	loop_io_del(T.loop, r->fd);
	SSL_free(r->ssl);
	SSL_CTX_free(r->ctx);
	close(r->fd);
}

/* --- conditions --- */

static bool both_up(void)
{
	return T.cli.ups == 1 && T.nsrv == 1 && T.srv[0].ups == 1;
}

static bool counter_done(void)
{
	return T.cli.msgs > 0 && T.cli.last_n + 1 >= T.cli.limit && T.srv[0].msgs == T.cli.limit;
}

static bool both_down(void)
{
	return T.cli.downs == 1 && T.nsrv == 1 && T.srv[0].downs == 1;
}

static bool srv0_down(void)
{
	return T.nsrv >= 1 && T.srv[0].downs == 1;
}

static bool cli_down(void)
{
	return T.cli.downs == 1;
}

static bool good_done_garbage_dropped(void)
{
	return counter_done() && T.nsrv == 2 && T.srv[1].downs == 1;
}

/* --- tests --- */

/* _i == 0: the home server dials a controller, which accepts only its own id.
 * _i == 1: a controller dials the home server, which accepts any valid id. */
START_TEST(handshake_and_messages)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.expect_id = _i == 0 ? "ctl-1" : NULL;
	T.cli.limit = 20;
	dial(T.cli_ctx, "ctl-1", EP_COUNTER);
	ck_assert_str_eq(link_peer_id(T.cli.l), "ctl-1");
	ck_assert(!link_is_up(T.cli.l));
	ck_assert_int_eq(link_send_raw(T.cli.l, "{}", 2), -ENOTCONN);
	run(both_up);
	ck_assert_str_eq(T.cli.peer_id, "ctl-1");
	ck_assert_str_eq(T.srv[0].peer_id, "ctl-1");
	ck_assert_str_eq(link_peer_id(T.srv[0].l), "ctl-1");
	char want[NET_ADDRSTRLEN];
	snprintf(want, sizeof want, "127.0.0.1:%u", T.port);
	ck_assert_str_eq(link_peer_addr(T.cli.l), want);
	ck_assert(link_is_up(T.cli.l) && link_is_up(T.srv[0].l));
	ck_assert_int_eq(T.srv[0].rxs, 1);   /* accepted side only, once */
	ck_assert_int_eq(T.cli.rxs, 0);

	/* Too big for a frame: refused locally, the link stays up. */
	size_t big = FRAME_MAX_DEFAULT + 1;
	char *s = malloc(big);
	memset(s, ' ', big);
	ck_assert_int_eq(link_send_raw(T.cli.l, s, big), -EMSGSIZE);
	free(s);
	ck_assert(link_is_up(T.cli.l));

	/* Client -> server n, server echoes n back, client sends n+1. */
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "echo");
	cJSON_AddNumberToObject(m, "n", 0);
	ck_assert_int_eq(link_send(T.cli.l, m), 0);
	cJSON_Delete(m);
	run(counter_done);
	ck_assert_int_eq(T.srv[0].msgs, 20);
	ck_assert_int_eq(T.cli.msgs, 20);
	ck_assert_str_eq(T.cli.last_type, "echo");
	ck_assert_int_eq(T.cli.last_n, 19);
	ck_assert_int_eq(T.cli.downs + T.srv[0].downs, 0);

	/* link_free sends close_notify: the other side sees a clean close. */
	link_free(T.cli.l);
	T.cli.l = NULL;
	run(srv0_down);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_CLOSED);
	ck_assert_int_eq(T.cli.downs, 0);
	ck_assert_int_eq(T.srv[0].rxs, 1);
}
END_TEST

START_TEST(wrong_secret)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_b, 0, 0, 0, 0);
	dial(T.cli_ctx, "ctl-1", EP_PLAIN);
	run(both_down);
	ck_assert_int_eq(T.cli.why, LINK_DOWN_HANDSHAKE);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_HANDSHAKE);
	ck_assert_int_eq(T.cli.ups + T.srv[0].ups, 0);
}
END_TEST

START_TEST(expect_id_refuses_other)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.expect_id = "ctl-a";
	dial(T.cli_ctx, "ctl-b", EP_PLAIN);
	run(both_down);
	ck_assert_int_eq(T.cli.why, LINK_DOWN_HANDSHAKE);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_HANDSHAKE);
	ck_assert_msg(strstr(T.srv[0].detail, "'ctl-b' refused"), "detail: %s", T.srv[0].detail);
	ck_assert_int_eq(T.cli.ups + T.srv[0].ups, 0);
}
END_TEST

START_TEST(bad_ids_refused_locally)
{
	struct sockaddr_storage ss;
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	to_addr(T.port, &ss);
	const char *bad[] = { "", "a b", "ctl/1", "x234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		ck_assert_ptr_null(link_dial(T.cli_ctx, T.loop, &ss, NULL, bad[i], &ops, NULL));
		ck_assert_int_eq(errno, EINVAL);
	}
}
END_TEST

START_TEST(garbage_peer_dropped_good_link_goes_on)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli.limit = 200;
	dial(T.cli_ctx, "ctl-1", EP_COUNTER);
	run(both_up);
	/* The good exchange and the garbage peer run at the same time. */
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "echo");
	cJSON_AddNumberToObject(m, "n", 0);
	ck_assert_int_eq(link_send(T.cli.l, m), 0);
	cJSON_Delete(m);
	T.plain_fd = plain_connect();
	const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(write(T.plain_fd, junk, sizeof junk - 1), (ssize_t)sizeof junk - 1);
	run(good_done_garbage_dropped);
	ck_assert_int_eq(T.srv[1].why, LINK_DOWN_HANDSHAKE);
	ck_assert_int_eq(T.srv[1].ups, 0);
	ck_assert_int_eq(T.srv[0].downs + T.cli.downs, 0);
	ck_assert(link_is_up(T.cli.l) && link_is_up(T.srv[0].l));
	ck_assert_int_eq(T.srv[0].msgs, 200);
}
END_TEST

START_TEST(huge_length_header)
{
	struct rawtls r;
	static const uint8_t hdr[4] = { 0x7f, 0xff, 0xff, 0xff };
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	raw_start(&r, "ctl-1", hdr, sizeof hdr);
	run(srv0_down);
	ck_assert(r.up);
	ck_assert_int_eq(T.srv[0].ups, 1);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_BAD_FRAME);
	ck_assert_msg(strstr(T.srv[0].detail, "2147483647"), "detail: %s", T.srv[0].detail);
	raw_free(&r);
}
END_TEST

static const struct {
	const char *body;
	size_t len;
} bad_frames[] = {
	{ "not json", 8 },
	{ "{\"x\":1}", 7 },
	{ "[1,2]", 5 },
	{ "\"type\"", 6 },
	{ "{\"type\":5}", 10 },
	{ "{\"type\":\"a\"} x", 14 },
	{ "{\"type\":\"\xff\"}", 12 },
	{ "{\"type\":\"a\"}\0", 13 },
	{ "{\"type\":\"ping\"}", 15 },
	{ "{\"type\":\"pong\",\"seq\":\"1\"}", 25 },
	/* an escaped NUL in a value and in a key (cJSON would cut the string silently) */
	{ "{\"type\":\"command\",\"a\":\"x\\u0000y\"}", 33 },
	{ "{\"type\":\"command\",\"a\\u0000\":1}", 30 },
};

START_TEST(bad_frame)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	dial(T.cli_ctx, "ctl-1", EP_PLAIN);
	run(both_up);
	ck_assert_int_eq(link_send_raw(T.cli.l, bad_frames[_i].body, bad_frames[_i].len), 0);
	run(srv0_down);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_BAD_FRAME);
	ck_assert_int_eq(T.srv[0].msgs, 0);
	/* The client sees the server go away (no close_notify on a drop). */
	run(cli_down);
	ck_assert_int_eq(T.cli.why, LINK_DOWN_IO);
}
END_TEST

START_TEST(silent_peer_handshake_timeout)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 100, 0);
	T.plain_fd = plain_connect();
	run(srv0_down);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_HANDSHAKE);
	ck_assert_msg(strstr(T.srv[0].detail, "timed out"), "detail: %s", T.srv[0].detail);
}
END_TEST

START_TEST(deaf_peer_ping_timeout)
{
	struct rawtls r;
	/* The raw peer completes TLS, then neither reads nor answers pings. */
	T.srv_ctx = mkctx(secret_a, 20, 200, 0, 0);
	raw_start(&r, "ctl-1", NULL, 0);
	run(srv0_down);
	ck_assert(r.up);
	ck_assert_int_eq(T.srv[0].ups, 1);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_TIMEOUT);
	raw_free(&r);
}
END_TEST

START_TEST(keepalive_keeps_idle_link_up)
{
	/* Only the client pings, so it stays up only if the server answers with pongs: run for
	 * 2.5 pong timeouts. The timeout is 1 s, not less: ASan under a loaded machine stalled this
	 * process past 400 ms once, and the link rightly went down. */
	T.srv_ctx = mkctx(secret_a, 600000, 1000, 0, 0);
	T.cli_ctx = mkctx(secret_a, 20, 1000, 0, 0);
	dial(T.cli_ctx, "ctl-1", EP_PLAIN);
	run(both_up);
	run_for(2500);
	ck_assert_int_eq(T.cli.downs + T.srv[0].downs, 0);
	ck_assert(link_is_up(T.cli.l) && link_is_up(T.srv[0].l));
	/* Pings and pongs are never delivered. */
	ck_assert_int_eq(T.cli.msgs + T.srv[0].msgs, 0);
}
END_TEST

START_TEST(connect_refused)
{
	int fd = net_tcp_listen("127.0.0.1", 0, 1);
	ck_assert_int_ge(fd, 0);
	uint16_t port = net_local_port(fd);
	close(fd);
	struct sockaddr_storage ss;
	to_addr(port, &ss);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli.l = link_dial(T.cli_ctx, T.loop, &ss, NULL, "ctl-1", &ops, &T.cli);
	ck_assert_ptr_nonnull(T.cli.l);
	/* Never reported from inside link_dial. */
	ck_assert_int_eq(T.cli.downs, 0);
	run(cli_down);
	ck_assert_int_eq(T.cli.why, LINK_DOWN_CONNECT);
}
END_TEST

START_TEST(outq_overflow)
{
	struct rawtls r;
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 256 * 1024);
	T.srv_mode = EP_FLOOD;
	raw_start(&r, "ctl-1", NULL, 0);
	run(srv0_down);
	ck_assert_int_eq(T.srv[0].send_rc, -ENOBUFS);
	ck_assert_int_eq(T.srv[0].why, LINK_DOWN_OUTQ);
	raw_free(&r);
}
END_TEST

START_TEST(free_inside_on_msg)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.srv_mode = EP_FREE_ON_MSG;
	dial(T.cli_ctx, "ctl-1", EP_SEND3);
	run(cli_down);
	/* The other two messages, likely in the same read, were not delivered to a freed link. */
	ck_assert_int_eq(T.srv[0].msgs, 1);
	ck_assert_int_eq(T.srv[0].downs, 0);
	ck_assert_ptr_null(T.srv[0].l);
	/* close_notify went out first, but closing with unread input also sends a RST. */
	ck_assert(T.cli.why == LINK_DOWN_CLOSED || T.cli.why == LINK_DOWN_IO);
}
END_TEST

START_TEST(free_inside_on_up)
{
	T.srv_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.cli_ctx = mkctx(secret_a, 0, 0, 0, 0);
	T.srv_mode = EP_FREE_ON_UP;
	dial(T.cli_ctx, "ctl-1", EP_SEND3);
	run(cli_down);
	ck_assert_int_eq(T.srv[0].ups, 1);
	ck_assert_int_eq(T.srv[0].msgs + T.srv[0].downs, 0);
	ck_assert(T.cli.why == LINK_DOWN_CLOSED || T.cli.why == LINK_DOWN_IO);
}
END_TEST

START_TEST(down_strings)
{
	ck_assert_str_eq(link_down_str(LINK_DOWN_BAD_FRAME), "bad frame");
	ck_assert_str_eq(link_down_str(LINK_DOWN_OUTQ), "output queue full");
	ck_assert_str_eq(link_down_str(LINK_DOWN_TIMEOUT), "ping timeout");
	ck_assert_str_eq(link_down_str((enum link_down)99), "unknown");
}
END_TEST

static Suite *link_suite(void)
{
	Suite *s = suite_create("link");
	TCase *tc = tcase_create("link");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, handshake_and_messages, 0, 2);
	tcase_add_test(tc, wrong_secret);
	tcase_add_test(tc, expect_id_refuses_other);
	tcase_add_test(tc, bad_ids_refused_locally);
	tcase_add_test(tc, garbage_peer_dropped_good_link_goes_on);
	tcase_add_test(tc, huge_length_header);
	tcase_add_loop_test(tc, bad_frame, 0, (int)(sizeof bad_frames / sizeof bad_frames[0]));
	tcase_add_test(tc, silent_peer_handshake_timeout);
	tcase_add_test(tc, deaf_peer_ping_timeout);
	tcase_add_test(tc, keepalive_keeps_idle_link_up);
	tcase_add_test(tc, connect_refused);
	tcase_add_test(tc, outq_overflow);
	tcase_add_test(tc, free_inside_on_msg);
	tcase_add_test(tc, free_inside_on_up);
	tcase_add_test(tc, down_strings);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(link_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
