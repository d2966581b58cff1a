/* registry: controllers, their links and their liveness; see registry.h. */
#include "registry_int.h"

#include "command.h"
#include "ctl.h"
#include "lanmsg.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool registry_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	char x[NET_ADDRSTRLEN], y[NET_ADDRSTRLEN];
	return strcmp(net_addr_str((const struct sockaddr *)a, x, sizeof x),
		      net_addr_str((const struct sockaddr *)b, y, sizeof y)) == 0;
}

const char *registry_addr_str(const struct sockaddr_storage *a, char *buf, size_t n)
{
	return net_addr_str((const struct sockaddr *)a, buf, n);
}

/* --- liveness: the table of ctl.c, and what its steps ask for --- */

void ctl_changed(struct ctl *c)
{
	c->info_published = c->last_seen;
	if (c->r->ops->on_changed)
		c->r->ops->on_changed(c->r->arg, c);
}

void ctl_step(struct ctl *c, enum ctl_event ev, const char *detail)
{
	struct registry *r = c->r;
	struct ctl_params p = { .now = loop_now(r->loop), .wall = (int64_t)loop_wall_ms(),
				.window_ms = r->o.announce_interval_ms * (uint64_t)r->o.offline_after,
				.offline_after = r->o.offline_after, .detail = detail };
	enum ctl_state before = c->live.state;
	unsigned out = ctl_live_step(&c->live, ev, &p);
	if (before != c->live.state)
		log_info("controller %s: %s -> %s%s%s", c->id, ctl_state_name(before),
			 ctl_state_name(c->live.state), c->live.reason[0] ? ": " : "", c->live.reason);
	if (out & CTL_DO_DISARM)
		loop_timer_stop(r->loop, &c->window);
	if (out & CTL_DO_ARM) {
		uint64_t due = ctl_live_due(&c->live, p.window_ms);
		loop_timer_start(r->loop, &c->window, due > p.now ? due - p.now + 1 : 1);
	}
	if (out & CTL_DO_PUBLISH)
		ctl_changed(c);
	if ((out & CTL_DO_OFFLINE) && r->ops->on_offline)
		r->ops->on_offline(r->arg, c);
	if ((out & CTL_DO_LINKED) && r->ops->on_link_up)
		r->ops->on_link_up(r->arg, c);
}

static void ctl_window(void *arg) { ctl_step(arg, CTL_EV_WINDOW, NULL); }

void ctl_set_json(cJSON **dst, const cJSON *src)
{
	if (!src)
		return;
	cJSON_Delete(*dst);
	*dst = cJSON_Duplicate(src, 1);
}

bool ctl_take(char *dst, size_t n, const char *src)
{
	if (!src || strlen(src) >= n || strcmp(dst, src) == 0)
		return false;
	snprintf(dst, n, "%s", src);
	return true;
}

bool ctl_take_str(char *dst, size_t n, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return ctl_take(dst, n, cJSON_IsString(v) ? v->valuestring : NULL);
}

/* --- controllers --- */

struct ctl *ctl_new(struct registry *r, const char *id)
{
	struct ctl *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->backoff = (struct backoff){ .min_ms = 200, .max_ms = 30000 };
	c->r = r;
	snprintf(c->id, sizeof c->id, "%s", id);
	snprintf(c->name, sizeof c->name, "%s", id);
	ctl_live_init(&c->live);
	loop_timer_init(&c->window, ctl_window, c);
	loop_timer_init(&c->redial, ctl_redial, c);
	c->next = r->ctls;
	r->ctls = c;
	r->count++;
	return c;
}

/* --- announces --- */

static bool ctl_json_differs(const cJSON *have, const cJSON *got)
{
	char *a = have ? cJSON_PrintUnformatted(have) : NULL;
	char *b = cJSON_PrintUnformatted(got);
	bool differs = !a || !b || strcmp(a, b) != 0;
	free(a);
	free(b);
	return differs;
}

