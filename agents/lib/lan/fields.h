/* fields: a JSON object's members checked against a table, the way OpenBSD ntpd checks each
 * imsg against the struct it expects. Every member the table names is looked at: given twice
 * (two JSON parsers could disagree on which copy counts), of another kind, or missing where
 * required is an error, named in why ("result: field 'status' missing"). Members the table
 * does not name are not looked at: a newer peer may add some. lanmsg.c uses it for every link
 * message; ranges and relations between fields are the caller's.
 *
 * fields_forward passes a received object on with some members dropped or set, as the bytes
 * it arrived in wherever that is possible, so that what nothing changes is not re-encoded
 * (a result's outputs, a sensor's value as the controller wrote it). */
#ifndef FR_FIELDS_H
#define FR_FIELDS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

enum field_kind {
	FIELD_STR,
	FIELD_NAME,      /* name_valid: [A-Za-z0-9_-]{1,63} */
	FIELD_ID,        /* name_valid_id: a command id */
	FIELD_ID_NULL,   /* a command id or null */
	FIELD_INT,       /* a number with no fraction, |n| < 2^53 (exact in a double) */
	FIELD_INT_NULL,
	FIELD_NUM,       /* a finite number */
	FIELD_BOOL,
	FIELD_ARRAY,
	FIELD_ANY,
};

struct field {
	const char *name;
	enum field_kind kind;
	bool required;
};

/* The most members a table may name: the size of the caller's found array. */
#define FIELDS_MAX 16

/* f: a table ending with a NULL name, at most FIELDS_MAX entries. found[i] is set to o's
 * member for f[i] (borrowed from o; NULL if absent). 0, or -EINVAL with why naming what (the
 * message type) and the field. */
int fields_check(const cJSON *o, const char *what, const struct field *f, const cJSON **found,
		 char *why, size_t n);
bool fields_is_int(const cJSON *v);

/* o (parsed from text, tlen bytes; text may be NULL: o was built here) as bytes, without the
 * members named in drop (a NULL-terminated list; may be NULL) and with the members of set (an
 * object; may be NULL), which replace any of the same name. text's bytes with set's members
 * appended where nothing in o changes (nothing of drop is present, or only o's first member,
 * a string written plainly: {"name":"value",); else o re-serialised once with the changes,
 * every copy of a dropped or replaced member gone. NUL-terminated; *len (may be NULL) without
 * the NUL; caller frees. NULL without memory. */
char *fields_forward(const cJSON *o, const char *text, size_t tlen, const char *const *drop,
		     const cJSON *set, size_t *len);

#endif
