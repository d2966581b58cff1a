/* registry: controllers, their links and their liveness; see registry.h. */
#include "registry.h"

#include "command.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "peerlimit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum ctl_link { CL_NONE, CL_DIALING, CL_HELLO /* TLS up, waiting for hello */, CL_UP };

struct ctl {
	struct registry *r;
	char id[64], name[128], version[32], boot[33];
	struct sockaddr_storage addr;
	bool have_addr, is_static;
	cJSON *actions, *sensors;   /* owned */
	struct link *link;
	enum ctl_link lstate;
	bool online, ever_up;
	bool dial_wanted;                    /* waiting for a free dial slot */
	char reason[160];
	uint64_t last_announce, link_down;   /* monotonic ms */
	int64_t last_seen, since;            /* wall ms */
	int64_t info_published;              /* wall ms of the last info with last_seen */
	struct loop_timer check, redial;
	uint64_t backoff;
	struct ctl *next;
};

/* A link that dialled in and has not told who it is yet. */
struct inbound {
	struct registry *r;
	struct link *link;
	struct peerlimit *pl;           /* the listener's pending budgets */
	struct peerlimit_slot *slot;    /* until the handshake completes */
	struct sockaddr_storage peer;   /* where it came from; its port is not a link port */
	struct inbound *next;
};

struct registry {
	struct loop *loop;
	struct link_ctx *lctx;
	struct registry_opts o;
	const struct registry_ops *ops;
	void *arg;
	struct ctl *ctls;
	int count;
	struct inbound *inbound;
	bool shutting_down;
	int dialing;                         /* links in CL_DIALING */
	struct loop_timer dial_timer;        /* hands free dial slots to waiting controllers */
};

/* Handshakes in flight at once: a home server (re)starting among many controllers dials them
 * in waves instead of holding every TLS handshake's buffers at the same moment. */
#define REGISTRY_DIAL_MAX 32

static const struct link_ops registry_ctl_ops;
static const struct link_ops registry_inbound_ops;

/* The window after which silence means offline. */
static uint64_t registry_window(const struct registry *r)
{
	return r->o.announce_interval_ms * (uint64_t)r->o.offline_after;
}

static void registry_changed(struct ctl *c)
{
	c->info_published = c->last_seen;
	if (c->r->ops->on_changed)
		c->r->ops->on_changed(c->r->arg, c);
}

static void ctl_set_online(struct ctl *c)
{
	if (c->online)
		return;
	c->online = true;
	c->reason[0] = '\0';
	c->since = (int64_t)loop_wall_ms();
	log_info("controller %s: online", c->id);
	registry_changed(c);
}

