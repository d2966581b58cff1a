/* peerlimit: pending-connection budgets per peer, deadlines and rate-limited refusal logs;
 * see peerlimit.h. */
#include "peerlimit.h"

#include "log.h"
#include "loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* What identifies a peer: a kind tag and up to 8 bytes (IPv4 address, IPv6 /64, uid). */
struct pl_key {
	uint8_t kind;
	uint8_t b[8];
};

enum { PL_KIND_OTHER, PL_KIND_V4, PL_KIND_V6, PL_KIND_UID };

struct pl_peer {
	struct pl_key key;
	char name[64];
	int pending;
	int idle;                             /* of which nothing was received yet */
	struct peerlimit_slot *head, *tail;   /* its pending connections, oldest first */
	struct pl_peer *next;
};

struct peerlimit_slot {
	struct peerlimit *pl;
	struct pl_peer *peer;
	struct peerlimit_slot *prev, *next;
	uint64_t seq;                  /* admission order, across peers */
	bool active;                   /* it sent something */
	struct loop_timer deadline;
	peerlimit_close_cb cb;
	void *arg;
};

enum { PL_REFUSED, PL_DEADLINE, PL_FAILED, PL_NKINDS };

struct pl_stat {
	struct pl_key key;
	char name[64];
	unsigned long n[PL_NKINDS];
	char last[96];                 /* the last failure's detail */
};

struct peerlimit {
	struct loop *loop;
	struct peerlimit_opts o;
	struct pl_peer *peers;         /* peers with pending connections */
	int pending;
	uint64_t seq;
	/* the log spell: events after the first are summed up per peer until it ends */
	bool spell;
	struct loop_timer spell_timer;
	struct pl_stat stats[PEERLIMIT_LOG_TRACK];
	int nstats;
	struct pl_stat others;
};

/* --- peers --- */

static void pl_key_of(int fd, const struct sockaddr_storage *ss, struct pl_key *k, char *name,
		      size_t n)
{
	memset(k, 0, sizeof *k);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		k->kind = PL_KIND_V4;
		memcpy(k->b, &a->sin_addr, 4);
		inet_ntop(AF_INET, &a->sin_addr, name, (socklen_t)n);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			k->kind = PL_KIND_V4;
			memcpy(k->b, a->sin6_addr.s6_addr + 12, 4);
			inet_ntop(AF_INET, k->b, name, (socklen_t)n);
		} else {
			/* One host on a LAN or at a provider commonly holds a whole /64. */
			struct in6_addr p = { 0 };
			k->kind = PL_KIND_V6;
			memcpy(k->b, a->sin6_addr.s6_addr, 8);
			memcpy(p.s6_addr, k->b, 8);
			char h[INET6_ADDRSTRLEN];
			inet_ntop(AF_INET6, &p, h, sizeof h);
			snprintf(name, n, "%s/64", h);
		}
	} else if (ss->ss_family == AF_UNIX) {
		struct ucred cred;
		socklen_t cl = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
			k->kind = PL_KIND_UID;
			memcpy(k->b, &cred.uid, sizeof cred.uid);
			snprintf(name, n, "uid %u", (unsigned)cred.uid);
		} else {
			snprintf(name, n, "unix peer");
		}
	} else {
		snprintf(name, n, "peer of family %d", (int)ss->ss_family);
	}
}

static struct pl_peer *pl_peer_find(struct peerlimit *pl, const struct pl_key *k)
{
	for (struct pl_peer *p = pl->peers; p; p = p->next)
		if (memcmp(&p->key, k, sizeof *k) == 0)
			return p;
	return NULL;
}

