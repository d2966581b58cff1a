/* conf: frMhs's configuration file (libconfig): the home, its secret, where announces are
 * heard, where controllers may dial in, the broker, and liveness settings. */
#ifndef MHS_CONF_H
#define MHS_CONF_H

#include <libconfig.h>
#include <stdbool.h>
#include <stdint.h>

#include "mqttconf.h"

#define CONF_STATE_DIR "/var/lib/fr/frmhs"

struct conf_static {
	const char *id;        /* a controller that does not announce: dialled at this address */
	const char *address;
	uint16_t port;
};

struct conf {
	config_t cfg;          /* owns every borrowed string below */
	const char *home, *secret_file, *prefix;
	const char *discovery_addr;  /* NULL = do not listen for announces */
	uint16_t discovery_port;
	int time_window_s;
	uint64_t announce_interval_ms;
	int offline_after;           /* missed announce periods before offline */
	const char *link_addr;       /* NULL = controllers cannot dial in */
	uint16_t link_port;
	int link_max_pending, link_max_pending_per_peer;  /* dial-ins before their handshake */
	uint64_t ping_interval_ms, ping_timeout_ms, handshake_timeout_ms;
	int heartbeat_interval_s;    /* fr/<home>/heartbeat period; 0 = none (docs/topics.md) */
	const char *user, *group;    /* NULL = keep the user it was started as */
	struct conf_static *statics; /* owned */
	int nstatics;
	struct mqttconf mqtt;        /* broker */
	/* requests */
	uint64_t result_grace_ms;    /* beyond an action's timeout before a request is "lost" */
	long long dedup_max;         /* request ids remembered for redeliveries */
	uint64_t request_wait_ms;    /* a request without deadline waits this long for its ctl */
	const char *state_dir;       /* registry snapshot and open requests (store.h) */
	/* displays (issue: displays) */
	const char *serial_port;     /* NULL = none */
	int serial_baud;
	const char *lcd_device;      /* NULL = none */
	int lcd_addr, lcd_width;
	/* Home Assistant MQTT discovery (ha.h) */
	bool ha_enabled;
	const char *ha_prefix;       /* HA's discovery prefix, "homeassistant" */
	const char *ha_status_topic; /* HA's birth and will, "homeassistant/status" */
};

int conf_load(struct conf *c, const char *path);
void conf_free(struct conf *c);

#endif