void registry_announce(struct registry *r, const struct announce *a,
		       const struct sockaddr_storage *from)
{
	struct ctl *c = registry_find(r, a->id);
	char host[64], addrs[NET_ADDRSTRLEN];
	net_host_str((const struct sockaddr *)from, host, sizeof host);
	bool changed = false;
	if (!c) {
		if (!(c = ctl_new(r, a->id)))
			return;
		log_info("controller %s: discovered at %s", a->id, host);
	}
	c->last_seen = (int64_t)loop_wall_ms();
	snprintf(c->ann_boot, sizeof c->ann_boot, "%s", a->boot);
	c->ann_seq = a->seq;
	c->ann_ts = a->ts;
	ctl_step(c, CTL_EV_HEARD, NULL);
	struct sockaddr_storage to;
	if (net_addr_parse(host, a->port, &to, NULL) < 0)
		return;
	/* What it says of itself is taken as is while no link speaks for it; a link's hello is
	 * the authority (and an announce cannot tell a replay from the real thing). */
	if (!c->up) {
		if (strcmp(c->version, a->version) != 0 || strcmp(c->name, a->name) != 0) {
			snprintf(c->name, sizeof c->name, "%s", a->name);
			snprintf(c->version, sizeof c->version, "%s", a->version);
			changed = true;
		}
		if (ctl_json_differs(c->actions, a->actions) || ctl_json_differs(c->sensors, a->sensors)) {
			ctl_set_json(&c->actions, a->actions);
			ctl_set_json(&c->sensors, a->sensors);
			changed = true;
		}
	}
	bool elsewhere = !c->have_addr || !registry_same_addr(&c->addr, &to);
	bool reborn = c->up && strcmp(c->boot, a->boot) != 0;
	/* Another address or another boot: tried beside the current link, which stays until the
	 * new one says hello. */
	if ((elsewhere || reborn) && !ctl_quarantined(c, &to)) {
		if (!ctl_try_to(c, &to))
			log_info("controller %s: announced at %s%s; trying it", c->id,
				 registry_addr_str(&to, addrs, sizeof addrs), reborn ? " with a new boot" : "");
		ctl_dial_announced(c, &to);
	}
	if (!c->up && !loop_timer_armed(&c->redial))
		ctl_dial(c);
	/* last_seen in the retained info is refreshed at most once a minute: announces every few
	 * seconds from every controller would otherwise flood the broker with retained updates. */
	if (ctl_live_online(&c->live) && (changed || c->last_seen - c->info_published > 60000))
		ctl_changed(c);
}

/* --- what is known from before --- */

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

/* From an info document (docs/topics.md): the state dir's or the broker's retained one. */
static void ctl_from_info(struct ctl *c, const cJSON *info)
{
	ctl_take_str(c->name, sizeof c->name, info, "name");
	ctl_take_str(c->version, sizeof c->version, info, "version");
	ctl_take_str(c->boot, sizeof c->boot, info, "boot");
	ctl_set_json(&c->actions, cJSON_GetObjectItemCaseSensitive(info, "actions"));
	ctl_set_json(&c->sensors, cJSON_GetObjectItemCaseSensitive(info, "sensors"));
	const cJSON *online = cJSON_GetObjectItemCaseSensitive(info, "online");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(info, "offline_reason");
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(info, "since");
	const cJSON *seen = cJSON_GetObjectItemCaseSensitive(info, "last_seen");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(info, "address");
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(info, "port");
	c->last_seen = store_json_int(seen, 1, 0, INT64_MAX / 2, 0);
	c->info_published = c->last_seen;
	ctl_live_restore(&c->live, cJSON_IsTrue(online),
			 cJSON_IsString(reason) ? reason->valuestring : NULL,
			 store_json_int(since, 1, 0, INT64_MAX / 2, 0));
	if (!c->is_static && cJSON_IsString(addr) && cJSON_IsNumber(port) && port->valueint > 0 &&
	    port->valueint < 65536 &&
	    net_addr_parse(addr->valuestring, (uint16_t)port->valueint, &c->addr, NULL) == 0)
		c->have_addr = true;
	c->restored = true;
	log_info("controller %s: known from a previous run (%s)", c->id,
		 cJSON_IsTrue(online) ? "was online" : "offline");
	/* Heard from within the window, or offline: a restart never leaves a stale "online". */
	if (cJSON_IsTrue(online))
		ctl_step(c, CTL_EV_RESTORE, NULL);
	ctl_dial(c);
}

void registry_add_known(struct registry *r, const char *id, const cJSON *info)
{
	struct ctl *c = registry_find(r, id);
	if (!name_valid(id, COMMAND_NAME_MAX))
		return;
	if (c) {
		/* Linked in this run before its retained info arrived: to everyone who saw it
		 * online before, it has been online since then, not since this link. */
		const cJSON *since = cJSON_GetObjectItemCaseSensitive(info, "since");
		int64_t was = store_json_int(since, 1, 0, INT64_MAX / 2, 0);
		if (!c->restored && ctl_live_online(&c->live) &&
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "online")) && was > 0 &&
		    was < c->live.since) {
			c->live.since = was;
			c->restored = true;
			ctl_changed(c);
		}
		return;
	}
	if ((c = ctl_new(r, id)))
		ctl_from_info(c, info);
}

