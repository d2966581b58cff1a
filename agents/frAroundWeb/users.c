/* users: load the users file and check tokens; see users.h. */
#include "users.h"

#include "cfg.h"
#include "command.h"
#include "log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct users {
	config_t cfg;         /* owns the strings */
	struct user *v;
	const char ***homes;  /* per user, from cfg_strings; the first n are in use */
	int n, rejected;
	const char *generation;
};

static int users_hex(const char *s, uint8_t out[32])
{
	if (strlen(s) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int b = 0;
		for (int k = 0; k < 2; k++) {
			char ch = s[2 * i + k];
			int d = ch >= '0' && ch <= '9' ? ch - '0'
			      : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			      : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
			if (d < 0)
				return -1;
			b = b * 16 + d;
		}
		out[i] = (uint8_t)b;
	}
	return 0;
}

/* One entry of the list, checked on its own: false (logged, naming its line) if it is bad. */
static bool users_entry(struct users *u, config_setting_t *g, int i)
{
	static const char *const keys[] = { "name", "token_sha256", "homes", NULL };
	struct user *e = &u->v[i];
	const char *hex;
	if (!config_setting_is_group(g)) {
		cfg_error(g, "each user must be a group { name = ...; token_sha256 = ...; homes = [...]; }");
		return false;
	}
	if (cfg_known_keys(g, keys) || cfg_string_req(g, "name", &e->name) ||
	    cfg_string_req(g, "token_sha256", &hex))
		return false;
	if (!name_valid(e->name, COMMAND_NAME_MAX)) {
		cfg_error(g, "user name '%s' must be 1..63 of A-Z a-z 0-9 _ -", e->name);
		return false;
	}
	if (users_hex(hex, e->hash) < 0) {
		cfg_error(g, "user '%s': token_sha256 must be 64 hex digits", e->name);
		return false;
	}
	/* homes = []; is a user who may sign in and sees no home (all revoked, or none yet). */
	if (!config_setting_get_member(g, "homes")) {
		cfg_error(g, "user '%s': missing 'homes' (use homes = []; for none)", e->name);
		return false;
	}
	if (cfg_strings(g, "homes", false, &u->homes[i]))
		return false;
	e->homes = u->homes[i];
	for (e->nhomes = 0; e->homes[e->nhomes]; e->nhomes++) {
		if (!name_valid(e->homes[e->nhomes], COMMAND_NAME_MAX)) {
			cfg_error(g, "user '%s': home '%s' must be 1..63 of A-Z a-z 0-9 _ -", e->name,
				  e->homes[e->nhomes]);
			return false;
		}
	}
	return true;
}

struct users *users_load(const char *path)
{
	struct users *u = calloc(1, sizeof *u);
	bool *ok = NULL, *dup = NULL;
	if (!u)
		return NULL;
	if (cfg_load(&u->cfg, path) < 0)
		goto fail;
	config_setting_t *root = config_root_setting(&u->cfg);
	static const char *const rkeys[] = { "users", "generation", NULL };
	if (cfg_known_keys(root, rkeys) || cfg_string(root, "generation", NULL, &u->generation))
		goto fail;
	config_setting_t *l = config_setting_get_member(root, "users");
	if (!l || !config_setting_is_list(l)) {
		cfg_error(l ? l : root, "'users' must be a list ( { name = ...; token_sha256 = ...; "
			  "homes = [...]; } )");
		goto fail;
	}
	int n = config_setting_length(l);
	u->v = calloc((size_t)n + 1, sizeof *u->v);
	u->homes = calloc((size_t)n + 1, sizeof *u->homes);
	ok = calloc((size_t)n + 1, sizeof *ok);
	dup = calloc((size_t)n + 1, sizeof *dup);
	if (!u->v || !u->homes || !ok || !dup)
		goto fail;
	/* A bad entry costs only that user: the others (and every later change to them) load. */
	for (int i = 0; i < n; i++)
		ok[i] = users_entry(u, config_setting_get_elem(l, (unsigned)i), i);
	/* Two good entries with one name or one token are both refused: either could be meant. */
	for (int i = 0; i < n; i++) {
		for (int k = 0; ok[i] && k < i; k++) {
			if (!ok[k] || (strcmp(u->v[k].name, u->v[i].name) != 0 &&
				       CRYPTO_memcmp(u->v[k].hash, u->v[i].hash, 32) != 0))
				continue;
			cfg_error(config_setting_get_elem(l, (unsigned)i),
				  "users '%s' and '%s' (line %u) share a name or a token", u->v[i].name,
				  u->v[k].name,
				  config_setting_source_line(config_setting_get_elem(l, (unsigned)k)));
			dup[i] = dup[k] = true;
		}
	}
	for (int i = 0; i < n; i++) {
		if (ok[i] && !dup[i]) {
			if (u->n != i) {
				u->v[u->n] = u->v[i];
				u->homes[u->n] = u->homes[i];
				u->homes[i] = NULL;
			}
			u->n++;
			continue;
		}
		u->rejected++;
		log_warnx("%s:%u: this user entry is ignored; the other users are loaded", path,
			  config_setting_source_line(config_setting_get_elem(l, (unsigned)i)));
		free(u->homes[i]);
		u->homes[i] = NULL;
	}
	free(ok);
	free(dup);
	return u;
fail:
	free(ok);
	free(dup);
	users_free(u);
	return NULL;
}

void users_free(struct users *u)
{
	if (!u)
		return;
	for (int i = 0; u->homes && i < u->n; i++)
		free(u->homes[i]);
	free(u->homes);
	free(u->v);
	config_destroy(&u->cfg);
	free(u);
}

int users_count(const struct users *u)
{
	return u->n;
}

const struct user *users_at(const struct users *u, int i)
{
	return &u->v[i];
}

int users_rejected(const struct users *u)
{
	return u->rejected;
}

const char *users_generation(const struct users *u)
{
	return u->generation;
}

int users_hash_token(const char *token, uint8_t out[32])
{
	unsigned int len = 0;
	if (!EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL) || len != 32) {
		log_warnx("users: SHA-256 failed");
		return -1;
	}
	return 0;
}

const struct user *users_find_hash(const struct users *u, const uint8_t hash[32])
{
	const struct user *found = NULL;
	for (int i = 0; i < u->n; i++)
		if (CRYPTO_memcmp(u->v[i].hash, hash, 32) == 0)
			found = &u->v[i];
	return found;
}

bool users_has_home(const struct user *user, const char *home)
{
	for (int i = 0; i < user->nhomes; i++)
		if (strcmp(user->homes[i], home) == 0)
			return true;
	return false;
}
