/* topic: parsing of fr's MQTT topic names (docs/topics.md), shared by the agents so every
 * one of them splits "fr/<home>/ctl/<ctl>/<leaf...>" the same way and refuses the same
 * malformed names. Pure functions, fuzzed with the command payload parser. */
#ifndef FR_TOPIC_H
#define FR_TOPIC_H

#include <stddef.h>

#define TOPIC_NAME_MAX 63

enum topic_kind {
	TOPIC_OTHER = 0,     /* not an fr topic of this prefix, or malformed */
	TOPIC_HOME_STATUS,   /* fr/<home>/status */
	TOPIC_DISPLAY,       /* fr/<home>/display */
	TOPIC_CTL,           /* fr/<home>/ctl/<ctl>/<leaf>: leaf is "cmd", "info", "state/x", ... */
	TOPIC_REPLY,         /* fr/<home>/reply/<rest> */
};

struct topic {
	enum topic_kind kind;
	char home[TOPIC_NAME_MAX + 1];
	char ctl[TOPIC_NAME_MAX + 1];   /* TOPIC_CTL only */
	const char *leaf;               /* points into the parsed string: after "<ctl>/" or "reply/" */
};

/* Splits topic (NUL-terminated) for the given prefix ("fr"). Names must be
 * [A-Za-z0-9_-]{1,63}; a leaf must be non-empty. Returns the kind (TOPIC_OTHER when it does not
 * match); t->leaf borrows from topic. */
enum topic_kind topic_parse(const char *prefix, const char *topic, struct topic *t);
/* Copies the topic level that starts at s into out if it is a valid name; returns where the
 * level ends ('/' or the end of s), or NULL. */
const char *topic_level(const char *s, char out[TOPIC_NAME_MAX + 1]);

#endif
