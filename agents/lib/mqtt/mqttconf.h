/* mqttconf: the `mqtt = { ... }` group every agent's config has (uri or a list of uris,
 * account, TLS files, protocol version, keepalive, reconnect backoff), parsed and checked in one
 * place, and turned into mqtt_opts. Strings are borrowed from the config_t (or from the struct's own buffer for
 * a password read from password_file). */
#ifndef FR_MQTTCONF_H
#define FR_MQTTCONF_H

#include <libconfig.h>
#include <stdbool.h>
#include <stdint.h>

#include "mqtt.h"

#define MQTTCONF_MAX_URIS 8

struct mqttconf {
	const char *uri;      /* the first of uris */
	const char *uris[MQTTCONF_MAX_URIS];
	size_t nuris;
	const char *client_id, *username, *password, *ca_file, *cert_file, *key_file;
	int version;          /* 0 = auto (5, else 3.1.1), 5, or 4 for MQTT 3.1.1 */
	bool insecure;
	int keepalive;        /* seconds */
	uint64_t backoff_min_ms, backoff_max_ms;
	char password_buf[256];
};

/* Reads the required group `name` of parent. min_version is 4 where MQTT 3.1.1 is allowed
 * (version = "auto" (default), 5, "5", 4 or "3.1.1"), 5 where the agent needs MQTT 5 (only 5,
 * the default). uri is one string or a list of 1..8 (tried in order, failover). Errors are
 * logged with file and line; returns 0 or -1. */
int mqttconf_load(const config_setting_t *parent, const char *name, int min_version,
		  struct mqttconf *mc);
/* Fills the connection fields of o from mc (the caller sets session, will and buffers);
 * client_id is used when mc has none. Pointers in o borrow from mc. */
void mqttconf_opts(const struct mqttconf *mc, const char *client_id, struct mqtt_opts *o);

#endif
