/* conf: load and validate frMhc's config; build action argv from checked arguments. */
#include "conf.h"

#include "cfg.h"
#include "command.h"
#include "frame.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conf_listen(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "max_links", "max_pending",
					    "max_pending_per_peer", NULL };
	long long port, links;
	config_setting_t *g = config_setting_get_member(root, "listen");
	if (!g || !config_setting_is_group(g)) {
		cfg_error(g ? g : root, "missing group 'listen = { address = \"...\"; port = N; }'");
		return -1;
	}
	if (cfg_known_keys(g, keys) || cfg_string(g, "address", "127.0.0.1", &c->listen_addr) ||
	    cfg_int(g, "port", 7410, 0, 65535, &port) ||
	    cfg_int(g, "max_links", 16, 1, 4096, &links) ||
	    cfg_pending(g, 32, 4, &c->max_pending, &c->max_pending_per_peer))
		return -1;
	c->listen_port = (uint16_t)port;
	c->max_links = (int)links;
	return 0;
}

static int conf_announce(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", "interval", NULL };
	long long port;
	config_setting_t *g = config_setting_get_member(root, "announce");
	c->announce_interval_ms = 5000;
	if (!g)
		return 0;
	if (!config_setting_is_group(g)) {
		cfg_error(g, "'announce' must be a group");
		return -1;
	}
	if (cfg_known_keys(g, keys) || cfg_string_req(g, "address", &c->announce_addr) ||
	    cfg_int(g, "port", 7400, 1, 65535, &port) ||
	    cfg_seconds_ms(g, "interval", 5000, 100, 3600000, &c->announce_interval_ms))
		return -1;
	c->announce_port = (uint16_t)port;
	return 0;
}

static int conf_home(struct conf *c, const config_setting_t *root)
{
	static const char *const keys[] = { "address", "port", NULL };
	long long port;
	config_setting_t *g = config_setting_get_member(root, "home_server");
	if (!g)
		return 0;
	if (!config_setting_is_group(g)) {
		cfg_error(g, "'home_server' must be a group");
		return -1;
	}
	if (cfg_known_keys(g, keys) || cfg_string_req(g, "address", &c->home_addr) ||
	    cfg_int(g, "port", 7401, 1, 65535, &port))
		return -1;
	c->home_port = (uint16_t)port;
	return 0;
}

static int conf_check_argv(const config_setting_t *g, const char **argv, const char *what)
{
	if (argv[0][0] != '/') {
		cfg_error(g, "%s: argv[0] must be an absolute path (no PATH search, no shell), not '%s'",
			  what, argv[0]);
		return -1;
	}
	if (strchr(argv[0], '{')) {
		cfg_error(g, "%s: argv[0] must not take an argument", what);
		return -1;
	}
	return 0;
}

static bool conf_arg_match(const struct conf_arg *ar, const char *v)
{
	regmatch_t m;
	return regexec(&ar->re, v, 1, &m, 0) == 0 && m.rm_so == 0 &&
	       (size_t)m.rm_eo == strlen(v);
}

