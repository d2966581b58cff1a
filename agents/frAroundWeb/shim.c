/* shim: the shim protocol server; see shim.h and docs/shim.md. */
#include "shim.h"

#include "audit.h"
#include "cache.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "net.h"
#include "relay.h"
#include "shimproto.h"
#include "users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SHIM_READ_CHUNK 65536
#define SHIM_AUTH_TRIES 5
/* How long a client being closed after an error may take to read it before we drop it. */
#define SHIM_LINGER_MS 2000

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
	bool dead;             /* fd closed; memory freed by the reaper */
	const struct user *user;     /* borrowed from the current users table */
	uint8_t token_hash[32];
	int auth_failures;
	int inflight;          /* relay requests + subscriptions */
	struct sub *subs;
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
	client_kill(c, c->closing_reason_outq(c), "closed after error");
}
