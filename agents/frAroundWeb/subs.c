/* subs: broker subscriptions by Subscription Identifier, shared by consumers; see subs.h. */
#include "subs.h"

#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "shimproto.h"
#include "strhash.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct subs_ref {
	struct filt *f;
	subs_cb cb;
	subs_done_cb done;
	void *arg;
	bool pending;                   /* waits for the broker's SUBACK: no messages yet */
	struct subs_ref *prev, *next;
};

/* One broker subscription. */
struct filt {
	char *filter;
	uint32_t id;
	bool rap;
	struct subs_ref *refs;
	struct filt *by_id, *by_name;   /* hash chains */
	struct filt *prev, *next;       /* every filter, for messages without identifiers */
};

struct subs {
	struct mqtt *mqtt;
	struct filt **ids, **names;     /* nbuckets each */
	size_t nbuckets, count;
	struct filt *all;
	uint32_t next_id;
	bool dispatching;
};

struct subs *subs_new(struct mqtt *mqtt)
{
	struct subs *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->mqtt = mqtt;
	s->nbuckets = 64;
	/* Anywhere in the range: identifiers of an earlier process's session (should one be
	 * resumed) are unlikely to come back. */
	s->next_id = 1 + (uint32_t)(loop_wall_ms() % MQTT_SUB_ID_MAX);
	s->ids = calloc(s->nbuckets, sizeof *s->ids);
	s->names = calloc(s->nbuckets, sizeof *s->names);
	if (!s->ids || !s->names) {
		subs_free(s);
		return NULL;
	}
	return s;
}

void subs_free(struct subs *s)
{
	if (!s)
		return;
	while (s->all) {
		struct filt *f = s->all;
		s->all = f->next;
		while (f->refs) {
			struct subs_ref *r = f->refs;
			f->refs = r->next;
			free(r);
		}
		free(f->filter);
		free(f);
	}
	free(s->ids);
	free(s->names);
	free(s);
}

size_t subs_count(const struct subs *s)
{
	return s->count;
}

uint32_t subs_id(const struct subs_ref *r)
{
	return r->f->id;
}

static struct filt *subs_by_id(const struct subs *s, uint32_t id)
{
	struct filt *f = s->ids[id & (s->nbuckets - 1)];
	while (f && f->id != id)
		f = f->by_id;
	return f;
}

static struct filt *subs_by_name(const struct subs *s, const char *filter)
{
	struct filt *f = s->names[strhash(filter) & (s->nbuckets - 1)];
	while (f && strcmp(f->filter, filter) != 0)
		f = f->by_name;
	return f;
}

static void subs_link(struct subs *s, struct filt *f)
{
	size_t i = f->id & (s->nbuckets - 1), n = strhash(f->filter) & (s->nbuckets - 1);
	f->by_id = s->ids[i];
	s->ids[i] = f;
	f->by_name = s->names[n];
	s->names[n] = f;
}

static void subs_unlink(struct subs *s, struct filt *f)
{
	struct filt **pp = &s->ids[f->id & (s->nbuckets - 1)];
	while (*pp != f)
		pp = &(*pp)->by_id;
	*pp = f->by_id;
	pp = &s->names[strhash(f->filter) & (s->nbuckets - 1)];
	while (*pp != f)
		pp = &(*pp)->by_name;
	*pp = f->by_name;
}

/* Doubles both tables when they hold more filters than buckets; without memory the chains just
 * get longer. */
static void subs_grow(struct subs *s)
{
	size_t nb = s->nbuckets * 2;
	struct filt **ids = calloc(nb, sizeof *ids), **names = calloc(nb, sizeof *names);
	if (!ids || !names) {
		free(ids);
		free(names);
		return;
	}
	free(s->ids);
	free(s->names);
	s->ids = ids;
	s->names = names;
	s->nbuckets = nb;
	for (struct filt *f = s->all; f; f = f->next)
		subs_link(s, f);
}

/* Identifiers are not reused while a filter holds them, so a late copy sent for a filter that
 * was dropped never reaches the consumers of a new one. */
static uint32_t subs_new_id(struct subs *s)
{
	for (;;) {
		uint32_t id = s->next_id;
		s->next_id = id == MQTT_SUB_ID_MAX ? 1 : id + 1;
		if (!subs_by_id(s, id))
			return id;
	}
}

static void subs_on_suback(void *arg, const char *filter, int err);

struct subs_ref *subs_add(struct subs *s, const char *filter, bool retain_as_published,
			  subs_cb cb, void *arg)
{
	return subs_add_acked(s, filter, retain_as_published, cb, NULL, arg);
}

