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

char *metrics_render(const struct metrics *m)
{
	struct buf b = { 0 };
	put(&b, "# HELP fr_shim_connections_total Shim connections accepted.\n"
		"# TYPE fr_shim_connections_total counter\nfr_shim_connections_total %llu\n",
	    (unsigned long long)m->connections_total);
	put(&b, "# HELP fr_shim_clients Shim clients connected now.\n"
		"# TYPE fr_shim_clients gauge\nfr_shim_clients %llu\n",
	    (unsigned long long)m->clients);
	put(&b, "# HELP fr_shim_requests_total Shim requests by op.\n"
		"# TYPE fr_shim_requests_total counter\n");
	for (int i = 0; i < SHIM_OP_COUNT; i++)
		put(&b, "fr_shim_requests_total{op=\"%s\"} %llu\n", shimproto_op_name((enum shim_op)i),
		    (unsigned long long)m->requests[i]);
	put(&b, "# HELP fr_shim_errors_total Shim error answers by code.\n"
		"# TYPE fr_shim_errors_total counter\n");
	for (int i = 1; i < SHIM_E_COUNT; i++)
		put(&b, "fr_shim_errors_total{code=\"%s\"} %llu\n", shimproto_err_name((enum shim_err)i),
		    (unsigned long long)m->errors[i]);
	put(&b, "# HELP fr_shim_disconnects_total Shim clients gone, by reason.\n"
		"# TYPE fr_shim_disconnects_total counter\n");
	for (int i = 0; i < METRICS_DISC_COUNT; i++)
		put(&b, "fr_shim_disconnects_total{reason=\"%s\"} %llu\n", disc_names[i],
		    (unsigned long long)m->disconnects[i]);
	put(&b, "# HELP fr_relay_requests_total Relayed requests by final status.\n"
		"# TYPE fr_relay_requests_total counter\n");
	for (int i = 0; relay_names[i]; i++)
		put(&b, "fr_relay_requests_total{status=\"%s\"} %llu\n", relay_names[i],
		    (unsigned long long)m->relay[i]);
	put(&b, "# HELP fr_cache_topics Topics held in the cache.\n"
		"# TYPE fr_cache_topics gauge\nfr_cache_topics %llu\n",
	    (unsigned long long)m->cache_topics);
	put(&b, "# HELP fr_cache_refused_total Messages on state topics not kept, by reason.\n"
		"# TYPE fr_cache_refused_total counter\n");
	for (int i = 0; i < CACHE_REFUSAL_COUNT; i++)
		put(&b, "fr_cache_refused_total{reason=\"%s\"} %llu\n",
		    cache_refusal_name((enum cache_refusal)i), (unsigned long long)m->cache_refused[i]);
	put(&b, "# HELP fr_mqtt_connected 1 while connected to the broker.\n"
		"# TYPE fr_mqtt_connected gauge\nfr_mqtt_connected %d\n", m->mqtt_connected ? 1 : 0);
	put(&b, "# HELP fr_mqtt_messages_total MQTT messages received.\n"
		"# TYPE fr_mqtt_messages_total counter\nfr_mqtt_messages_total %llu\n",
	    (unsigned long long)m->mqtt_messages);
	if (m->history) {
		put(&b, "# HELP fr_history_points_total Sensor values written to the history file.\n"
			"# TYPE fr_history_points_total counter\nfr_history_points_total %llu\n",
		    (unsigned long long)m->history_written);
		put(&b, "# HELP fr_history_refused_total Sensor values not recorded, by reason.\n"
			"# TYPE fr_history_refused_total counter\n"
			"fr_history_refused_total{reason=\"not_a_state\"} %llu\n"
			"fr_history_refused_total{reason=\"queue_full\"} %llu\n",
		    (unsigned long long)m->history_bad, (unsigned long long)m->history_dropped);
		put(&b, "# HELP fr_history_queued Sensor values waiting to be written.\n"
			"# TYPE fr_history_queued gauge\nfr_history_queued %llu\n",
		    (unsigned long long)m->history_queued);
		put(&b, "# HELP fr_history_write_seconds_max The slowest write transaction since the start.\n"
			"# TYPE fr_history_write_seconds_max gauge\nfr_history_write_seconds_max %.6f\n",
		    (double)m->history_flush_max_us / 1e6);
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
