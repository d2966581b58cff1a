/* shim: the shim protocol server; see shim.h and docs/shim.md. */
#include "shim.h"

#include "audit.h"
#include "cache.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "net.h"
#include "relay.h"
#include "shimproto.h"
#include "users.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SHIM_READ_CHUNK 65536
#define SHIM_AUTH_TRIES 5
#define SHIM_SNDBUF (256 * 1024)
/* How long a client being closed after an error may take to read it before we drop it. */
#define SHIM_LINGER_MS 2000
/* How long a publish waits for the broker's acknowledgment before it is answered timeout. */
#define SHIM_PUBLISH_WAIT_MS 10000

/* A publish waiting for the broker's acknowledgment (docs/shim.md: ok = the broker has it). */
struct pubwait {
	struct client *c;
	cJSON *id;             /* the request's id; owned */
	uint64_t ticket;
	struct loop_timer timer;
	struct pubwait *next;  /* the client's list */
};

struct sub {
	struct client *c;
	cJSON *id;             /* the subscribe request's id; owned */
	char *filter;          /* owned */
	char home[SHIM_NAME_MAX + 1];
	struct sub *next;      /* the client's list */
	struct sub *gprev, *gnext;   /* the shim's list */
};

struct client {
	struct shim *s;
	int fd;
	char peer[NET_ADDRSTRLEN];
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outoff, outlen, outcap;
	bool pollout;          /* EPOLLOUT armed */
	bool closing;          /* an error was sent; flush, then close */
	enum metrics_disc close_why;
	char close_reason[96];
	bool dead;             /* fd closed; memory freed by the reaper */
	const struct user *user;     /* borrowed from the current users table */
	uint8_t token_hash[32];
	int auth_failures;
	int inflight;          /* relay requests + subscriptions + publishes */
	struct sub *subs;
	struct pubwait *pubs;
	struct loop_timer linger;
	struct client *prev, *next;
};

struct filt {
	char *filter;
	int refs;
	struct filt *next;
};

struct shim {
	struct shim_deps d;
	int tcp_fd, unix_fd;
	struct listener *tcp_listener, *unix_listener;
	struct client *clients, *graveyard;
	int nclients;
	bool full_logged, stopping;
	struct sub *subs;
	struct filt *filters;
	struct loop_timer reaper;
	/* duplicate detection: the last live message and how many more copies are due */
	char *last_topic;
	size_t last_len;
	uint64_t last_hash;
	int dup_left;
};

static void client_kill(struct client *c, enum metrics_disc why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- output --- */

static void client_flush(struct client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			client_kill(c, METRICS_DISC_ERROR, "write: %s", strerror(errno));
			return;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		if (c->closing)
			shutdown(c->fd, SHUT_WR);
	}
	bool want = c->outlen > 0;
	if (want != c->pollout) {
		c->pollout = want;
		loop_io_mod(c->s->d.loop, c->fd, EPOLLIN | (want ? EPOLLOUT : 0));
	}
}

static void client_send(struct client *c, const cJSON *o)
{
	if (c->dead)
		return;
	char *s = cJSON_PrintUnformatted(o);
	if (!s) {
		client_kill(c, METRICS_DISC_ERROR, "out of memory");
		return;
	}
	size_t n = strlen(s);
	if (c->outlen - c->outoff + n + 1 > c->s->d.conf->max_outq) {
		free(s);
		client_kill(c, METRICS_DISC_OUTQ, "output queue over %zu bytes (client not reading)",
			    c->s->d.conf->max_outq);
		return;
	}
	if (c->outoff > 0 && c->outlen + n + 1 > c->outcap) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	if (c->outlen + n + 1 > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		while (cap < c->outlen + n + 1)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			free(s);
			client_kill(c, METRICS_DISC_ERROR, "out of memory");
			return;
		}
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, s, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	free(s);
	if (!c->pollout)
		client_flush(c);
}

static cJSON *resp_new(const cJSON *id)
{
	cJSON *o = cJSON_CreateObject();
	if (o)
		cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
	return o;
}