struct subs_ref *subs_add_acked(struct subs *s, const char *filter, bool retain_as_published,
				subs_cb cb, subs_done_cb done, void *arg)
{
	assert(!s->dispatching);
	struct subs_ref *r = calloc(1, sizeof *r);
	struct filt *f = subs_by_name(s, filter);
	bool fresh = !f;
	if (!r)
		goto nomem;
	if (f && f->rap != retain_as_published) {
		log_warnx("subscription %s: already made with%s Retain As Published", filter,
			  f->rap ? "" : "out");
		free(r);
		return NULL;
	}
	if (fresh) {
		if (!(f = calloc(1, sizeof *f)) || !(f->filter = strdup(filter))) {
			free(f);
			goto nomem;
		}
		f->id = subs_new_id(s);
		f->rap = retain_as_published;
	}
	/* Asked again for a known filter too, so the newcomer gets the retained messages. */
	struct mqtt_subopts o = { .id = f->id, .no_retain_as_published = !f->rap,
				  .on_suback = subs_on_suback, .suback_arg = s };
	int rc = mqtt_subscribe_opts(s->mqtt, filter, 1, &o);
	if (rc < 0 && rc != -ENOTCONN && fresh) {
		free(f->filter);
		free(f);
		free(r);
		return NULL;
	}
	if (fresh) {
		f->next = s->all;
		if (s->all)
			s->all->prev = f;
		s->all = f;
		subs_link(s, f);
		if (++s->count > s->nbuckets)
			subs_grow(s);
	}
	r->f = f;
	r->cb = cb;
	r->done = done;
	r->pending = done != NULL;
	r->arg = arg;
	r->next = f->refs;
	if (f->refs)
		f->refs->prev = r;
	f->refs = r;
	return r;
nomem:
	free(r);
	log_warnx("subscription %s: out of memory", filter);
	return NULL;
}

static void subs_drop(struct subs *s, struct filt *f);

/* Takes r out of its filter's consumers. */
static void subs_unref(struct subs_ref *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		r->f->refs = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

void subs_remove(struct subs *s, struct subs_ref *r)
{
	if (!r)
		return;
	assert(!s->dispatching);
	struct filt *f = r->f;
	subs_unref(r);
	free(r);
	if (!f->refs)
		subs_drop(s, f);
}

/* The last consumer of f is gone: unsubscribes f at the broker and forgets it. */
static void subs_drop(struct subs *s, struct filt *f)
{
	mqtt_unsubscribe(s->mqtt, f->filter);
	subs_unlink(s, f);
	if (f->prev)
		f->prev->next = f->next;
	else
		s->all = f->next;
	if (f->next)
		f->next->prev = f->prev;
	s->count--;
	free(f->filter);
	free(f);
}

static void subs_deliver(struct filt *f, const struct mqtt_msg *m)
{
	for (struct subs_ref *r = f->refs; r; r = r->next)
		if (!r->pending)
			r->cb(r->arg, m);
}

/* The broker answered the filter's latest SUBSCRIBE: its waiting consumers start, or (refused)
 * leave. filter is mqtt's copy: unusable once subs_drop has unsubscribed it. */
static void subs_on_suback(void *arg, const char *filter, int err)
{
	struct subs *s = arg;
	struct filt *f = subs_by_name(s, filter);
	struct subs_ref *r, *next, *refused = NULL;
	int n = 0;

	if (!f)
		return;
	s->dispatching = true;
	for (r = f->refs; r; r = next) {
		next = r->next;
		if (!r->pending)
			continue;
		if (!err) {
			r->pending = false;
			r->done(r->arg, 0);
			continue;
		}
		subs_unref(r);
		r->next = refused;
		refused = r;
		n++;
	}
	if (refused)
		log_info("subscription %s refused by the broker: %d waiting consumer(s) dropped",
			 f->filter, n);
	if (refused && !f->refs)
		subs_drop(s, f);
	for (r = refused; r; r = next) {
		next = r->next;
		r->done(r->arg, err);
		free(r);
	}
	s->dispatching = false;
}

void subs_on_message(struct subs *s, const struct mqtt_msg *m)
{
	s->dispatching = true;
	if (m->nsub_ids > 0) {
		for (size_t i = 0; i < m->nsub_ids; i++) {
			/* Unknown: the copy of a filter dropped meanwhile. And an identifier is trusted
			 * only for topics its filter matches: a subscription the broker kept from
			 * before (an unsubscribe lost in an outage) may carry an identifier given
			 * since to another filter, and must not reach that filter's consumers. */
			struct filt *f = subs_by_id(s, m->sub_ids[i]);
			if (f && shimproto_topic_match(f->filter, m->topic))
				subs_deliver(f, m);
		}
	} else {
		/* MQTT 3.1.1 has no identifiers: Mosquitto 2.0 and RabbitMQ 3.10 send one copy for
		 * all of a client's overlapping subscriptions (seen here), so every filter that
		 * matches gets this copy. (3.1.1 lets a broker send more copies: each would reach
		 * every such consumer.) The same for an MQTT 5 broker that sends none (it should,
		 * 3.3.4.1). */
		for (struct filt *f = s->all; f; f = f->next)
			if (shimproto_topic_match(f->filter, m->topic))
				subs_deliver(f, m);
	}
	s->dispatching = false;
}