static int conf_one_action(struct conf_action *a, const config_setting_t *g)
{
	static const char *const keys[] = { "name", "argv", "builtin", "args", "timeout",
					    "kill_grace", "max_running", NULL };
	long long maxr;
	char what[128];
	if (!config_setting_is_group(g)) {
		cfg_error(g, "each action must be a group { name = ...; argv = [...]; }");
		return -1;
	}
	if (cfg_known_keys(g, keys) || cfg_string_req(g, "name", &a->name))
		return -1;
	if (!name_valid(a->name, COMMAND_NAME_MAX)) {
		cfg_error(g, "action name '%s' must be 1..63 of A-Z a-z 0-9 _ -", a->name);
		return -1;
	}
	snprintf(what, sizeof what, "action '%s'", a->name);
	if (cfg_string(g, "builtin", NULL, &a->builtin))
		return -1;
	if (a->builtin) {
		/* A built-in runs inside frMhc without a process: a liveness probe and the
		 * baseline of the command round-trip bench. */
		if (strcmp(a->builtin, "noop") != 0) {
			cfg_error(g, "%s: unknown builtin '%s' (known: noop)", what, a->builtin);
			return -1;
		}
		if (config_setting_get_member(g, "argv") || config_setting_get_member(g, "args")) {
			cfg_error(g, "%s: a builtin takes no argv and no args", what);
			return -1;
		}
	}
	if ((!a->builtin && (cfg_strings(g, "argv", true, &a->argv) ||
			     conf_check_argv(g, a->argv, what))) ||
	    cfg_seconds_ms(g, "timeout", 30000, 10, 86400000, &a->timeout_ms) ||
	    cfg_seconds_ms(g, "kill_grace", 2000, 0, 60000, &a->grace_ms) ||
	    cfg_int(g, "max_running", 1, 1, 64, &maxr))
		return -1;
	a->max_running = (int)maxr;
	config_setting_t *args = config_setting_get_member(g, "args");
	if (!args)
		return 0;
	if (!config_setting_is_list(args)) {
		cfg_error(args, "%s: 'args' must be a list ( { name = ...; pattern = ...; }, ... )", what);
		return -1;
	}
	int nargs = config_setting_length(args);
	a->args = calloc((size_t)nargs + 1, sizeof *a->args);
	if (!a->args)
		return -1;
	/* Counted only once allocated: conf_free walks args[0..nargs). */
	a->nargs = nargs;
	for (int i = 0; i < a->nargs; i++) {
		static const char *const akeys[] = { "name", "pattern", "default", NULL };
		struct conf_arg *ar = &a->args[i];
		config_setting_t *e = config_setting_get_elem(args, (unsigned)i);
		if (!config_setting_is_group(e) || cfg_known_keys(e, akeys) ||
		    cfg_string_req(e, "name", &ar->name) || cfg_string_req(e, "pattern", &ar->pattern) ||
		    cfg_string(e, "default", NULL, &ar->def))
			goto bad;
		if (!name_valid(ar->name, COMMAND_NAME_MAX)) {
			cfg_error(e, "%s: arg name '%s' must be 1..63 of A-Z a-z 0-9 _ -", what, ar->name);
			goto bad;
		}
		/* Anchor the pattern: a value must match as a whole, or "[0-9]+" would let
		 * "5; rm -rf" through. The anchors alone are not enough ("a)|(b" escapes them),
		 * so conf_arg_match also checks the match spans the value. */
		size_t n = strlen(ar->pattern) + 8;
		char *anchored = malloc(n);
		if (!anchored)
			goto bad;
		snprintf(anchored, n, "^(%s)$", ar->pattern);
		int rc = regcomp(&ar->re, anchored, REG_EXTENDED);
		free(anchored);
		if (rc != 0) {
			char err[128];
			regerror(rc, &ar->re, err, sizeof err);
			cfg_error(e, "%s: arg '%s': bad pattern: %s", what, ar->name, err);
			ar->pattern = NULL;
			goto bad;
		}
		if (ar->def && !conf_arg_match(ar, ar->def)) {
			cfg_error(e, "%s: arg '%s': default does not match its pattern", what, ar->name);
			a->nargs = i + 1; /* this one is compiled: free it too */
			return -1;
		}
		continue;
bad:
		a->nargs = i; /* only the compiled ones are freed */
		return -1;
	}
	return 0;
}

/* A sensor's optional unit and device class, carried in hello and announces for Home
 * Assistant (docs/lan-protocol.md): a unit is 1..31 bytes of UTF-8 without control
 * characters, a device class [a-z0-9_]{1,63} (HA checks it against its own list). */
static int conf_sensor_ha(struct conf_sensor *s, const config_setting_t *g, const char *what)
{
	if (cfg_string(g, "unit", NULL, &s->unit) || cfg_string(g, "device_class", NULL, &s->device_class))
		return -1;
	if (s->unit) {
		size_t n = strlen(s->unit);
		bool ok = n >= 1 && n <= 31 && frame_utf8_valid(s->unit, n);
		for (const unsigned char *p = (const unsigned char *)s->unit; ok && *p; p++)
			ok = *p >= 0x20 && *p != 0x7f;
		if (!ok) {
			cfg_error(config_setting_get_member(g, "unit"),
				  "%s: unit must be 1..31 bytes of text (\"°C\", \"%%\")", what);
			return -1;
		}
	}
	if (s->device_class) {
		size_t n = strspn(s->device_class, "abcdefghijklmnopqrstuvwxyz0123456789_");
		if (n == 0 || n > 63 || s->device_class[n]) {
			cfg_error(config_setting_get_member(g, "device_class"),
				  "%s: device_class must be 1..63 of a-z 0-9 _ (\"temperature\")", what);
			return -1;
		}
	}
	return 0;
}

