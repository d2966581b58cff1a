/* reglink.c: the links of the registry's controllers -- dialled at their own address or at one
 * an announce named, or dialled in -- up to the hello that makes one of them the controller's
 * link and its address the verified one; see registry.h. */
#include "registry_int.h"

#include "lanmsg.h"
#include "link.h"
#include "log.h"
#include "net.h"
#include "peerlimit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct link_ops registry_link_ops;
static const struct link_ops registry_inbound_ops;

void attempt_free(struct attempt *a)
{
	struct ctl *c = a->c;
	if (c->up == a) {
		c->up = NULL;
	} else {
		for (struct attempt **pp = &c->tries; *pp; pp = &(*pp)->next)
			if (*pp == a) {
				*pp = a->next;
				c->ntries--;
				break;
			}
	}
	if (a->dialing) {
		c->r->dialing--;
		loop_defer(c->r->loop, &c->r->dial_next);
	}
	if (a->link)
		link_free(a->link);
	free(a);
}

struct attempt *ctl_try_to(struct ctl *c, const struct sockaddr_storage *to)
{
	for (struct attempt *a = c->tries; a; a = a->next)
		if (!a->inbound && registry_same_addr(&a->addr, to))
			return a;
	return NULL;
}

/* Dials `to` beside whatever links the controller has. false when it cannot now. */
bool ctl_dial_to(struct ctl *c, const struct sockaddr_storage *to)
{
	struct registry *r = c->r;
	if (r->shutting_down || ctl_try_to(c, to))
		return true;
	if (c->ntries >= REGISTRY_TRIES_MAX || r->dialing >= REGISTRY_DIAL_MAX)
		return false;
	struct attempt *a = calloc(1, sizeof *a);
	if (!a)
		return false;
	a->c = c;
	a->addr = *to;
	a->link = link_dial(r->lctx, r->loop, to, NULL, c->id, &registry_link_ops, a);
	if (!a->link) {
		log_warn("controller %s: dial", c->id);
		free(a);
		return false;
	}
	a->dialing = true;
	r->dialing++;
	a->next = c->tries;
	c->tries = a;
	c->ntries++;
	return true;
}

/* Its own address, while it has no link up. */
void ctl_dial(struct ctl *c)
{
	if (!c->have_addr || c->up || c->r->shutting_down)
		return;
	loop_timer_stop(c->r->loop, &c->redial);
	c->dial_wanted = !ctl_dial_to(c, &c->addr);
}

/* An announce is not repeated for a while (5 s by default): one that finds every dial slot
 * taken -- a home server starting among many controllers that all announce at once -- is kept
 * and dialled when a slot frees, instead of waiting for the controller's next announce. */
void ctl_dial_announced(struct ctl *c, const struct sockaddr_storage *to)
{
	c->cand_wanted = !ctl_dial_to(c, to);
	if (c->cand_wanted)
		c->cand = *to;
}

bool ctl_quarantined(const struct ctl *c, const struct sockaddr_storage *a)
{
	return loop_now(c->r->loop) < c->quarantine_until && registry_same_addr(&c->quarantined, a);
}

void ctl_redial(void *arg) { ctl_dial(arg); }

static void ctl_schedule_redial(struct ctl *c)
{
	struct registry *r = c->r;
	if (r->shutting_down || !c->have_addr || c->up || loop_timer_armed(&c->redial))
		return;
	loop_timer_start(r->loop, &c->redial, backoff_next(&c->backoff, (uint64_t)random()));
}

void registry_dial_waiting(void *arg)
{
	struct registry *r = arg;
	for (struct ctl *c = r->ctls; c && r->dialing < REGISTRY_DIAL_MAX; c = c->next) {
		/* A candidate whose link failed meanwhile is left alone, as a new announce of it. */
		if (c->cand_wanted && ctl_quarantined(c, &c->cand))
			c->cand_wanted = false;
		if (c->cand_wanted)
			ctl_dial_announced(c, &c->cand);
		if (c->dial_wanted && r->dialing < REGISTRY_DIAL_MAX)
			ctl_dial(c);
	}
}

static void registry_on_tls_up(struct link *l, void *arg)
{
	struct attempt *a = arg;
	struct registry *r = a->c->r;
	if (a->dialing) {
		a->dialing = false;
		r->dialing--;
		loop_defer(r->loop, &r->dial_next);
	}
	cJSON *h = lanmsg_hello_new(&(struct lanmsg_hello){ .controller = false });
	if (h)
		link_send(l, h);
	cJSON_Delete(h);
}

