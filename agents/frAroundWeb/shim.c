/* shim: the shim protocol's transport; see shim.h and docs/shim.md. */
#include "shim.h"

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"
#include "peerlimit.h"
#include "session.h"
#include "shimproto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SHIM_READ_CHUNK 65536
#define SHIM_SNDBUF (256 * 1024)
/* How long a client being closed after an error may take to read it before we drop it. */
#define SHIM_LINGER_MS 2000
/* Line limit before auth: an auth line is small, and strangers must not make us buffer
 * max_line bytes each. */
#define SHIM_PENDING_LINE_MAX 4096

struct client {
	struct shim *s;
	int fd;
	char peer[NET_ADDRSTRLEN];
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outoff, outlen, outcap;
	bool pollout;          /* EPOLLOUT armed */
	bool want_drain;       /* the session waits for the queue to drain (shim_client_want_drain) */
	bool closing;          /* an error was sent; flush, then close */
	enum metrics_disc close_why;
	char close_reason[96];
	bool dead;             /* fd closed; memory freed at the end of the iteration (reap) */
	struct loop_defer reap;
	struct session *sess;  /* owned */
	bool authed;           /* counted in nauth */
	struct peerlimit *pl;        /* the budgets of its transport (TCP or unix) */
	struct peerlimit_slot *slot; /* until it authenticated: a stranger */
	struct loop_timer linger;
	struct client *prev, *next;
};

struct shim {
	struct shim_deps d;
	int tcp_fd, unix_fd;
	struct listener *tcp_listener, *unix_listener;
	struct client *clients;
	int nclients;
	int nauth;                   /* authenticated clients, for max_clients */
	struct peerlimit *pending_tcp, *pending_unix;
	bool full_logged, stopping;
};

static void client_kill(struct client *c, enum metrics_disc why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- output --- */

static void client_flush(struct client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			client_kill(c, METRICS_DISC_ERROR, "write: %s", strerror(errno));
			return;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		if (c->closing)
			shutdown(c->fd, SHUT_WR);
	}
	bool want = c->outlen > 0;
	if (want != c->pollout) {
		c->pollout = want;
		loop_io_mod(c->s->d.loop, c->fd, EPOLLIN | (want ? EPOLLOUT : 0));
	}
}

void shim_client_send(struct client *c, const cJSON *o)
{
	if (c->dead)
		return;
	char *s = cJSON_PrintUnformatted(o);
	if (!s) {
		client_kill(c, METRICS_DISC_ERROR, "out of memory");
		return;
	}
	size_t n = strlen(s);
	if (c->outlen - c->outoff + n + 1 > c->s->d.conf->max_outq) {
		free(s);
		client_kill(c, METRICS_DISC_OUTQ, "output queue over %zu bytes (client not reading)",
			    c->s->d.conf->max_outq);
		return;
	}
	if (c->outoff > 0 && c->outlen + n + 1 > c->outcap) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	if (c->outlen + n + 1 > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		while (cap < c->outlen + n + 1)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			free(s);
			client_kill(c, METRICS_DISC_ERROR, "out of memory");
			return;
		}
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, s, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	free(s);
	if (!c->pollout)
		client_flush(c);
}

size_t shim_client_queued(const struct client *c)
{
	return c->outlen - c->outoff;
}

void shim_client_want_drain(struct client *c)
{
	c->want_drain = true;
	/* Nothing queued: nothing will drain, so say so at once on the next writable event. */
	if (!c->pollout && !c->dead) {
		c->pollout = true;
		loop_io_mod(c->s->d.loop, c->fd, EPOLLIN | EPOLLOUT);
	}
}

void shim_client_error(struct client *c, const cJSON *id, enum shim_err code, const char *msg)
{
	c->s->d.metrics->errors[code]++;
	cJSON *o = shimproto_error(id, code, msg);
	if (o)
		shim_client_send(c, o);
	else
		client_kill(c, METRICS_DISC_ERROR, "out of memory");
	cJSON_Delete(o);
}

const char *shim_client_peer(const struct client *c)
{
	return c->peer;
}