static int conf_one_sensor(struct conf_sensor *s, const config_setting_t *g)
{
	static const char *const keys[] = { "name", "argv", "interval", "timeout", "unit",
					    "device_class", NULL };
	if (!config_setting_is_group(g)) {
		cfg_error(g, "each sensor must be a group { name = ...; argv = [...]; interval = N; }");
		return -1;
	}
	if (cfg_known_keys(g, keys) || cfg_string_req(g, "name", &s->name))
		return -1;
	if (!name_valid(s->name, COMMAND_NAME_MAX)) {
		cfg_error(g, "sensor name '%s' must be 1..63 of A-Z a-z 0-9 _ -", s->name);
		return -1;
	}
	char what[128];
	snprintf(what, sizeof what, "sensor '%s'", s->name);
	if (cfg_strings(g, "argv", true, &s->argv) || conf_check_argv(g, s->argv, what) ||
	    cfg_seconds_ms(g, "interval", 10000, 100, 86400000, &s->interval_ms) ||
	    cfg_seconds_ms(g, "timeout", 5000, 10, 3600000, &s->timeout_ms) ||
	    conf_sensor_ha(s, g, what))
		return -1;
	return 0;
}

int conf_load(struct conf *c, const char *path)
{
	static const char *const keys[] = { "id", "name", "secret_file", "state_dir", "listen",
					    "announce", "home_server", "ping_interval",
					    "ping_timeout", "handshake_timeout", "journal_max",
					    "actions", "sensors",
					    "user", "group", "allow_root_actions", NULL };
	memset(c, 0, sizeof *c);
	c->path = path;
	if (cfg_load(&c->cfg, path) < 0)
		return -1;
	config_setting_t *root = config_root_setting(&c->cfg);
	if (cfg_known_keys(root, keys) || cfg_string_req(root, "id", &c->id))
		return -1;
	if (!name_valid(c->id, COMMAND_NAME_MAX)) {
		cfg_error(config_setting_get_member(root, "id"),
			  "id '%s' must be 1..63 of A-Z a-z 0-9 _ -", c->id);
		return -1;
	}
	if (cfg_string(root, "name", c->id, &c->name) ||
	    cfg_string_req(root, "secret_file", &c->secret_file) ||
	    cfg_string_req(root, "state_dir", &c->state_dir) || conf_listen(c, root) ||
	    conf_announce(c, root) || conf_home(c, root) ||
	    cfg_seconds_ms(root, "ping_interval", 10000, 50, 3600000, &c->ping_interval_ms) ||
	    cfg_seconds_ms(root, "ping_timeout", 30000, 100, 3600000, &c->ping_timeout_ms) ||
	    cfg_seconds_ms(root, "handshake_timeout", 10000, 100, 600000, &c->handshake_timeout_ms) ||
	    cfg_int(root, "journal_max", 10000, 16, 10000000, &c->journal_max) ||
	    cfg_user_group(root, &c->user, &c->group) ||
	    cfg_bool(root, "allow_root_actions", false, &c->allow_root_actions))
		return -1;
	if (strlen(c->name) == 0 || strlen(c->name) > 127) {
		cfg_error(config_setting_get_member(root, "name"), "name must be 1..127 bytes");
		return -1;
	}

	config_setting_t *acts = config_setting_get_member(root, "actions");
	if (acts) {
		if (!config_setting_is_list(acts)) {
			cfg_error(acts, "'actions' must be a list ( { ... }, { ... } )");
			return -1;
		}
		int n = config_setting_length(acts);
		c->actions = calloc((size_t)n + 1, sizeof *c->actions);
		if (!c->actions)
			return -1;
		for (int i = 0; i < n; i++) {
			config_setting_t *g = config_setting_get_elem(acts, (unsigned)i);
			c->nactions = i + 1;
			if (conf_one_action(&c->actions[i], g))
				return -1;
			for (int j = 0; j < i; j++)
				if (strcmp(c->actions[j].name, c->actions[i].name) == 0) {
					cfg_error(g, "action '%s' defined twice", c->actions[i].name);
					return -1;
				}
		}
	}
	config_setting_t *sens = config_setting_get_member(root, "sensors");
	if (sens) {
		if (!config_setting_is_list(sens)) {
			cfg_error(sens, "'sensors' must be a list ( { ... }, { ... } )");
			return -1;
		}
		int n = config_setting_length(sens);
		c->sensors = calloc((size_t)n + 1, sizeof *c->sensors);
		if (!c->sensors)
			return -1;
		for (int i = 0; i < n; i++) {
			config_setting_t *g = config_setting_get_elem(sens, (unsigned)i);
			c->nsensors = i + 1;
			if (conf_one_sensor(&c->sensors[i], g))
				return -1;
			for (int j = 0; j < i; j++)
				if (strcmp(c->sensors[j].name, c->sensors[i].name) == 0) {
					cfg_error(g, "sensor '%s' defined twice", c->sensors[i].name);
					return -1;
				}
		}
	}
	return 0;
}

