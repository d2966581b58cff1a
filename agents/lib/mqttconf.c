/* mqttconf: parse the shared `mqtt` config group; see mqttconf.h. */
#include "mqttconf.h"

#include "cfg.h"

#include <stdio.h>
#include <string.h>

int mqttconf_load(const config_setting_t *parent, const char *name, int min_version,
		  struct mqttconf *mc)
{
	static const char *const keys[] = { "uri", "client_id", "username", "password",
					    "password_file", "ca_file", "cert_file", "key_file",
					    "version", "insecure", "keepalive", "backoff_min",
					    "backoff_max", NULL };
	long long v, ka;
	const char *pwfile = NULL;
	memset(mc, 0, sizeof *mc);
	config_setting_t *g = config_setting_get_member(parent, name);
	if (!g) {
		cfg_error(parent, "missing group '%s = { uri = \"mqtt://...\"; ... }'", name);
		return -1;
	}
	if (!config_setting_is_group(g)) {
		cfg_error(g, "'%s' must be a group { ... }", name);
		return -1;
	}
	if (cfg_known_keys(g, keys) || cfg_string_req(g, "uri", &mc->uri) ||
	    cfg_string(g, "client_id", NULL, &mc->client_id) ||
	    cfg_string(g, "username", NULL, &mc->username) ||
	    cfg_string(g, "password", NULL, &mc->password) ||
	    cfg_string(g, "password_file", NULL, &pwfile) ||
	    cfg_string(g, "ca_file", NULL, &mc->ca_file) ||
	    cfg_string(g, "cert_file", NULL, &mc->cert_file) ||
	    cfg_string(g, "key_file", NULL, &mc->key_file) ||
	    cfg_int(g, "version", 5, min_version, 5, &v) ||
	    cfg_bool(g, "insecure", false, &mc->insecure) ||
	    cfg_int(g, "keepalive", 30, 5, 3600, &ka) ||
	    cfg_seconds_ms(g, "backoff_min", 500, 10, 600000, &mc->backoff_min_ms) ||
	    cfg_seconds_ms(g, "backoff_max", 30000, 10, 3600000, &mc->backoff_max_ms))
		return -1;
	if (strncmp(mc->uri, "mqtt://", 7) && strncmp(mc->uri, "mqtts://", 8) &&
	    strncmp(mc->uri, "ws://", 5) && strncmp(mc->uri, "wss://", 6)) {
		cfg_error(config_setting_get_member(g, "uri"),
			  "uri must start with mqtt://, mqtts://, ws:// or wss://");
		return -1;
	}
	if (pwfile) {
		/* Kept out of the config so the config itself can be world-readable. */
		FILE *f = fopen(pwfile, "re");
		if (!f || !fgets(mc->password_buf, sizeof mc->password_buf, f)) {
			cfg_error(config_setting_get_member(g, "password_file"),
				  "cannot read password file %s", pwfile);
			if (f)
				fclose(f);
			return -1;
		}
		fclose(f);
		mc->password_buf[strcspn(mc->password_buf, "\r\n")] = '\0';
		mc->password = mc->password_buf;
	}
	mc->version = (int)v;
	mc->keepalive = (int)ka;
	return 0;
}

void mqttconf_opts(const struct mqttconf *mc, const char *client_id, struct mqtt_opts *o)
{
	o->uri = mc->uri;
	o->client_id = mc->client_id ? mc->client_id : client_id;
	o->username = mc->username;
	o->password = mc->password;
	o->ca_file = mc->ca_file;
	o->cert_file = mc->cert_file;
	o->key_file = mc->key_file;
	o->insecure = mc->insecure;
	o->version = mc->version;
	o->keepalive = mc->keepalive;
	o->backoff_min_ms = mc->backoff_min_ms;
	o->backoff_max_ms = mc->backoff_max_ms;
}
