/* cache: the latest state of every home (docs/topics.md): the retained messages on
 * <prefix>/<home>/status and <prefix>/<home>/ctl/<ctl>/status|info|state/<sensor>, so get and
 * list answer at once without asking the broker. Only retained messages are state: a
 * non-retained message on such a topic (which no home server sends) is not kept, so nobody can
 * fill the cache with replies or events. Bounded per home (max_topics_per_home topics and
 * max_bytes_per_home bytes of topic + payload) and in all (max_topics): a home over its budget
 * gets no new topics (logged once per fill), so it can never crowd out another home; nothing is
 * evicted. An empty retained payload deletes the topic.
 *
 * Liveness: a home whose frMhs sends heartbeats (docs/topics.md, "Heartbeat") is stale once
 * stale_after beats were missed, whatever its retained status says (a broker cluster losing
 * the node that held the home's connection sends no will). A home that never beat has no
 * liveness (stale is never true), as with an frMhs from before heartbeats.
 *
 * Ownership: struct cache is owned by the caller (cache_free). struct cache_entry and its
 * strings are owned by the cache and valid until the next cache_put for the same topic. */
#ifndef WEB_CACHE_H
#define WEB_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_entry {
	const char *topic;
	const char *payload;   /* NUL-terminated copy (payload may hold NULs; len is the truth) */
	size_t len;
	bool retained;         /* always true: only retained messages are kept */
	uint64_t received;     /* wall clock ms */
};

struct cache_limits {
	size_t max_topics;            /* in all */
	size_t max_topics_per_home;
	size_t max_bytes_per_home;    /* topic + payload bytes */
	unsigned stale_after;         /* missed heartbeats before a home is stale */
};

/* Why messages were not kept, for /metrics. */
enum cache_refusal {
	CACHE_NOT_RETAINED, CACHE_HOME_TOPICS, CACHE_HOME_BYTES, CACHE_FULL, CACHE_REFUSAL_COUNT
};

struct cache;

struct cache *cache_new(const char *prefix, const struct cache_limits *lim);
void cache_free(struct cache *c);
/* True if topic is one the cache keeps (<prefix>/<home>/status, .../ctl/<ctl>/status|info,
 * .../ctl/<ctl>/state/<sensor>). */
bool cache_wants(const struct cache *c, const char *topic);
/* Stores a copy of a message on a topic cache_wants. Returns 0, -EINVAL (not retained),
 * -EDQUOT (the home's budget; an existing topic whose new payload does not fit is removed, a
 * stale value being worse than none), -ENOSPC (max_topics) or -ENOMEM; refusals are counted and
 * logged once per fill. */
int cache_put(struct cache *c, const char *topic, const void *payload, size_t len, bool retained,
	      uint64_t now_wall_ms);
const struct cache_entry *cache_get(const struct cache *c, const char *topic);
size_t cache_count(const struct cache *c);
/* Messages not kept since the start, by reason. */
uint64_t cache_refused(const struct cache *c, enum cache_refusal why);
const char *cache_refusal_name(enum cache_refusal why);
/* Calls cb for every entry of home (any order); the cost is that home's topics alone. */
void cache_foreach_home(const struct cache *c, const char *home,
			void (*cb)(void *arg, const struct cache_entry *e), void *arg);

/* A heartbeat of home (a valid name) announcing interval_ms between beats, at now_ms
 * (monotonic). 0, -ENOSPC (a new home while the cache holds max_topics homes) or -ENOMEM. */
int cache_heartbeat(struct cache *c, const char *home, uint64_t interval_ms, uint64_t now_ms);
/* Whether home missed stale_after beats at now_ms; if so *silent_ms (may be NULL) is the time
 * since its last beat. */
bool cache_stale(const struct cache *c, const char *home, uint64_t now_ms, uint64_t *silent_ms);
/* The interval home's last heartbeat announced, 0 if it never beat. */
uint64_t cache_heartbeat_interval(const struct cache *c, const char *home);
/* Homes stale at now_ms (for /metrics; walks every home). */
size_t cache_stale_count(const struct cache *c, uint64_t now_ms);

#endif
