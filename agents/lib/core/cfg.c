/* cfg: libconfig helpers with file:line errors; see cfg.h. */
#include "cfg.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cfg_load(config_t *cfg, const char *path)
{
	config_init(cfg);
	if (config_read_file(cfg, path) == CONFIG_TRUE)
		return 0;
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
		log_warnx("%s: cannot read config file: %s", path, strerror(errno));
	else
		log_warnx("%s:%d: %s", config_error_file(cfg) ? config_error_file(cfg) : path,
			  config_error_line(cfg), config_error_text(cfg));
	return -1;
}

void cfg_error(const config_setting_t *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *file = s ? config_setting_source_file(s) : NULL;
	log_warnx("%s:%u: %s", file ? file : "config", s ? config_setting_source_line(s) : 0, msg);
}

static const char *cfg_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	}
	return "unknown";
}

int cfg_string(const config_setting_t *parent, const char *name, const char *def, const char **out)
{
	config_setting_t *s = config_setting_get_member(parent, name);
	if (!s) {
		*out = def;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfg_error(s, "'%s' must be a string, not %s", name, cfg_type_name(config_setting_type(s)));
		return -1;
	}
	*out = config_setting_get_string(s);
	return 0;
}

int cfg_string_req(const config_setting_t *parent, const char *name, const char **out)
{
	if (!config_setting_get_member(parent, name)) {
		cfg_error(parent, "missing required setting '%s'", name);
		return -1;
	}
	return cfg_string(parent, name, NULL, out);
}

int cfg_int(const config_setting_t *parent, const char *name, long long def, long long min,
	    long long max, long long *out)
{
	config_setting_t *s = config_setting_get_member(parent, name);
	if (!s) {
		*out = def;
		return 0;
	}
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		cfg_error(s, "'%s' must be an integer, not %s", name, cfg_type_name(t));
		return -1;
	}
	long long v = config_setting_get_int64(s);
	if (v < min || v > max) {
		cfg_error(s, "'%s' must be in %lld..%lld, not %lld", name, min, max, v);
		return -1;
	}
	*out = v;
	return 0;
}

int cfg_seconds_ms(const config_setting_t *parent, const char *name, uint64_t def_ms,
		   uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms)
{
	config_setting_t *s = config_setting_get_member(parent, name);
	if (!s) {
		*out_ms = def_ms;
		return 0;
	}
	int t = config_setting_type(s);
	double v;
	if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
		v = (double)config_setting_get_int64(s);
	else if (t == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else {
		cfg_error(s, "'%s' must be a number of seconds, not %s", name, cfg_type_name(t));
		return -1;
	}
	if (!(v * 1000.0 >= (double)min_ms && v * 1000.0 <= (double)max_ms)) {
		cfg_error(s, "'%s' must be between %.3g and %.3g seconds", name, min_ms / 1000.0,
			  max_ms / 1000.0);
		return -1;
	}
	*out_ms = (uint64_t)(v * 1000.0 + 0.5);
	return 0;
}

int cfg_bool(const config_setting_t *parent, const char *name, bool def, bool *out)
{
	config_setting_t *s = config_setting_get_member(parent, name);
	if (!s) {
		*out = def;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cfg_error(s, "'%s' must be true or false, not %s", name,
			  cfg_type_name(config_setting_type(s)));
		return -1;
	}
	*out = config_setting_get_bool(s);
	return 0;
}

int cfg_group(const config_setting_t *parent, const char *name, bool required,
	      const char *const *keys, config_setting_t **out)
{
	config_setting_t *g = config_setting_get_member(parent, name);
	*out = g;
	if (!g) {
		if (required) {
			cfg_error(parent, "missing group '%s'", name);
			return -1;
		}
		return 0;
	}
	if (!config_setting_is_group(g)) {
		cfg_error(g, "'%s' must be a group { ... }", name);
		return -1;
	}
	return cfg_known_keys(g, keys);
}

int cfg_known_keys(const config_setting_t *group, const char *const *names)
{
	int rc = 0;
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *key = config_setting_name(s);
		bool ok = false;
		for (const char *const *p = names; *p && !ok; p++)
			ok = key && strcmp(key, *p) == 0;
		if (!ok) {
			cfg_error(s, "unknown setting '%s'", key ? key : "?");
			rc = -1;
		}
	}
	return rc;
}