void registry_restore(struct registry *r, const cJSON *doc)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "controllers")) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		if (!cJSON_IsString(id) || !name_valid(id->valuestring, COMMAND_NAME_MAX))
			continue;
		struct ctl *c = registry_find(r, id->valuestring);
		if (c && c->live.state != CTL_NEW)
			continue;
		if (!c && !(c = ctl_new(r, id->valuestring)))
			continue;
		const cJSON *ann = cJSON_GetObjectItemCaseSensitive(e, "announce");
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(ann, "seq");
		const cJSON *ts = cJSON_GetObjectItemCaseSensitive(ann, "ts");
		if (ctl_take_str(c->ann_boot, sizeof c->ann_boot, ann, "boot") && cJSON_IsNumber(seq) &&
		    cJSON_IsNumber(ts)) {
			c->ann_seq = (uint64_t)store_json_int(seq, 1, 0, ANNOUNCE_INT_MAX, 0);
			c->ann_ts = store_json_int(ts, 1, -ANNOUNCE_INT_MAX, ANNOUNCE_INT_MAX, 0);
		}
		ctl_from_info(c, e);
	}
}

cJSON *registry_snapshot(struct registry *r)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(doc, "controllers");
	for (struct ctl *c = r->ctls; c; c = c->next) {
		cJSON *e = ctl_info_json(c);
		cJSON_AddBoolToObject(e, "static", c->is_static);
		if (c->ann_boot[0]) {
			cJSON *a = cJSON_AddObjectToObject(e, "announce");
			cJSON_AddStringToObject(a, "boot", c->ann_boot);
			cJSON_AddNumberToObject(a, "seq", (double)c->ann_seq);
			cJSON_AddNumberToObject(a, "ts", (double)c->ann_ts);
		}
		cJSON_AddItemToArray(list, e);
	}
	return doc;
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
	loop_defer_init(&r->dial_next, registry_dial_waiting, r);
	return r;
}

void registry_shutdown(struct registry *r)
{
	r->shutting_down = true;
	cJSON *bye = lanmsg_bye_new("shutdown");
	for (struct ctl *c = r->ctls; bye && c; c = c->next)
		if (c->up)
			link_send(c->up->link, bye);
	cJSON_Delete(bye);
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	r->shutting_down = true;
	loop_defer_cancel(r->loop, &r->dial_next);
	registry_inbound_free_all(r);
	while (r->ctls) {
		struct ctl *c = r->ctls;
		r->ctls = c->next;
		loop_timer_stop(r->loop, &c->window);
		loop_timer_stop(r->loop, &c->redial);
		if (c->up)
			attempt_free(c->up);
		while (c->tries)
			attempt_free(c->tries);
		cJSON_Delete(c->actions);
		cJSON_Delete(c->sensors);
		free(c);
	}
	loop_defer_cancel(r->loop, &r->dial_next);
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
		n += ctl_live_online(&c->live);
	return n;
}

const char *ctl_id(const struct ctl *c) { return c->id; }
bool ctl_online(const struct ctl *c) { return ctl_live_online(&c->live); }
bool ctl_link_up(const struct ctl *c) { return c->up != NULL; }
const char *ctl_offline_reason(const struct ctl *c) { return ctl_online(c) ? "" : c->live.reason; }

void ctl_announce_state(const struct ctl *c, const char **boot, uint64_t *seq, int64_t *ts)
{
	*boot = c->ann_boot;
	*seq = c->ann_seq;
	*ts = c->ann_ts;
}

uint64_t ctl_action_timeout(const struct ctl *c, const char *action)
{
	const cJSON *a;
	cJSON_ArrayForEach(a, c->actions) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, "name");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "timeout");
		if (cJSON_IsString(n) && strcmp(n->valuestring, action) == 0 && cJSON_IsNumber(t))
			return (uint64_t)store_json_int(t, 1000.0, 0, 86400000, 0);
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
	bool online = ctl_live_online(&c->live);
	cJSON_AddBoolToObject(o, "online", online);
	if (online)
		cJSON_AddNullToObject(o, "offline_reason");
	else
		cJSON_AddStringToObject(o, "offline_reason", c->live.reason);
	cJSON_AddNumberToObject(o, "since", (double)c->live.since);
	cJSON_AddNumberToObject(o, "last_seen", (double)c->last_seen);
	cJSON_AddStringToObject(o, "version", c->version);
	cJSON_AddNumberToObject(o, "proto", ANNOUNCE_PROTO_VERSION);
	cJSON_AddStringToObject(o, "boot", c->boot);
	cJSON_AddItemToObject(o, "actions", c->actions ? cJSON_Duplicate(c->actions, 1) : cJSON_CreateArray());
	cJSON_AddItemToObject(o, "sensors", c->sensors ? cJSON_Duplicate(c->sensors, 1) : cJSON_CreateArray());
	return o;
}

int ctl_send(struct ctl *c, const char *text, size_t len)
{
	if (!c->up)
		return -ENOTCONN;
	return link_send_raw(c->up->link, text, len);
}
