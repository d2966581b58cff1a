/* reqset.c: the set of requests: a hash table of every remembered id, each controller's open
 * requests in arrival order, and the ended ones oldest first (forgotten beyond dedup_max). */
#include "req_int.h"

#include "strhash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const req_state_names[REQ_NSTATES] = {
	"waiting", "sent", "accepted", "started", "done", "gaveup"
};

const char *req_state_name(enum req_state s)
{
	return s < REQ_NSTATES ? req_state_names[s] : "?";
}

struct req *req_find(const struct reqs *q, const char *key)
{
	for (struct req *r = q->buckets[strhash(key) & (q->nbuckets - 1)]; r; r = r->hnext)
		if (strcmp(r->key, key) == 0)
			return r;
	return NULL;
}

struct reqq *reqq_get(struct reqs *q, const char *ctl, bool create)
{
	struct reqq **pp = &q->qbuckets[strhash(ctl) & (q->nqbuckets - 1)];
	for (struct reqq *qq = *pp; qq; qq = qq->hnext)
		if (strcmp(qq->ctl, ctl) == 0)
			return qq;
	struct reqq *qq = create ? calloc(1, sizeof *qq) : NULL;
	if (qq) {
		snprintf(qq->ctl, sizeof qq->ctl, "%s", ctl);
		qq->hnext = *pp;
		*pp = qq;
	}
	return qq;
}

static void reqq_put(struct reqs *q, struct reqq *qq)
{
	if (qq->n)
		return;
	struct reqq **pp = &q->qbuckets[strhash(qq->ctl) & (q->nqbuckets - 1)];
	while (*pp != qq)
		pp = &(*pp)->hnext;
	*pp = qq->hnext;
	free(qq);
}

static void req_append(struct req **first, struct req **last, struct req *r)
{
	r->next = NULL;
	r->prev = *last;
	if (*last)
		(*last)->next = r;
	else
		*first = r;
	*last = r;
}

void req_unlink(struct reqs *q, struct req *r)
{
	struct req **first, **last;
	if (r->qq) {
		first = &r->qq->first;
		last = &r->qq->last;
		r->qq->n--;
		q->nopen--;
	} else {
		first = &q->ended_first;
		last = &q->ended_last;
		q->nended--;
	}
	if (r->prev)
		r->prev->next = r->next;
	else
		*first = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		*last = r->prev;
	r->prev = r->next = NULL;
	if (r->qq) {
		struct reqq *qq = r->qq;
		r->qq = NULL;
		reqq_put(q, qq);
	}
}

void req_routes_free(struct req *r)
{
	for (int i = 0; i < r->nroutes; i++) {
		free(r->routes[i].topic);
		free(r->routes[i].corr);
	}
	free(r->routes);
	r->routes = NULL;
	r->nroutes = 0;
}

void req_free(struct reqs *q, struct req *r)
{
	struct req **pp = &q->buckets[strhash(r->key) & (q->nbuckets - 1)];
	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	req_unlink(q, r);
	loop_timer_stop(q->loop, &r->timer);
	req_routes_free(r);
	cJSON_Delete(r->frame);
	free(r->frame_text);
	free(r->final);
	free(r);
}

const char *req_frame_text(struct req *r, size_t *len)
{
	if (!r->frame_text && r->frame && (r->frame_text = cJSON_PrintUnformatted(r->frame)))
		r->frame_len = strlen(r->frame_text);
	*len = r->frame_len;
	return r->frame_text;
}

void req_frame_changed(struct req *r)
{
	free(r->frame_text);
	r->frame_text = NULL;
	r->frame_len = 0;
}

