/* link: TLS 1.3 PSK link carrying JSON frames inside the epoll loop; see link.h. Its TLS set-up
 * (contexts, PSK callbacks) is linktls.c. */
#include "link_int.h"
#include "frame.h"
#include "lanmsg.h"
#include "log.h"
#include "loop.h"
#include "name.h"
#include "net.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static const char *link_down_names[] = {
	[LINK_DOWN_CONNECT] = "connect failed",
	[LINK_DOWN_HANDSHAKE] = "handshake failed",
	[LINK_DOWN_CLOSED] = "closed by peer",
	[LINK_DOWN_IO] = "i/o error",
	[LINK_DOWN_BAD_FRAME] = "bad frame",
	[LINK_DOWN_TIMEOUT] = "ping timeout",
	[LINK_DOWN_OUTQ] = "output queue full",
	[LINK_DOWN_LOCAL] = "closed locally",
};

const char *link_down_str(enum link_down r)
{
	if ((unsigned)r >= sizeof link_down_names / sizeof link_down_names[0])
		return "unknown";
	return link_down_names[r];
}

static const char *link_id_or_unknown(const struct link *l)
{
	return l->peer_id[0] ? l->peer_id : "?";
}

/* --- teardown and callbacks --- */

/* Only from the loop's deferred calls (link_free) or before the link was handed out: callers
 * up the stack may still hold l while the iteration lasts (they see LS_DOWN). */
static void link_destroy(void *arg)
{
	struct link *l = arg;
	loop_timer_stop(l->loop, &l->t_hs);
	loop_timer_stop(l->loop, &l->t_ping);
	loop_timer_stop(l->loop, &l->t_rx);
	loop_defer_cancel(l->loop, &l->d_down);
	loop_defer_cancel(l->loop, &l->d_free);
	if (l->fd >= 0) {
		loop_io_del(l->loop, l->fd);
		close(l->fd);
	}
	SSL_free(l->ssl);
	frame_dec_free(&l->dec);
	free(l->out);
	free(l);
}

/* Stops all I/O; the SSL object stays until link_destroy because callers up the stack may
 * still hold it (they check l->state before touching it again). */
static void link_close_io(struct link *l, bool notify)
{
	loop_timer_stop(l->loop, &l->t_hs);
	loop_timer_stop(l->loop, &l->t_ping);
	loop_timer_stop(l->loop, &l->t_rx);
	if (l->fd < 0)
		return;
	loop_io_del(l->loop, l->fd);
	if (notify && l->state == LS_UP) {
		/* Best effort: one non-blocking close_notify so the peer sees a clean close. */
		ERR_clear_error();
		SSL_shutdown(l->ssl);
		ERR_clear_error();
	}
	close(l->fd);
	l->fd = -1;
}

static void link_on_down_deferred(void *arg)
{
	struct link *l = arg;

	if (l->ops->on_down)
		l->ops->on_down(l, l->why, l->detail, l->arg);
}

/* Closes the link and queues on_down for the end of the loop iteration, so it never runs
 * inside link_send or inside another callback of this link. */
