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
	const char ***homes;  /* per user, from cfg_strings */
	int n;
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

struct users *users_load(const char *path)
{
	struct users *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	if (cfg_load(&u->cfg, path) < 0)
		goto fail;
	config_setting_t *root = config_root_setting(&u->cfg);
	static const char *const rkeys[] = { "users", NULL };
	if (cfg_known_keys(root, rkeys))
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
	if (!u->v || !u->homes)
		goto fail;
	for (int i = 0; i < n; i++) {
		static const char *const keys[] = { "name", "token_sha256", "homes", NULL };
		config_setting_t *g = config_setting_get_elem(l, (unsigned)i);
		struct user *e = &u->v[i];
		const char *hex;
		if (!config_setting_is_group(g)) {
			cfg_error(g, "each user must be a group { ... }");
			goto fail;
		}
		if (cfg_known_keys(g, keys) || cfg_string_req(g, "name", &e->name) ||
		    cfg_string_req(g, "token_sha256", &hex) ||
		    cfg_strings(g, "homes", true, &u->homes[i]))
			goto fail;
		u->n = i + 1;
		if (!command_valid_name(e->name, COMMAND_NAME_MAX)) {
			cfg_error(g, "user name '%s' must be 1..63 of A-Z a-z 0-9 _ -", e->name);
			goto fail;
		}
		if (users_hex(hex, e->hash) < 0) {
			cfg_error(g, "user '%s': token_sha256 must be 64 hex digits", e->name);
			goto fail;
		}
		e->homes = u->homes[i];
		for (e->nhomes = 0; e->homes[e->nhomes]; e->nhomes++) {
			if (!command_valid_name(e->homes[e->nhomes], COMMAND_NAME_MAX)) {
				cfg_error(g, "user '%s': home '%s' must be 1..63 of A-Z a-z 0-9 _ -",
					  e->name, e->homes[e->nhomes]);
				goto fail;
			}
		}
		for (int k = 0; k < i; k++) {
			if (strcmp(u->v[k].name, e->name) == 0 ||
			    CRYPTO_memcmp(u->v[k].hash, e->hash, 32) == 0) {
				cfg_error(g, "user '%s': duplicate name or token", e->name);
				goto fail;
			}
		}
	}
	return u;
fail:
	users_free(u);
	return NULL;
}

void users_free(struct users *u)
{
	if (!u)
		return;
	for (int i = 0; i < u->n; i++)
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
