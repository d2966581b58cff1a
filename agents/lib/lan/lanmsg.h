/* lanmsg: the one module that builds and parses the link messages of LAN protocol v1 (hello,
 * command, accepted, started, result, event, bye, ping, pong; docs/lan-protocol.md,
 * "Messages"). Nobody else writes a link message's "type".
 *
 * Parsing is in two steps, as the document splits it. lanmsg_decode does the frame checks
 * every receiver makes (docs/lan-protocol.md, "Frames", 1-6: no NUL, UTF-8, one JSON object
 * with a string "type", a numeric "seq" in ping and pong); link.c drops the link when they
 * fail. The per-type functions (lanmsg_hello, lanmsg_command, lanmsg_progress, lanmsg_result,
 * lanmsg_event, lanmsg_bye) then check the fields of one type the way OpenBSD ntpd checks each
 * imsg: every field this version knows is looked at -- a required one missing, any of them
 * of the wrong JSON type or out of range, or given twice (two JSON parsers could disagree on
 * which copy counts) is an error, with the type and the field named in why ("result: field
 * 'status' missing"). Fields this version does not know are ignored: the document promises a
 * newer peer that much. What an error costs (the link, or only the message) is the caller's
 * decision, logged there once.
 *
 * Building returns a cJSON object with "type" first (caller owns it), serialised once by
 * whoever sends it; the hot paths (events, ping, pong) print into a caller's buffer.
 * lanmsg_forward passes a received message on as the bytes it arrived in. */
#ifndef FR_LANMSG_H
#define FR_LANMSG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct command;

#define LANMSG_PROTO 1   /* the hello "proto" this code speaks */

enum lanmsg_type {
	LANMSG_OTHER,        /* a type this version does not know: ignored by receivers */
	LANMSG_HELLO,
	LANMSG_COMMAND,
	LANMSG_ACCEPTED,
	LANMSG_STARTED,
	LANMSG_RESULT,
	LANMSG_EVENT,
	LANMSG_BYE,
	LANMSG_PING,
	LANMSG_PONG,
};

/* A received message. Filled by lanmsg_decode, which owns json until lanmsg_clear; text is
 * borrowed (the frame body), NULL for a message made here (lanmsg_wrap). */
struct lanmsg {
	enum lanmsg_type type;
	const char *type_name;   /* the "type" as sent; points into json */
	cJSON *json;
	const char *text;
	size_t len;
	bool owned;              /* json is freed by lanmsg_clear */
};

/* The frame checks of docs/lan-protocol.md, "Frames", on a body of len bytes (text[len] must
 * be readable and NUL: frame.c gives one). 0, or -EINVAL with why ("NUL byte in a 12-byte
 * frame"); on success m owns the parsed object, text is borrowed. */
int lanmsg_decode(struct lanmsg *m, const char *text, size_t len, char *why, size_t n);
/* A message built here (o borrowed), for code that handles received and own messages alike
 * (frMhs's replies). */
void lanmsg_wrap(struct lanmsg *m, const cJSON *o);
void lanmsg_clear(struct lanmsg *m);
const char *lanmsg_type_str(enum lanmsg_type t);

/* --- hello --- */

struct lanmsg_hello {
	int proto;
	bool controller;          /* role "controller", else "home" */
	const char *id;           /* controller: its id (required); home: optional ("frcmd") */
	const char *name;         /* controller: 1..127 bytes */
	const char *version;      /* 1..31 bytes */
	const char *boot;         /* controller: 32 lowercase hex digits */
	int port;                 /* controller: its link port, 1..65535 */
	const cJSON *actions;     /* controller: arrays of objects (announce's elements) */
	const cJSON *sensors;
};
/* Builds a hello (proto LANMSG_PROTO; version FR_VERSION when h->version is NULL; actions and
 * sensors copied). */
cJSON *lanmsg_hello_new(const struct lanmsg_hello *h);
/* -EPROTONOSUPPORT for a proto other than LANMSG_PROTO (why says which), -EINVAL for a bad
 * field. Strings point into m. */
int lanmsg_hello(const struct lanmsg *m, struct lanmsg_hello *h, char *why, size_t n);

/* --- command --- */