int shim_client_authenticated(struct client *c, const cJSON *id)
{
	struct shim *s = c->s;
	if (c->authed)
		return 0;
	/* Authenticated clients have their own limit; strangers never take their room. */
	if (s->nauth >= s->d.conf->max_clients) {
		if (!s->full_logged)
			log_warnx("shim: max_clients (%d) authenticated clients reached: refusing more",
				  s->d.conf->max_clients);
		s->full_logged = true;
		shim_client_error(c, id, SHIM_E_TOO_MANY, "too many clients (max_clients)");
		shim_client_close_after(c, METRICS_DISC_FULL, "max_clients reached");
		return -1;
	}
	s->full_logged = false;
	peerlimit_done(c->pl, c->slot);
	c->slot = NULL;
	c->authed = true;
	s->nauth++;
	return 0;
}

void shim_client_wrong_token(struct client *c, int failures)
{
	if (c->slot)
		peerlimit_note(c->pl, c->slot, "wrong token");   /* counted, not a line each */
	else
		log_warnx("shim client %s: wrong token (%d)", c->peer, failures);
}

/* --- client lifetime --- */

static void client_reap(void *arg)
{
	struct client *c = arg;
	session_free(c->sess);
	free(c->in);
	free(c->out);
	free(c);
}

/* Closes the connection now; the struct is freed at the end of the loop iteration (loop_defer),
 * so loops over clients and subscriptions in progress stay valid (they skip dead clients). */
static void client_kill(struct client *c, enum metrics_disc why, const char *fmt, ...)
{
	struct shim *s = c->s;
	if (c->dead)
		return;
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	const char *user = c->sess ? session_user(c->sess) : NULL;
	if (why == METRICS_DISC_EOF || why == METRICS_DISC_SHUTDOWN || why == METRICS_DISC_PENDING ||
	    why == METRICS_DISC_AUTH_TIMEOUT)
		log_debug("shim client %s%s%s: %s", c->peer, user ? " user " : "", user ? user : "",
			  reason);
	else if (c->slot)
		/* A stranger: counted in the rate-limited log instead of a line each. */
		log_debug("shim client %s: %s: disconnected", c->peer, reason);
	else
		log_warnx("shim client %s%s%s: %s: disconnected", c->peer, user ? " user " : "",
			  user ? user : "", reason);
	if (c->slot) {
		if (why == METRICS_DISC_EOF || why == METRICS_DISC_SHUTDOWN)
			peerlimit_done(c->pl, c->slot);
		else
			peerlimit_failed(c->pl, c->slot, reason);
		c->slot = NULL;
	}
	if (c->authed)
		s->nauth--;
	c->dead = true;
	s->d.metrics->disconnects[why]++;
	s->d.metrics->clients--;
	if (c->sess)
		session_detach(c->sess);
	loop_io_del(s->d.loop, c->fd);
	loop_timer_stop(s->d.loop, &c->linger);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nclients--;
	loop_defer(s->d.loop, &c->reap);
}

static void client_on_linger(void *arg)
{
	struct client *c = arg;
	client_kill(c, c->close_why, "%s", c->close_reason);
}

/* Sends what is queued, then closes: the peer gets to read the error first. */
void shim_client_close_after(struct client *c, enum metrics_disc why, const char *reason)
{
	if (c->closing || c->dead)
		return;
	c->closing = true;
	c->close_why = why;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	if (c->slot)
		log_debug("shim client %s: %s: closing", c->peer, reason);
	else
		log_warnx("shim client %s: %s: closing", c->peer, reason);
	loop_timer_start(c->s->d.loop, &c->linger, SHIM_LINGER_MS);
	if (c->outlen == 0)
		shutdown(c->fd, SHUT_WR);
}

static void client_line(struct client *c, const char *line, size_t len)
{
	struct shim_req r;
	char why[160];
	enum shim_err e = shimproto_parse(line, len, &r, why, sizeof why);
	if (e != SHIM_OK) {
		log_debug("shim client %s: bad request: %s", c->peer, why);
		shim_client_error(c, r.id, e, why);
	} else {
		c->s->d.metrics->requests[r.op]++;
		session_request(c->sess, &r);
	}
	shimproto_free(&r);
}