static void send_error(struct client *c, const cJSON *id, enum shim_err code, const char *msg)
{
	c->s->d.metrics->errors[code]++;
	cJSON *o = resp_new(id);
	if (!o)
		return;
	cJSON_AddFalseToObject(o, "ok");
	cJSON *e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "code", shimproto_err_name(code));
	cJSON_AddStringToObject(e, "message", msg);
	client_send(c, o);
	cJSON_Delete(o);
}

static void send_ok(struct client *c, const cJSON *id)
{
	cJSON *o = resp_new(id);
	if (!o)
		return;
	cJSON_AddTrueToObject(o, "ok");
	client_send(c, o);
	cJSON_Delete(o);
}

/* --- subscriptions and broker filters --- */

int shim_filter_ref(struct shim *s, const char *filter)
{
	for (struct filt *f = s->filters; f; f = f->next) {
		if (strcmp(f->filter, filter) == 0) {
			f->refs++;
			/* Asked again so the new subscriber gets the retained messages. */
			return mqtt_subscribe(s->d.mqtt, filter, 1);
		}
	}
	struct filt *f = calloc(1, sizeof *f);
	if (!f || !(f->filter = strdup(filter))) {
		free(f);
		return -ENOMEM;
	}
	int rc = mqtt_subscribe(s->d.mqtt, filter, 1);
	if (rc < 0 && rc != -ENOTCONN) {
		free(f->filter);
		free(f);
		return rc;
	}
	f->refs = 1;
	f->next = s->filters;
	s->filters = f;
	return 0;
}

void shim_filter_unref(struct shim *s, const char *filter)
{
	for (struct filt **pp = &s->filters, *f; (f = *pp); pp = &f->next) {
		if (strcmp(f->filter, filter) != 0)
			continue;
		if (--f->refs == 0) {
			mqtt_unsubscribe(s->d.mqtt, filter);
			*pp = f->next;
			free(f->filter);
			free(f);
		}
		return;
	}
}

static uint64_t shim_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ull;
	while (n--)
		h = (h ^ *b++) * 1099511628211ull;
	return h;
}

bool shim_is_duplicate(struct shim *s, const struct mqtt_msg *m)
{
	/* Retained messages sent at subscribe time come once per new subscription: not copies. */
	if (m->retained)
		return false;
	uint64_t h = shim_hash(m->payload, m->len);
	if (s->dup_left > 0 && s->last_topic && m->len == s->last_len && h == s->last_hash &&
	    strcmp(m->topic, s->last_topic) == 0) {
		s->dup_left--;
		return true;
	}
	int k = 0;
	for (struct filt *f = s->filters; f; f = f->next)
		k += shimproto_topic_match(f->filter, m->topic);
	free(s->last_topic);
	s->last_topic = k > 1 ? strdup(m->topic) : NULL;
	s->last_len = m->len;
	s->last_hash = h;
	s->dup_left = s->last_topic ? k - 1 : 0;
	return false;
}

static cJSON *payload_value(const void *p, size_t len)
{
	cJSON *v = cJSON_ParseWithLength(p, len);
	if (v)
		return v;
	char *s = strndup(p, len);
	v = cJSON_CreateString(s ? s : "");
	free(s);
	return v;
}

void shim_on_message(struct shim *s, const struct mqtt_msg *m)
{
	for (struct sub *u = s->subs; u; u = u->gnext) {
		struct client *c = u->c;
		if (c->dead || !shimproto_topic_match(u->filter, m->topic))
			continue;
		/* A home revoked by a users reload stops the flow at once. */
		if (!c->user || !users_has_home(c->user, u->home))
			continue;
		cJSON *o = resp_new(u->id);
		if (!o)
			return;
		cJSON_AddStringToObject(o, "event", "message");
		cJSON_AddStringToObject(o, "topic", m->topic);
		cJSON_AddItemToObject(o, "payload", payload_value(m->payload, m->len));
		cJSON_AddBoolToObject(o, "retained", m->retained);
		client_send(c, o);
		cJSON_Delete(o);
	}
}

