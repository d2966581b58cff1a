/* http: minimal HTTP/1.0 GET responder; see http.h. */
#include "http.h"

#include "listener.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "peerlimit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_HEAD_MAX 4096

struct hconn {
	struct http *h;
	int fd;
	char in[HTTP_HEAD_MAX + 1];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
	struct peerlimit_slot *slot;   /* NULL once peerlimit closed it */
	struct hconn *prev, *next;
};

struct http {
	struct loop *loop;
	int lfd;
	struct listener *listener;
	struct peerlimit *pending;
	http_handler handler;
	void *arg;
	struct hconn *conns;
	int nconns;
};

static void http_close(struct hconn *c)
{
	struct http *h = c->h;
	peerlimit_done(h->pending, c->slot);
	loop_io_del(h->loop, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	free(c->out);
	free(c);
}

/* Displaced by a newer connection or past its deadline (logged by peerlimit). */
static void http_pending_close(void *arg, enum peerlimit_why why)
{
	struct hconn *c = arg;
	(void)why;
	c->slot = NULL;
	http_close(c);
}

/* Sends what is left of the response and closes once it is all sent (or the peer is gone);
 * waits for EPOLLOUT otherwise. */
static void http_write(struct hconn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			loop_io_mod(c->h->loop, c->fd, EPOLLOUT);
			return;
		}
		if (w <= 0)
			break;
		c->outoff += (size_t)w;
	}
	http_close(c);
}

/* Answers at once (the socket is nearly always writable): a served connection leaves the
 * pending budget without waiting for another loop iteration. May close c. */
static void http_respond(struct hconn *c, int status, const char *ctype, const char *body)
{
	const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request"
			   : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
			   : status == 503 ? "Service Unavailable" : "Internal Server Error";
	size_t blen = strlen(body);
	size_t cap = blen + 256;
	c->out = malloc(cap);
	if (!c->out) {
		http_close(c);
		return;
	}
	int n = snprintf(c->out, cap, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n\r\n", status, reason,
			 ctype, blen);
	memcpy(c->out + n, body, blen);
	c->outlen = (size_t)n + blen;
	http_write(c);
}

static void http_handle(struct hconn *c)
{
	char method[8], path[256];
	if (sscanf(c->in, "%7s %255s", method, path) != 2) {
		http_respond(c, 400, "text/plain", "bad request\n");
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_respond(c, 405, "text/plain", "GET only\n");
		return;
	}
	char *q = strchr(path, '?');
	if (q)
		*q = '\0';
	int status = 404;
	const char *ctype = "text/plain";
	char *body = c->h->handler(c->h->arg, path, &status, &ctype);
	if (!body)
		http_respond(c, 500, "text/plain", "internal error\n");
	else
		http_respond(c, status, ctype, body);
	free(body);
}

static void http_on_io(void *arg, int fd, uint32_t events)
{
	struct hconn *c = arg;
	if (c->out) {
		http_write(c);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		ssize_t r = recv(fd, c->in + c->inlen, HTTP_HEAD_MAX - c->inlen, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			http_close(c);
			return;
		}
		c->inlen += (size_t)r;
		c->in[c->inlen] = '\0';
		/* A slow client speaks too, so this alone does not protect against slowloris; the
		 * deadline and the budgets do. It does put idle connections first in line. */
		peerlimit_active(c->h->pending, c->slot);
		if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
			http_handle(c);
			return;
		}
		if (c->inlen == HTTP_HEAD_MAX) {
			http_respond(c, 400, "text/plain", "request head too large\n");
			return;
		}
	}
}

static void http_on_accept(void *arg, int cfd, const struct sockaddr_storage *peer)
{
	struct http *h = arg;
	struct hconn *c = calloc(1, sizeof *c);
	if (c)
		c->slot = peerlimit_admit(h->pending, cfd, peer, http_pending_close, c);
	if (!c || !c->slot) {
		free(c);
		close(cfd);
		return;
	}
	c->h = h;
	c->fd = cfd;
	if (loop_io_add(h->loop, cfd, EPOLLIN, http_on_io, c) < 0) {
		peerlimit_done(h->pending, c->slot);
		close(cfd);
		free(c);
		return;
	}
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	/* A request already waiting is served now, before more of a backlog is taken. */
	http_on_io(c, cfd, EPOLLIN);
}

struct http *http_new(struct loop *loop, const char *addr, uint16_t port,
		      const struct peerlimit_opts *lim, http_handler handler, void *arg)
{
	struct http *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->loop = loop;
	h->handler = handler;
	h->arg = arg;
	h->pending = peerlimit_new(loop, lim);
	if (!h->pending) {
		free(h);
		return NULL;
	}
	h->lfd = net_tcp_listen(addr, port, 64);
	if (h->lfd < 0) {
		errno = -h->lfd;
		log_warn("http listen %s:%u", addr, port);
		peerlimit_free(h->pending);
		free(h);
		return NULL;
	}
	h->listener = listener_new(loop, h->lfd, "http", http_on_accept, h);
	if (!h->listener) {
		close(h->lfd);
		peerlimit_free(h->pending);
		free(h);
		return NULL;
	}
	return h;
}

uint16_t http_port(const struct http *h)
{
	return net_local_port(h->lfd);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	while (h->conns)
		http_close(h->conns);
	listener_free(h->listener);
	close(h->lfd);
	peerlimit_free(h->pending);
	free(h);
}
