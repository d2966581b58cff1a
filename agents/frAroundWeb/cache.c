/* cache: topic -> latest retained payload, with per-home budgets; see cache.h. */
#include "cache.h"

#include "log.h"
#include "shimproto.h"
#include "strhash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* At most one line per this many ms about non-retained messages on state topics. */
#define CACHE_LOG_EVERY_MS 60000

struct node;

struct home {
	char name[SHIM_NAME_MAX + 1];
	size_t topics, bytes;
	bool over_logged;     /* its budget was hit and said so; reset once it is below again */
	struct node *nodes;   /* its topics, so listing a home never walks the others */
	uint64_t beat_at;     /* monotonic ms of its last heartbeat; 0 = never beat */
	uint64_t beat_interval_ms;
	struct home *next;
};

struct node {
	struct cache_entry e;
	struct node *next;            /* hash chain */
	struct node *hprev, *hnext;   /* the home's topics */
	char *topic;
	char *payload;
	struct home *home;
};

struct cache {
	char *prefix;
	struct cache_limits lim;
	size_t count, nbuckets;
	struct node **b;
	size_t nhomes, nhbuckets;
	struct home **hb;
	bool full_logged;
	uint64_t refused[CACHE_REFUSAL_COUNT];
	uint64_t not_retained_logged_at, not_retained_quiet;
};

static const char *const refusal_names[CACHE_REFUSAL_COUNT] = {
	"not_retained", "home_topics", "home_bytes", "full"
};

const char *cache_refusal_name(enum cache_refusal why)
{
	return (unsigned)why < CACHE_REFUSAL_COUNT ? refusal_names[why] : "?";
}

struct cache *cache_new(const char *prefix, const struct cache_limits *lim)
{
	struct cache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->prefix = strdup(prefix);
	c->lim = *lim;
	c->nbuckets = 1024;
	c->b = calloc(c->nbuckets, sizeof *c->b);
	c->nhbuckets = 64;
	c->hb = calloc(c->nhbuckets, sizeof *c->hb);
	if (!c->prefix || !c->b || !c->hb) {
		cache_free(c);
		return NULL;
	}
	return c;
}

static void node_free(struct node *n)
{
	free(n->topic);
	free(n->payload);
	free(n);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->b && i < c->nbuckets; i++) {
		for (struct node *n = c->b[i], *next; n; n = next) {
			next = n->next;
			node_free(n);
		}
	}
	for (size_t i = 0; c->hb && i < c->nhbuckets; i++) {
		for (struct home *h = c->hb[i], *next; h; h = next) {
			next = h->next;
			free(h);
		}
	}
	free(c->b);
	free(c->hb);
	free(c->prefix);
	free(c);
}

/* The shape after the prefix: home/status, home/ctl/<ctl>/status|info,
 * home/ctl/<ctl>/state/<sensor>, every level non-empty; the home (a valid name) into home. */
static bool cache_parse(const struct cache *c, const char *topic, char home[SHIM_NAME_MAX + 1])
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
	bool ok;
#define LV_IS(i, s) (ll[i] == strlen(s) && memcmp(lv[i], s, ll[i]) == 0)
	if (n == 2)
		ok = LV_IS(1, "status");
	else if (n == 4)
		ok = LV_IS(1, "ctl") && (LV_IS(3, "status") || LV_IS(3, "info"));
	else if (n == 5)
		ok = LV_IS(1, "ctl") && LV_IS(3, "state");
	else
		ok = false;
#undef LV_IS
	if (!ok || ll[0] > SHIM_NAME_MAX)
		return false;
	memcpy(home, lv[0], ll[0]);
	home[ll[0]] = '\0';
	return true;
}

bool cache_wants(const struct cache *c, const char *topic)
{
	char home[SHIM_NAME_MAX + 1];
	return cache_parse(c, topic, home);
}

/* --- homes --- */

static struct home *home_find(const struct cache *c, const char *name)
{
	struct home *h = c->hb[strhash(name) & (c->nhbuckets - 1)];
	while (h && strcmp(h->name, name) != 0)
		h = h->next;
	return h;
}