static void sub_free(struct shim *s, struct sub *u)
{
	if (u->gprev)
		u->gprev->gnext = u->gnext;
	else
		s->subs = u->gnext;
	if (u->gnext)
		u->gnext->gprev = u->gprev;
	shim_filter_unref(s, u->filter);
	cJSON_Delete(u->id);
	free(u->filter);
	free(u);
}

/* --- client lifetime --- */

static void shim_reap(void *arg)
{
	struct shim *s = arg;
	while (s->graveyard) {
		struct client *c = s->graveyard;
		s->graveyard = c->next;
		while (c->subs) {
			struct sub *u = c->subs;
			c->subs = u->next;
			sub_free(s, u);
		}
		free(c->in);
		free(c->out);
		free(c);
	}
}

/* Closes the connection now; the struct is freed by the reaper after this iteration, so loops
 * over clients and subscriptions in progress stay valid (they skip dead clients). */
static void client_kill(struct client *c, enum metrics_disc why, const char *fmt, ...)
{
	struct shim *s = c->s;
	if (c->dead)
		return;
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (why == METRICS_DISC_EOF || why == METRICS_DISC_SHUTDOWN)
		log_debug("shim client %s%s%s: %s", c->peer, c->user ? " user " : "",
			  c->user ? c->user->name : "", reason);
	else
		log_warnx("shim client %s%s%s: %s: disconnected", c->peer, c->user ? " user " : "",
			  c->user ? c->user->name : "", reason);
	c->dead = true;
	while (c->pubs) {
		struct pubwait *w = c->pubs;
		c->pubs = w->next;
		mqtt_publish_forget(s->d.mqtt, w->ticket);
		loop_timer_stop(s->d.loop, &w->timer);
		cJSON_Delete(w->id);
		free(w);
	}
	s->d.metrics->disconnects[why]++;
	s->d.metrics->clients--;
	relay_detach(s->d.relay, c);
	loop_io_del(s->d.loop, c->fd);
	loop_timer_stop(s->d.loop, &c->linger);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nclients--;
	c->next = s->graveyard;
	s->graveyard = c;
	loop_timer_start(s->d.loop, &s->reaper, 0);
}

static void client_on_linger(void *arg)
{
	struct client *c = arg;
	client_kill(c, c->close_why, "%s", c->close_reason);
}

/* Sends what is queued, then closes: the peer gets to read the error first. */
static void client_close_after(struct client *c, enum metrics_disc why, const char *reason)
{
	if (c->closing || c->dead)
		return;
	c->closing = true;
	c->close_why = why;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	log_warnx("shim client %s: %s: closing", c->peer, reason);
	loop_timer_start(c->s->d.loop, &c->linger, SHIM_LINGER_MS);
	if (c->outlen == 0)
		shutdown(c->fd, SHUT_WR);
}

static bool client_home_ok(struct client *c, const char *home)
{
	return c->user && users_has_home(c->user, home);
}

/* --- operations --- */

static void op_auth(struct client *c, const struct shim_req *r)
{
	struct shim *s = c->s;
	uint8_t h[32];
	if (users_hash_token(r->token, h) < 0) {
		send_error(c, r->id, SHIM_E_INTERNAL, "hash failed");
		return;
	}
	const struct user *u = users_find_hash(s->d.users, h);
	if (!u) {
		c->auth_failures++;
		log_warnx("shim client %s: wrong token (%d)", c->peer, c->auth_failures);
		send_error(c, r->id, SHIM_E_AUTH, "wrong token");
		if (c->auth_failures >= SHIM_AUTH_TRIES)
			client_close_after(c, METRICS_DISC_AUTH, "too many wrong tokens");
		return;
	}
	c->user = u;
	memcpy(c->token_hash, h, 32);
	log_info("shim client %s: user %s", c->peer, u->name);
	cJSON *o = resp_new(r->id);
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddStringToObject(o, "user", u->name);
	cJSON *homes = cJSON_AddArrayToObject(o, "homes");
	for (int i = 0; i < u->nhomes; i++)
		cJSON_AddItemToArray(homes, cJSON_CreateString(u->homes[i]));
	client_send(c, o);
	cJSON_Delete(o);
}

