/* conf: frMhc's configuration file (libconfig syntax): identity, secret, listen address,
 * announce target, optional home server to dial, actions and sensors. Everything is checked
 * at load time so a running controller never meets a bad setting. */
#ifndef MHC_CONF_H
#define MHC_CONF_H

#include <libconfig.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct conf_arg {
	const char *name;      /* borrowed from the config_t */
	const char *pattern;   /* as written; matched against the whole value */
	const char *def;       /* NULL = required */
	regex_t re;            /* compiled ^(pattern)$ */
};

struct conf_action {
	const char *name;
	const char **argv;     /* owned array of borrowed strings; "{arg}" is replaced; NULL for a builtin */
	const char *builtin;   /* "noop" or NULL */
	struct conf_arg *args; /* owned */
	int nargs;
	uint64_t timeout_ms;
	uint64_t grace_ms;
	int max_running;
};

struct conf_sensor {
	const char *name;
	const char **argv;     /* owned array of borrowed strings */
	uint64_t interval_ms;
	uint64_t timeout_ms;
	const char *unit;          /* NULL = none; "°C", "%": shown by Home Assistant */
	const char *device_class;  /* NULL = none; one of Home Assistant's sensor device classes */
};

struct conf {
	config_t cfg;          /* owns every borrowed string */
	const char *path;
	const char *id, *name, *secret_file, *state_dir;
	const char *listen_addr;
	uint16_t listen_port;
	int max_links;              /* links that completed the handshake (peers with the secret) */
	int max_pending, max_pending_per_peer;  /* connections before the handshake (strangers) */
	uint64_t handshake_timeout_ms;
	const char *announce_addr;  /* NULL = no announces (nothing is broadcast by default) */
	uint16_t announce_port;
	uint64_t announce_interval_ms;
	const char *home_addr;      /* NULL = do not dial a home server */
	uint16_t home_port;
	uint64_t ping_interval_ms, ping_timeout_ms;
	long long journal_max;
	const char *user, *group;   /* NULL = keep the user it was started as */
	bool allow_root_actions;    /* run actions (and sensors) as root: only when said so */
	struct conf_action *actions; /* owned */
	int nactions;
	struct conf_sensor *sensors; /* owned */
	int nsensors;
};

/* Loads and validates path; every problem is logged as "file:line: ...". */
int conf_load(struct conf *c, const char *path);
void conf_free(struct conf *c);
const struct conf_action *conf_action_find(const struct conf *c, const char *name);
/* The actions and sensors as announced (names, args with patterns, timeouts); caller owns. */
cJSON *conf_actions_json(const struct conf *c);
cJSON *conf_sensors_json(const struct conf *c);
/* Checks args (object of strings) against the action's declared args and builds the argv
 * (malloc'd array and strings, caller frees with conf_argv_free). -1 with why on rejection. */
int conf_action_argv(const struct conf_action *a, const cJSON *args, char ***argv, char *why,
		     size_t whylen);
void conf_argv_free(char **argv);

#endif
