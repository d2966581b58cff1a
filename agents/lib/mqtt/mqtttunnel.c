/* mqtttunnel: TLS and WebSocket under libmosquitto, relayed through a private unix socket;
 * see mqtttunnel.h. */
#include "mqtttunnel.h"
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

#define TUN_BUF 65536            /* each direction; a full buffer stops reading the other side */
#define TUN_HTTP_MAX 8192        /* the upgrade response's headers */
#define TUN_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum tun_state { TUN_TCP, TUN_TLS, TUN_UPGRADE, TUN_OPEN, TUN_CLOSED };

struct mqtttunnel {
	struct loop *loop;
	enum tun_state st;
	bool reached, client_eof, close_sent;
	char err[200];
	char dir[40], sock[80];
	int lfd, cfd, rfd;
	uint32_t cev, rev;       /* registered epoll events (0 = not registered) */
	SSL_CTX *ctx;
	SSL *ssl;
	bool ssl_want_write;
	char *host, *path;
	uint16_t port;
	bool tls, ws, insecure;
	char key[32];            /* Sec-WebSocket-Key */
	/* to the broker (framed when ws) */
	unsigned char up[TUN_BUF + 16];
	size_t up_len;
	/* to the client (plain MQTT) */
	unsigned char down[TUN_BUF];
	size_t down_len;
	/* from the broker, not yet parsed (HTTP response, WebSocket frame headers/control) */
	unsigned char in[TUN_HTTP_MAX];
	size_t in_len;
	/* the WebSocket frame being read */
	uint64_t frame_left;     /* payload bytes still to come */
	int frame_op;
	bool in_frame;
	unsigned char ctl[125];  /* a control frame's payload */
	size_t ctl_len;
};

static void tun_fail(struct mqtttunnel *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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
static void tun_fail(struct mqtttunnel *t, const char *fmt, ...)
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
			tun_fail(t, "TLS write: %s", tun_ssl_reason(t));
			return -1;
		}
	}
	w = send(t->rfd, p, n, MSG_NOSIGNAL);
	if (w >= 0)
		return w;
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	tun_fail(t, "write: %s", strerror(errno));
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
			tun_fail(t, "the broker closed the TLS connection");
			return -1;
		default:
			tun_fail(t, "TLS read: %s", tun_ssl_reason(t));
			return -1;
		}
	}
	r = recv(t->rfd, p, n, 0);
	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	tun_fail(t, r == 0 ? "the broker closed the connection" : "read: %s", strerror(errno));
	return -1;
}

/* --- WebSocket framing (RFC 6455) --- */