static void op_ping(struct client *c, const struct shim_req *r)
{
	cJSON *o = resp_new(r->id);
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddNumberToObject(o, "time", (double)loop_wall_ms());
	client_send(c, o);
	cJSON_Delete(o);
}

static void pubwait_end(struct pubwait *w)
{
	struct client *c = w->c;
	struct pubwait **p;

	for (p = &c->pubs; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	loop_timer_stop(c->s->d.loop, &w->timer);
	c->inflight--;
	cJSON_Delete(w->id);
	free(w);
}

static void pubwait_done(void *arg, uint64_t ticket, int err)
{
	struct pubwait *w = arg;
	(void)ticket;
	if (err == 0)
		send_ok(w->c, w->id);
	else if (err == -EACCES)
		send_error(w->c, w->id, SHIM_E_FORBIDDEN, "the broker refused the message");
	else
		send_error(w->c, w->id, SHIM_E_INTERNAL, "the broker refused the message");
	pubwait_end(w);
}

static void pubwait_expired(void *arg)
{
	struct pubwait *w = arg;
	mqtt_publish_forget(w->c->s->d.mqtt, w->ticket);
	send_error(w->c, w->id, SHIM_E_TIMEOUT,
		   "no acknowledgment from the broker yet (it may still deliver the message)");
	pubwait_end(w);
}

static void op_publish(struct client *c, const struct shim_req *r)
{
	struct shim *s = c->s;
	char home[SHIM_NAME_MAX + 1];
	if (!shimproto_publish_allowed(s->d.conf->prefix, r->topic, r->retain) ||
	    !shimproto_topic_home(s->d.conf->prefix, r->topic, false, home) ||
	    !client_home_ok(c, home)) {
		send_error(c, r->id, SHIM_E_FORBIDDEN, "topic not allowed");
		return;
	}
	if (c->inflight >= s->d.conf->max_inflight) {
		send_error(c, r->id, SHIM_E_TOO_MANY, "too many requests in flight");
		return;
	}
	char *p = cJSON_IsString(r->payload) ? strdup(r->payload->valuestring)
					     : cJSON_PrintUnformatted(r->payload);
	struct pubwait *w = calloc(1, sizeof *w);
	if (!p || !w || !(w->id = cJSON_Duplicate(r->id, true))) {
		free(p);
		free(w);
		send_error(c, r->id, SHIM_E_INTERNAL, "out of memory");
		return;
	}
	w->c = c;
	int rc = mqtt_publish_tracked(s->d.mqtt, r->topic, p, strlen(p), r->qos, r->retain, NULL,
				      NULL, 0, pubwait_done, w, &w->ticket);
	free(p);
	if (rc < 0) {
		cJSON_Delete(w->id);
		free(w);
		send_error(c, r->id, SHIM_E_INTERNAL, "broker unreachable");
		return;
	}
	w->next = c->pubs;
	c->pubs = w;
	c->inflight++;
	loop_timer_init(&w->timer, pubwait_expired, w);
	loop_timer_start(s->d.loop, &w->timer, SHIM_PUBLISH_WAIT_MS);
}

static void op_get(struct client *c, const struct shim_req *r)
{
	struct shim *s = c->s;
	char home[SHIM_NAME_MAX + 1];
	if (!shimproto_topic_home(s->d.conf->prefix, r->topic, false, home) ||
	    !client_home_ok(c, home)) {
		send_error(c, r->id, SHIM_E_FORBIDDEN, "topic not under a granted home");
		return;
	}
	const struct cache_entry *e = cache_get(s->d.cache, r->topic);
	if (!e) {
		send_error(c, r->id, SHIM_E_NOT_FOUND, "no cached value");
		return;
	}
	cJSON *o = resp_new(r->id);
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddStringToObject(o, "topic", e->topic);
	cJSON_AddItemToObject(o, "payload", payload_value(e->payload, e->len));
	cJSON_AddBoolToObject(o, "retained", e->retained);
	cJSON_AddNumberToObject(o, "received", (double)e->received);
	client_send(c, o);
	cJSON_Delete(o);
}

struct list_ctx {
	size_t skip;          /* strlen("<prefix>/<home>/ctl/") */
	cJSON *ctls;
};

static cJSON *list_ctl(cJSON *ctls, const char *id, size_t n)
{
	cJSON *c;
	cJSON_ArrayForEach(c, ctls) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "id");
		if (strlen(v->valuestring) == n && memcmp(v->valuestring, id, n) == 0)
			return c;
	}
	c = cJSON_CreateObject();
	char *s = strndup(id, n);
	cJSON_AddStringToObject(c, "id", s ? s : "");
	free(s);
	cJSON_AddNullToObject(c, "status");
	cJSON_AddNullToObject(c, "info");
	cJSON_AddObjectToObject(c, "state");
	cJSON_AddItemToArray(ctls, c);
	return c;
}