static void ctl_set_offline(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_set_offline(struct ctl *c, const char *fmt, ...)
{
	char why[sizeof c->reason];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (!c->online && strcmp(why, c->reason) == 0)
		return;
	bool was = c->online;
	c->online = false;
	snprintf(c->reason, sizeof c->reason, "%s", why);
	c->since = (int64_t)loop_wall_ms();
	log_info("controller %s: offline: %s", c->id, why);
	registry_changed(c);
	if (was && c->r->ops->on_offline)
		c->r->ops->on_offline(c->r->arg, c);
}

static void ctl_arm_check(struct ctl *c)
{
	struct registry *r = c->r;
	uint64_t last = c->last_announce > c->link_down ? c->last_announce : c->link_down;
	uint64_t due = last + registry_window(r);
	uint64_t now = loop_now(r->loop);
	loop_timer_start(r->loop, &c->check, due > now ? due - now + 1 : 1);
}

static void ctl_check(void *arg)
{
	struct ctl *c = arg;
	struct registry *r = c->r;
	if (c->lstate == CL_UP)
		return;
	uint64_t last = c->last_announce > c->link_down ? c->last_announce : c->link_down;
	if (loop_now(r->loop) < last + registry_window(r)) {
		ctl_arm_check(c);
		return;
	}
	if (!c->online)
		return;
	/* The link had been up: its loss is the cause; else the controller just went quiet. */
	if (c->ever_up && c->link_down)
		ctl_set_offline(c, "link lost and %d announces missed", r->o.offline_after);
	else
		ctl_set_offline(c, "missed %d announces", r->o.offline_after);
}

static void ctl_dial(struct ctl *c);

/* Every change of a controller's link state goes through here, so the dial slots add up. */
static void ctl_state(struct ctl *c, enum ctl_link st)
{
	struct registry *r = c->r;
	if (c->lstate == CL_DIALING && st != CL_DIALING) {
		r->dialing--;
		loop_timer_start(r->loop, &r->dial_timer, 0);
	} else if (c->lstate != CL_DIALING && st == CL_DIALING) {
		r->dialing++;
	}
	c->lstate = st;
}

static void registry_dial_waiting(void *arg)
{
	struct registry *r = arg;
	for (struct ctl *c = r->ctls; c && r->dialing < REGISTRY_DIAL_MAX; c = c->next)
		if (c->dial_wanted && c->lstate == CL_NONE)
			ctl_dial(c);
}

static void ctl_redial(void *arg)
{
	struct ctl *c = arg;
	if (c->lstate == CL_NONE)
		ctl_dial(c);
}

static void ctl_schedule_redial(struct ctl *c)
{
	struct registry *r = c->r;
	if (r->shutting_down || !c->have_addr)
		return;
	c->backoff = c->backoff ? c->backoff * 2 : 200;
	if (c->backoff > 30000)
		c->backoff = 30000;
	uint64_t d = c->backoff / 2 + (uint64_t)(random() % (long)(c->backoff / 2 + 1));
	loop_timer_start(r->loop, &c->redial, d);
}

static void ctl_drop_link(struct ctl *c)
{
	if (c->link)
		link_free(c->link);
	c->link = NULL;
	if (c->lstate == CL_UP)
		c->link_down = loop_now(c->r->loop);
	ctl_state(c, CL_NONE);
}

static void ctl_dial(struct ctl *c)
{
	struct registry *r = c->r;
	if (!c->have_addr || c->lstate != CL_NONE || r->shutting_down)
		return;
	loop_timer_stop(r->loop, &c->redial);
	if (r->dialing >= REGISTRY_DIAL_MAX) {
		c->dial_wanted = true;
		return;
	}
	c->dial_wanted = false;
	c->link = link_dial(r->lctx, r->loop, &c->addr, NULL, c->id, &registry_ctl_ops, c);
	if (!c->link) {
		log_warn("controller %s: dial", c->id);
		ctl_schedule_redial(c);
		return;
	}
	ctl_state(c, CL_DIALING);
}

static struct ctl *ctl_new(struct registry *r, const char *id)
{
	struct ctl *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->r = r;
	snprintf(c->id, sizeof c->id, "%s", id);
	snprintf(c->name, sizeof c->name, "%s", id);
	snprintf(c->reason, sizeof c->reason, "never seen");
	loop_timer_init(&c->check, ctl_check, c);
	loop_timer_init(&c->redial, ctl_redial, c);
	c->next = r->ctls;
	r->ctls = c;
	r->count++;
	return c;
}

static void ctl_set_json(cJSON **dst, const cJSON *src)
{
	if (!src)
		return;
	cJSON_Delete(*dst);
	*dst = cJSON_Duplicate(src, 1);
}

/* --- link callbacks of a controller's link --- */

static void registry_on_up(struct link *l, void *arg)
{
	struct ctl *c = arg;
	ctl_state(c, CL_HELLO);
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "type", "hello");
	cJSON_AddNumberToObject(h, "proto", ANNOUNCE_PROTO_VERSION);
	cJSON_AddStringToObject(h, "role", "home");
	cJSON_AddStringToObject(h, "version", FR_VERSION);
	link_send(l, h);
	cJSON_Delete(h);
}