static void home_grow(struct cache *c)
{
	size_t nb = c->nhbuckets * 2;
	struct home **hb = calloc(nb, sizeof *hb);
	if (!hb)
		return;   /* longer chains, still correct */
	for (size_t i = 0; i < c->nhbuckets; i++) {
		for (struct home *h = c->hb[i], *next; h; h = next) {
			next = h->next;
			size_t k = strhash(h->name) & (nb - 1);
			h->next = hb[k];
			hb[k] = h;
		}
	}
	free(c->hb);
	c->hb = hb;
	c->nhbuckets = nb;
}

static struct home *home_get(struct cache *c, const char *name)
{
	struct home *h = home_find(c, name);
	if (h)
		return h;
	h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	memcpy(h->name, name, strlen(name) + 1);
	size_t k = strhash(name) & (c->nhbuckets - 1);
	h->next = c->hb[k];
	c->hb[k] = h;
	if (++c->nhomes > c->nhbuckets)
		home_grow(c);
	return h;
}

/* A home without topics or heartbeat is forgotten. */
static void home_release(struct cache *c, struct home *h)
{
	if (h->topics > 0 || h->beat_at)
		return;
	struct home **pp = &c->hb[strhash(h->name) & (c->nhbuckets - 1)];
	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
	c->nhomes--;
	free(h);
}

/* --- topics --- */

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

static size_t node_bytes(const struct node *n)
{
	return strlen(n->topic) + n->e.len;
}

/* Unlinks *pp and gives its room back to its home. */
static void cache_delete(struct cache *c, struct node **pp)
{
	struct node *n = *pp;
	struct home *h = n->home;
	*pp = n->next;
	if (n->hprev)
		n->hprev->hnext = n->hnext;
	else
		h->nodes = n->hnext;
	if (n->hnext)
		n->hnext->hprev = n->hprev;
	h->topics--;
	h->bytes -= node_bytes(n);
	h->over_logged = false;
	c->count--;
	if (c->count < c->lim.max_topics)
		c->full_logged = false;
	node_free(n);
	home_release(c, h);
}

static int cache_refuse(struct cache *c, enum cache_refusal why, struct home *h, const char *topic,
			uint64_t now)
{
	c->refused[why]++;
	switch (why) {
	case CACHE_NOT_RETAINED:
		/* Anyone the home server answers could cause these; one line a minute at most. */
		if (c->not_retained_logged_at && now - c->not_retained_logged_at < CACHE_LOG_EVERY_MS) {
			c->not_retained_quiet++;
			break;
		}
		log_warnx("cache: %s: not retained, not kept (state topics are retained, "
			  "docs/topics.md)%s", topic, c->not_retained_quiet ? "; more since the last line" : "");
		c->not_retained_logged_at = now ? now : 1;
		c->not_retained_quiet = 0;
		break;
	case CACHE_HOME_TOPICS:
	case CACHE_HOME_BYTES:
		if (h && !h->over_logged)
			log_warnx("cache: home %s over its budget (%zu topics, %zu bytes; limits %zu, %zu): "
				  "%s not kept", h->name, h->topics, h->bytes, c->lim.max_topics_per_home,
				  c->lim.max_bytes_per_home, topic);
		if (h)
			h->over_logged = true;
		break;
	case CACHE_FULL:
		if (!c->full_logged)
			log_warnx("cache: full (%zu topics): new topics such as %s are not kept",
				  c->lim.max_topics, topic);
		c->full_logged = true;
		break;
	default:
		break;
	}
	return why == CACHE_NOT_RETAINED ? -EINVAL : why == CACHE_FULL ? -ENOSPC : -EDQUOT;
}