static void list_entry(void *arg, const struct cache_entry *e)
{
	struct list_ctx *l = arg;
	const char *id = e->topic + l->skip, *slash = strchr(id, '/');
	if (!slash)
		return;
	cJSON *c = list_ctl(l->ctls, id, (size_t)(slash - id));
	const char *leaf = slash + 1;
	if (strcmp(leaf, "status") == 0)
		cJSON_ReplaceItemInObjectCaseSensitive(c, "status", cJSON_CreateString(e->payload));
	else if (strcmp(leaf, "info") == 0)
		cJSON_ReplaceItemInObjectCaseSensitive(c, "info", payload_value(e->payload, e->len));
	else if (strncmp(leaf, "state/", 6) == 0)
		cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(c, "state"), leaf + 6,
				      payload_value(e->payload, e->len));
}

static int list_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(cJSON_GetObjectItemCaseSensitive(x, "id")->valuestring,
		      cJSON_GetObjectItemCaseSensitive(y, "id")->valuestring);
}

/* Controllers sorted by id so answers are stable. */
static cJSON *list_sorted(cJSON *ctls)
{
	int n = cJSON_GetArraySize(ctls);
	if (n < 2)
		return ctls;
	cJSON **v = calloc((size_t)n, sizeof *v);
	if (!v)
		return ctls;
	for (int i = n - 1; i >= 0; i--)
		v[i] = cJSON_DetachItemFromArray(ctls, i);
	qsort(v, (size_t)n, sizeof *v, list_cmp);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(ctls, v[i]);
	free(v);
	return ctls;
}

static void op_list(struct client *c, const struct shim_req *r)
{
	struct shim *s = c->s;
	if (r->home && !client_home_ok(c, r->home)) {
		send_error(c, r->id, SHIM_E_FORBIDDEN, "home not granted");
		return;
	}
	cJSON *o = resp_new(r->id);
	cJSON_AddTrueToObject(o, "ok");
	cJSON *homes = cJSON_AddArrayToObject(o, "homes");
	for (int i = 0; i < c->user->nhomes; i++) {
		const char *home = c->user->homes[i];
		if (r->home && strcmp(home, r->home) != 0)
			continue;
		char topic[256];
		cJSON *h = cJSON_CreateObject();
		cJSON_AddStringToObject(h, "home", home);
		snprintf(topic, sizeof topic, "%s/%s/status", s->d.conf->prefix, home);
		const struct cache_entry *e = cache_get(s->d.cache, topic);
		cJSON_AddItemToObject(h, "status", e ? cJSON_CreateString(e->payload) : cJSON_CreateNull());
		snprintf(topic, sizeof topic, "%s/%s/ctl/", s->d.conf->prefix, home);
		struct list_ctx l = { strlen(topic), cJSON_CreateArray() };
		cache_foreach(s->d.cache, topic, list_entry, &l);
		cJSON_AddItemToObject(h, "controllers", list_sorted(l.ctls));
		cJSON_AddItemToArray(homes, h);
	}
	client_send(c, o);
	cJSON_Delete(o);
}

static void client_relay_cb(void *owner, cJSON *line, bool final)
{
	struct client *c = owner;
	if (final)
		c->inflight--;
	client_send(c, line);
}

