/* session_int.h: what the two files of the session module share (session.c: the client's
 * state and every op but history; sesshist.c: history answers sent part by part). Nothing
 * outside them includes it; see session.h. */
#ifndef WEB_SESSION_INT_H
#define WEB_SESSION_INT_H

#include "session.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

struct csub;
struct pubwait;
struct hist;

struct session {
	struct client *c;
	const struct shim_deps *d;
	const struct user *user;          /* borrowed from the current users table */
	uint8_t token_hash[32];
	int auth_failures;
	int inflight;                     /* relay requests + subscriptions + publishes */
	bool detached;
	struct csub *subs;
	struct pubwait *pubs;
	struct hist *hists;
};

/* Sends and frees line; a NULL line (no memory) is dropped; nothing goes once detached. */
void session_send(struct session *s, cJSON *line);
void session_error(struct session *s, const cJSON *id, enum shim_err code, const char *msg);
/* Whether the session's user has home. */
bool session_home_ok(const struct session *s, const char *home);
/* Whether one more streaming request fits max_inflight; if not, answers id too_many. */
bool session_admit(struct session *s, const cJSON *id);

/* sesshist.c: the history op; answers still being sent go on when the client drains
 * (session_drained, session.h), are dropped silently when it is gone, end with forbidden when
 * their home is revoked. */
void session_history(struct session *s, const struct shim_req *r);
void session_history_drop(struct session *s);
void session_history_end_ungranted(struct session *s);

#endif