static void link_fail(struct link *l, enum link_down why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void link_fail(struct link *l, enum link_down why, const char *fmt, ...)
{
	va_list ap;

	if (l->state == LS_DOWN)
		return;
	va_start(ap, fmt);
	vsnprintf(l->detail, sizeof l->detail, fmt, ap);
	va_end(ap);
	l->why = why;
	if (l->server && l->state != LS_UP)
		/* A stranger's failed handshake: the owner counts it in its rate-limited log
		 * (peerlimit), or a flood of them would flood the log. */
		log_debug("link %s (%s): %s: %s", l->addr, link_id_or_unknown(l), link_down_str(why),
			  l->detail);
	else if (why == LINK_DOWN_CLOSED)
		log_info("link %s (%s): %s: %s", l->addr, link_id_or_unknown(l), link_down_str(why),
			 l->detail);
	else
		log_warnx("link %s (%s): %s: %s", l->addr, link_id_or_unknown(l),
			  link_down_str(why), l->detail);
	link_close_io(l, false);
	l->state = LS_DOWN;
	loop_defer(l->loop, &l->d_down);
}

static void link_io_update(struct link *l)
{
	uint32_t ev;

	if (l->fd < 0)
		return;
	if (l->state == LS_CONNECTING)
		ev = EPOLLOUT;
	else if (l->state == LS_HANDSHAKE)
		ev = EPOLLIN | (l->read_wants_write ? EPOLLOUT : 0);
	else
		ev = EPOLLIN | (l->read_wants_write ||
				(l->out_off < l->out_len && !l->write_wants_read) ? EPOLLOUT : 0);
	if (ev == l->events)
		return;
	if (loop_io_mod(l->loop, l->fd, ev) < 0) {
		link_fail(l, LINK_DOWN_IO, "epoll_ctl: %s", strerror(errno));
		return;
	}
	l->events = ev;
}

/* --- output --- */

static void link_flush(struct link *l)
{
	while (l->state == LS_UP && l->out_off < l->out_len) {
		size_t n = l->wpend;
		if (!n)
			n = l->out_len - l->out_off < LINK_WRITE_CHUNK ? l->out_len - l->out_off
								       : LINK_WRITE_CHUNK;
		ERR_clear_error();
		int rc = SSL_write(l->ssl, l->out + l->out_off, (int)n);
		int saved = errno;
		if (rc > 0) {
			l->out_off += (size_t)rc;
			l->wpend = 0;
			l->write_wants_read = false;
			continue;
		}
		int err = SSL_get_error(l->ssl, rc);
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
			/* OpenSSL requires the same write to be repeated. */
			l->wpend = n;
			l->write_wants_read = err == SSL_ERROR_WANT_READ;
			break;
		}
		char why[200];
		linktls_reason(l, err, rc, saved, why, sizeof why);
		link_fail(l, LINK_DOWN_IO, "write: %s", why);
		return;
	}
	if (l->out_off == l->out_len) {
		/* Drained: give the queue back. Most links are idle most of the time, and a home
		 * server holds one per controller. */
		free(l->out);
		l->out = NULL;
		l->out_off = l->out_len = l->out_cap = 0;
	}
}

int link_send_raw(struct link *l, const char *json, size_t len)
{
	if (!l || l->state != LS_UP)
		return -ENOTCONN;
	if (len == 0 || len > l->ctx->max_frame)
		return -EMSGSIZE;
	size_t need = FRAME_HDR_LEN + len;
	size_t pending = l->out_len - l->out_off;
	if (pending + need > l->ctx->max_outq) {
		link_fail(l, LINK_DOWN_OUTQ, "%zu bytes pending, %zu more exceed the limit of %zu",
			  pending, need, l->ctx->max_outq);
		return -ENOBUFS;
	}
	if (l->out_cap - l->out_len < need && l->out_off > 0) {
		memmove(l->out, l->out + l->out_off, pending);
		l->out_off = 0;
		l->out_len = pending;
	}
	if (l->out_cap - l->out_len < need) {
		size_t cap = l->out_cap ? l->out_cap : 4096;
		while (cap - l->out_len < need)
			cap *= 2;
		uint8_t *p = realloc(l->out, cap);
		if (!p) {
			link_fail(l, LINK_DOWN_IO, "out of memory for the output queue");
			return -ENOMEM;
		}
		l->out = p;
		l->out_cap = cap;
	}
	frame_put_header(l->out + l->out_len, (uint32_t)len);
	memcpy(l->out + l->out_len + FRAME_HDR_LEN, json, len);
	l->out_len += need;
	l->last_tx = loop_now(l->loop);
	link_flush(l);
	if (l->state != LS_UP)
		return -EIO;
	link_io_update(l);
	return 0;
}

int link_send(struct link *l, const cJSON *msg)
{
	if (!l || l->state != LS_UP)
		return -ENOTCONN;
	if (!cJSON_IsObject(msg))
		return -EINVAL;
	char *s = cJSON_PrintUnformatted(msg);
	if (!s)
		return -ENOMEM;
	int rc = link_send_raw(l, s, strlen(s));
	free(s);
	return rc;
}