static bool status_offline(struct shim *s, const char *topic)
{
	const struct cache_entry *e = cache_get(s->d.cache, topic);
	return e && strcmp(e->payload, "offline") == 0;
}

static void op_request(struct client *c, const struct shim_req *r)
{
	struct shim *s = c->s;
	char topic[256];
	if (!client_home_ok(c, r->home)) {
		send_error(c, r->id, SHIM_E_FORBIDDEN, "home not granted");
		return;
	}
	if (c->inflight >= s->d.conf->max_inflight) {
		send_error(c, r->id, SHIM_E_TOO_MANY, "too many requests in flight");
		return;
	}
	/* Only a status known to be offline refuses at once; unknown is sent (docs/shim.md). */
	snprintf(topic, sizeof topic, "%s/%s/status", s->d.conf->prefix, r->home);
	bool off = status_offline(s, topic);
	snprintf(topic, sizeof topic, "%s/%s/ctl/%s/status", s->d.conf->prefix, r->home, r->ctl);
	if (off || status_offline(s, topic)) {
		metrics_relay(s->d.metrics, "offline");
		send_error(c, r->id, SHIM_E_OFFLINE, off ? "home offline" : "controller offline");
		return;
	}
	char uuid[RELAY_UUID_LEN + 1];
	if (relay_start(s->d.relay, r, c->user->name, c, client_relay_cb, uuid) < 0) {
		send_error(c, r->id, SHIM_E_INTERNAL, "could not send the request");
		return;
	}
	c->inflight++;
}

static void op_subscribe(struct client *c, const struct shim_req *r)
{
	struct shim *s = c->s;
	char home[SHIM_NAME_MAX + 1];
	if (!shimproto_topic_home(s->d.conf->prefix, r->filter, true, home) ||
	    !client_home_ok(c, home)) {
		send_error(c, r->id, SHIM_E_FORBIDDEN, "filter not within a granted home");
		return;
	}
	if (c->inflight >= s->d.conf->max_inflight) {
		send_error(c, r->id, SHIM_E_TOO_MANY, "too many requests in flight");
		return;
	}
	struct sub *u = calloc(1, sizeof *u);
	if (!u || !(u->filter = strdup(r->filter)) || !(u->id = cJSON_Duplicate(r->id, true))) {
		if (u)
			free(u->filter);
		free(u);
		send_error(c, r->id, SHIM_E_INTERNAL, "out of memory");
		return;
	}
	if (shim_filter_ref(s, r->filter) < 0) {
		cJSON_Delete(u->id);
		free(u->filter);
		free(u);
		send_error(c, r->id, SHIM_E_INTERNAL, "broker subscription failed");
		return;
	}
	u->c = c;
	memcpy(u->home, home, sizeof home);
	u->next = c->subs;
	c->subs = u;
	u->gnext = s->subs;
	if (s->subs)
		s->subs->gprev = u;
	s->subs = u;
	c->inflight++;
	cJSON *o = resp_new(r->id);
	cJSON_AddStringToObject(o, "event", "subscribed");
	client_send(c, o);
	cJSON_Delete(o);
}

static void op_unsubscribe(struct client *c, const struct shim_req *r)
{
	struct sub **pp = &c->subs, *u;
	while ((u = *pp) && !cJSON_Compare(u->id, r->sub, true))
		pp = &u->next;
	if (!u) {
		send_error(c, r->id, SHIM_E_NOT_FOUND, "no such subscription");
		return;
	}
	*pp = u->next;
	cJSON *o = resp_new(u->id);
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddStringToObject(o, "ended", "unsubscribed");
	client_send(c, o);
	cJSON_Delete(o);
	sub_free(c->s, u);
	c->inflight--;
	send_ok(c, r->id);
}

static void op_audit(struct client *c, const struct shim_req *r)
{
	cJSON *recs = audit_tail(c->s->d.audit, c->user->name, r->limit);
	if (!recs) {
		send_error(c, r->id, SHIM_E_INTERNAL, "audit file unreadable");
		return;
	}
	cJSON *o = resp_new(r->id);
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddItemToObject(o, "records", recs);
	client_send(c, o);
	cJSON_Delete(o);
}