/* --- input --- */

static void client_on_io(void *arg, int fd, uint32_t events)
{
	struct client *c = arg;
	struct shim *s = c->s;
	(void)fd;
	if (events & EPOLLOUT) {
		client_flush(c);
		if (c->dead)
			return;
		if (c->want_drain && c->outlen - c->outoff <= s->d.conf->max_outq / 4) {
			c->want_drain = false;
			session_drained(c->sess);
			if (c->dead)
				return;
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (c->closing) {
		/* Discard until EOF so our close does not reset the error line away. */
		char junk[4096];
		ssize_t r = recv(c->fd, junk, sizeof junk, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			client_kill(c, c->close_why, "%s", c->close_reason);
		return;
	}
	size_t max = s->d.conf->max_line;
	if (c->slot && max > SHIM_PENDING_LINE_MAX)
		max = SHIM_PENDING_LINE_MAX;
	if (c->incap < max && c->inlen == c->incap) {
		size_t cap = c->incap ? c->incap * 2 : 4096;
		if (cap > max)
			cap = max;
		char *p = realloc(c->in, cap);
		if (!p) {
			client_kill(c, METRICS_DISC_ERROR, "out of memory");
			return;
		}
		c->in = p;
		c->incap = cap;
	}
	ssize_t r = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		if (r < 0)
			client_kill(c, METRICS_DISC_ERROR, "read: %s", strerror(errno));
		else
			client_kill(c, METRICS_DISC_EOF, "closed by peer");
		return;
	}
	if (c->slot)
		peerlimit_active(c->pl, c->slot);   /* it speaks: not an idle connection of a flood */
	size_t scanned = c->inlen;
	c->inlen += (size_t)r;
	size_t start = 0;
	for (size_t i = scanned; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		size_t n = i - start;
		if (n > 0 && c->in[start + n - 1] == '\r')
			n--;
		client_line(c, c->in + start, n);
		start = i + 1;
		if (c->dead || c->closing)
			return;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->inlen - start);
		c->inlen -= start;
	}
	if (c->inlen >= max) {
		char why[96];
		snprintf(why, sizeof why, "line longer than %zu bytes", max);
		shim_client_error(c, NULL, SHIM_E_TOO_LONG, why);
		shim_client_close_after(c, METRICS_DISC_TOO_LONG, "line over max_line");
	}
}

/* peerlimit displaced this stranger, or it did not authenticate in time (logged there). */
static void shim_pending_close(void *arg, enum peerlimit_why why)
{
	struct client *c = arg;
	c->slot = NULL;
	if (why == PEERLIMIT_DEADLINE)
		client_kill(c, METRICS_DISC_AUTH_TIMEOUT, "no auth within auth_timeout");
	else
		client_kill(c, METRICS_DISC_PENDING, "displaced by newer connections (max_pending)");
}

static void shim_accept(struct shim *s, int fd, const struct sockaddr_storage *peer, bool is_unix)
{
	if (s->stopping) {
		close(fd);
		return;
	}
	struct client *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->s = s;
	c->fd = fd;
	loop_defer_init(&c->reap, client_reap, c);
	c->pl = is_unix ? s->pending_unix : s->pending_tcp;
	/* Makes room first: may close older strangers of the same transport. */
	c->slot = peerlimit_admit(c->pl, fd, peer, shim_pending_close, c);
	if (!c->slot) {
		close(fd);
		free(c);
		return;
	}
	c->sess = session_new(c, &s->d);
	if (!c->sess) {
		peerlimit_done(c->pl, c->slot);
		close(fd);
		free(c);
		return;
	}
	/* A fixed kernel send buffer keeps what a non-reading client can pin bounded too
	 * (autotuning would let it grow to tcp_wmem's maximum, 4 MiB, before max_outq). */
	int sndbuf = SHIM_SNDBUF;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	if (is_unix)
		snprintf(c->peer, sizeof c->peer, "unix:%d", fd);
	else
		net_addr_str((const struct sockaddr *)peer, c->peer, sizeof c->peer);
	loop_timer_init(&c->linger, client_on_linger, c);
	if (loop_io_add(s->d.loop, fd, EPOLLIN, client_on_io, c) < 0) {
		peerlimit_done(c->pl, c->slot);
		close(fd);
		session_free(c->sess);
		free(c);
		return;
	}
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->nclients++;
	s->d.metrics->connections_total++;
	s->d.metrics->clients++;
	log_debug("shim client %s: connected", c->peer);
	/* An auth line already waiting is taken now, before more of a backlog is accepted. */
	client_on_io(c, fd, EPOLLIN);
}

static void shim_on_tcp(void *arg, int fd, const struct sockaddr_storage *peer)
{
	shim_accept(arg, fd, peer, false);
}

static void shim_on_unix(void *arg, int fd, const struct sockaddr_storage *peer)
{
	shim_accept(arg, fd, peer, true);
}

static int shim_unix_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a crash would make bind fail. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	mode_t old = umask(0117);   /* 0660: the web server's group may connect */
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

struct shim *shim_new(const struct shim_deps *d)
{
	struct shim *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->d = *d;
	s->tcp_fd = s->unix_fd = -1;
	const struct conf *c = d->conf;
	/* TCP and unix-socket strangers have budgets of their own: a flood on one transport
	 * leaves the other alone. */
	struct peerlimit_opts po = { .what = "shim", .max_pending = c->max_pending,
				     .max_pending_per_peer = c->max_pending_per_peer,
				     .deadline_ms = c->auth_timeout_ms };
	s->pending_tcp = peerlimit_new(d->loop, &po);
	po.what = "shim (unix)";
	s->pending_unix = peerlimit_new(d->loop, &po);
	if (!s->pending_tcp || !s->pending_unix)
		goto fail;
	if (c->shim_addr) {
		s->tcp_fd = net_tcp_listen(c->shim_addr, c->shim_port, 512);
		if (s->tcp_fd < 0) {
			errno = -s->tcp_fd;
			log_warn("shim listen %s:%u", c->shim_addr, c->shim_port);
			goto fail;
		}
		s->tcp_listener = listener_new(d->loop, s->tcp_fd, "shim", shim_on_tcp, s);
		if (!s->tcp_listener)
			goto fail;
		log_info("shim on %s:%u", c->shim_addr, net_local_port(s->tcp_fd));
	}
	if (c->shim_unix) {
		s->unix_fd = shim_unix_listen(c->shim_unix);
		if (s->unix_fd < 0) {
			errno = -s->unix_fd;
			log_warn("shim listen %s", c->shim_unix);
			goto fail;
		}
		s->unix_listener = listener_new(d->loop, s->unix_fd, "shim (unix)", shim_on_unix, s);
		if (!s->unix_listener)
			goto fail;
		log_info("shim on %s", c->shim_unix);
	}
	return s;
fail:
	shim_free(s);
	return NULL;
}

uint16_t shim_port(const struct shim *s)
{
	return s->tcp_fd >= 0 ? net_local_port(s->tcp_fd) : 0;
}

void shim_set_users(struct shim *s, const struct users *u)
{
	s->d.users = u;
	for (struct client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (session_set_users(c->sess, u) < 0)
			client_kill(c, METRICS_DISC_REVOKED, "token no longer valid after reload");
	}
}

void shim_shutdown(struct shim *s)
{
	s->stopping = true;
	if (s->tcp_fd >= 0) {
		listener_free(s->tcp_listener);
		s->tcp_listener = NULL;
		close(s->tcp_fd);
		s->tcp_fd = -1;
	}
	if (s->unix_fd >= 0) {
		listener_free(s->unix_listener);
		s->unix_listener = NULL;
		close(s->unix_fd);
		s->unix_fd = -1;
		unlink(s->d.conf->shim_unix);
	}
	while (s->clients)
		client_kill(s->clients, METRICS_DISC_SHUTDOWN, "agent stopping");
}

void shim_free(struct shim *s)
{
	if (!s)
		return;
	shim_shutdown(s);
	/* The closed clients' sessions use what the caller frees next. */
	loop_defer_flush(s->d.loop);
	peerlimit_free(s->pending_tcp);
	peerlimit_free(s->pending_unix);
	free(s);
}
