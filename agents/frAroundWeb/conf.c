/* conf: load and validate frAroundWeb's configuration; every error names file and line. */
#include "conf.h"

#include "cfg.h"
#include "command.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static int conf_shim(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "unix", "max_line", "max_clients",
					    "max_inflight", "max_outq", "max_pending",
					    "max_pending_per_peer", "auth_timeout", NULL };
	config_setting_t *g;
	long long port, line, clients, inflight, outq;
	if (cfg_group(root, "shim", true, keys, &g))
		return -1;
	if (cfg_string(g, "address", NULL, &c->shim_addr) ||
	    cfg_int(g, "port", 7420, 0, 65535, &port) ||
	    cfg_string(g, "unix", NULL, &c->shim_unix) ||
	    cfg_int(g, "max_line", 65536, 256, 16 << 20, &line) ||
	    cfg_int(g, "max_clients", 1024, 1, 1000000, &clients) ||
	    cfg_int(g, "max_inflight", 64, 1, 100000, &inflight) ||
	    cfg_int(g, "max_outq", 1 << 20, 4096, 1LL << 30, &outq) ||
	    cfg_pending(g, 256, 64, &c->max_pending, &c->max_pending_per_peer) ||
	    cfg_seconds_ms(g, "auth_timeout", 10000, 100, 3600000, &c->auth_timeout_ms))
		return -1;
	if (!c->shim_addr && !c->shim_unix) {
		cfg_error(g, "shim needs 'address' (TCP), 'unix' (socket path) or both");
		return -1;
	}
	if (c->shim_unix && strlen(c->shim_unix) >= 108) {
		cfg_error(g, "unix socket path longer than 107 bytes");
		return -1;
	}
	c->shim_port = (uint16_t)port;
	c->max_line = (size_t)line;
	c->max_clients = (int)clients;
	c->max_inflight = (int)inflight;
	c->max_outq = (size_t)outq;
	return 0;
}

static int conf_http(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "max_pending", "max_pending_per_peer",
					    "request_timeout", NULL };
	config_setting_t *g;
	long long port;
	if (cfg_group(root, "http", false, keys, &g))
		return -1;
	c->http_port = 7421;
	c->http_max_pending = 64;
	c->http_max_pending_per_peer = 16;
	c->http_timeout_ms = 5000;
	if (!g)
		return 0;
	if (cfg_string(g, "address", "127.0.0.1", &c->http_addr) ||
	    cfg_int(g, "port", 7421, 0, 65535, &port) ||
	    cfg_pending(g, c->http_max_pending, c->http_max_pending_per_peer, &c->http_max_pending,
			&c->http_max_pending_per_peer) ||
	    cfg_seconds_ms(g, "request_timeout", c->http_timeout_ms, 100, 600000, &c->http_timeout_ms))
		return -1;
	c->http_port = (uint16_t)port;
	return 0;
}

#define DAY_MS (24ULL * 3600 * 1000)

static int conf_history(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "file", "keep_raw_days", "keep_days", "step",
					    "flush_interval", "flush_points", "max_queue", NULL };
	config_setting_t *g;
	long long raw_days, days;
	c->history_keep_raw_ms = 7 * DAY_MS;
	c->history_keep_ms = 365 * DAY_MS;
	c->history_step_ms = 300000;
	c->history_flush_ms = 1000;
	c->history_flush_points = 1000;
	c->history_max_queue = 100000;
	if (cfg_group(root, "history", false, keys, &g))
		return -1;
	if (!g)
		return 0;
	if (cfg_string_req(g, "file", &c->history_file) ||
	    cfg_int(g, "keep_raw_days", 7, 1, 3650, &raw_days) ||
	    cfg_int(g, "keep_days", 365, 1, 36500, &days) ||
	    cfg_seconds_ms(g, "step", c->history_step_ms, 10000, 86400000, &c->history_step_ms) ||
	    cfg_seconds_ms(g, "flush_interval", c->history_flush_ms, 10, 60000, &c->history_flush_ms) ||
	    cfg_int(g, "flush_points", 1000, 1, 1000000, &c->history_flush_points) ||
	    cfg_int(g, "max_queue", 100000, 1, 100000000, &c->history_max_queue))
		return -1;
	if (c->history_step_ms % 1000 != 0) {
		cfg_error(config_setting_get_member(g, "step"), "step must be whole seconds");
		return -1;
	}
	if (c->history_max_queue < c->history_flush_points) {
		cfg_error(config_setting_get_member(g, "max_queue"), "max_queue below flush_points");
		return -1;
	}
	c->history_keep_raw_ms = (uint64_t)raw_days * DAY_MS;
	c->history_keep_ms = (uint64_t)days * DAY_MS;
	return 0;
}

int conf_load(struct conf *c, const char *path)
{
	static const char *const keys[] = { "topic_prefix", "instance", "users_file", "audit_file",
					    "shim", "http", "max_topics", "max_topics_per_home",
					    "max_bytes_per_home", "mqtt", "user", "group", "history",
					    "stale_after", NULL };
	memset(c, 0, sizeof *c);
	if (cfg_load(&c->cfg, path) < 0)
		return -1;
	config_setting_t *root = config_root_setting(&c->cfg);
	if (cfg_known_keys(root, keys) || cfg_string(root, "topic_prefix", "fr", &c->prefix) ||
	    cfg_string(root, "instance", NULL, &c->instance) ||
	    cfg_string(root, "users_file", "/etc/fr/users.conf", &c->users_file) ||
	    cfg_string(root, "audit_file", "/var/lib/fr/audit.log", &c->audit_file) ||
	    conf_shim(c, root) || conf_http(c, root) || conf_history(c, root) || cfg_user_group(root, &c->user, &c->group) ||
	    cfg_int(root, "max_topics", 100000, 16, 100000000, &c->max_topics) ||
	    cfg_int(root, "max_topics_per_home", 4096, 4, 100000000, &c->max_topics_per_home) ||
	    cfg_int(root, "max_bytes_per_home", 4 << 20, 4096, 1LL << 40, &c->max_bytes_per_home) ||
	    cfg_int(root, "stale_after", 3, 1, 100, &c->stale_after) ||
	    mqttconf_load(root, "mqtt", 4, &c->mqtt))
		return -1;
	if (!name_valid(c->prefix, COMMAND_NAME_MAX)) {
		cfg_error(config_setting_get_member(root, "topic_prefix"),
			  "topic_prefix must be one topic level of A-Z a-z 0-9 _ -");
		return -1;
	}
	if (c->instance && !name_valid(c->instance, 32)) {
		cfg_error(config_setting_get_member(root, "instance"),
			  "instance must be 1..32 of A-Z a-z 0-9 _ -");
		return -1;
	}
	if (!config_setting_get_member(root, "http"))
		c->http_addr = "127.0.0.1";
	return 0;
}

void conf_free(struct conf *c)
{
	config_destroy(&c->cfg);
	memset(c, 0, sizeof *c);
}