int req_add_route(struct req *r, const char *topic, const void *corr, size_t corr_len,
			 bool final_only)
{
	struct route *nr = realloc(r->routes, (size_t)(r->nroutes + 1) * sizeof *nr);
	if (!nr)
		return -1;
	r->routes = nr;
	struct route *rt = &nr[r->nroutes];
	memset(rt, 0, sizeof *rt);
	rt->topic = strdup(topic);
	if (corr_len && (rt->corr = malloc(corr_len))) {
		memcpy(rt->corr, corr, corr_len);
		rt->corr_len = corr_len;
	}
	rt->final_only = final_only;
	if (!rt->topic || (corr_len && !rt->corr)) {
		free(rt->topic);
		free(rt->corr);
		return -1;
	}
	r->nroutes++;
	/* A requester that wants progress: the command's next sending asks the controller for it
	 * (one already sent without it yields the result only). */
	if (!final_only && r->frame && cJSON_GetObjectItemCaseSensitive(r->frame, "progress")) {
		cJSON_DeleteItemFromObjectCaseSensitive(r->frame, "progress");
		req_frame_changed(r);
	}
	return 0;
}


struct req *req_new(struct reqs *q, const char *ctl, const char *id)
{
	struct req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->q = q;
	snprintf(r->ctl, sizeof r->ctl, "%s", ctl);
	snprintf(r->id, sizeof r->id, "%s", id);
	snprintf(r->key, sizeof r->key, "%s/%s", ctl, id);
	loop_timer_init(&r->timer, req_timer, r);
	size_t h = strhash(r->key) & (q->nbuckets - 1);
	r->hnext = q->buckets[h];
	q->buckets[h] = r;
	return r;
}

/* Opens r (new, restored or reopened): into its controller's open list. */
int req_open(struct reqs *q, struct req *r)
{
	r->qq = reqq_get(q, r->ctl, true);
	if (!r->qq)
		return -1;
	req_append(&r->qq->first, &r->qq->last, r);
	r->qq->n++;
	q->nopen++;
	return 0;
}

void req_link_ended(struct reqs *q, struct req *r)
{
	req_append(&q->ended_first, &q->ended_last, r);
	q->nended++;
	while (q->nended > q->o.dedup_max && q->ended_first)
		req_free(q, q->ended_first);
}

void reqs_each_open(struct reqs *q, void (*fn)(struct req *r, void *arg), void *arg)
{
	for (size_t b = 0; b < q->nqbuckets; b++)
		for (struct reqq *qq = q->qbuckets[b]; qq; qq = qq->hnext)
			for (struct req *r = qq->first, *next; r; r = next) {
				next = r->next;
				fn(r, arg);
			}
}

enum req_state req_state_parse(const cJSON *v)
{
	for (int s = REQ_WAITING; s <= REQ_STARTED; s++)
		if (cJSON_IsString(v) && strcmp(v->valuestring, req_state_names[s]) == 0)
			return (enum req_state)s;
	return REQ_NSTATES;
}

struct reqs *reqs_new(struct loop *loop, const struct reqs_opts *o, const struct reqs_ops *ops,
		      void *arg, struct store *store)
{
	struct reqs *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->loop = loop;
	q->o = *o;
	q->ops = ops;
	q->arg = arg;
	q->store = store;
	q->nbuckets = 1;
	while (q->nbuckets < o->dedup_max + o->open_max)
		q->nbuckets <<= 1;
	q->nqbuckets = 256;
	q->buckets = calloc(q->nbuckets, sizeof *q->buckets);
	q->qbuckets = calloc(q->nqbuckets, sizeof *q->qbuckets);
	if (!q->buckets || !q->qbuckets) {
		reqs_free(q);
		return NULL;
	}
	return q;
}

void reqs_free(struct reqs *q)
{
	if (!q)
		return;
	for (size_t b = 0; q->buckets && b < q->nbuckets; b++)
		while (q->buckets[b])
			req_free(q, q->buckets[b]);
	free(q->buckets);
	free(q->qbuckets);
	free(q);
}

size_t reqs_open_count(const struct reqs *q) { return q->nopen; }
size_t reqs_count(const struct reqs *q) { return q->nopen + q->nended; }

enum req_state reqs_state(const struct reqs *q, const char *ctl, const char *id)
{
	char key[sizeof ((struct req *)0)->key];
	snprintf(key, sizeof key, "%s/%s", ctl, id);
	const struct req *r = req_find(q, key);
	return r ? r->state : REQ_NSTATES;
}