void conf_free(struct conf *c)
{
	for (int i = 0; i < c->nactions; i++) {
		struct conf_action *a = &c->actions[i];
		free(a->argv);
		for (int j = 0; j < a->nargs; j++)
			if (a->args[j].pattern)
				regfree(&a->args[j].re);
		free(a->args);
	}
	free(c->actions);
	for (int i = 0; i < c->nsensors; i++)
		free(c->sensors[i].argv);
	free(c->sensors);
	config_destroy(&c->cfg);
	memset(c, 0, sizeof *c);
}

const struct conf_action *conf_action_find(const struct conf *c, const char *name)
{
	for (int i = 0; i < c->nactions; i++)
		if (strcmp(c->actions[i].name, name) == 0)
			return &c->actions[i];
	return NULL;
}

cJSON *conf_actions_json(const struct conf *c)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < c->nactions; i++) {
		const struct conf_action *a = &c->actions[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", a->name);
		cJSON_AddNumberToObject(o, "timeout", (double)a->timeout_ms / 1000.0);
		cJSON *args = cJSON_AddArrayToObject(o, "args");
		for (int j = 0; j < a->nargs; j++) {
			cJSON *ao = cJSON_CreateObject();
			cJSON_AddStringToObject(ao, "name", a->args[j].name);
			cJSON_AddStringToObject(ao, "pattern", a->args[j].pattern);
			if (a->args[j].def)
				cJSON_AddStringToObject(ao, "default", a->args[j].def);
			cJSON_AddItemToArray(args, ao);
		}
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

cJSON *conf_sensors_json(const struct conf *c)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < c->nsensors; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", c->sensors[i].name);
		cJSON_AddNumberToObject(o, "interval", (double)c->sensors[i].interval_ms / 1000.0);
		if (c->sensors[i].unit)
			cJSON_AddStringToObject(o, "unit", c->sensors[i].unit);
		if (c->sensors[i].device_class)
			cJSON_AddStringToObject(o, "device_class", c->sensors[i].device_class);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

void conf_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* Replaces every "{name}" in tmpl by the argument's value; unknown "{x}" stay literal. */
static char *conf_expand(const struct conf_action *a, const char *tmpl, const char **vals)
{
	size_t cap = strlen(tmpl) + 1, len = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = tmpl; *p;) {
		const char *rep = NULL;
		size_t skip = 1;
		if (*p == '{') {
			for (int i = 0; i < a->nargs; i++) {
				size_t n = strlen(a->args[i].name);
				if (strncmp(p + 1, a->args[i].name, n) == 0 && p[1 + n] == '}') {
					rep = vals[i];
					skip = n + 2;
					break;
				}
			}
		}
		size_t add = rep ? strlen(rep) : 1;
		if (len + add + 1 > cap) {
			cap = (len + add + 1) * 2;
			char *q = realloc(out, cap);
			if (!q) {
				free(out);
				return NULL;
			}
			out = q;
		}
		if (rep)
			memcpy(out + len, rep, add);
		else
			out[len] = *p;
		len += add;
		p += skip;
	}
	out[len] = '\0';
	return out;
}

int conf_action_argv(const struct conf_action *a, const cJSON *args, char ***argv, char *why,
		     size_t whylen)
{
	const char *vals[COMMAND_ARGS_MAX + 1] = { 0 };
	*argv = NULL;
	if (!a->argv) {
		snprintf(why, whylen, "action '%s' is a builtin and has no argv", a->name);
		return -1;
	}
	if (a->nargs > COMMAND_ARGS_MAX) {
		snprintf(why, whylen, "action declares too many args");
		return -1;
	}
	const cJSON *v;
	cJSON_ArrayForEach(v, args) {
		int i;
		for (i = 0; i < a->nargs; i++)
			if (strcmp(a->args[i].name, v->string) == 0)
				break;
		if (i == a->nargs) {
			snprintf(why, whylen, "action '%s' takes no arg '%s'", a->name, v->string);
			return -1;
		}
		if (!cJSON_IsString(v) || !conf_arg_match(&a->args[i], v->valuestring)) {
			snprintf(why, whylen, "arg '%s' does not match %s", v->string, a->args[i].pattern);
			return -1;
		}
		vals[i] = v->valuestring;
	}
	for (int i = 0; i < a->nargs; i++) {
		if (!vals[i])
			vals[i] = a->args[i].def;
		if (!vals[i]) {
			snprintf(why, whylen, "missing arg '%s'", a->args[i].name);
			return -1;
		}
	}
	size_t n = 0;
	while (a->argv[n])
		n++;
	char **out = calloc(n + 1, sizeof *out);
	if (!out)
		goto oom;
	for (size_t i = 0; i < n; i++)
		if (!(out[i] = conf_expand(a, a->argv[i], vals))) {
			conf_argv_free(out);
			goto oom;
		}
	*argv = out;
	return 0;
oom:
	snprintf(why, whylen, "out of memory");
	return -1;
}