int cfg_strings(const config_setting_t *parent, const char *name, bool required, const char ***out)
{
	*out = NULL;
	config_setting_t *s = config_setting_get_member(parent, name);
	if (!s) {
		if (required) {
			cfg_error(parent, "missing required setting '%s'", name);
			return -1;
		}
		return 0;
	}
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		cfg_error(s, "'%s' must be a list of strings like [\"a\", \"b\"]", name);
		return -1;
	}
	int n = config_setting_length(s);
	if (n == 0 && required) {
		cfg_error(s, "'%s' must not be empty", name);
		return -1;
	}
	const char **v = calloc((size_t)n + 1, sizeof *v);
	if (!v) {
		log_warnx("out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cfg_error(e, "'%s'[%d] must be a string", name, i);
			free(v);
			return -1;
		}
		v[i] = config_setting_get_string(e);
	}
	*out = v;
	return 0;
}

int cfg_pending(const config_setting_t *g, long long def_total, long long def_per_peer,
		int *total, int *per_peer)
{
	long long t, p;
	if (cfg_int(g, "max_pending", def_total, 1, 1000000, &t) ||
	    cfg_int(g, "max_pending_per_peer", def_per_peer, 1, 1000000, &p))
		return -1;
	if (p > t) {
		const config_setting_t *e = config_setting_get_member(g, "max_pending_per_peer");
		cfg_error(e ? e : g, "max_pending_per_peer (%lld) must not exceed max_pending (%lld)",
			  p, t);
		return -1;
	}
	*total = (int)t;
	*per_peer = (int)p;
	return 0;
}

int cfg_user_group(const config_setting_t *root, const char **user, const char **group)
{
	if (cfg_string(root, "user", NULL, user) || cfg_string(root, "group", NULL, group))
		return -1;
	if (*user && !getpwnam(*user)) {
		cfg_error(config_setting_get_member(root, "user"), "no user '%s' on this system", *user);
		return -1;
	}
	if (*group && !*user) {
		cfg_error(config_setting_get_member(root, "group"), "'group' needs 'user'");
		return -1;
	}
	if (*group && !getgrnam(*group)) {
		cfg_error(config_setting_get_member(root, "group"), "no group '%s' on this system",
			  *group);
		return -1;
	}
	return 0;
}

int cfg_read_secret(const char *path, uint8_t out[32])
{
	/* Room for the digits with generous whitespace (one per line, CRLF, indentation). */
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_warn("secret file %s", path);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077))
		log_warnx("secret file %s is readable by group or others; chmod 600 it", path);
	/* Read to EOF: a single read could stop short, and a file cut at the buffer would be
	 * misreported as having too few digits. */
	ssize_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - (size_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_warn("secret file %s", path);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += r;
		if ((size_t)n == sizeof buf) {
			log_warnx("secret file %s: larger than %zu bytes; expected 64 hex digits", path,
				  sizeof buf - 1);
			close(fd);
			return -1;
		}
	}
	close(fd);
	size_t k = 0;
	for (ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (isspace(c))
			continue;
		if (!isxdigit(c) || k >= 64) {
			log_warnx("secret file %s: expected exactly 64 hex digits (32 bytes)", path);
			return -1;
		}
		int v = isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10);
		if (k % 2 == 0)
			out[k / 2] = (uint8_t)(v << 4);
		else
			out[k / 2] |= (uint8_t)v;
		k++;
	}
	if (k != 64) {
		log_warnx("secret file %s: expected exactly 64 hex digits (32 bytes), found %zu", path, k);
		return -1;
	}
	return 0;
}
