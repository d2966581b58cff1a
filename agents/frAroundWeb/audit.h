/* audit: the append-only audit file: one JSON line per finished request (docs/shim.md), written
 * with one write(2) on an O_APPEND descriptor so concurrent writers never interleave records;
 * and the bounded tail read behind the shim's "audit" op.
 *
 * Ownership: struct audit is owned by the caller (audit_free); path is copied. */
#ifndef WEB_AUDIT_H
#define WEB_AUDIT_H

#include <cjson/cJSON.h>

/* Bytes read from the end of the file for audit_tail. */
#define AUDIT_TAIL_BYTES (1 << 20)

struct audit;

/* Opens (creating, mode 0640) path for appending; NULL on error (logged). */
struct audit *audit_open(const char *path);
/* Reopens the file (after logrotate); keeps the old descriptor if that fails. */
int audit_reopen(struct audit *a);
void audit_free(struct audit *a);
/* Appends rec as one line; 0 or -errno (logged). */
int audit_append(struct audit *a, const cJSON *rec);
/* A new array (caller owns) of at most limit records of user, newest first, from the last
 * AUDIT_TAIL_BYTES of the file; NULL on error (logged). */
cJSON *audit_tail(struct audit *a, const char *user, int limit);

#endif