/* Unlinks s from its peer and the counts; frees the peer when it has nothing pending. */
static void pl_release(struct peerlimit *pl, struct peerlimit_slot *s)
{
	struct pl_peer *p = s->peer;
	loop_timer_stop(pl->loop, &s->deadline);
	if (s->prev)
		s->prev->next = s->next;
	else
		p->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		p->tail = s->prev;
	p->pending--;
	if (!s->active)
		p->idle--;
	pl->pending--;
	if (p->pending == 0) {
		for (struct pl_peer **pp = &pl->peers; *pp; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		free(p);
	}
}

/* --- the log --- */

static const char *pl_plural(unsigned long n)
{
	return n == 1 ? "" : "s";
}

static void pl_log_one(const struct peerlimit *pl, int kind, const char *name, unsigned long n,
		       const char *detail)
{
	double secs = (double)pl->o.log_ms / 1000.0;
	const char *w = pl->o.what;
	switch (kind) {
	case PL_REFUSED:
		if (n == 0)
			log_warnx("%s: refused a connection from %s (pending budgets: %d per peer, %d in "
				  "all; further refusals are counted every %g s)", w, name,
				  pl->o.max_pending_per_peer, pl->o.max_pending, secs);
		else
			log_warnx("%s: refused %lu connection%s from %s in the last %g s (pending budgets: "
				  "%d per peer, %d in all)", w, n, pl_plural(n), name, secs,
				  pl->o.max_pending_per_peer, pl->o.max_pending);
		break;
	case PL_DEADLINE:
		if (n == 0)
			log_warnx("%s: a connection from %s did not %s within %llu ms", w, name,
				  pl->o.deadline_what, (unsigned long long)pl->o.deadline_ms);
		else
			log_warnx("%s: %lu connection%s from %s did not %s within %llu ms in the last %g s",
				  w, n, pl_plural(n), name, pl->o.deadline_what,
				  (unsigned long long)pl->o.deadline_ms, secs);
		break;
	default:
		if (n == 0)
			log_warnx("%s: a connection from %s failed before authenticating: %s", w, name,
				  detail);
		else
			log_warnx("%s: %lu failure%s before authenticating from %s in the last %g s "
				  "(last: %s)", w, n, pl_plural(n), name, secs, detail);
		break;
	}
}

static unsigned long pl_stat_total(const struct pl_stat *st)
{
	unsigned long t = 0;
	for (int k = 0; k < PL_NKINDS; k++)
		t += st->n[k];
	return t;
}

static int pl_stat_cmp(const void *a, const void *b)
{
	unsigned long x = pl_stat_total(a), y = pl_stat_total(b);
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Logs and clears what the spell summed up -- the peers with the most events by name, the
 * rest together; false if there was nothing. */
static bool pl_flush(struct peerlimit *pl)
{
	bool any = false;
	qsort(pl->stats, (size_t)pl->nstats, sizeof pl->stats[0], pl_stat_cmp);
	for (int i = PEERLIMIT_LOG_PEERS; i < pl->nstats; i++) {
		for (int k = 0; k < PL_NKINDS; k++)
			pl->others.n[k] += pl->stats[i].n[k];
		if (pl->stats[i].last[0] && !pl->others.last[0])
			memcpy(pl->others.last, pl->stats[i].last, sizeof pl->others.last);
	}
	if (pl->nstats > PEERLIMIT_LOG_PEERS)
		pl->nstats = PEERLIMIT_LOG_PEERS;
	for (int i = 0; i <= pl->nstats; i++) {
		struct pl_stat *st = i < pl->nstats ? &pl->stats[i] : &pl->others;
		for (int k = 0; k < PL_NKINDS; k++)
			if (st->n[k]) {
				any = true;
				pl_log_one(pl, k, i < pl->nstats ? st->name : "other peers", st->n[k],
					   st->last);
			}
	}
	memset(pl->stats, 0, sizeof pl->stats);
	memset(&pl->others, 0, sizeof pl->others);
	pl->nstats = 0;
	return any;
}

static void pl_spell_end(void *arg)
{
	struct peerlimit *pl = arg;
	/* A quiet spell ends it: the next event is logged at once again. */
	pl->spell = pl_flush(pl);
	if (pl->spell)
		loop_timer_start(pl->loop, &pl->spell_timer, pl->o.log_ms);
}

static void pl_event(struct peerlimit *pl, const struct pl_peer *p, int kind, const char *detail)
{
	if (!pl->spell) {
		pl_log_one(pl, kind, p->name, 0, detail ? detail : "");
		pl->spell = true;
		loop_timer_start(pl->loop, &pl->spell_timer, pl->o.log_ms);
		return;
	}
	struct pl_stat *st = NULL;
	for (int i = 0; i < pl->nstats && !st; i++)
		if (memcmp(&pl->stats[i].key, &p->key, sizeof p->key) == 0)
			st = &pl->stats[i];
	if (!st && pl->nstats < PEERLIMIT_LOG_TRACK) {
		st = &pl->stats[pl->nstats++];
		st->key = p->key;
		snprintf(st->name, sizeof st->name, "%s", p->name);
	}
	if (!st)
		st = &pl->others;
	st->n[kind]++;
	if (detail)
		snprintf(st->last, sizeof st->last, "%s", detail);
}

/* --- admission --- */

static void pl_close(struct peerlimit *pl, struct peerlimit_slot *s, enum peerlimit_why why)
{
	peerlimit_close_cb cb = s->cb;
	void *arg = s->arg;
	pl_event(pl, s->peer, why == PEERLIMIT_DEADLINE ? PL_DEADLINE : PL_REFUSED, NULL);
	pl_release(pl, s);
	free(s);
	cb(arg, why);
}

static void pl_on_deadline(void *arg)
{
	struct peerlimit_slot *s = arg;
	pl_close(s->pl, s, PEERLIMIT_DEADLINE);
}

static struct peerlimit_slot *pl_oldest_idle(const struct pl_peer *p)
{
	for (struct peerlimit_slot *s = p->head; s; s = s->next)
		if (!s->active)
			return s;
	return NULL;
}

static struct peerlimit_slot *pl_peer_victim(const struct peerlimit *pl, const struct pl_peer *p)
{
	if (pl->o.first_message_whole && p->idle < p->pending)
		for (struct peerlimit_slot *s = p->head; s; s = s->next)
			if (s->active)
				return s;
	return p->head;
}

/* Over the total: the oldest idle connection of the peer holding the most idle ones; when none
 * is idle, the oldest of the peer holding the most (ties: the older connection). */
static struct peerlimit_slot *pl_victim(const struct peerlimit *pl)
{
	const struct pl_peer *best = NULL;
	struct peerlimit_slot *bs = NULL;
	for (const struct pl_peer *p = pl->peers; p; p = p->next) {
		struct peerlimit_slot *s = p->idle ? pl_oldest_idle(p) : NULL;
		if (s && (!bs || p->idle > best->idle || (p->idle == best->idle && s->seq < bs->seq))) {
			best = p;
			bs = s;
		}
	}
	if (bs)
		return bs;
	for (const struct pl_peer *p = pl->peers; p; p = p->next)
		if (!best || p->pending > best->pending ||
		    (p->pending == best->pending && p->head->seq < best->head->seq))
			best = p;
	return best ? best->head : NULL;
}

struct peerlimit_slot *peerlimit_admit(struct peerlimit *pl, int fd,
				       const struct sockaddr_storage *peer, peerlimit_close_cb cb,
				       void *arg)
{
	struct pl_key k;
	char name[64];
	pl_key_of(fd, peer, &k, name, sizeof name);
	/* Room first: the victim may be this peer's last pending one, which frees its record. */
	struct pl_peer *p = pl_peer_find(pl, &k);
	/* Within one peer the oldest goes: its connections cannot be told apart, and a client
	 * that just arrived must not lose to the ones that have been waiting (slow ones, or idle
	 * ones whose bytes are yet to come). Where a first message arrives whole, one that spoke
	 * and stopped is a slow client and goes first: a peer that churns its own slow
	 * connections faster than a newcomer on its address gets to send (hundreds a second,
	 * on a loaded machine) must not displace the newcomer before it speaks. */
	if (p && p->pending >= pl->o.max_pending_per_peer)
		pl_close(pl, pl_peer_victim(pl, p), PEERLIMIT_OVER_BUDGET);
	else if (pl->pending >= pl->o.max_pending)
		pl_close(pl, pl_victim(pl), PEERLIMIT_OVER_BUDGET);
	struct peerlimit_slot *s = calloc(1, sizeof *s);
	if (!s) {
		log_warnx("%s: out of memory for a connection from %s", pl->o.what, name);
		return NULL;
	}
	p = pl_peer_find(pl, &k);
	if (!p) {
		p = calloc(1, sizeof *p);
		if (!p) {
			log_warnx("%s: out of memory for a connection from %s", pl->o.what, name);
			free(s);
			return NULL;
		}
		p->key = k;
		memcpy(p->name, name, sizeof p->name);
		p->next = pl->peers;
		pl->peers = p;
	}
	s->pl = pl;
	s->peer = p;
	s->seq = ++pl->seq;
	s->cb = cb;
	s->arg = arg;
	s->prev = p->tail;
	if (p->tail)
		p->tail->next = s;
	else
		p->head = s;
	p->tail = s;
	p->pending++;
	p->idle++;
	pl->pending++;
	/* Under a flood a client waits in the backlog, and its first bytes are often there by the
	 * time it is accepted; the accept loop may take many more connections before anything
	 * is read, and it must not be displaced as if it were idle. */
	int unread = 0;
	if (fd >= 0 && ioctl(fd, FIONREAD, &unread) == 0 && unread > 0)
		peerlimit_active(pl, s);
	loop_timer_init(&s->deadline, pl_on_deadline, s);
	if (pl->o.deadline_ms)
		loop_timer_start(pl->loop, &s->deadline, pl->o.deadline_ms);
	return s;
}

void peerlimit_active(struct peerlimit *pl, struct peerlimit_slot *s)
{
	(void)pl;
	if (!s || s->active)
		return;
	s->active = true;
	s->peer->idle--;
}

void peerlimit_done(struct peerlimit *pl, struct peerlimit_slot *s)
{
	if (!s)
		return;
	pl_release(pl, s);
	free(s);
}

void peerlimit_failed(struct peerlimit *pl, struct peerlimit_slot *s, const char *detail)
{
	if (!s)
		return;
	pl_event(pl, s->peer, PL_FAILED, detail ? detail : "");
	pl_release(pl, s);
	free(s);
}

void peerlimit_note(struct peerlimit *pl, const struct peerlimit_slot *s, const char *detail)
{
	pl_event(pl, s->peer, PL_FAILED, detail ? detail : "");
}

int peerlimit_pending(const struct peerlimit *pl) { return pl->pending; }
int peerlimit_peer_pending(const struct peerlimit_slot *s) { return s->peer->pending; }
const char *peerlimit_peer_name(const struct peerlimit_slot *s) { return s->peer->name; }

/* --- lifetime --- */

struct peerlimit *peerlimit_new(struct loop *loop, const struct peerlimit_opts *o)
{
	if (!o->what || o->max_pending < 1 || o->max_pending_per_peer < 1 ||
	    o->max_pending_per_peer > o->max_pending) {
		log_warnx("%s: bad pending-connection budgets (%d per peer, %d in all)",
			  o->what ? o->what : "listener", o->max_pending_per_peer, o->max_pending);
		return NULL;
	}
	struct peerlimit *pl = calloc(1, sizeof *pl);
	if (!pl) {
		log_warnx("%s: out of memory", o->what);
		return NULL;
	}
	pl->loop = loop;
	pl->o = *o;
	if (!pl->o.log_ms)
		pl->o.log_ms = PEERLIMIT_LOG_MS;
	if (!pl->o.deadline_what)
		pl->o.deadline_what = "authenticate";
	loop_timer_init(&pl->spell_timer, pl_spell_end, pl);
	return pl;
}

void peerlimit_free(struct peerlimit *pl)
{
	if (!pl)
		return;
	while (pl->peers) {
		struct peerlimit_slot *s = pl->peers->head;
		pl_release(pl, s);
		free(s);
	}
	loop_timer_stop(pl->loop, &pl->spell_timer);
	pl_flush(pl);
	free(pl);
}
