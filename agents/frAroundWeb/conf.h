/* conf: frAroundWeb's configuration file (libconfig): the shim listeners and their limits, the
 * users file, the audit file, the health/metrics HTTP listener, the cache, the sensor history
 * and the broker. */
#ifndef WEB_CONF_H
#define WEB_CONF_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttconf.h"

struct conf {
	config_t cfg;              /* owns every borrowed string below */
	const char *prefix;        /* topic prefix, default "fr" */
	const char *instance;      /* NULL = random per process */
	const char *users_file, *audit_file;
	/* shim: at least one of the TCP address and the unix path */
	const char *shim_addr;     /* NULL = no TCP listener */
	uint16_t shim_port;
	const char *shim_unix;     /* NULL = no unix socket */
	size_t max_line, max_outq;
	int max_clients, max_inflight;   /* max_clients: authenticated clients, both transports */
	/* strangers: connections before their auth, budgets per transport */
	int max_pending, max_pending_per_peer;
	uint64_t auth_timeout_ms;
	/* health and metrics */
	const char *http_addr;     /* NULL = none */
	uint16_t http_port;
	int http_max_pending, http_max_pending_per_peer;
	uint64_t http_timeout_ms;
	const char *user, *group;  /* NULL = keep the user it was started as */
	long long max_topics, max_topics_per_home, max_bytes_per_home;   /* the cache */
	long long stale_after;   /* missed heartbeats before a home is stale (docs/topics.md) */
	/* sensor history (history.h); history_file NULL = not recorded */
	const char *history_file;
	uint64_t history_keep_raw_ms, history_keep_ms, history_step_ms, history_flush_ms;
	long long history_flush_points, history_max_queue;
	struct mqttconf mqtt;      /* broker */
};

/* Returns 0 or -1 (logged with file and line); call conf_free either way. */
int conf_load(struct conf *c, const char *path);
void conf_free(struct conf *c);

#endif
