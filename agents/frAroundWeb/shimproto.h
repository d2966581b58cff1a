/* shimproto: the shim protocol's wire messages (docs/shim.md): the request parser (one NDJSON
 * line in, one validated struct shim_req out, or an error code and message) and the builders of
 * every response line. Pure: no I/O, no globals, so it can be fuzzed. Also the topic checks
 * that decide which home a topic or filter belongs to.
 *
 * Ownership: shim_req.root is owned by the request (shimproto_free); every other pointer in it
 * (id, strings, payload, args) is borrowed from root. The builders return new objects the
 * caller owns (NULL when out of memory). */
#ifndef WEB_SHIMPROTO_H
#define WEB_SHIMPROTO_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHIM_TOKEN_MAX 1024
#define SHIM_TOPIC_MAX 1024
#define SHIM_ID_STR_MAX 128
#define SHIM_NAME_MAX 63
#define SHIM_AUDIT_LIMIT_MAX 1000
#define SHIM_WAIT_MAX_S 3600.0
/* history: points per answer (a year of 5-minute buckets is 105120) and the default. */
#define SHIM_HISTORY_POINTS_MAX 200000
#define SHIM_HISTORY_POINTS_DEFAULT 1000
#define SHIM_HISTORY_RANGE_DEFAULT_MS (24LL * 3600 * 1000)

enum shim_op {
	SHIM_OP_AUTH, SHIM_OP_PING, SHIM_OP_PUBLISH, SHIM_OP_GET, SHIM_OP_LIST, SHIM_OP_REQUEST,
	SHIM_OP_SUBSCRIBE, SHIM_OP_UNSUBSCRIBE, SHIM_OP_AUDIT, SHIM_OP_HISTORY, SHIM_OP_COUNT
};

enum shim_err {
	SHIM_OK = 0, SHIM_E_BAD_REQUEST, SHIM_E_AUTH, SHIM_E_FORBIDDEN, SHIM_E_NOT_FOUND,
	SHIM_E_OFFLINE, SHIM_E_TIMEOUT, SHIM_E_TOO_MANY, SHIM_E_TOO_LONG, SHIM_E_INTERNAL,
	SHIM_E_COUNT
};

struct shim_req {
	cJSON *root;            /* owned */
	const cJSON *id;        /* a string, or a raw item with an integer's text: echoed verbatim */
	enum shim_op op;
	const char *token;      /* auth */
	const char *topic;      /* publish, get */
	const cJSON *payload;   /* publish: string or any JSON value */
	int qos;                /* publish, default 1 */
	bool retain;            /* publish, default false */
	const char *home;       /* list (NULL = all granted), request, history */
	const char *ctl, *action;           /* request; ctl also history */
	const char *sensor;     /* history */
	int64_t from_ms, to_ms; /* history: -1 = not given */
	long max_points;        /* history, default SHIM_HISTORY_POINTS_DEFAULT */
	const cJSON *args;      /* request: object or NULL */
	double timeout_s;       /* request: 0 = not given */
	double deadline_s;      /* request: 0 = not given */
	double wait_s;          /* request: always set (default timeout+5, else 30) */
	const char *filter;     /* subscribe */
	const cJSON *sub;       /* unsubscribe: the id of the subscribe request (as id) */
	int limit;              /* audit, default 50 */
};

/* Parses one line (without its newline; need not be NUL-terminated). Returns SHIM_OK and fills
 * r, or an error code with a message in why; then r->root may still hold the parsed document
 * and r->id the id when it was readable (NULL otherwise): call shimproto_free either way. */
enum shim_err shimproto_parse(const char *line, size_t len, struct shim_req *r, char *why,
			      size_t whylen);
void shimproto_free(struct shim_req *r);

const char *shimproto_op_name(enum shim_op op);
const char *shimproto_err_name(enum shim_err e);

/* If topic is "<prefix>/<home>/..." with a valid home name and at least one level after it,
 * copies the home into home (SHIM_NAME_MAX+1 bytes) and returns true. With filter, wildcards
 * are allowed after the home level ('+' a whole level, '#' only as the whole last level);
 * without, no wildcard anywhere. Empty levels are refused. */
bool shimproto_topic_home(const char *prefix, const char *topic, bool filter, char *home);
/* The topics a user may publish to (what the broker ACL allows): <prefix>/<home>/ctl/<ctl>/cmd
 * with retain false, and <prefix>/<home>/display. */
bool shimproto_publish_allowed(const char *prefix, const char *topic, bool retain);
/* MQTT filter matching ('+' and '#'). */
bool shimproto_topic_match(const char *filter, const char *topic);

/* Response lines. id NULL gives "id": null (an unreadable request). */
cJSON *shimproto_line(const cJSON *id);                 /* {"id":..} */
cJSON *shimproto_ok(const cJSON *id);                   /* {"id":..,"ok":true} */
cJSON *shimproto_error(const cJSON *id, enum shim_err code, const char *msg);
cJSON *shimproto_event(const cJSON *id, const char *event);   /* {"id":..,"event":..} */
/* A message payload: the JSON value when the whole payload is one, else a string. */
cJSON *shimproto_payload(const void *p, size_t len);

#endif