/* --- input --- */

/* One frame body: checked (lanmsg_decode), then pings answered, pongs swallowed, the rest
 * delivered. */
static void link_body(struct link *l, const char *body, size_t len)
{
	struct lanmsg m;
	char why[200], pong[96];

	if (lanmsg_decode(&m, body, len, why, sizeof why) < 0) {
		link_fail(l, LINK_DOWN_BAD_FRAME, "%s", why);
		return;
	}
	if (m.type == LANMSG_PING) {
		int n = lanmsg_pong(pong, sizeof pong, &m);
		if (n > 0)
			link_send_raw(l, pong, (size_t)n);
	} else if (m.type != LANMSG_PONG && l->ops->on_msg) {
		l->ops->on_msg(l, &m, l->arg);
	}
	lanmsg_clear(&m);
}

/* Returns -1 once the link went down (or a callback freed it: then it is down too). */
static int link_feed(struct link *l, const uint8_t *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		size_t used, len;
		int rc = frame_dec_push(&l->dec, buf + off, n - off, &used);
		off += used;
		if (rc == FRAME_MORE)
			break;
		if (rc == FRAME_READY) {
			char *body = frame_dec_take(&l->dec, &len);
			link_body(l, body, len);
			free(body);
			if (l->state != LS_UP)
				return -1;
			continue;
		}
		if (rc == FRAME_ETOOBIG)
			link_fail(l, LINK_DOWN_BAD_FRAME, "frame length %u exceeds %zu",
				  frame_dec_announced(&l->dec), l->ctx->max_frame);
		else if (rc == FRAME_EEMPTY)
			link_fail(l, LINK_DOWN_BAD_FRAME, "frame length 0");
		else
			link_fail(l, LINK_DOWN_BAD_FRAME, "out of memory for a %u-byte frame",
				  frame_dec_announced(&l->dec));
		return -1;
	}
	return 0;
}

/* Reads until OpenSSL wants more from the socket: it may hold decrypted records that epoll
 * knows nothing about. */
static void link_read(struct link *l)
{
	uint8_t buf[LINK_READ_CHUNK];

	while (l->state == LS_UP) {
		ERR_clear_error();
		int n = SSL_read(l->ssl, buf, sizeof buf);
		int saved = errno;
		if (n > 0) {
			l->last_rx = loop_now(l->loop);
			l->read_wants_write = false;
			if (link_feed(l, buf, (size_t)n) < 0)
				return;
			continue;
		}
		int err = SSL_get_error(l->ssl, n);
		if (err == SSL_ERROR_WANT_READ) {
			l->read_wants_write = false;
			return;
		}
		if (err == SSL_ERROR_WANT_WRITE) {
			l->read_wants_write = true;
			return;
		}
		if (err == SSL_ERROR_ZERO_RETURN) {
			ERR_clear_error();
			link_fail(l, LINK_DOWN_CLOSED, "close_notify received");
			return;
		}
		char why[200];
		linktls_reason(l, err, n, saved, why, sizeof why);
		link_fail(l, LINK_DOWN_IO, "read: %s", why);
		return;
	}
}

/* --- handshake and keepalive --- */

static void link_up(struct link *l)
{
	/* Belt and braces: without the PSK there is no authentication at all. */
	if (!SSL_session_reused(l->ssl)) {
		link_fail(l, LINK_DOWN_HANDSHAKE, "peer did not use the pre-shared key");
		return;
	}
	l->state = LS_UP;
	loop_timer_stop(l->loop, &l->t_hs);
	l->last_rx = l->last_tx = loop_now(l->loop);
	loop_timer_start(l->loop, &l->t_ping, l->ctx->ping_interval_ms);
	loop_timer_start(l->loop, &l->t_rx, l->ctx->ping_timeout_ms);
	log_info("link %s (%s): up", l->addr, l->peer_id);
	if (l->ops->on_up)
		l->ops->on_up(l, l->arg);
	if (l->state == LS_UP) {
		link_read(l);
		link_flush(l);
	}
}