static void registry_hello(struct ctl *c, const cJSON *msg)
{
	const cJSON *v;
	bool changed = false;
	v = cJSON_GetObjectItemCaseSensitive(msg, "proto");
	if (!cJSON_IsNumber(v) || v->valueint != ANNOUNCE_PROTO_VERSION) {
		log_warnx("controller %s: hello with unsupported protocol; link dropped", c->id);
		ctl_drop_link(c);
		ctl_schedule_redial(c);
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(msg, "name");
	if (cJSON_IsString(v) && strlen(v->valuestring) < sizeof c->name)
		snprintf(c->name, sizeof c->name, "%s", v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(msg, "version");
	if (cJSON_IsString(v) && strlen(v->valuestring) < sizeof c->version)
		snprintf(c->version, sizeof c->version, "%s", v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(msg, "boot");
	if (cJSON_IsString(v) && strlen(v->valuestring) < sizeof c->boot &&
	    strcmp(v->valuestring, c->boot) != 0) {
		snprintf(c->boot, sizeof c->boot, "%s", v->valuestring);
		changed = true;
	}
	v = cJSON_GetObjectItemCaseSensitive(msg, "port");
	/* A controller that dialled in tells its own link port for later dials. */
	if (cJSON_IsNumber(v) && v->valueint > 0 && v->valueint < 65536 && c->have_addr &&
	    net_addr_port((struct sockaddr *)&c->addr) != (uint16_t)v->valueint) {
		char host[64];
		net_host_str((struct sockaddr *)&c->addr, host, sizeof host);
		net_addr_parse(host, (uint16_t)v->valueint, &c->addr, NULL);
		changed = true;
	}
	ctl_set_json(&c->actions, cJSON_GetObjectItemCaseSensitive(msg, "actions"));
	ctl_set_json(&c->sensors, cJSON_GetObjectItemCaseSensitive(msg, "sensors"));
	ctl_state(c, CL_UP);
	c->ever_up = true;
	c->backoff = 0;
	c->last_seen = (int64_t)loop_wall_ms();
	loop_timer_stop(c->r->loop, &c->check);
	log_info("controller %s: link up with %s (boot %.8s)", c->id, link_peer_addr(c->link), c->boot);
	if (c->online && changed)
		registry_changed(c);
	ctl_set_online(c);
	if (c->r->ops->on_link_up)
		c->r->ops->on_link_up(c->r->arg, c);
}

static void registry_on_msg(struct link *l, const cJSON *msg, void *arg)
{
	struct ctl *c = arg;
	(void)l;
	const char *type = cJSON_GetObjectItemCaseSensitive(msg, "type")->valuestring;
	c->last_seen = (int64_t)loop_wall_ms();
	if (strcmp(type, "hello") == 0) {
		registry_hello(c, msg);
		return;
	}
	if (c->lstate != CL_UP) {
		log_warnx("controller %s: '%s' before hello; link dropped", c->id, type);
		ctl_drop_link(c);
		ctl_schedule_redial(c);
		return;
	}
	if (strcmp(type, "bye") == 0) {
		ctl_drop_link(c);
		ctl_set_offline(c, "shut down cleanly");
		return;
	}
	if (c->r->ops->on_msg)
		c->r->ops->on_msg(c->r->arg, c, msg);
}

static void registry_on_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct ctl *c = arg;
	struct registry *r = c->r;
	bool was_up = c->lstate == CL_UP;
	log_info("controller %s: link %s down: %s%s%s", c->id, link_peer_addr(l), link_down_str(why),
		 detail ? ": " : "", detail ? detail : "");
	link_free(l);
	c->link = NULL;
	ctl_state(c, CL_NONE);
	if (was_up)
		c->link_down = loop_now(r->loop);
	if (why == LINK_DOWN_HANDSHAKE) {
		/* A wrong key or identity does not heal by waiting: say so at once. */
		if (!c->online && !c->ever_up)
			c->online = true; /* so that the offline below is reported */
		ctl_set_offline(c, "handshake failed: %s", detail ? detail : "");
	} else if (c->online) {
		ctl_arm_check(c);
	}
	ctl_schedule_redial(c);
}

static const struct link_ops registry_ctl_ops = { registry_on_up, registry_on_msg,
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
	if (!c) {
		link_free(l);
		registry_inbound_free(in);
		return;
	}
	/* The host it dialled from; the link port follows in its hello. */
	char host[64];
	net_host_str((const struct sockaddr *)&in->peer, host, sizeof host);
	registry_inbound_free(in);
	if (net_addr_parse(host, 0, &c->addr, NULL) == 0)
		c->have_addr = true;
	/* The newest link wins: an old one may be half-open after the controller restarted. */
	if (c->link) {
		log_info("controller %s: dialled in; replacing its older link", c->id);
		link_free(c->link);
		c->link = NULL;
	}
	c->dial_wanted = false;
	loop_timer_stop(r->loop, &c->redial);
	c->link = l;
	/* From now on the link is this controller's: its messages and its end go where a dialled
	 * link's do. */
	link_set_ops(l, &registry_ctl_ops, c);
	registry_on_up(l, c);
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

/* --- announces --- */

void registry_announce(struct registry *r, const struct announce *a,
		       const struct sockaddr_storage *from)
{
	struct ctl *c = registry_find(r, a->id);
	bool changed = false;
	if (!c) {
		c = ctl_new(r, a->id);
		if (!c)
			return;
		changed = true;
		log_info("controller %s: discovered at %s", a->id,
			 net_host_str((const struct sockaddr *)from, (char[64]){ 0 }, 64));
	}
	c->last_announce = loop_now(r->loop);
	c->last_seen = (int64_t)loop_wall_ms();
	struct sockaddr_storage addr = *from;
	char host[64];
	net_host_str((struct sockaddr *)from, host, sizeof host);
	net_addr_parse(host, a->port, &addr, NULL);
	bool moved = !c->have_addr || net_addr_port((struct sockaddr *)&addr) !=
					      net_addr_port((struct sockaddr *)&c->addr) ||
		     strcmp(host, net_host_str((struct sockaddr *)&c->addr, (char[64]){ 0 }, 64)) != 0;
	bool rebooted = c->boot[0] && strcmp(c->boot, a->boot) != 0;
	if (moved) {
		if (c->have_addr)
			log_info("controller %s: moved to %s:%u", c->id, host, a->port);
		c->addr = addr;
		c->have_addr = true;
		changed = true;
	}
	if (rebooted || moved) {
		/* A new boot means the old link (if any) talks to a process that is gone. */
		if (c->lstate != CL_NONE && rebooted) {
			log_info("controller %s: restarted (boot %.8s); relinking", c->id, a->boot);
			ctl_drop_link(c);
		}
		c->backoff = 0;
	}
	if (strcmp(c->boot, a->boot) != 0) {
		snprintf(c->boot, sizeof c->boot, "%s", a->boot);
		changed = true;
	}
	if (strcmp(c->name, a->name) != 0 || strcmp(c->version, a->version) != 0) {
		snprintf(c->name, sizeof c->name, "%s", a->name);
		snprintf(c->version, sizeof c->version, "%s", a->version);
		changed = true;
	}
	char *oa = c->actions ? cJSON_PrintUnformatted(c->actions) : NULL;
	char *na = cJSON_PrintUnformatted(a->actions);
	char *os = c->sensors ? cJSON_PrintUnformatted(c->sensors) : NULL;
	char *ns = cJSON_PrintUnformatted(a->sensors);
	if (!oa || !na || strcmp(oa, na) || !os || !ns || strcmp(os, ns)) {
		ctl_set_json(&c->actions, a->actions);
		ctl_set_json(&c->sensors, a->sensors);
		changed = true;
	}
	free(oa);
	free(na);
	free(os);
	free(ns);
	if (c->lstate == CL_NONE && (moved || rebooted || !loop_timer_armed(&c->redial)))
		ctl_dial(c);
	if (c->online && c->lstate != CL_UP)
		ctl_arm_check(c);
	/* last_seen in the retained info is refreshed at most once a minute: announces every few
	 * seconds from every controller would otherwise flood the broker with retained updates. */
	if (c->online && (changed || c->last_seen - c->info_published > 60000))
		registry_changed(c);
}

void registry_add_static(struct registry *r, const char *id, const char *addr, uint16_t port)
{
	struct ctl *c = registry_find(r, id);
	if (!c && !(c = ctl_new(r, id)))
		return;
	if (net_addr_parse(addr, port, &c->addr, NULL) < 0) {
		log_warnx("controller %s: address '%s' is not numeric", id, addr);
		return;
	}
	c->have_addr = true;
	c->is_static = true;
	ctl_dial(c);
}

void registry_add_known(struct registry *r, const char *id, const cJSON *info)
{
	if (!command_valid_name(id, 63) || registry_find(r, id))
		return;
	struct ctl *c = ctl_new(r, id);
	if (!c)
		return;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, "name");
	if (cJSON_IsString(v))
		snprintf(c->name, sizeof c->name, "%s", v->valuestring);
	ctl_set_json(&c->actions, cJSON_GetObjectItemCaseSensitive(info, "actions"));
	ctl_set_json(&c->sensors, cJSON_GetObjectItemCaseSensitive(info, "sensors"));
	const cJSON *online = cJSON_GetObjectItemCaseSensitive(info, "online");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(info, "address");
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(info, "port");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(info, "offline_reason");
	if (cJSON_IsString(reason))
		snprintf(c->reason, sizeof c->reason, "%s", reason->valuestring);
	c->online = cJSON_IsTrue(online);
	log_info("controller %s: known from a previous run (%s)", id, c->online ? "was online" : "offline");
	if (cJSON_IsString(addr) && cJSON_IsNumber(port) &&
	    net_addr_parse(addr->valuestring, (uint16_t)port->valueint, &c->addr, NULL) == 0) {
		c->have_addr = true;
		ctl_dial(c);
	}
	/* Heard from within the window, or offline: a restart of frMhs never leaves a stale
	 * "online" behind. */
	c->link_down = loop_now(r->loop);
	if (c->online)
		ctl_arm_check(c);
}

/* --- lifecycle and queries --- */

struct registry *registry_new(struct loop *loop, struct link_ctx *lctx,
			      const struct registry_opts *o, const struct registry_ops *ops,
			      void *arg)
{
	struct registry *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->loop = loop;
	r->lctx = lctx;
	r->o = *o;
	r->ops = ops;
	r->arg = arg;
	loop_timer_init(&r->dial_timer, registry_dial_waiting, r);
	return r;
}

void registry_shutdown(struct registry *r)
{
	r->shutting_down = true;
	cJSON *bye = cJSON_CreateObject();
	cJSON_AddStringToObject(bye, "type", "bye");
	cJSON_AddStringToObject(bye, "reason", "shutdown");
	for (struct ctl *c = r->ctls; c; c = c->next)
		if (c->lstate == CL_UP)
			link_send(c->link, bye);
	cJSON_Delete(bye);
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	loop_timer_stop(r->loop, &r->dial_timer);
	while (r->inbound) {
		link_free(r->inbound->link);
		registry_inbound_free(r->inbound);
	}
	while (r->ctls) {
		struct ctl *c = r->ctls;
		r->ctls = c->next;
		loop_timer_stop(r->loop, &c->check);
		loop_timer_stop(r->loop, &c->redial);
		if (c->link)
			link_free(c->link);
		cJSON_Delete(c->actions);
		cJSON_Delete(c->sensors);
		free(c);
	}
	free(r);
}

struct ctl *registry_find(struct registry *r, const char *id)
{
	/* A linear scan: a home has tens of controllers; the 1000-controller bench measures it. */
	for (struct ctl *c = r->ctls; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct ctl *registry_first(struct registry *r) { return r->ctls; }
struct ctl *registry_next(struct ctl *c) { return c->next; }
int registry_count(const struct registry *r) { return r->count; }

int registry_online_count(const struct registry *r)
{
	int n = 0;
	for (const struct ctl *c = r->ctls; c; c = c->next)
		n += c->online;
	return n;
}

const char *ctl_id(const struct ctl *c) { return c->id; }
bool ctl_online(const struct ctl *c) { return c->online; }
bool ctl_link_up(const struct ctl *c) { return c->lstate == CL_UP; }
const char *ctl_offline_reason(const struct ctl *c) { return c->online ? "" : c->reason; }

uint64_t ctl_action_timeout(const struct ctl *c, const char *action)
{
	const cJSON *a;
	cJSON_ArrayForEach(a, c->actions) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, "name");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "timeout");
		if (cJSON_IsString(n) && strcmp(n->valuestring, action) == 0 && cJSON_IsNumber(t))
			return (uint64_t)(t->valuedouble * 1000.0);
	}
	return 0;
}

cJSON *ctl_info_json(const struct ctl *c)
{
	cJSON *o = cJSON_CreateObject();
	char host[64] = "";
	cJSON_AddStringToObject(o, "id", c->id);
	cJSON_AddStringToObject(o, "name", c->name);
	if (c->have_addr) {
		net_host_str((const struct sockaddr *)&c->addr, host, sizeof host);
		cJSON_AddStringToObject(o, "address", host);
		cJSON_AddNumberToObject(o, "port", net_addr_port((const struct sockaddr *)&c->addr));
	} else {
		cJSON_AddNullToObject(o, "address");
		cJSON_AddNullToObject(o, "port");
	}
	cJSON_AddBoolToObject(o, "online", c->online);
	if (c->online)
		cJSON_AddNullToObject(o, "offline_reason");
	else
		cJSON_AddStringToObject(o, "offline_reason", c->reason);
	cJSON_AddNumberToObject(o, "since", (double)c->since);
	cJSON_AddNumberToObject(o, "last_seen", (double)c->last_seen);
	cJSON_AddStringToObject(o, "version", c->version);
	cJSON_AddNumberToObject(o, "proto", ANNOUNCE_PROTO_VERSION);
	cJSON_AddStringToObject(o, "boot", c->boot);
	cJSON_AddItemToObject(o, "actions", c->actions ? cJSON_Duplicate(c->actions, 1) : cJSON_CreateArray());
	cJSON_AddItemToObject(o, "sensors", c->sensors ? cJSON_Duplicate(c->sensors, 1) : cJSON_CreateArray());
	return o;
}

int ctl_send(struct ctl *c, const cJSON *msg)
{
	if (c->lstate != CL_UP)
		return -ENOTCONN;
	return link_send(c->link, msg);
}