/* The link command of c: id, action, args, timeout, deadline (not MQTT's reply_to and
 * progress, which only the requester's side has a use for). */
cJSON *lanmsg_command_new(const struct command *c);
/* The command's fields (command.c's checks, the same as for an MQTT request) after this
 * module's: known fields once each. 0 (c filled; command_clear it), or -EINVAL with why and c
 * cleared but for c->id: the id where it could be read, "" otherwise (the refusal's "id"). */
int lanmsg_command(const struct lanmsg *m, struct command *c, char *why, size_t n);
/* text (a JSON object's bytes, unchecked) with "type":"command" put in front when it has no
 * "type": frcmd --raw sends what a test gives it byte for byte. NULL without memory. */
char *lanmsg_command_raw(const char *text);

/* --- accepted, started --- */

struct lanmsg_progress {
	const char *id;
	long pid;                 /* started: the process, 0 when not given (a duplicate) */
	bool duplicate;
};
cJSON *lanmsg_accepted_new(const char *id);
/* pid 0: none (a repeat of an id that is still running says duplicate instead). */
cJSON *lanmsg_started_new(const char *id, long pid, bool duplicate);
/* accepted or started (m->type says which). */
int lanmsg_progress(const struct lanmsg *m, struct lanmsg_progress *p, char *why, size_t n);

/* --- result --- */

struct lanmsg_result {
	const char *id;           /* NULL: "id": null, the command's id was unreadable */
	const char *action;       /* NULL: not given (refused before the action was known) */
	const char *status;       /* ok, failed, timeout, rejected, expired, busy, ... */
	const char *reason;       /* NULL: none */
	bool run;                 /* a run's fields follow (all of them are sent) */
	bool exited;              /* exit_code is a number, else null */
	int exit_code;
	int signal;               /* 0: null */
	uint64_t duration_ms;
	int64_t started_ms;       /* unix ms */
	const char *out, *err;    /* stdout, stderr tails (NULL: "") */
	bool out_truncated, err_truncated;
	bool unrecorded;          /* "recorded": false -- the id left no trace (docs) */
	bool duplicate;
};
cJSON *lanmsg_result_new(const struct lanmsg_result *r);
int lanmsg_result(const struct lanmsg *m, struct lanmsg_result *r, char *why, size_t n);

/* --- event --- */

struct lanmsg_event {
	const char *kind;         /* v1: "state" */
	const char *sensor;       /* state: the sensor's name */
	const cJSON *value;       /* state: a number or a string */
	int64_t ts_ms;            /* state: when it was read, unix ms */
};
/* A state event printed into buf: value_json is the value's JSON text (a number or a string,
 * as the sensor's reading gave it). Its length, or -EINVAL (sensor not a name), -EMSGSIZE. */
int lanmsg_event_state(char *buf, size_t n, const char *sensor, const char *value_json,
		       int64_t ts_ms);
int lanmsg_event(const struct lanmsg *m, struct lanmsg_event *e, char *why, size_t n);

/* --- bye --- */

cJSON *lanmsg_bye_new(const char *reason);
/* *reason: the reason given, NULL if none. */
int lanmsg_bye(const struct lanmsg *m, const char **reason, char *why, size_t n);

/* --- ping, pong (the link's own) --- */

/* Printed into buf: the length, or -EMSGSIZE. */
int lanmsg_ping(char *buf, size_t n, uint64_t seq);
/* The answer to ping m, with its seq. */
int lanmsg_pong(char *buf, size_t n, const struct lanmsg *ping);

/* --- passing a message on --- */

/* m as bytes, without the members named in drop (a NULL-terminated list; may be NULL) and
 * with the members of set (an object; may be NULL), which replace any of the same name: m's
 * own bytes with set's members appended, where nothing in m itself changes (nothing of drop
 * is present, or only "type", written first, as this module writes it); else m re-serialised
 * once with the changes. For passing a message on in another protocol (frMhs's MQTT replies
 * and events, docs/topics.md) without re-encoding a result's outputs. NUL-terminated; *len
 * (may be NULL) without the NUL; caller frees. NULL without memory. */
char *lanmsg_forward(const struct lanmsg *m, const char *const *drop, const cJSON *set,
		     size_t *len);

#endif
