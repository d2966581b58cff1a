/* http: a minimal HTTP/1.0 responder on the agent's loop for /healthz, /readyz and /metrics.
 * (Debian's libwebsockets 4.1.6 is built without LWS_WITH_EXTERNAL_POLL, so it cannot run
 * inside our epoll loop without a thread of its own; these three GETs need no more than this.)
 * GET only, one request per connection, request head at most 4 KiB; the response is written
 * and the connection closed. No client authenticates, so every connection is pending in a
 * peerlimit until it is closed: budgets per peer and in all (a newer connection displaces an
 * older one, so slow clients cannot keep /healthz down), and a deadline for the whole
 * exchange. A request already waiting when a connection is accepted is answered at once.
 *
 * Ownership: struct http is owned by the caller (http_free). The handler returns a malloc'd
 * body that http frees. */
#ifndef WEB_HTTP_H
#define WEB_HTTP_H

#include <stdint.h>

struct loop;
struct http;
struct peerlimit_opts;

/* Fills *status (200, 404, 503...) and *ctype (a string literal); returns the body or NULL
 * (then 500). */
typedef char *(*http_handler)(void *arg, const char *path, int *status, const char **ctype);

/* Listens on addr:port (port 0: any) with the connection limits in lim (deadline_ms is the
 * whole exchange's); NULL on error (logged). */
struct http *http_new(struct loop *loop, const char *addr, uint16_t port,
		      const struct peerlimit_opts *lim, http_handler h, void *arg);
uint16_t http_port(const struct http *h);
void http_free(struct http *h);

#endif
