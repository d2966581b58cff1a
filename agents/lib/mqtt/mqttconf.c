/* mqttconf: parse the shared `mqtt` config group; see mqttconf.h. */
#include "mqttconf.h"

#include "cfg.h"

#include <stdio.h>
#include <string.h>

static int mqttconf_uri_ok(const config_setting_t *s, const char *uri)
{
	if (strncmp(uri, "mqtt://", 7) && strncmp(uri, "mqtts://", 8) && strncmp(uri, "ws://", 5) &&
	    strncmp(uri, "wss://", 6)) {
		cfg_error(s, "uri '%s' must start with mqtt://, mqtts://, ws:// or wss://", uri);
		return -1;
	}
	return 0;
}

/* uri = "mqtt://..."; or uri = ["mqtts://a...", "mqtts://b..."]; */
static int mqttconf_uris(const config_setting_t *g, struct mqttconf *mc)
{
	config_setting_t *s = config_setting_get_member(g, "uri");
	int t, n, i;

	if (!s) {
		cfg_error(g, "missing required setting 'uri'");
		return -1;
	}
	t = config_setting_type(s);
	if (t == CONFIG_TYPE_STRING) {
		mc->uris[0] = config_setting_get_string(s);
		mc->nuris = 1;
	} else if (t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST) {
		n = config_setting_length(s);
		if (n < 1 || n > MQTTCONF_MAX_URIS) {
			cfg_error(s, "'uri' must list 1 to %d brokers", MQTTCONF_MAX_URIS);
			return -1;
		}
		for (i = 0; i < n; i++) {
			config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				cfg_error(e, "'uri'[%d] must be a string", i);
				return -1;
			}
			mc->uris[i] = config_setting_get_string(e);
		}
		mc->nuris = (size_t)n;
	} else {
		cfg_error(s, "'uri' must be a string or a list of strings like [\"mqtts://a:8883\", "
			     "\"mqtts://b:8883\"]");
		return -1;
	}
	for (i = 0; i < (int)mc->nuris; i++)
		if (mqttconf_uri_ok(s, mc->uris[i]) < 0)
			return -1;
	mc->uri = mc->uris[0];
	return 0;
}

/* version = "auto" | 5 | "5" | 4 | "3.1.1" (integers 0, 4, 5 as well). */
static int mqttconf_version(const config_setting_t *g, int min_version, struct mqttconf *mc)
{
	config_setting_t *s = config_setting_get_member(g, "version");
	const char *v;

	mc->version = min_version >= 5 ? 5 : 0;
	if (!s)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_INT) {
		int i = config_setting_get_int(s);
		if (i == 0 || i == 4 || i == 5)
			mc->version = i;
		else
			goto bad;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		if (strcmp(v, "auto") == 0)
			mc->version = 0;
		else if (strcmp(v, "5") == 0 || strcmp(v, "5.0") == 0)
			mc->version = 5;
		else if (strcmp(v, "3.1.1") == 0 || strcmp(v, "4") == 0)
			mc->version = 4;
		else
			goto bad;
	} else {
		goto bad;
	}
	if (min_version >= 5 && mc->version != 5) {
		cfg_error(s, "'version' must be 5 here: this agent needs MQTT 5");
		return -1;
	}
	return 0;
bad:
	cfg_error(s, "'version' must be \"auto\" (MQTT 5, else 3.1.1), 5 or \"3.1.1\" (also 4)");
	return -1;
}

int mqttconf_load(const config_setting_t *parent, const char *name, int min_version,
		  struct mqttconf *mc)
{
	static const char *const keys[] = { "uri", "client_id", "username", "password",
					    "password_file", "ca_file", "cert_file", "key_file",
					    "version", "insecure", "keepalive", "backoff_min",
					    "backoff_max", NULL };
	long long ka;
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
	if (cfg_known_keys(g, keys) || mqttconf_uris(g, mc) || mqttconf_version(g, min_version, mc) ||
	    cfg_string(g, "client_id", NULL, &mc->client_id) ||
	    cfg_string(g, "username", NULL, &mc->username) ||
	    cfg_string(g, "password", NULL, &mc->password) ||
	    cfg_string(g, "password_file", NULL, &pwfile) ||
	    cfg_string(g, "ca_file", NULL, &mc->ca_file) ||
	    cfg_string(g, "cert_file", NULL, &mc->cert_file) ||
	    cfg_string(g, "key_file", NULL, &mc->key_file) ||
	    cfg_bool(g, "insecure", false, &mc->insecure) ||
	    cfg_int(g, "keepalive", 30, 5, 3600, &ka) ||
	    cfg_seconds_ms(g, "backoff_min", 500, 10, 600000, &mc->backoff_min_ms) ||
	    cfg_seconds_ms(g, "backoff_max", 30000, 10, 3600000, &mc->backoff_max_ms))
		return -1;
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
	mc->keepalive = (int)ka;
	return 0;
}

void mqttconf_opts(const struct mqttconf *mc, const char *client_id, struct mqtt_opts *o)
{
	o->uri = mc->uri;
	o->uris = mc->uris;
	o->nuris = mc->nuris;
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
