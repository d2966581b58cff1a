/* session: one shim client's protocol state and its operations (docs/shim.md): who it is (auth),
 * what it may see (its user's homes, re-read on every users reload), its requests in flight and
 * its subscriptions; every op (session.c; history answers in sesshist.c). The transport
 * (shim.c) owns the connection and the line framing, hands each parsed request here, and frees
 * the session when the client is gone.
 *
 * Ownership: a struct session is owned by its shim client (session_free, called by the
 * transport after the client's connection is closed, never from within a message callback).
 * It borrows the client and the shim_deps, which outlive it; d->users may be replaced between
 * calls (then session_set_users follows). */
#ifndef WEB_SESSION_H
#define WEB_SESSION_H

#include "shimproto.h"

struct client;
struct shim_deps;
struct users;
struct session;

struct session *session_new(struct client *c, const struct shim_deps *d);
void session_free(struct session *s);
/* The client's connection is closed: its requests still run to their end and are audited,
 * silently; nothing more is sent. */
void session_detach(struct session *s);
/* Runs one parsed request (r->op valid). */
void session_request(struct session *s, const struct shim_req *r);
/* The client's output queue has room again (shim_client_want_drain): long answers go on. */
void session_drained(struct session *s);
/* A reloaded users table: the session follows its token to the user it now belongs to, and
 * ends (error forbidden) its subscriptions and requests in homes that user no longer has.
 * Returns -ENOENT when the token belongs to nobody any more (the caller disconnects), else 0. */
int session_set_users(struct session *s, const struct users *u);
/* The user's name once authenticated, else NULL. */
const char *session_user(const struct session *s);

#endif
