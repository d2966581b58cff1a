/* conf: load and validate frMhs's configuration; every error names file and line. */
#include "conf.h"

#include "cfg.h"
#include "command.h"
#include "log.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conf_discovery(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "interval", "offline_after",
					    "time_window", NULL };
	config_setting_t *g;
	long long port, n, w;
	c->announce_interval_ms = 5000;
	c->offline_after = 3;
	c->time_window_s = 30;
	if (cfg_group(root, "discovery", false, keys, &g) || !g)
		return g ? -1 : 0;
	if (cfg_string_req(g, "address", &c->discovery_addr) ||
	    cfg_int(g, "port", 7400, 1, 65535, &port) ||
	    cfg_seconds_ms(g, "interval", 5000, 100, 3600000, &c->announce_interval_ms) ||
	    cfg_int(g, "offline_after", 3, 1, 100, &n) ||
	    cfg_int(g, "time_window", 30, 1, 86400, &w))
		return -1;
	c->discovery_port = (uint16_t)port;
	c->offline_after = (int)n;
	c->time_window_s = (int)w;
	return 0;
}

static int conf_links(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "max_pending", "max_pending_per_peer",
					    NULL };
	config_setting_t *g;
	long long port;
	if (cfg_group(root, "link_listen", false, keys, &g) || !g)
		return g ? -1 : 0;
	if (cfg_string_req(g, "address", &c->link_addr) || cfg_int(g, "port", 7401, 0, 65535, &port) ||
	    cfg_pending(g, 256, 8, &c->link_max_pending, &c->link_max_pending_per_peer))
		return -1;
	c->link_port = (uint16_t)port;
	return 0;
}

static int conf_statics(struct conf *c, const config_setting_t *root)
{
	config_setting_t *l = config_setting_get_member(root, "controllers");
	if (!l)
		return 0;
	if (!config_setting_is_list(l)) {
		cfg_error(l, "'controllers' must be a list ( { id = ...; address = ...; port = N; } )");
		return -1;
	}
	c->nstatics = config_setting_length(l);
	c->statics = calloc((size_t)c->nstatics + 1, sizeof *c->statics);
	if (!c->statics)
		return -1;
	for (int i = 0; i < c->nstatics; i++) {
		static const char *const keys[] = { "id", "address", "port", NULL };
		config_setting_t *g = config_setting_get_elem(l, (unsigned)i);
		long long port;
		if (!config_setting_is_group(g) || cfg_known_keys(g, keys) ||
		    cfg_string_req(g, "id", &c->statics[i].id) ||
		    cfg_string_req(g, "address", &c->statics[i].address) ||
		    cfg_int(g, "port", 7410, 1, 65535, &port))
			return -1;
		if (!name_valid(c->statics[i].id, COMMAND_NAME_MAX)) {
			cfg_error(g, "controller id '%s' must be 1..63 of A-Z a-z 0-9 _ -",
				  c->statics[i].id);
			return -1;
		}
		c->statics[i].port = (uint16_t)port;
	}
	return 0;
}

static int conf_displays(struct conf *c, const config_setting_t *root)
{
	static const char *const skeys[] = { "port", "baud", NULL };
	static const char *const lkeys[] = { "device", "address", "width", NULL };
	config_setting_t *g;
	long long baud, addr, width;
	c->serial_baud = 115200;
	c->lcd_addr = 0x27;
	c->lcd_width = 16;
	if (cfg_group(root, "m5stack", false, skeys, &g))
		return -1;
	if (g && (cfg_string_req(g, "port", &c->serial_port) ||
		  cfg_int(g, "baud", 115200, 1200, 4000000, &baud)))
		return -1;
	if (g)
		c->serial_baud = (int)baud;
	if (cfg_group(root, "lcd", false, lkeys, &g))
		return -1;
	if (g && (cfg_string_req(g, "device", &c->lcd_device) ||
		  cfg_int(g, "address", 0x27, 0x03, 0x77, &addr) ||
		  cfg_int(g, "width", 16, 8, 40, &width)))
		return -1;
	if (g) {
		c->lcd_addr = (int)addr;
		c->lcd_width = (int)width;
	}
	return 0;
}

/* Topic levels of names separated by "/" ("homeassistant", "ha/discovery"): no wildcard,
 * no empty level. */
static bool conf_topic_ok(const char *t)
{
	char level[TOPIC_NAME_MAX + 1];
	if (strlen(t) > 128)
		return false;
	while ((t = topic_level(t, level)) && *t)
		t++;
	return t != NULL;
}