static int tun_b64(const unsigned char *in, size_t n, char *out, size_t cap)
{
	if (cap < 4 * ((n + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return 0;
}

/* Appends one masked client frame (FIN set) to up; the caller checked the room. */
static int tun_frame(struct mqtttunnel *t, int op, const void *p, size_t n)
{
	unsigned char *h = t->up + t->up_len, mask[4];
	size_t hl = 2, i;

	if (RAND_bytes(mask, sizeof mask) != 1)
		return -1;
	h[0] = (unsigned char)(0x80 | op);
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, mask, 4);
	hl += 4;
	for (i = 0; i < n; i++)
		h[hl + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
	t->up_len += hl + n;
	return 0;
}

/* Moves what in holds of WebSocket frames: data to down, control frames answered. Returns
 * whether anything moved. */
static bool tun_deframe(struct mqtttunnel *t)
{
	bool moved = false;

	while (t->st == TUN_OPEN) {
		if (!t->in_frame) {
			size_t need = 2, i;
			uint64_t len;
			if (t->in_len < 2)
				break;
			if (t->in[1] & 0x80) {
				tun_fail(t, "the broker sent a masked WebSocket frame");
				break;
			}
			len = t->in[1] & 0x7f;
			need += len == 126 ? 2 : len == 127 ? 8 : 0;
			if (t->in_len < need)
				break;
			if (len == 126)
				len = (uint64_t)t->in[2] << 8 | t->in[3];
			else if (len == 127)
				for (len = 0, i = 0; i < 8; i++)
					len = len << 8 | t->in[2 + i];
			t->frame_op = t->in[0] & 0x0f;
			if ((t->frame_op & 0x08) && (len > 125 || !(t->in[0] & 0x80))) {
				tun_fail(t, "bad WebSocket control frame from the broker");
				break;
			}
			if (t->frame_op != 0 && t->frame_op != 1 && t->frame_op != 2 &&
			    t->frame_op != 8 && t->frame_op != 9 && t->frame_op != 10) {
				tun_fail(t, "unknown WebSocket opcode %d from the broker", t->frame_op);
				break;
			}
			memmove(t->in, t->in + need, t->in_len - need);
			t->in_len -= need;
			t->frame_left = len;
			t->ctl_len = 0;
			t->in_frame = true;
			moved = true;
		}
		if (t->frame_op & 0x08) {
			size_t k = t->in_len < t->frame_left ? t->in_len : (size_t)t->frame_left;
			memcpy(t->ctl + t->ctl_len, t->in, k);
			t->ctl_len += k;
			t->frame_left -= k;
			memmove(t->in, t->in + k, t->in_len - k);
			t->in_len -= k;
			if (t->frame_left)
				break;
			if (TUN_BUF + 16 - t->up_len < t->ctl_len + 14)
				break;   /* no room for the answer yet: keep the frame */
			t->in_frame = false;
			moved = true;
			if (t->frame_op == 9) {
				tun_frame(t, 10, t->ctl, t->ctl_len);
			} else if (t->frame_op == 8) {
				if (!t->close_sent)
					tun_frame(t, 8, t->ctl, t->ctl_len < 2 ? t->ctl_len : 2);
				t->close_sent = true;
				tun_fail(t, "the broker closed the WebSocket");
			}
			continue;
		}
		{
			size_t room = sizeof t->down - t->down_len;
			size_t k = t->in_len < t->frame_left ? t->in_len : (size_t)t->frame_left;
			if (k > room)
				k = room;
			if (k == 0 && t->frame_left)
				break;
			memcpy(t->down + t->down_len, t->in, k);
			t->down_len += k;
			t->frame_left -= k;
			memmove(t->in, t->in + k, t->in_len - k);
			t->in_len -= k;
			if (!t->frame_left)
				t->in_frame = false;
			moved = true;
		}
	}
	return moved;
}

/* --- the upgrade --- */

static int tun_upgrade_request(struct mqtttunnel *t)
{
	unsigned char raw[16];
	bool v6 = strchr(t->host, ':') != NULL;
	char host[300], port[8] = "";
	int n;

	if (RAND_bytes(raw, sizeof raw) != 1 || tun_b64(raw, sizeof raw, t->key, sizeof t->key) < 0)
		return -1;
	if (t->port != (t->tls ? 443 : 80))
		snprintf(port, sizeof port, ":%u", t->port);
	snprintf(host, sizeof host, "%s%s%s%s", v6 ? "[" : "", t->host, v6 ? "]" : "", port);
	n = snprintf((char *)t->up, sizeof t->up,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		     "Sec-WebSocket-Protocol: mqtt\r\n\r\n", t->path, host, t->key);
	if (n < 0 || (size_t)n >= sizeof t->up)
		return -1;
	t->up_len = (size_t)n;
	return 0;
}

/* A header's value in the response head (NUL-terminated), or NULL. */
static const char *tun_header(const char *head, const char *name, char *val, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && p[2]) {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if (!end)
			break;
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			size_t k;
			while (*v == ' ' || *v == '\t')
				v++;
			k = (size_t)(end - v);
			while (k && (v[k - 1] == ' ' || v[k - 1] == '\t'))
				k--;
			if (k >= cap)
				k = cap - 1;
			memcpy(val, v, k);
			val[k] = '\0';
			return val;
		}
		p = end;
	}
	return NULL;
}

/* Parses the 101 answer once it is complete; leaves what follows it in in. */
static void tun_upgrade_response(struct mqtttunnel *t)
{
	char head[TUN_HTTP_MAX + 1], val[256], want[64], cat[96];
	unsigned char sha[20];
	unsigned int sl = 0;
	char *end;
	size_t hl;

	memcpy(head, t->in, t->in_len);
	head[t->in_len] = '\0';
	end = strstr(head, "\r\n\r\n");
	if (!end) {
		if (t->in_len >= sizeof t->in)
			tun_fail(t, "WebSocket upgrade: response headers too long");
		return;
	}
	hl = (size_t)(end - head) + 4;
	end[2] = '\0';
	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		char *nl = strstr(head, "\r\n");
		if (nl)
			*nl = '\0';
		tun_fail(t, "WebSocket upgrade refused: %.80s", head);
		return;
	}
	snprintf(cat, sizeof cat, "%s%s", t->key, TUN_WS_GUID);
	if (!EVP_Digest(cat, strlen(cat), sha, &sl, EVP_sha1(), NULL) ||
	    tun_b64(sha, sl, want, sizeof want) < 0) {
		tun_fail(t, "WebSocket upgrade: cannot compute the accept key");
		return;
	}
	if (!tun_header(head, "Sec-WebSocket-Accept", val, sizeof val) || strcmp(val, want) != 0) {
		tun_fail(t, "WebSocket upgrade: wrong or missing Sec-WebSocket-Accept");
		return;
	}
	if (!tun_header(head, "Upgrade", val, sizeof val) || strcasecmp(val, "websocket") != 0) {
		tun_fail(t, "WebSocket upgrade: no 'Upgrade: websocket'");
		return;
	}
	if (tun_header(head, "Sec-WebSocket-Protocol", val, sizeof val) &&
	    strcasecmp(val, "mqtt") != 0) {
		tun_fail(t, "WebSocket upgrade: subprotocol '%s', not mqtt", val);
		return;
	}
	memmove(t->in, t->in + hl, t->in_len - hl);
	t->in_len -= hl;
	t->st = TUN_OPEN;
	t->reached = true;
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
		if (t->ws && tun_upgrade_request(t) < 0)
			tun_fail(t, "cannot build the WebSocket upgrade");
		return true;
	}
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return false;
	case SSL_ERROR_WANT_WRITE:
		t->ssl_want_write = true;
		return false;
	default:
		tun_fail(t, "TLS handshake: %s", tun_ssl_reason(t));
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
		tun_fail(t, "connect: %s", strerror(err));
		return false;
	}
	if (t->tls) {
		t->ssl = SSL_new(t->ctx);
		if (!t->ssl || SSL_set_fd(t->ssl, t->rfd) != 1) {
			tun_fail(t, "TLS: %s", tun_ssl_reason(t));
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
				tun_fail(t, "TLS: cannot set the name to check");
				return false;
			}
		}
		t->st = TUN_TLS;
		return true;
	}
	if (t->ws) {
		t->st = TUN_UPGRADE;
		if (tun_upgrade_request(t) < 0)
			tun_fail(t, "cannot build the WebSocket upgrade");
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
			tun_upgrade_response(t);
		if (t->st == TUN_OPEN && tun_deframe(t))
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
			tun_fail(t, "client side: %s", strerror(errno));
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
			tun_fail(t, "client side: %s", strerror(errno));
			return false;
		} else if (n > 0) {
			if (t->ws)
				tun_frame(t, 2, buf, (size_t)n);
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
		tun_fail(t, "the client closed the connection");
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
		tun_frame(t, 8, bye, sizeof bye);
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

size_t mqtttunnel_parse_broker(const uint8_t *p, size_t n, size_t chunk, uint8_t *out,
			       size_t cap, bool *closed)
{
	/* One scratch tunnel, kept: a fresh 140 KiB allocation per call is most of a fuzz run. */
	static struct mqtttunnel *t;
	size_t total = 0, off = 0;
	static char host[] = "fuzz";

	*closed = true;
	if (!t && !(t = malloc(sizeof *t)))
		return 0;
	memset(t, 0, sizeof *t);
	t->lfd = t->cfd = t->rfd = -1;
	t->ws = true;
	t->host = host;
	t->st = TUN_UPGRADE;
	snprintf(t->key, sizeof t->key, "dGhlIHNhbXBsZSBub25jZQ==");
	if (!chunk)
		chunk = 1;
	for (;;) {
		size_t k = n - off < chunk ? n - off : chunk;
		bool moved = false;
		if (k > sizeof t->in - t->in_len)
			k = sizeof t->in - t->in_len;
		memcpy(t->in + t->in_len, p + off, k);
		t->in_len += k;
		off += k;
		if (t->st == TUN_UPGRADE)
			tun_upgrade_response(t);
		if (t->st == TUN_OPEN)
			moved = tun_deframe(t);
		if (t->down_len) {
			size_t c = total < cap ? cap - total : 0;
			memcpy(out + total, t->down, t->down_len < c ? t->down_len : c);
			total += t->down_len;
			t->down_len = 0;
			moved = true;
		}
		t->up_len = 0;   /* pongs and close answers would go to the broker */
		if (t->st == TUN_CLOSED || (!k && !moved))
			break;
	}
	*closed = t->st == TUN_CLOSED;
	return total;
}