static void client_line(struct client *c, const char *line, size_t len)
{
	struct shim *s = c->s;
	struct shim_req r;
	char why[160];
	enum shim_err e = shimproto_parse(line, len, &r, why, sizeof why);
	if (e != SHIM_OK) {
		log_debug("shim client %s: bad request: %s", c->peer, why);
		send_error(c, r.id, e, why);
		shimproto_free(&r);
		return;
	}
	s->d.metrics->requests[r.op]++;
	if (!c->user && r.op != SHIM_OP_AUTH && r.op != SHIM_OP_PING) {
		send_error(c, r.id, SHIM_E_AUTH, "not authenticated");
		shimproto_free(&r);
		return;
	}
	switch (r.op) {
	case SHIM_OP_AUTH: op_auth(c, &r); break;
	case SHIM_OP_PING: op_ping(c, &r); break;
	case SHIM_OP_PUBLISH: op_publish(c, &r); break;
	case SHIM_OP_GET: op_get(c, &r); break;
	case SHIM_OP_LIST: op_list(c, &r); break;
	case SHIM_OP_REQUEST: op_request(c, &r); break;
	case SHIM_OP_SUBSCRIBE: op_subscribe(c, &r); break;
	case SHIM_OP_UNSUBSCRIBE: op_unsubscribe(c, &r); break;
	case SHIM_OP_AUDIT: op_audit(c, &r); break;
	default: send_error(c, r.id, SHIM_E_BAD_REQUEST, "unknown op"); break;
	}
	shimproto_free(&r);
}

/* --- input --- */

static void client_on_io(void *arg, int fd, uint32_t events)
{
	struct client *c = arg;
	struct shim *s = c->s;
	(void)fd;
	if (events & EPOLLOUT) {
		client_flush(c);
		if (c->dead)
			return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (c->closing) {
		/* Discard until EOF so our close does not reset the error line away. */
		char junk[4096];
		ssize_t r = recv(c->fd, junk, sizeof junk, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			client_kill(c, c->close_why, "%s", c->close_reason);
		return;
	}
	size_t max = s->d.conf->max_line;
	if (c->incap < max && c->inlen == c->incap) {
		size_t cap = c->incap ? c->incap * 2 : 4096;
		if (cap > max)
			cap = max;
		char *p = realloc(c->in, cap);
		if (!p) {
			client_kill(c, METRICS_DISC_ERROR, "out of memory");
			return;
		}
		c->in = p;
		c->incap = cap;
	}
	ssize_t r = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		if (r < 0)
			client_kill(c, METRICS_DISC_ERROR, "read: %s", strerror(errno));
		else
			client_kill(c, METRICS_DISC_EOF, "closed by peer");
		return;
	}
	size_t scanned = c->inlen;
	c->inlen += (size_t)r;
	size_t start = 0;
	for (size_t i = scanned; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		size_t n = i - start;
		if (n > 0 && c->in[start + n - 1] == '\r')
			n--;
		client_line(c, c->in + start, n);
		start = i + 1;
		if (c->dead || c->closing)
			return;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->inlen - start);
		c->inlen -= start;
	}
	if (c->inlen == max) {
		char why[96];
		snprintf(why, sizeof why, "line longer than %zu bytes", max);
		send_error(c, NULL, SHIM_E_TOO_LONG, why);
		client_close_after(c, METRICS_DISC_TOO_LONG, "line over max_line");
	}
}