int cache_put(struct cache *c, const char *topic, const void *payload, size_t len, bool retained,
	      uint64_t now)
{
	char name[SHIM_NAME_MAX + 1];
	if (!cache_parse(c, topic, name))
		return -EINVAL;
	if (!retained)
		return cache_refuse(c, CACHE_NOT_RETAINED, NULL, topic, now);
	struct node **pp = &c->b[strhash(topic) & (c->nbuckets - 1)], *n;
	for (; (n = *pp); pp = &n->next)
		if (strcmp(n->topic, topic) == 0)
			break;
	if (len == 0) {
		/* An empty payload clears a retained topic (MQTT 3.3.1.3). */
		if (n)
			cache_delete(c, pp);
		return 0;
	}
	struct home *h = n ? n->home : home_get(c, name);
	if (!h)
		return -ENOMEM;
	size_t tl = strlen(topic), old = n ? node_bytes(n) : 0;
	int rc = 0;
	if (!n && c->count >= c->lim.max_topics)
		rc = cache_refuse(c, CACHE_FULL, h, topic, now);
	else if (!n && h->topics >= c->lim.max_topics_per_home)
		rc = cache_refuse(c, CACHE_HOME_TOPICS, h, topic, now);
	else if (h->bytes - old + tl + len > c->lim.max_bytes_per_home)
		rc = cache_refuse(c, CACHE_HOME_BYTES, h, topic, now);
	if (rc < 0) {
		if (n)
			cache_delete(c, pp);
		else
			home_release(c, h);
		return rc;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		goto nomem;
	memcpy(copy, payload, len);
	copy[len] = '\0';
	if (!n) {
		n = calloc(1, sizeof *n);
		if (!n || !(n->topic = strdup(topic))) {
			free(n);
			free(copy);
			goto nomem;
		}
		n->e.topic = n->topic;
		n->home = h;
		n->next = *pp;
		*pp = n;
		n->hnext = h->nodes;
		if (h->nodes)
			h->nodes->hprev = n;
		h->nodes = n;
		h->topics++;
		if (++c->count > c->nbuckets)
			cache_grow(c);
	}
	h->bytes = h->bytes - old + tl + len;
	free(n->payload);
	n->payload = copy;
	n->e.payload = copy;
	n->e.len = len;
	n->e.retained = true;
	n->e.received = now;
	return 0;
nomem:
	home_release(c, h);
	return -ENOMEM;
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

uint64_t cache_refused(const struct cache *c, enum cache_refusal why)
{
	return (unsigned)why < CACHE_REFUSAL_COUNT ? c->refused[why] : 0;
}

void cache_foreach_home(const struct cache *c, const char *home,
			void (*cb)(void *arg, const struct cache_entry *e), void *arg)
{
	const struct home *h = home_find(c, home);
	for (const struct node *n = h ? h->nodes : NULL; n; n = n->hnext)
		cb(arg, &n->e);
}

/* --- liveness --- */

int cache_heartbeat(struct cache *c, const char *home, uint64_t interval_ms, uint64_t now_ms)
{
	struct home *h = home_find(c, home);
	if (!h && c->nhomes >= c->lim.max_topics) {
		c->refused[CACHE_FULL]++;   /* as full as a topic would find it; logged there */
		return -ENOSPC;
	}
	if (!h && !(h = home_get(c, home)))
		return -ENOMEM;
	h->beat_at = now_ms ? now_ms : 1;
	h->beat_interval_ms = interval_ms;
	return 0;
}

static bool home_stale(const struct cache *c, const struct home *h, uint64_t now_ms,
		       uint64_t *silent_ms)
{
	if (!h || !h->beat_at)
		return false;
	uint64_t silent = now_ms > h->beat_at ? now_ms - h->beat_at : 0;
	if (silent <= (uint64_t)c->lim.stale_after * h->beat_interval_ms)
		return false;
	if (silent_ms)
		*silent_ms = silent;
	return true;
}

bool cache_stale(const struct cache *c, const char *home, uint64_t now_ms, uint64_t *silent_ms)
{
	return home_stale(c, home_find(c, home), now_ms, silent_ms);
}

uint64_t cache_heartbeat_interval(const struct cache *c, const char *home)
{
	const struct home *h = home_find(c, home);
	return h && h->beat_at ? h->beat_interval_ms : 0;
}

size_t cache_stale_count(const struct cache *c, uint64_t now_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nhbuckets; i++)
		for (const struct home *h = c->hb[i]; h; h = h->next)
			n += home_stale(c, h, now_ms, NULL);
	return n;
}