/* The controller's hello on link a: a becomes its link, its address the verified one. */
static void registry_hello(struct attempt *a, const struct lanmsg *msg)
{
	struct ctl *c = a->c;
	struct lanmsg_hello h;
	char why[256];
	int rc = lanmsg_hello(msg, &h, why, sizeof why);
	if (rc == 0 && !h.controller) {
		snprintf(why, sizeof why, "hello from a home server, not a controller");
		rc = -EINVAL;
	}
	if (rc < 0) {
		log_warnx("controller %s: %s; link dropped", c->id, why);
		attempt_free(a);
		ctl_schedule_redial(c);
		return;
	}
	ctl_take(c->name, sizeof c->name, h.name);
	ctl_take(c->version, sizeof c->version, h.version);
	bool changed = ctl_take(c->boot, sizeof c->boot, h.boot);
	struct sockaddr_storage addr = a->addr;
	/* A controller that dialled in tells its own link port for later dials. */
	if (a->inbound) {
		char host[64];
		net_host_str((struct sockaddr *)&a->addr, host, sizeof host);
		net_addr_parse(host, (uint16_t)h.port, &addr, NULL);
	}
	if (!c->have_addr || !registry_same_addr(&c->addr, &addr)) {
		char was[NET_ADDRSTRLEN], now[NET_ADDRSTRLEN];
		if (c->have_addr)
			log_info("controller %s: moved from %s to %s (its link there said hello)", c->id,
				 registry_addr_str(&c->addr, was, sizeof was),
				 registry_addr_str(&addr, now, sizeof now));
		c->addr = addr;
		c->have_addr = true;
		changed = true;
	}
	ctl_set_json(&c->actions, h.actions);
	ctl_set_json(&c->sensors, h.sensors);
	if (c->up == a) {   /* a second hello on the same link: nothing moves */
		if (changed)
			ctl_changed(c);
		return;
	}
	/* The newest link wins: an older one may be half-open to a process that is gone. The
	 * other tries are moot now that the controller is verified here. */
	if (c->up) {
		log_info("controller %s: new link replaces the older one", c->id);
		attempt_free(c->up);
	}
	for (struct attempt **pp = &c->tries; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			c->ntries--;
			break;
		}
	a->next = NULL;
	c->up = a;
	while (c->tries)
		attempt_free(c->tries);
	c->dial_wanted = false;
	c->cand_wanted = false;
	backoff_reset(&c->backoff);
	loop_timer_stop(c->r->loop, &c->redial);
	c->last_seen = (int64_t)loop_wall_ms();
	log_info("controller %s: link up with %s (boot %.8s)", c->id, link_peer_addr(a->link), c->boot);
	bool was_online = ctl_live_online(&c->live);
	if (was_online && changed)
		ctl_changed(c);
	ctl_step(c, CTL_EV_LINK_UP, NULL);
}

static void registry_on_msg(struct link *l, const struct lanmsg *msg, void *arg)
{
	struct attempt *a = arg;
	struct ctl *c = a->c;
	(void)l;
	if (msg->type == LANMSG_HELLO) {
		registry_hello(a, msg);
		return;
	}
	if (c->up != a) {
		log_warnx("controller %s: '%s' before hello; link dropped", c->id, msg->type_name);
		attempt_free(a);
		ctl_schedule_redial(c);
		return;
	}
	c->last_seen = (int64_t)loop_wall_ms();
	if (msg->type == LANMSG_BYE) {
		attempt_free(a);
		ctl_step(c, CTL_EV_BYE, NULL);
		return;
	}
	if (c->r->ops->on_msg)
		c->r->ops->on_msg(c->r->arg, c, msg);
}

static void registry_on_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct attempt *a = arg;
	struct ctl *c = a->c;
	struct registry *r = c->r;
	char host[NET_ADDRSTRLEN];
	bool was_up = c->up == a;
	/* Only its own address speaks for the controller; another one an announce named (perhaps
	 * replayed by a stranger) is just left alone for a while. */
	bool candidate = !a->inbound && c->have_addr && !registry_same_addr(&a->addr, &c->addr);
	log_info("controller %s: link %s down: %s%s%s", c->id, link_peer_addr(l), link_down_str(why),
		 detail ? ": " : "", detail ? detail : "");
	if (candidate) {
		c->quarantined = a->addr;
		c->quarantine_until = loop_now(r->loop) + REGISTRY_QUARANTINE_MS;
		log_info("controller %s: not trying %s again for %d s", c->id,
			 registry_addr_str(&a->addr, host, sizeof host), REGISTRY_QUARANTINE_MS / 1000);
	}
	attempt_free(a);
	if (was_up)
		ctl_step(c, CTL_EV_LINK_LOST, NULL);
	else if (!candidate && why == LINK_DOWN_HANDSHAKE && !c->up)
		ctl_step(c, CTL_EV_HS_FAILED, detail);
	ctl_schedule_redial(c);
}