static void link_handshake(struct link *l)
{
	ERR_clear_error();
	int rc = SSL_do_handshake(l->ssl);
	int saved = errno;
	if (rc == 1) {
		l->read_wants_write = false;
		link_up(l);
		return;
	}
	int err = SSL_get_error(l->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		l->read_wants_write = err == SSL_ERROR_WANT_WRITE;
		return;
	}
	char why[200];
	linktls_reason(l, err, rc, saved, why, sizeof why);
	link_fail(l, LINK_DOWN_HANDSHAKE, "%s", why);
}

static void link_on_io(void *arg, int fd, uint32_t events)
{
	struct link *l = arg;
	(void)fd;

	if (l->state == LS_CONNECTING) {
		int rc = net_tcp_connect_result(l->fd);
		if (rc == 0 && (events & EPOLLERR))
			rc = -ECONNREFUSED;
		if (rc < 0) {
			link_fail(l, LINK_DOWN_CONNECT, "%s", strerror(-rc));
		} else {
			l->state = LS_HANDSHAKE;
			link_handshake(l);
		}
	} else if (l->state == LS_HANDSHAKE) {
		if (l->server && !l->rx_seen && (events & EPOLLIN) && l->ops->on_rx) {
			l->rx_seen = true;
			l->ops->on_rx(l, l->arg);
		}
		if (l->state == LS_HANDSHAKE)
			link_handshake(l);
	} else if (l->state == LS_UP) {
		link_read(l);
		link_flush(l);
	}
	if (l->state != LS_DOWN)
		link_io_update(l);
}

static void link_on_hs_timeout(void *arg)
{
	struct link *l = arg;

	if (l->state == LS_CONNECTING)
		link_fail(l, LINK_DOWN_CONNECT, "timed out after %llu ms",
			  (unsigned long long)l->ctx->handshake_timeout_ms);
	else if (l->state == LS_HANDSHAKE)
		link_fail(l, LINK_DOWN_HANDSHAKE, "timed out after %llu ms",
			  (unsigned long long)l->ctx->handshake_timeout_ms);
}

static void link_on_ping_timer(void *arg)
{
	struct link *l = arg;
	uint64_t idle = loop_now(l->loop) - l->last_tx;

	if (l->state != LS_UP)
		return;
	if (idle < l->ctx->ping_interval_ms) {
		loop_timer_start(l->loop, &l->t_ping, l->ctx->ping_interval_ms - idle);
		return;
	}
	char buf[64];
	int n = lanmsg_ping(buf, sizeof buf, ++l->ping_seq);
	if (n > 0 && link_send_raw(l, buf, (size_t)n) == 0)
		loop_timer_start(l->loop, &l->t_ping, l->ctx->ping_interval_ms);
}

static void link_on_rx_timer(void *arg)
{
	struct link *l = arg;
	uint64_t idle = loop_now(l->loop) - l->last_rx;

	if (l->state != LS_UP)
		return;
	if (idle < l->ctx->ping_timeout_ms)
		loop_timer_start(l->loop, &l->t_rx, l->ctx->ping_timeout_ms - idle);
	else
		link_fail(l, LINK_DOWN_TIMEOUT, "nothing received for %llu ms",
			  (unsigned long long)idle);
}

/* --- creation --- */

static struct link *link_new(struct link_ctx *c, struct loop *loop,
			     const struct sockaddr_storage *peer, bool server,
			     const struct link_ops *ops, void *arg)
{
	struct link *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->ctx = c;
	l->loop = loop;
	l->ops = ops;
	l->arg = arg;
	l->fd = -1;
	l->server = server;
	if (peer)
		net_addr_str((const struct sockaddr *)peer, l->addr, sizeof l->addr);
	else
		snprintf(l->addr, sizeof l->addr, "?");
	frame_dec_init(&l->dec, c->max_frame);
	loop_timer_init(&l->t_hs, link_on_hs_timeout, l);
	loop_timer_init(&l->t_ping, link_on_ping_timer, l);
	loop_timer_init(&l->t_rx, link_on_rx_timer, l);
	loop_defer_init(&l->d_down, link_on_down_deferred, l);
	loop_defer_init(&l->d_free, link_destroy, l);
	l->ssl = SSL_new(server ? c->srv : c->cli);
	if (!l->ssl) {
		ERR_clear_error();
		frame_dec_free(&l->dec);
		free(l);
		return NULL;
	}
	SSL_set_app_data(l->ssl, l);
	return l;
}

