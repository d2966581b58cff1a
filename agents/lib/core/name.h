/* name: the one check of fr's names. Homes, controllers, actions, sensors and arguments are
 * [A-Za-z0-9_-]{1,63}, so each is one MQTT topic level without wildcards and one TLS PSK
 * identity (docs/topics.md, docs/lan-protocol.md); command ids may also carry '.' and ':' so
 * UUIDs and "client:counter" ids fit. */
#ifndef FR_NAME_H
#define FR_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_LEN_MAX 63      /* a name's longest */
#define NAME_ID_LEN_MAX 64   /* a command id's longest */

/* s (NUL-terminated, may be NULL) is 1..max characters of [A-Za-z0-9_-]. */
bool name_valid(const char *s, size_t max);
/* The same for n bytes that need not end in a NUL (a NUL among them is invalid). */
bool name_valid_n(const char *s, size_t n, size_t max);
/* s is a command id: 1..max characters of [A-Za-z0-9_.:-]. */
bool name_valid_id(const char *s, size_t max);

#endif
