/* metrics: the agent's counters and gauges, rendered in the Prometheus text format for
 * GET /metrics. Plain integers bumped on the loop thread; no locking needed.
 *
 * Ownership: struct metrics is embedded by its owner; metrics_render returns a malloc'd
 * string the caller frees. */
#ifndef WEB_METRICS_H
#define WEB_METRICS_H

#include "cache.h"
#include "shimproto.h"

#include <stdbool.h>
#include <stdint.h>

enum metrics_disc {
	METRICS_DISC_EOF, METRICS_DISC_ERROR, METRICS_DISC_TOO_LONG, METRICS_DISC_OUTQ,
	METRICS_DISC_AUTH, METRICS_DISC_REVOKED, METRICS_DISC_FULL, METRICS_DISC_SHUTDOWN,
	METRICS_DISC_AUTH_TIMEOUT, METRICS_DISC_PENDING, METRICS_DISC_COUNT
};

#define METRICS_STATUS_MAX 16

struct metrics {
	uint64_t connections_total;
	uint64_t clients;
	uint64_t requests[SHIM_OP_COUNT];
	uint64_t errors[SHIM_E_COUNT];
	uint64_t disconnects[METRICS_DISC_COUNT];
	/* relay outcomes by final status; unknown statuses land in "other" */
	uint64_t relay[METRICS_STATUS_MAX];
	uint64_t cache_topics;
	uint64_t homes_stale;   /* homes that missed stale_after heartbeats (copied when rendered) */
	uint64_t cache_refused[CACHE_REFUSAL_COUNT];   /* copied from the cache when rendered */
	bool mqtt_connected;
	uint64_t mqtt_messages;
	/* sensor history (copied from it when rendered); history false: not configured */
	bool history;
	uint64_t history_written, history_dropped, history_bad, history_queued, history_flush_max_us;
};

void metrics_relay(struct metrics *m, const char *status);
const char *metrics_disc_name(enum metrics_disc d);
char *metrics_render(const struct metrics *m);

#endif
