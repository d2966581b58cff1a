/* shim: the shim protocol's transport (docs/shim.md): TCP and/or unix listeners, one
 * non-blocking NDJSON connection per client with a read buffer bounded by max_line, a bounded
 * output queue (max_outq), max_clients authenticated clients, and budgets for connections
 * that have not authenticated yet (peerlimit: per peer and in all, an auth deadline). A client
 * that breaks a limit is cut off with a logged reason; nothing one client does blocks the others. Each parsed line goes to the
 * client's session (session.c), which runs the operations and answers through
 * shim_client_send.
 *
 * Ownership: struct shim is owned by the caller (shim_free). It borrows everything in
 * shim_deps, which must outlive it; the users table may be replaced with shim_set_users. A
 * struct client is owned by the shim; a session may use its client until session_free. */
#ifndef WEB_SHIM_H
#define WEB_SHIM_H

#include "metrics.h"
#include "shimproto.h"

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct mqtt;
struct cache;
struct relay;
struct audit;
struct metrics;
struct users;
struct conf;
struct subs;
struct history;
struct shim;
struct client;          /* one shim connection (shim.c) */

struct shim_deps {
	struct loop *loop;
	const struct conf *conf;
	struct mqtt *mqtt;
	struct cache *cache;
	struct relay *relay;
	struct audit *audit;
	struct metrics *metrics;
	struct subs *subs;
	const struct users *users;
	struct history *history;   /* NULL: no history recorded (op history -> not_found) */
};

/* Opens the listeners of conf; NULL on error (logged). */
struct shim *shim_new(const struct shim_deps *d);
/* Local TCP port of the TCP listener (0 if none). */
uint16_t shim_port(const struct shim *s);
/* A reloaded users table: authenticated clients are re-resolved by their token's hash; a
 * client whose token is gone is disconnected, the others lose at once the subscriptions and
 * requests of homes their user no longer has. The old table may be freed after this. */
void shim_set_users(struct shim *s, const struct users *u);
/* Closes the listeners and every client. */
void shim_shutdown(struct shim *s);
void shim_free(struct shim *s);

/* For the session: queues one response line (dropped once the client is cut off; a client over
 * max_outq is cut off here). */
void shim_client_send(struct client *c, const cJSON *line);
/* Bytes queued to the client and not yet taken by its socket. */
size_t shim_client_queued(const struct client *c);
/* Calls session_drained once the queue is down to a quarter of max_outq: a long answer is
 * made in parts as the client reads, never more than max_outq at a time. */
void shim_client_want_drain(struct client *c);
/* Sends an error line and counts it in the metrics. */
void shim_client_error(struct client *c, const cJSON *id, enum shim_err code,
		       const char *msg);
/* Sends what is queued, then closes the connection (why: the metrics' reason). */
void shim_client_close_after(struct client *c, enum metrics_disc why, const char *reason);
/* The client proved a token: it is no longer an anonymous connection (its pending budget is
 * freed). -1 when max_clients authenticated clients are connected: the error (with id) was
 * sent and the connection is closing. */
int shim_client_authenticated(struct client *c, const cJSON *id);
/* A wrong token: logged (a stranger's only counted in the rate-limited log). */
void shim_client_wrong_token(struct client *c, int failures);
/* "127.0.0.1:34567" or "unix:7" (borrowed). */
const char *shim_client_peer(const struct client *c);

#endif