/* Attaches fd to l and the loop; on failure the link goes down through on_down. */
static void link_start(struct link *l, int fd, uint32_t events)
{
	l->fd = fd;
	loop_timer_start(l->loop, &l->t_hs, l->ctx->handshake_timeout_ms);
	if (!SSL_set_fd(l->ssl, fd)) {
		ERR_clear_error();
		link_fail(l, l->server ? LINK_DOWN_HANDSHAKE : LINK_DOWN_CONNECT, "SSL_set_fd failed");
		return;
	}
	int rc = loop_io_add(l->loop, fd, events, link_on_io, l);
	if (rc < 0) {
		/* link_close_io must not loop_io_del an fd that was never added. */
		close(fd);
		l->fd = -1;
		link_fail(l, l->server ? LINK_DOWN_HANDSHAKE : LINK_DOWN_CONNECT, "epoll_ctl: %s",
			  strerror(-rc));
		return;
	}
	l->events = events;
}

struct link *link_dial(struct link_ctx *c, struct loop *loop, const struct sockaddr_storage *to,
		       const char *bind_host, const char *ctl_id, const struct link_ops *ops,
		       void *arg)
{
	if (!name_valid(ctl_id, LINK_ID_MAX)) {
		errno = EINVAL;
		return NULL;
	}
	struct link *l = link_new(c, loop, to, false, ops, arg);
	if (!l) {
		errno = ENOMEM;
		return NULL;
	}
	snprintf(l->peer_id, sizeof l->peer_id, "%s", ctl_id);
	SSL_set_connect_state(l->ssl);
	l->state = LS_CONNECTING;
	int fd = net_tcp_connect(to, bind_host);
	if (fd < 0) {
		link_fail(l, LINK_DOWN_CONNECT, "%s", strerror(-fd));
		return l;
	}
	link_start(l, fd, EPOLLOUT);
	return l;
}

struct link *link_accept(struct link_ctx *c, struct loop *loop, int fd,
			 const struct sockaddr_storage *peer, const char *expect_id,
			 const struct link_ops *ops, void *arg)
{
	if (expect_id && !name_valid(expect_id, LINK_ID_MAX)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	struct link *l = link_new(c, loop, peer, true, ops, arg);
	if (!l) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	if (expect_id) {
		l->has_expect = true;
		snprintf(l->expect_id, sizeof l->expect_id, "%s", expect_id);
	}
	SSL_set_accept_state(l->ssl);
	l->state = LS_HANDSHAKE;
	link_start(l, fd, EPOLLIN);
	return l;
}

void link_free(struct link *l)
{
	if (!l)
		return;
	if (l->state != LS_DOWN) {
		log_debug("link %s (%s): %s", l->addr, link_id_or_unknown(l),
			  link_down_str(LINK_DOWN_LOCAL));
		link_close_io(l, true);
		l->state = LS_DOWN;
	}
	/* A pending on_down is cancelled: link_free is silent. */
	loop_defer_cancel(l->loop, &l->d_down);
	loop_defer(l->loop, &l->d_free);
}

bool link_is_up(const struct link *l)
{
	return l && l->state == LS_UP;
}

size_t link_outq_len(const struct link *l)
{
	return l->out_len - l->out_off;
}

const char *link_peer_id(const struct link *l)
{
	return l->peer_id;
}

const char *link_peer_addr(const struct link *l)
{
	return l->addr;
}

void link_set_ops(struct link *l, const struct link_ops *ops, void *arg)
{
	l->ops = ops;
	l->arg = arg;
}
