/* shim: the shim protocol server (docs/shim.md): TCP and/or unix listeners, one non-blocking
 * NDJSON connection per client with a read buffer bounded by max_line, a bounded output queue
 * (max_outq), at most max_inflight requests and subscriptions each and max_clients in all. A
 * client that breaks a limit is cut off with a logged reason; nothing one client does blocks
 * the others. Answers get and list from the cache, hands requests to the relay, and keeps the
 * broker subscriptions of the clients' "subscribe" ops (refcounted per filter).
 *
 * Ownership: struct shim is owned by the caller (shim_free). It borrows the loop, mqtt, cache,
 * relay, audit, metrics and conf, and the current users table (see shim_set_users), which
 * must outlive it. */
#ifndef WEB_SHIM_H
#define WEB_SHIM_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct mqtt;
struct mqtt_msg;
struct cache;
struct relay;
struct audit;
struct metrics;
struct users;
struct conf;
struct shim;

struct shim_deps {
	struct loop *loop;
	const struct conf *conf;
	struct mqtt *mqtt;
	struct cache *cache;
	struct relay *relay;
	struct audit *audit;
	struct metrics *metrics;
	const struct users *users;
};

/* Opens the listeners of conf; NULL on error (logged). */
struct shim *shim_new(const struct shim_deps *d);
/* Local TCP port of the TCP listener (0 if none). */
uint16_t shim_port(const struct shim *s);
/* Subscribes filter at the broker and counts one reference to it; shim_filter_unref drops one
 * and unsubscribes at zero. The agent's own filters (cache, replies) hold a reference forever. */
int shim_filter_ref(struct shim *s, const char *filter);
void shim_filter_unref(struct shim *s, const char *filter);
/* True if m is a second copy of the previous message, sent because several of our filters
 * match it (brokers deliver one copy per matching subscription): drop it everywhere. */
bool shim_is_duplicate(struct shim *s, const struct mqtt_msg *m);
/* Delivers m to the clients whose subscriptions match. */
void shim_on_message(struct shim *s, const struct mqtt_msg *m);
/* A reloaded users table: authenticated clients are re-resolved by their token's hash; a
 * client whose token is gone is disconnected. The old table may be freed after this. */
void shim_set_users(struct shim *s, const struct users *u);
/* Closes the listeners and every client. */
void shim_shutdown(struct shim *s);
void shim_free(struct shim *s);

#endif
