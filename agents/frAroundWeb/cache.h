/* cache: the latest payload of every status/info/state topic (docs/topics.md), so get and list
 * answer at once without asking the broker. Bounded: when max_topics are held, new topics are
 * refused (logged), nothing is evicted; an empty retained payload deletes the topic.
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
	bool retained;
	uint64_t received;     /* wall clock ms */
};

struct cache;

struct cache *cache_new(const char *prefix, size_t max_topics);
void cache_free(struct cache *c);
/* True if topic is one the cache keeps (<prefix>/<home>/status, .../ctl/<ctl>/status|info,
 * .../ctl/<ctl>/state/<sensor>). */
bool cache_wants(const struct cache *c, const char *topic);
/* Stores a copy; returns 0, -ENOSPC (full; logged once per fill) or -ENOMEM. */
int cache_put(struct cache *c, const char *topic, const void *payload, size_t len, bool retained,
	      uint64_t now_wall_ms);
const struct cache_entry *cache_get(const struct cache *c, const char *topic);
size_t cache_count(const struct cache *c);
/* Calls cb for every entry whose topic starts with prefix (any order). */
void cache_foreach(const struct cache *c, const char *prefix,
		   void (*cb)(void *arg, const struct cache_entry *e), void *arg);

#endif
