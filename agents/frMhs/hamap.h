/* hamap: how a home's controllers look in Home Assistant (MQTT discovery), the pure half of
 * the ha module (hamap.c: platforms and payloads; hamapcfg.c: ids, topics and configs): which
 * HA platform fits an action (by its argument's pattern), the discovery config documents of
 * actions, sensors and the home server with their topics and ids, and the plain payload HA
 * publishes on an entity's command topic turned into the action's argument value. The mapping
 * is documented in docs/topics.md, "Home Assistant". No I/O: unit tested
 * per pattern (tests/unit/test_hamap.c) and fuzzed (tests/fuzz/fuzz_hamap.c).
 *
 *   arguments of the action                          platform  HA payload -> argument
 *   none; or several, every one with a default       button    PRESS -> (none / defaults)
 *   the one argument HA sets (see below) is a word
 *     list with an on/off pair, maybe "toggle"       switch    ON / OFF -> the pair's words
 *   ... another word list                            select    an option -> itself
 *   ... numeric (matches integers, no letters)       number    a number -> its decimal text
 *   ... anything else                                text      the text -> itself
 *   two or more arguments without a default          not exposed (logged)
 *
 * The argument HA sets is the action's only argument, or its only one without a default
 * (the others take their defaults).
 *
 * Ownership: a struct hamap_action owns its options (hamap_action_clear); every cJSON
 * returned belongs to the caller. */
#ifndef MHS_HAMAP_H
#define MHS_HAMAP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "command.h"

enum hamap_kind { HAMAP_NONE, HAMAP_BUTTON, HAMAP_SWITCH, HAMAP_SELECT, HAMAP_NUMBER, HAMAP_TEXT };

/* Longest payload HA may publish on a command topic (HA's text entity allows 255). */
#define HAMAP_PAYLOAD_MAX 255
/* Options of a select; a longer word list is not exposed. */
#define HAMAP_OPTIONS_MAX 64
/* A numeric pattern's range is looked for in [-HAMAP_NUMBER_LIMIT, HAMAP_NUMBER_LIMIT]: HA's
 * number entity needs finite bounds. */
#define HAMAP_NUMBER_LIMIT 9999
/* Buffers for topics and ids built here. */
#define HAMAP_TOPIC_MAX 512
#define HAMAP_ID_MAX 400

struct hamap_action {
	enum hamap_kind kind;
	char name[COMMAND_NAME_MAX + 1];   /* the action */
	char arg[COMMAND_NAME_MAX + 1];    /* the argument HA sets; "" for a button */
	char on[COMMAND_NAME_MAX + 1], off[COMMAND_NAME_MAX + 1];  /* switch: the pattern's pair */
	char toggle[COMMAND_NAME_MAX + 1]; /* switch: "toggle" if the pattern has it, else "" */
	char *def;                         /* arg's default; owned; NULL if it has none */
	cJSON *options;                    /* select: array of strings; owned */
	double min, max, step;             /* number */
	char why[200];                     /* HAMAP_NONE: why it is not exposed */
};

/* What every config needs to know: fr's topic prefix and the home, HA's discovery prefix,
 * and frMhs's version (the origin and the home server device). All borrowed. */
struct hamap_ctx {
	const char *prefix, *home, *discovery, *version;
};

/* Classifies one element of info's "actions" (docs/topics.md). Never fails: an action that
 * fits no platform is HAMAP_NONE with the reason in why. */
enum hamap_kind hamap_classify(const cJSON *action, struct hamap_action *a);
void hamap_action_clear(struct hamap_action *a);
const char *hamap_kind_name(enum hamap_kind k);   /* "button", ..., "none" */

/* The argument value for the plain payload HA published on the action's command topic
 * (len bytes, not NUL-terminated): 0 with value set ("" for a button), or -1 with why.
 * Refused: longer than HAMAP_PAYLOAD_MAX, NUL bytes, not UTF-8, and what the platform does
 * not send (anything but PRESS for a button, ON/OFF for a switch, an unknown option, a
 * malformed or out-of-range number). */
int hamap_value(const struct hamap_action *a, const char *payload, size_t len, char *value,
		size_t n, char *why, size_t whylen);
/* The state to publish after a successful run with argument value (NULL: the default was
 * used and is in value too), given the state published before (NULL if none): "ON"/"OFF"
 * for a switch (a toggle flips prev, and says nothing without it), the value for a select,
 * number or text (not a text longer than HA shows); NULL when there is nothing to say (a
 * button). */
const char *hamap_state(const struct hamap_action *a, const char *value, const char *prev);

/* A name as it appears inside an HA object id or unique id: "_" becomes "_-", so the
 * separator "__" never occurs inside a name and ids stay unique ("a_" + "b" and "a" + "_b"
 * differ). out needs 2 * strlen(name) + 1 bytes. */
void hamap_escape(const char *name, char *out, size_t n);
/* The inverse for "<ctl>__<name>" object ids: 0 with ctl and name set (each of size
 * COMMAND_NAME_MAX + 1), -1 if id is not one. */
int hamap_object_parse(const char *id, char *ctl, char *name);

/* Discovery configs of one controller (info as published on fr/<home>/ctl/<ctl>/info, acts its
 * classified actions): an object mapping each config topic to its document, or to null for a
 * sensor whose kind is not known yet (no unit or device class declared and no value seen:
 * numeric is an object sensor name -> true (a number was seen) / false (a string was)). */
cJSON *hamap_ctl_configs(const struct hamap_ctx *x, const char *ctl, const cJSON *info,
			 const struct hamap_action *acts, int nacts, const cJSON *numeric);
/* The home server's own device: a few diagnostic sensors read from fr/<home>/stats. */
cJSON *hamap_home_configs(const struct hamap_ctx *x);

/* fr/<home>/ha/<ctl>/<action>/<leaf>: the topic of an action's HA command ("set"), state,
 * attributes or HA-requested results. */
void hamap_action_topic(const struct hamap_ctx *x, const char *ctl, const char *action,
			const char *leaf, char *buf, size_t n);
/* Splits such a topic (any home): 0 with ctl, action (COMMAND_NAME_MAX + 1 each) and *leaf
 * (borrowed from topic) set, -1 if it is not one. */
int hamap_topic_parse(const struct hamap_ctx *x, const char *topic, char *ctl, char *action,
		      const char **leaf);
/* <discovery>/+/fr_<home>/+/config: the filter of every config of this home. */
void hamap_config_filter(const struct hamap_ctx *x, char *buf, size_t n);
/* Whether topic is a config of this home (<discovery>/<component>/fr_<home>/<object>/config);
 * object (HAMAP_ID_MAX) is set. */
bool hamap_config_topic_parse(const struct hamap_ctx *x, const char *topic, char *object);

#endif