static const struct link_ops registry_link_ops = { registry_on_tls_up, registry_on_msg,
						   registry_on_down, NULL };

/* --- inbound links (controllers that dial the home server) --- */

static void registry_inbound_free(struct inbound *in)
{
	peerlimit_done(in->pl, in->slot);
	for (struct inbound **pp = &in->r->inbound; *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	free(in);
}

static void registry_inbound_up(struct link *l, void *arg)
{
	struct inbound *in = arg;
	struct registry *r = in->r;
	const char *id = link_peer_id(l);
	/* It proved it holds the secret: no longer a stranger in the pending budgets. */
	peerlimit_done(in->pl, in->slot);
	in->slot = NULL;
	struct ctl *c = registry_find(r, id);
	if (!c)
		c = ctl_new(r, id);
	struct attempt *a = c ? calloc(1, sizeof *a) : NULL;
	if (!a) {
		link_free(l);
		registry_inbound_free(in);
		return;
	}
	/* It proved the home's secret: it always gets a place, the oldest try gives way. */
	if (c->ntries >= REGISTRY_TRIES_MAX) {
		struct attempt *old = c->tries;
		while (old->next)
			old = old->next;
		attempt_free(old);
	}
	a->c = c;
	a->link = l;
	a->inbound = true;
	char host[64];
	net_host_str((const struct sockaddr *)&in->peer, host, sizeof host);
	net_addr_parse(host, 0, &a->addr, NULL);   /* the link port follows in its hello */
	registry_inbound_free(in);
	a->next = c->tries;
	c->tries = a;
	c->ntries++;
	/* From now on its messages and its end go where a dialled link's do. */
	link_set_ops(l, &registry_link_ops, a);
	registry_on_tls_up(l, a);
}

static void registry_inbound_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct inbound *in = arg;
	/* Before on_up, so still a stranger: peerlimit logs it, rate-limited. */
	char why_s[320];
	snprintf(why_s, sizeof why_s, "%s%s%s", link_down_str(why), detail ? ": " : "",
		 detail ? detail : "");
	peerlimit_failed(in->pl, in->slot, why_s);
	in->slot = NULL;
	link_free(l);
	registry_inbound_free(in);
}

/* The handshake's first bytes: a peer that speaks, not an idle connection of a flood. */
static void registry_inbound_rx(struct link *l, void *arg)
{
	struct inbound *in = arg;
	(void)l;
	peerlimit_active(in->pl, in->slot);
}

/* No on_msg: a peer cannot send before on_up, which hands the link to its controller. */
static const struct link_ops registry_inbound_ops = { registry_inbound_up, NULL,
						      registry_inbound_down, registry_inbound_rx };

/* peerlimit displaced this stranger or it took too long (logged there). */
static void registry_inbound_close(void *arg, enum peerlimit_why why)
{
	struct inbound *in = arg;
	(void)why;
	in->slot = NULL;
	link_free(in->link);
	registry_inbound_free(in);
}

void registry_inbound_free_all(struct registry *r)
{
	while (r->inbound) {
		link_free(r->inbound->link);
		registry_inbound_free(r->inbound);
	}
}

void registry_accept(struct registry *r, struct peerlimit *pl, int fd,
		     const struct sockaddr_storage *peer)
{
	struct inbound *in = calloc(1, sizeof *in);
	if (in) {
		in->pl = pl;
		in->slot = peerlimit_admit(pl, fd, peer, registry_inbound_close, in);
	}
	if (!in || !in->slot) {
		free(in);
		close(fd);
		return;
	}
	in->r = r;
	in->peer = *peer;
	in->link = link_accept(r->lctx, r->loop, fd, peer, NULL, &registry_inbound_ops, in);
	if (!in->link) {
		log_warn("inbound link");
		peerlimit_done(pl, in->slot);
		free(in);
		return;
	}
	in->next = r->inbound;
	r->inbound = in;
}
