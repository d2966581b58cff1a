/* hamap_int.h: what the two files of the hamap module share (hamap.c: platforms and payloads;
 * hamapcfg.c: ids, topics and discovery configs). Nothing outside them includes it; see
 * hamap.h. */
#ifndef MHS_HAMAP_INT_H
#define MHS_HAMAP_INT_H

#include "hamap.h"

/* The payloads HA's switch and button send (their platform defaults, also written into the
 * configs so nothing depends on a default). */
#define HAMAP_ON "ON"
#define HAMAP_OFF "OFF"
#define HAMAP_PRESS "PRESS"

/* The string member key of o, or NULL (borrowed from o). */
const char *hamap_str(const cJSON *o, const char *key);

#endif
