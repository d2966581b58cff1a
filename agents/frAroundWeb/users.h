/* users: the users file (libconfig; written by the management command, reloaded on SIGHUP):
 *   generation = "<any string>";     # optional: reported by /healthz after a (re)load
 *   users = ( { name = "alice"; token_sha256 = "<64 hex>"; homes = ["home1", "home2"]; } );
 * homes = [] is a user who may sign in and sees no home. A bad entry (or two entries sharing a
 * name or a token) is ignored with a logged reason naming its line, and every other user
 * loads; only a file that cannot be read or parsed as a whole is refused.
 * Tokens are never stored: a presented token is hashed (SHA-256) and compared in constant time
 * against every user's hash.
 *
 * Ownership: struct users is owned by the caller (users_free); a struct user and its strings
 * are owned by the users table that handed it out and live until that table is freed. */
#ifndef WEB_USERS_H
#define WEB_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct user {
	const char *name;
	const char *const *homes;   /* NULL-terminated */
	int nhomes;
	uint8_t hash[32];           /* SHA-256 of the token */
};

struct users;

/* Loads path; NULL (logged with file and line) if the file as a whole is unusable. */
struct users *users_load(const char *path);
void users_free(struct users *u);
int users_count(const struct users *u);
/* Entries ignored for errors (each logged). */
int users_rejected(const struct users *u);
/* The file's generation string, or NULL (borrowed from u). */
const char *users_generation(const struct users *u);
/* SHA-256 of token into out; 0 or -1 (logged). */
int users_hash_token(const char *token, uint8_t out[32]);
/* The user whose token hashes to hash, or NULL. Every user is compared (constant time per
 * user, no early exit) so the time does not tell which one matched. */
const struct user *users_find_hash(const struct users *u, const uint8_t hash[32]);
bool users_has_home(const struct user *user, const char *home);
/* The i-th user (0 <= i < users_count), to walk every user. */
const struct user *users_at(const struct users *u, int i);

#endif