static int conf_homeassistant(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "enabled", "prefix", "status_topic", NULL };
	static const char *const topics[] = { "prefix", "status_topic" };
	config_setting_t *g;
	c->ha_prefix = "homeassistant";
	c->ha_status_topic = "homeassistant/status";
	if (cfg_group(root, "homeassistant", false, keys, &g) || !g)
		return g ? -1 : 0;
	if (cfg_bool(g, "enabled", false, &c->ha_enabled) ||
	    cfg_string(g, "prefix", "homeassistant", &c->ha_prefix) ||
	    cfg_string(g, "status_topic", "homeassistant/status", &c->ha_status_topic))
		return -1;
	for (size_t i = 0; i < sizeof topics / sizeof *topics; i++) {
		const char *t = i ? c->ha_status_topic : c->ha_prefix;
		size_t pl = strlen(c->prefix);
		if (!conf_topic_ok(t) || (strncmp(t, c->prefix, pl) == 0 && (!t[pl] || t[pl] == '/'))) {
			const config_setting_t *s = config_setting_get_member(g, topics[i]);
			cfg_error(s ? s : g, "homeassistant.%s must be topic levels of A-Z a-z 0-9 _ - separated by /, "
				  "outside topic_prefix '%s'", topics[i], c->prefix);
			return -1;
		}
	}
	return 0;
}

int conf_load(struct conf *c, const char *path)
{
	static const char *const keys[] = { "home", "secret_file", "topic_prefix", "discovery",
					    "link_listen", "controllers", "ping_interval",
					    "ping_timeout", "mqtt", "result_grace", "dedup_max",
					    "m5stack", "lcd", "handshake_timeout", "user", "group",
					    "state_dir", "request_wait", "homeassistant",
					    "heartbeat_interval", NULL };
	memset(c, 0, sizeof *c);
	if (cfg_load(&c->cfg, path) < 0)
		return -1;
	config_setting_t *root = config_root_setting(&c->cfg);
	long long beat;
	if (cfg_known_keys(root, keys) || cfg_string_req(root, "home", &c->home))
		return -1;
	if (!name_valid(c->home, COMMAND_NAME_MAX)) {
		cfg_error(config_setting_get_member(root, "home"),
			  "home '%s' must be 1..63 of A-Z a-z 0-9 _ -", c->home);
		return -1;
	}
	if (cfg_string_req(root, "secret_file", &c->secret_file) ||
	    cfg_string(root, "topic_prefix", "fr", &c->prefix) || conf_discovery(c, root) ||
	    conf_links(c, root) || conf_statics(c, root) ||
	    cfg_seconds_ms(root, "ping_interval", 10000, 50, 3600000, &c->ping_interval_ms) ||
	    cfg_seconds_ms(root, "ping_timeout", 30000, 100, 3600000, &c->ping_timeout_ms) ||
	    cfg_seconds_ms(root, "handshake_timeout", 10000, 100, 600000, &c->handshake_timeout_ms) ||
	    cfg_int(root, "heartbeat_interval", 30, 0, 3600, &beat) ||
	    cfg_user_group(root, &c->user, &c->group) ||
	    mqttconf_load(root, "mqtt", 4, &c->mqtt) ||
	    cfg_seconds_ms(root, "result_grace", 30000, 100, 3600000, &c->result_grace_ms) ||
	    cfg_int(root, "dedup_max", 10000, 16, 10000000, &c->dedup_max) ||
	    cfg_seconds_ms(root, "request_wait", 10000, 0, 86400000, &c->request_wait_ms) ||
	    cfg_string(root, "state_dir", CONF_STATE_DIR, &c->state_dir) || conf_displays(c, root))
		return -1;
	c->heartbeat_interval_s = (int)beat;
	if (c->state_dir[0] != '/') {
		cfg_error(config_setting_get_member(root, "state_dir"),
			  "state_dir must be an absolute path");
		return -1;
	}
	if (!name_valid(c->prefix, COMMAND_NAME_MAX)) {
		cfg_error(config_setting_get_member(root, "topic_prefix"),
			  "topic_prefix must be one topic level of A-Z a-z 0-9 _ -");
		return -1;
	}
	if (conf_homeassistant(c, root) < 0)
		return -1;
	if (!c->discovery_addr && !c->link_addr && c->nstatics == 0)
		log_warnx("%s: no 'discovery', 'link_listen' or 'controllers': no controller can be found",
			  path);
	return 0;
}

void conf_free(struct conf *c)
{
	free(c->statics);
	config_destroy(&c->cfg);
	memset(c, 0, sizeof *c);
}
