/* cfg: libconfig helpers shared by the agents' config loaders. Every error names the file and
 * line it comes from ("frmhc.conf:12: action 'lamp': timeout must be 1..86400"), is logged
 * once here, and makes the getter return -1. Strings handed out are borrowed from the
 * config_t and live as long as it does. */
#ifndef FR_CFG_H
#define FR_CFG_H

#include <libconfig.h>
#include <stdbool.h>
#include <stdint.h>

/* Reads path into cfg (initialised here; config_destroy it even on failure). */
int cfg_load(config_t *cfg, const char *path);
/* Logs "file:line: <message>" for setting s. */
void cfg_error(const config_setting_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A missing setting yields def and 0; a setting of the wrong type or out of range is an
 * error. parent is a group (config_root_setting for the top level). */
int cfg_string(const config_setting_t *parent, const char *name, const char *def, const char **out);
int cfg_int(const config_setting_t *parent, const char *name, long long def, long long min,
	    long long max, long long *out);
int cfg_bool(const config_setting_t *parent, const char *name, bool def, bool *out);
/* A duration written in seconds (integer or decimal, e.g. 2.5) returned in milliseconds. */
int cfg_seconds_ms(const config_setting_t *parent, const char *name, uint64_t def_ms,
		   uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);
/* Like cfg_string with no default: a missing setting is an error. */
int cfg_string_req(const config_setting_t *parent, const char *name, const char **out);
/* The group `name` of parent in *out (NULL when absent: an error only if required), checked
 * with cfg_known_keys. */
int cfg_group(const config_setting_t *parent, const char *name, bool required,
	      const char *const *keys, config_setting_t **out);
/* Every member of group must be one of the NULL-terminated names (typos are errors). */
int cfg_known_keys(const config_setting_t *group, const char *const *names);
/* A list/array of strings: *out is a malloc'd NULL-terminated array of borrowed strings,
 * owned by the caller (free the array only). Missing -> error if required, else NULL. */
int cfg_strings(const config_setting_t *parent, const char *name, bool required, const char ***out);

/* The pending-connection budgets of a listener group g (peerlimit.h): "max_pending" and
 * "max_pending_per_peer", the second no larger than the first. */
int cfg_pending(const config_setting_t *g, long long def_total, long long def_per_peer,
		int *total, int *per_peer);

/* The optional top-level "user" and "group" a daemon drops to (agent_drop_privileges): NULL
 * when absent. Each must name an existing user / group; "group" needs "user". */
int cfg_user_group(const config_setting_t *root, const char **user, const char **group);

/* The home's 32-byte secret: a file of 64 hex digits (whitespace ignored). */
int cfg_read_secret(const char *path, uint8_t out[32]);

#endif
