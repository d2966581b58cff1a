/* mqtttunnel: TLS and WebSocket under libmosquitto, relayed through a private unix socket;
 * see mqtttunnel.h. */
#include "mqtttunnel_int.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void tun_close_fd(struct mqtttunnel *t, int *fd, uint32_t *ev)
{
	if (*fd < 0)
		return;
	if (ev && *ev)
		loop_io_del(t->loop, *fd);
	if (ev)
		*ev = 0;
	close(*fd);
	*fd = -1;
}

/* The broker side is over: the client side is closed too, so libmosquitto sees the end. */
void mqtttunnel_fail(struct mqtttunnel *t, const char *fmt, ...)
{
	va_list ap;

	if (t->st == TUN_CLOSED)
		return;
	if (!t->err[0]) {
		va_start(ap, fmt);
		vsnprintf(t->err, sizeof t->err, fmt, ap);
		va_end(ap);
	}
	log_debug("mqtt tunnel to %s:%u: %s", t->host, t->port, t->err);
	t->st = TUN_CLOSED;
	if (t->ssl) {
		SSL_free(t->ssl);
		t->ssl = NULL;
	}
	tun_close_fd(t, &t->rfd, &t->rev);
	tun_close_fd(t, &t->cfd, &t->cev);
}

static const char *tun_ssl_reason(struct mqtttunnel *t)
{
	static char buf[160];
	unsigned long e = ERR_get_error();
	long v = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;

	if (v != X509_V_OK)
		snprintf(buf, sizeof buf, "certificate: %s", X509_verify_cert_error_string(v));
	else if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	else
		snprintf(buf, sizeof buf, "%s", errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	return buf;
}

/* --- raw I/O on the broker side: >0 bytes, 0 would block, -1 closed/failed (t->err set) --- */

static ssize_t tun_rwrite(struct mqtttunnel *t, const void *p, size_t n)
{
	ssize_t w;

	if (t->ssl) {
		int r;
		ERR_clear_error();
		r = SSL_write(t->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		if (r > 0)
			return r;
		switch (SSL_get_error(t->ssl, r)) {
		case SSL_ERROR_WANT_WRITE:
			t->ssl_want_write = true;
			return 0;
		case SSL_ERROR_WANT_READ:
			return 0;
		default:
			mqtttunnel_fail(t, "TLS write: %s", tun_ssl_reason(t));
			return -1;
		}
	}
	w = send(t->rfd, p, n, MSG_NOSIGNAL);
	if (w >= 0)
		return w;
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	mqtttunnel_fail(t, "write: %s", strerror(errno));
	return -1;
}

static ssize_t tun_rread(struct mqtttunnel *t, void *p, size_t n)
{
	ssize_t r;

	if (t->ssl) {
		int k;
		ERR_clear_error();
		k = SSL_read(t->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		if (k > 0)
			return k;
		switch (SSL_get_error(t->ssl, k)) {
		case SSL_ERROR_WANT_READ:
			return 0;
		case SSL_ERROR_WANT_WRITE:
			t->ssl_want_write = true;
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			mqtttunnel_fail(t, "the broker closed the TLS connection");
			return -1;
		default:
			mqtttunnel_fail(t, "TLS read: %s", tun_ssl_reason(t));
			return -1;
		}
	}
	r = recv(t->rfd, p, n, 0);
	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	mqtttunnel_fail(t, r == 0 ? "the broker closed the connection" : "read: %s", strerror(errno));
	return -1;
}

/* --- the pump: move what can move, then watch what can block --- */

static void tun_io(void *arg, int fd, uint32_t events);

static void tun_watch(struct mqtttunnel *t, int fd, uint32_t *cur, uint32_t want)
{
	if (fd < 0 || want == *cur)
		return;
	if (!*cur) {
		if (loop_io_add(t->loop, fd, want, tun_io, t) == 0)
			*cur = want;
	} else if (!want) {
		loop_io_del(t->loop, fd);
		*cur = 0;
	} else if (loop_io_mod(t->loop, fd, want) == 0) {
		*cur = want;
	}
}

static bool tun_handshake(struct mqtttunnel *t)
{
	int r;

	ERR_clear_error();
	r = SSL_connect(t->ssl);
	if (r == 1) {
		t->st = t->ws ? TUN_UPGRADE : TUN_OPEN;
		t->reached = !t->ws;
		if (t->ws && mqttws_upgrade_request(t) < 0)
			mqtttunnel_fail(t, "cannot build the WebSocket upgrade");
		return true;
	}
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return false;
	case SSL_ERROR_WANT_WRITE:
		t->ssl_want_write = true;
		return false;
	default:
		mqtttunnel_fail(t, "TLS handshake: %s", tun_ssl_reason(t));
		return false;
	}
}

static bool tun_tcp_done(struct mqtttunnel *t)
{
	int err = 0;
	socklen_t l = sizeof err;

	if (getsockopt(t->rfd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		err = errno;
	if (err) {
		mqtttunnel_fail(t, "connect: %s", strerror(err));
		return false;
	}
	if (t->tls) {
		t->ssl = SSL_new(t->ctx);
		if (!t->ssl || SSL_set_fd(t->ssl, t->rfd) != 1) {
			mqtttunnel_fail(t, "TLS: %s", tun_ssl_reason(t));
			return false;
		}
		/* The broker's name: SNI (never for an address literal) and the certificate check. */
		unsigned char b[16];
		bool lit = inet_pton(AF_INET, t->host, b) == 1 || inet_pton(AF_INET6, t->host, b) == 1;
		if (!lit)
			SSL_set_tlsext_host_name(t->ssl, t->host);
		if (!t->insecure) {
			int ok = lit ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->host)
				     : SSL_set1_host(t->ssl, t->host);
			if (ok != 1) {
				mqtttunnel_fail(t, "TLS: cannot set the name to check");
				return false;
			}
		}
		t->st = TUN_TLS;
		return true;
	}
	if (t->ws) {
		t->st = TUN_UPGRADE;
		if (mqttws_upgrade_request(t) < 0)
			mqtttunnel_fail(t, "cannot build the WebSocket upgrade");
	} else {
		t->st = TUN_OPEN;
		t->reached = true;
	}
	return true;
}

/* One round of every transfer that can make progress; whether any did. */
static bool tun_step(struct mqtttunnel *t)
{
	bool moved = false;
	ssize_t n;

	if (t->st == TUN_TLS) {
		t->ssl_want_write = false;
		return tun_handshake(t);
	}
	if (t->st != TUN_UPGRADE && t->st != TUN_OPEN)
		return false;
	t->ssl_want_write = false;
	/* to the broker */
	if (t->up_len) {
		n = tun_rwrite(t, t->up, t->up_len);
		if (n < 0)
			return false;
		if (n > 0) {
			memmove(t->up, t->up + n, t->up_len - (size_t)n);
			t->up_len -= (size_t)n;
			moved = true;
		}
	}
	/* from the broker */
	if (t->ws || t->st == TUN_UPGRADE) {
		if (t->in_len < sizeof t->in && (t->st == TUN_UPGRADE || t->down_len < sizeof t->down)) {
			n = tun_rread(t, t->in + t->in_len, sizeof t->in - t->in_len);
			if (n < 0)
				return false;
			if (n > 0) {
				t->in_len += (size_t)n;
				moved = true;
			}
		}
		if (t->st == TUN_UPGRADE && t->in_len)
			mqttws_upgrade_response(t);
		if (t->st == TUN_OPEN && mqttws_deframe(t))
			moved = true;
	} else if (t->down_len < sizeof t->down) {
		n = tun_rread(t, t->down + t->down_len, sizeof t->down - t->down_len);
		if (n < 0)
			return false;
		if (n > 0) {
			t->down_len += (size_t)n;
			moved = true;
		}
	}
	if (t->st != TUN_OPEN || t->cfd < 0)
		return moved;
	/* to the client */
	if (t->down_len) {
		n = send(t->cfd, t->down, t->down_len, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			mqtttunnel_fail(t, "client side: %s", strerror(errno));
			return false;
		}
		if (n > 0) {
			memmove(t->down, t->down + n, t->down_len - (size_t)n);
			t->down_len -= (size_t)n;
			moved = true;
		}
	}
	/* from the client: room for the largest frame header as well */
	if (!t->client_eof && t->up_len + 14 < sizeof t->up - 16) {
		unsigned char buf[TUN_BUF];
		size_t room = sizeof t->up - 16 - t->up_len - 14;
		n = recv(t->cfd, t->ws ? buf : t->up + t->up_len, room, 0);
		if (n == 0) {
			t->client_eof = true;
			moved = true;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			mqtttunnel_fail(t, "client side: %s", strerror(errno));
			return false;
		} else if (n > 0) {
			if (t->ws)
				mqttws_frame(t, 2, buf, (size_t)n);
			else
				t->up_len += (size_t)n;
			moved = true;
		}
	}
	return moved;
}

static void tun_pump(struct mqtttunnel *t)
{
	uint32_t rw = 0, cw = 0;
	int rounds = 0;

	/* Bounded: each round moves at least one byte or stops; 64 rounds keep one tunnel from
	 * starving the loop, and level-triggered epoll brings us back for the rest. */
	while (tun_step(t) && ++rounds < 64)
		;
	if (t->st == TUN_CLOSED)
		return;
	if (t->client_eof && t->st == TUN_OPEN && !t->up_len) {
		mqtttunnel_fail(t, "the client closed the connection");
		return;
	}
	if (t->rfd >= 0) {
		if (t->st == TUN_TCP || t->ssl_want_write || t->up_len)
			rw |= EPOLLOUT;
		if (t->st == TUN_TLS || t->st == TUN_UPGRADE ||
		    (t->st == TUN_OPEN && t->down_len < sizeof t->down &&
		     (!t->ws || t->in_len < sizeof t->in)))
			rw |= EPOLLIN;
		if (t->ssl && SSL_pending(t->ssl) && (rw & EPOLLIN))
			rw |= EPOLLOUT;   /* decrypted bytes wait: come back at once */
		tun_watch(t, t->rfd, &t->rev, rw ? rw : EPOLLERR);
	}
	if (t->cfd >= 0 && t->st == TUN_OPEN) {
		if (t->down_len)
			cw |= EPOLLOUT;
		if (!t->client_eof && t->up_len + 14 < sizeof t->up - 16)
			cw |= EPOLLIN;
		tun_watch(t, t->cfd, &t->cev, cw ? cw : EPOLLERR);
	}
}

static void tun_accept(struct mqtttunnel *t)
{
	struct ucred cr;
	socklen_t l = sizeof cr;
	int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	/* Only our own process: the directory is private, this makes it certain. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || cr.pid != getpid()) {
		log_warnx("mqtt tunnel: refused a connection from pid %d", (int)cr.pid);
		close(fd);
		return;
	}
	t->cfd = fd;
	loop_io_del(t->loop, t->lfd);
	close(t->lfd);
	t->lfd = -1;
	unlink(t->sock);
	rmdir(t->dir);
	t->dir[0] = '\0';
	if (t->st == TUN_CLOSED)
		tun_close_fd(t, &t->cfd, NULL);
}

static void tun_io(void *arg, int fd, uint32_t events)
{
	struct mqtttunnel *t = arg;

	if (fd == t->lfd) {
		tun_accept(t);
	} else if (fd == t->rfd && t->st == TUN_TCP) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) || !tun_tcp_done(t))
			return;
	}
	tun_pump(t);
}

static SSL_CTX *tun_ctx(const struct mqtttunnel_opts *o, char *err, size_t n)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	int ok;

	if (!c)
		goto fail;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	ok = o->ca_file ? SSL_CTX_load_verify_locations(c, o->ca_file, NULL)
			: SSL_CTX_set_default_verify_paths(c);
	if (ok != 1) {
		snprintf(err, n, "cannot load the CA file %s", o->ca_file ? o->ca_file : "(system)");
		goto fail;
	}
	if (o->cert_file && SSL_CTX_use_certificate_chain_file(c, o->cert_file) != 1) {
		snprintf(err, n, "cannot load the certificate %s", o->cert_file);
		goto fail;
	}
	if (o->key_file && (SSL_CTX_use_PrivateKey_file(c, o->key_file, SSL_FILETYPE_PEM) != 1 ||
			    SSL_CTX_check_private_key(c) != 1)) {
		snprintf(err, n, "cannot load the key %s (or it does not match the certificate)",
			 o->key_file);
		goto fail;
	}
	return c;
fail:
	if (!err[0])
		snprintf(err, n, "cannot create a TLS context");
	ERR_clear_error();
	SSL_CTX_free(c);
	return NULL;
}

struct mqtttunnel *mqtttunnel_new(struct loop *loop, const struct mqtttunnel_opts *o,
				  const char **unix_path)
{
	struct mqtttunnel *t = calloc(1, sizeof *t);
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	if (!t) {
		log_warn("mqtt tunnel: calloc");
		return NULL;
	}
	t->loop = loop;
	t->lfd = t->cfd = t->rfd = -1;
	t->port = o->port;
	t->tls = o->tls;
	t->ws = o->ws;
	t->insecure = o->insecure;
	t->host = strdup(o->host);
	t->path = strdup(o->path ? o->path : "/mqtt");
	if (!t->host || !t->path) {
		log_warnx("mqtt tunnel: out of memory");
		goto fail;
	}
	if (t->tls && !(t->ctx = tun_ctx(o, t->err, sizeof t->err))) {
		log_warnx("mqtt tunnel to %s: %s", o->host, t->err);
		goto fail;
	}
	/* The broker side starts at once, while libmosquitto connects to us. */
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, o->addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(o->port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, o->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(o->port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		log_warnx("mqtt tunnel: bad address %s", o->addr);
		goto fail;
	}
	t->rfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->rfd < 0) {
		log_warn("mqtt tunnel: socket");
		goto fail;
	}
	setsockopt(t->rfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(t->rfd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
		snprintf(t->err, sizeof t->err, "connect: %s", strerror(errno));
	/* The client side: a fresh private directory, so nobody else can connect first. */
	snprintf(t->dir, sizeof t->dir, "/tmp/fr-mqtt-XXXXXX");
	if (!mkdtemp(t->dir)) {
		log_warn("mqtt tunnel: mkdtemp");
		t->dir[0] = '\0';
		goto fail;
	}
	snprintf(t->sock, sizeof t->sock, "%s/s", t->dir);
	snprintf(su.sun_path, sizeof su.sun_path, "%s", t->sock);
	t->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->lfd < 0 || bind(t->lfd, (struct sockaddr *)&su, sizeof su) < 0 ||
	    listen(t->lfd, 1) < 0 || loop_io_add(loop, t->lfd, EPOLLIN, tun_io, t) < 0) {
		log_warn("mqtt tunnel: unix socket %s", t->sock);
		goto fail;
	}
	if (t->err[0]) {
		/* Failed at once (e.g. no route): the client sees the end on its first read. */
		t->st = TUN_CLOSED;
		close(t->rfd);
		t->rfd = -1;
	} else {
		t->st = TUN_TCP;
		tun_watch(t, t->rfd, &t->rev, EPOLLOUT);
	}
	*unix_path = t->sock;
	return t;
fail:
	mqtttunnel_free(t);
	return NULL;
}

bool mqtttunnel_reached(const struct mqtttunnel *t)
{
	return t->reached;
}

const char *mqtttunnel_error(const struct mqtttunnel *t)
{
	return t->err;
}

size_t mqtttunnel_pollfds(const struct mqtttunnel *t, struct pollfd *p)
{
	size_t n = 0;

	if (!t || t->st != TUN_OPEN)
		return 0;
	if (t->rfd >= 0) {
		p[n].fd = t->rfd;
		p[n].events = (short)((t->down_len < sizeof t->down ? POLLIN : 0) |
				      (t->up_len || t->ssl_want_write ||
				       (t->ssl && SSL_pending(t->ssl)) ? POLLOUT : 0));
		p[n++].revents = 0;
	}
	if (t->cfd >= 0) {
		p[n].fd = t->cfd;
		p[n].events = (short)((!t->client_eof ? POLLIN : 0) | (t->down_len ? POLLOUT : 0));
		p[n++].revents = 0;
	}
	return n;
}

void mqtttunnel_step(struct mqtttunnel *t)
{
	if (t)
		tun_pump(t);
}

void mqtttunnel_drain(struct mqtttunnel *t, uint64_t timeout_ms)
{
	uint64_t end = loop_wall_ms() + timeout_ms;

	if (!t)
		return;
	while (t->st == TUN_OPEN && t->cfd >= 0 && (!t->client_eof || t->up_len)) {
		struct pollfd p[2] = { { .fd = t->cfd, .events = POLLIN },
				       { .fd = t->rfd, .events = t->up_len ? POLLOUT : 0 } };
		uint64_t now = loop_wall_ms();
		if (now >= end || poll(p, 2, (int)(end - now)) <= 0)
			break;
		while (tun_step(t))
			;
	}
	if (t->st == TUN_OPEN && t->ws && !t->close_sent && t->up_len + 20 < sizeof t->up) {
		/* A WebSocket close (1000) and the TLS close_notify, best effort. */
		static const unsigned char bye[2] = { 0x03, 0xe8 };
		mqttws_frame(t, 8, bye, sizeof bye);
		t->close_sent = true;
		tun_rwrite(t, t->up, t->up_len);
	}
	if (t->ssl && t->st == TUN_OPEN)
		SSL_shutdown(t->ssl);
	/* Closed with the broker's bytes unread, the socket would send RST and drop what is still
	 * queued for the broker. */
	if (t->st == TUN_OPEN && t->rfd >= 0) {
		uint64_t now = loop_wall_ms();
		net_shutdown_drain(t->rfd, now < end ? end - now : 0);
	}
}

void mqtttunnel_free(struct mqtttunnel *t)
{
	if (!t)
		return;
	if (t->ssl)
		SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	tun_close_fd(t, &t->rfd, &t->rev);
	tun_close_fd(t, &t->cfd, &t->cev);
	if (t->lfd >= 0) {
		loop_io_del(t->loop, t->lfd);
		close(t->lfd);
	}
	if (t->dir[0]) {
		unlink(t->sock);
		rmdir(t->dir);
	}
	free(t->host);
	free(t->path);
	free(t);
}
