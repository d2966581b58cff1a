/* command: the one parser for a command request, whether it came over a controller link
 * (LAN protocol "command" frame) or from MQTT (fr/<home>/ctl/<ctl>/cmd). Both carry the same
 * JSON object; see docs/lan-protocol.md and docs/topics.md. */
#ifndef FR_COMMAND_H
#define FR_COMMAND_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "name.h"

#define COMMAND_ID_MAX NAME_ID_LEN_MAX
#define COMMAND_NAME_MAX NAME_LEN_MAX
#define COMMAND_ARGS_MAX 32
#define COMMAND_ARG_LEN_MAX 1024
#define COMMAND_TOPIC_MAX 255
#define COMMAND_JSON_MAX 16384

struct command {
	char id[COMMAND_ID_MAX + 1];
	char action[COMMAND_NAME_MAX + 1];
	cJSON *args;           /* object name -> string value; owned (command_clear frees) */
	uint64_t timeout_ms;   /* 0 = the action's own timeout */
	int64_t deadline_ms;   /* unix ms; 0 = none */
	char reply_to[COMMAND_TOPIC_MAX + 1]; /* "" = none; MQTT only */
	bool final_only;       /* "progress": false -- only the final result is sent (mosquitto_rr) */
};

/* Fills c from a JSON object; numbers and booleans in args are turned into their JSON text so
 * actions always see strings. On error returns -EINVAL with why ("missing 'id'") and c cleared. */
int command_from_json(const cJSON *obj, struct command *c, char *why, size_t whylen);
int command_parse(const char *buf, size_t len, struct command *c, char *why, size_t whylen);
/* What a rejected request still tells (command_parse failed): its id and reply_to, each
 * copied only if buf is one JSON object whose value is valid ("" otherwise), so that the
 * refusal can name the id and reach the requester. */
void command_peek(const char *buf, size_t len, char id[COMMAND_ID_MAX + 1],
		  char reply_to[COMMAND_TOPIC_MAX + 1]);
/* A JSON object of c (without "type"); requester: with the field only an MQTT requester
 * sends (reply_to), else what a controller needs (lanmsg_command_new); "progress": false in
 * both when c->final_only. Caller owns. */
cJSON *command_to_json(const struct command *c, bool requester);
void command_clear(struct command *c);
/* cJSON ends a string at an escaped NUL ("a\u0000b" reads as "a", which could then pass an
 * argument's pattern), so NULs are found in the JSON text: the offset of the first \u0000
 * escape inside a string (key or value) of text, or -1. Meaningful for valid JSON only (parse
 * first). command_parse and the link's frame checks refuse such text. */
long command_json_nul(const char *text, size_t len);

#endif