static void shim_accept(struct shim *s, int fd, const struct sockaddr_storage *peer, bool is_unix)
{
	if (s->nclients >= s->d.conf->max_clients || s->stopping) {
		if (!s->full_logged && !s->stopping)
			log_warnx("shim: max_clients (%d) reached: refusing connections",
				  s->d.conf->max_clients);
		s->full_logged = true;
		s->d.metrics->disconnects[METRICS_DISC_FULL]++;
		close(fd);
		return;
	}
	s->full_logged = false;
	struct client *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->s = s;
	c->fd = fd;
	/* A fixed kernel send buffer keeps what a non-reading client can pin bounded too
	 * (autotuning would let it grow to tcp_wmem's maximum, 4 MiB, before max_outq). */
	int sndbuf = SHIM_SNDBUF;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	if (is_unix)
		snprintf(c->peer, sizeof c->peer, "unix:%d", fd);
	else
		net_addr_str((const struct sockaddr *)peer, c->peer, sizeof c->peer);
	loop_timer_init(&c->linger, client_on_linger, c);
	if (loop_io_add(s->d.loop, fd, EPOLLIN, client_on_io, c) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->nclients++;
	s->d.metrics->connections_total++;
	s->d.metrics->clients++;
	log_debug("shim client %s: connected", c->peer);
}

static void shim_on_tcp(void *arg, int fd, const struct sockaddr_storage *peer)
{
	shim_accept(arg, fd, peer, false);
}

static void shim_on_unix(void *arg, int fd, const struct sockaddr_storage *peer)
{
	shim_accept(arg, fd, peer, true);
}

static int shim_unix_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a crash would make bind fail. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	mode_t old = umask(0117);   /* 0660: the web server's group may connect */
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

struct shim *shim_new(const struct shim_deps *d)
{
	struct shim *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->d = *d;
	s->tcp_fd = s->unix_fd = -1;
	loop_timer_init(&s->reaper, shim_reap, s);
	const struct conf *c = d->conf;
	if (c->shim_addr) {
		s->tcp_fd = net_tcp_listen(c->shim_addr, c->shim_port, 512);
		if (s->tcp_fd < 0) {
			errno = -s->tcp_fd;
			log_warn("shim listen %s:%u", c->shim_addr, c->shim_port);
			goto fail;
		}
		s->tcp_listener = listener_new(d->loop, s->tcp_fd, "shim", shim_on_tcp, s);
		if (!s->tcp_listener)
			goto fail;
		log_info("shim on %s:%u", c->shim_addr, net_local_port(s->tcp_fd));
	}
	if (c->shim_unix) {
		s->unix_fd = shim_unix_listen(c->shim_unix);
		if (s->unix_fd < 0) {
			errno = -s->unix_fd;
			log_warn("shim listen %s", c->shim_unix);
			goto fail;
		}
		s->unix_listener = listener_new(d->loop, s->unix_fd, "shim (unix)", shim_on_unix, s);
		if (!s->unix_listener)
			goto fail;
		log_info("shim on %s", c->shim_unix);
	}
	return s;
fail:
	shim_free(s);
	return NULL;
}

uint16_t shim_port(const struct shim *s)
{
	return s->tcp_fd >= 0 ? net_local_port(s->tcp_fd) : 0;
}

void shim_set_users(struct shim *s, const struct users *u)
{
	s->d.users = u;
	for (struct client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (!c->user)
			continue;
		c->user = users_find_hash(u, c->token_hash);
		if (!c->user)
			client_kill(c, METRICS_DISC_REVOKED, "token no longer valid after reload");
	}
}

void shim_shutdown(struct shim *s)
{
	s->stopping = true;
	if (s->tcp_fd >= 0) {
		listener_free(s->tcp_listener);
		s->tcp_listener = NULL;
		close(s->tcp_fd);
		s->tcp_fd = -1;
	}
	if (s->unix_fd >= 0) {
		listener_free(s->unix_listener);
		s->unix_listener = NULL;
		close(s->unix_fd);
		s->unix_fd = -1;
		unlink(s->d.conf->shim_unix);
	}
	while (s->clients)
		client_kill(s->clients, METRICS_DISC_SHUTDOWN, "agent stopping");
}

void shim_free(struct shim *s)
{
	if (!s)
		return;
	shim_shutdown(s);
	loop_timer_stop(s->d.loop, &s->reaper);
	shim_reap(s);
	while (s->filters) {
		struct filt *f = s->filters;
		s->filters = f->next;
		free(f->filter);
		free(f);
	}
	free(s->last_topic);
	free(s);
}
