/* cache: topic -> latest payload hash table; see cache.h. */
#include "cache.h"

#include "log.h"
#include "strhash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct cache_entry e;
	struct node *next;
	char *topic;
	char *payload;
};

struct cache {
	char *prefix;
	size_t max, count, nbuckets;
	struct node **b;
	bool full_logged;
};

struct cache *cache_new(const char *prefix, size_t max_topics)
{
	struct cache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->prefix = strdup(prefix);
	c->max = max_topics;
	c->nbuckets = 1024;
	c->b = calloc(c->nbuckets, sizeof *c->b);
	if (!c->prefix || !c->b) {
		cache_free(c);
		return NULL;
	}
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->b && i < c->nbuckets; i++) {
		for (struct node *n = c->b[i], *next; n; n = next) {
			next = n->next;
			free(n->topic);
			free(n->payload);
			free(n);
		}
	}
	free(c->b);
	free(c->prefix);
	free(c);
}

/* Counts levels and checks the shape after the prefix. */
bool cache_wants(const struct cache *c, const char *topic)
{
	size_t pl = strlen(c->prefix);
	if (strncmp(topic, c->prefix, pl) != 0 || topic[pl] != '/')
		return false;
	const char *lv[6];
	size_t ll[6];
	int n = 0;
	const char *p = topic + pl + 1;
	while (n < 6) {
		const char *e = strchr(p, '/');
		lv[n] = p;
		ll[n] = e ? (size_t)(e - p) : strlen(p);
		if (ll[n] == 0)
			return false;
		n++;
		if (!e)
			break;
		p = e + 1;
		if (n == 6)
			return false;
	}
#define LV_IS(i, s) (ll[i] == strlen(s) && memcmp(lv[i], s, ll[i]) == 0)
	if (n == 2)
		return LV_IS(1, "status");
	if (n == 4)
		return LV_IS(1, "ctl") && (LV_IS(3, "status") || LV_IS(3, "info"));
	if (n == 5)
		return LV_IS(1, "ctl") && LV_IS(3, "state");
#undef LV_IS
	return false;
}

static void cache_grow(struct cache *c)
{
	size_t nb = c->nbuckets * 2;
	struct node **b = calloc(nb, sizeof *b);
	if (!b)
		return;   /* longer chains, still correct */
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct node *n = c->b[i], *next; n; n = next) {
			next = n->next;
			size_t h = strhash(n->topic) & (nb - 1);
			n->next = b[h];
			b[h] = n;
		}
	}
	free(c->b);
	c->b = b;
	c->nbuckets = nb;
}

int cache_put(struct cache *c, const char *topic, const void *payload, size_t len, bool retained,
	      uint64_t now)
{
	struct node **pp = &c->b[strhash(topic) & (c->nbuckets - 1)], *n;
	for (n = *pp; n; pp = &n->next, n = n->next)
		if (strcmp(n->topic, topic) == 0)
			break;
	if (len == 0) {
		/* An empty payload clears a retained topic (MQTT 3.3.1.3). */
		if (n) {
			*pp = n->next;
			free(n->topic);
			free(n->payload);
			free(n);
			c->count--;
			if (c->count < c->max)
				c->full_logged = false;
		}
		return 0;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, payload, len);
	copy[len] = '\0';
	if (!n) {
		if (c->count >= c->max) {
			if (!c->full_logged)
				log_warnx("cache: full (%zu topics): new topics such as %s are not kept",
					  c->max, topic);
			c->full_logged = true;
			free(copy);
			return -ENOSPC;
		}
		n = calloc(1, sizeof *n);
		if (!n || !(n->topic = strdup(topic))) {
			free(n);
			free(copy);
			return -ENOMEM;
		}
		n->e.topic = n->topic;
		n->next = *pp;
		*pp = n;
		if (++c->count > c->nbuckets)
			cache_grow(c);
	}
	free(n->payload);
	n->payload = copy;
	n->e.payload = copy;
	n->e.len = len;
	n->e.retained = retained;
	n->e.received = now;
	return 0;
}

const struct cache_entry *cache_get(const struct cache *c, const char *topic)
{
	for (struct node *n = c->b[strhash(topic) & (c->nbuckets - 1)]; n; n = n->next)
		if (strcmp(n->topic, topic) == 0)
			return &n->e;
	return NULL;
}

size_t cache_count(const struct cache *c)
{
	return c->count;
}

void cache_foreach(const struct cache *c, const char *prefix,
		   void (*cb)(void *arg, const struct cache_entry *e), void *arg)
{
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct node *n = c->b[i]; n; n = n->next)
			if (strncmp(n->topic, prefix, pl) == 0)
				cb(arg, &n->e);
}
