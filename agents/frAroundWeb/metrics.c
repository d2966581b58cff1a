/* metrics: Prometheus text rendering of struct metrics; see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const disc_names[METRICS_DISC_COUNT] = {
	"eof", "error", "too_long", "outq", "auth", "revoked", "max_clients", "shutdown",
	"auth_timeout", "pending_budget"
};

/* The final statuses of docs/topics.md, plus the shim's own outcomes. */
static const char *const relay_names[] = {
	"ok", "failed", "timeout", "rejected", "expired", "busy", "unknown_action", "offline",
	"lost", "wait_timeout", "other", NULL
};

const char *metrics_disc_name(enum metrics_disc d)
{
	return (unsigned)d < METRICS_DISC_COUNT ? disc_names[d] : "?";
}

void metrics_relay(struct metrics *m, const char *status)
{
	int i;
	for (i = 0; relay_names[i]; i++)
		if (strcmp(relay_names[i], status) == 0 || strcmp(relay_names[i], "other") == 0)
			break;
	m->relay[i]++;
}

struct buf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

/* A metric's HELP and TYPE lines. */
static void head(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One series of a metric: name{label="value"} v, or name v without a label. */
static void series(struct buf *b, const char *name, const char *label, const char *value,
		   unsigned long long v)
{
	if (label)
		put(b, "%s{%s=\"%s\"} %llu\n", name, label, value, v);
	else
		put(b, "%s %llu\n", name, v);
}

static void single(struct buf *b, const char *name, const char *type, const char *help,
		   unsigned long long v)
{
	head(b, name, type, help);
	series(b, name, NULL, NULL, v);
}

char *metrics_render(const struct metrics *m)
{
	struct buf b = { 0 };
	single(&b, "fr_shim_connections_total", "counter", "Shim connections accepted.",
	       m->connections_total);
	single(&b, "fr_shim_clients", "gauge", "Shim clients connected now.", m->clients);
	head(&b, "fr_shim_requests_total", "counter", "Shim requests by op.");
	for (int i = 0; i < SHIM_OP_COUNT; i++)
		series(&b, "fr_shim_requests_total", "op", shimproto_op_name((enum shim_op)i),
		       m->requests[i]);
	head(&b, "fr_shim_errors_total", "counter", "Shim error answers by code.");
	for (int i = 1; i < SHIM_E_COUNT; i++)
		series(&b, "fr_shim_errors_total", "code", shimproto_err_name((enum shim_err)i),
		       m->errors[i]);
	head(&b, "fr_shim_disconnects_total", "counter", "Shim clients gone, by reason.");
	for (int i = 0; i < METRICS_DISC_COUNT; i++)
		series(&b, "fr_shim_disconnects_total", "reason", disc_names[i], m->disconnects[i]);
	head(&b, "fr_relay_requests_total", "counter", "Relayed requests by final status.");
	for (int i = 0; relay_names[i]; i++)
		series(&b, "fr_relay_requests_total", "status", relay_names[i], m->relay[i]);
	single(&b, "fr_cache_topics", "gauge", "Topics held in the cache.", m->cache_topics);
	head(&b, "fr_cache_refused_total", "counter",
	     "Messages on state topics not kept, by reason.");
	for (int i = 0; i < CACHE_REFUSAL_COUNT; i++)
		series(&b, "fr_cache_refused_total", "reason",
		       cache_refusal_name((enum cache_refusal)i), m->cache_refused[i]);
	single(&b, "fr_homes_stale", "gauge",
	       "Homes that missed stale_after heartbeats.", m->homes_stale);
	single(&b, "fr_mqtt_connected", "gauge", "1 while connected to the broker.",
	       m->mqtt_connected ? 1 : 0);
	single(&b, "fr_mqtt_messages_total", "counter", "MQTT messages received.", m->mqtt_messages);
	if (m->history) {
		single(&b, "fr_history_points_total", "counter",
		       "Sensor values written to the history file.", m->history_written);
		head(&b, "fr_history_refused_total", "counter",
		     "Sensor values not recorded, by reason.");
		series(&b, "fr_history_refused_total", "reason", "not_a_state", m->history_bad);
		series(&b, "fr_history_refused_total", "reason", "queue_full", m->history_dropped);
		single(&b, "fr_history_queued", "gauge", "Sensor values waiting to be written.",
		       m->history_queued);
		head(&b, "fr_history_write_seconds_max", "gauge",
		     "The slowest write transaction since the start.");
		put(&b, "fr_history_write_seconds_max %.6f\n", (double)m->history_flush_max_us / 1e6);
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
