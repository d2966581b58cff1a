/* mhc_int.h: what frMhc's files share -- the controller's state (main.c owns it: links, dials,
 * announces, shutdown, setup), and the functions each file offers the others: cmd.c (a command's
 * lifecycle: checks, journal, run, result), sensors.c (readings and their events), usage.c
 * (--help). Nothing outside agents/frMhc includes it. */
#ifndef MHC_INT_H
#define MHC_INT_H

#include "conf.h"
#include "command.h"
#include "backoff.h"
#include "loop.h"

#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct lanmsg;
struct link;
struct peerlimit;
struct peerlimit_slot;
struct runner;
struct runner_job;
struct journal;
struct link_ctx;
struct listener;

#define MHC_SENSOR_VALUE_MAX 256
/* An event: the value (a 256-byte string, escaped at most 6 times over) and the rest. */
#define MHC_EVENT_MAX (6 * MHC_SENSOR_VALUE_MAX + 256)

struct mhc;

struct peer {
	struct mhc *m;
	struct link *link;
	bool hello;      /* the peer said hello: commands are served after that */
	bool dialled;    /* the link to the configured home server */
	bool up;         /* the handshake completed: counted in nlinks */
	struct peerlimit_slot *slot;  /* accepted, handshake not done yet */
	struct peer *next;
};

/* A command admitted and written to the journal, waiting for the group commit (cmd.c). */
struct start {
	struct peer *p;   /* NULL once that peer is gone: the result still reaches every peer */
	const struct conf_action *action;
	int action_idx;
	char **argv;      /* owned; NULL for a builtin */
	uint64_t timeout_ms;
	bool final_only;  /* "progress": false: no accepted, no started, only the result */
	char id[COMMAND_ID_MAX + 1];
	struct start *next;
};

struct run {
	struct mhc *m;
	char id[COMMAND_ID_MAX + 1];
	const struct conf_action *action;
	int action_idx;
	uint64_t started_wall;
	struct run *next;
};

struct sensor {
	struct mhc *m;
	const struct conf_sensor *def;
	struct loop_timer timer;
	struct runner_job *job;
	char *value;     /* last value as JSON text; NULL until first reading */
	int64_t ts_ms;
	bool failing;
};

struct mhc {
	struct loop *loop;
	struct conf conf;
	uint8_t secret[32], announce_key[32];
	char boot[33];
	uint64_t seq;
	struct link_ctx *lctx;
	int lfd, ufd;
	struct listener *listener;
	uint16_t port;
	struct sockaddr_storage announce_to;
	struct loop_timer announce_timer;
	struct peer *peers;
	int nlinks;      /* peers whose handshake completed */
	struct peerlimit *pending;
	struct loop_timer home_timer;
	struct backoff home_backoff;   /* dials to the home server */
	struct runner *runner;
	struct journal *journal;
	struct run *runs;
	struct start *starts, **starts_tail;   /* waiting for the journal's flush, in order */
	int *running;    /* per action index */
	struct sensor *sensors;
	bool stopping;
	bool bye_sent;         /* stopping, every run reported: the links only flush now */
	struct loop_timer stop_timer;
	int exit_code;
};

/* main.c */
/* A message serialised once, to every peer that said hello. */
void mhc_broadcast(struct mhc *m, const char *text, size_t len);
/* Sends o (taken; NULL: nothing) to one peer. */
void mhc_send(struct peer *p, cJSON *o);
/* Stopping and nothing left running: the bye, then the exit. */
void mhc_maybe_exit(struct mhc *m);

/* cmd.c */
/* A command from a peer that said hello: checked, recorded, run; every answer sent. */
void cmd_serve(struct peer *p, const struct lanmsg *msg);
/* A refusal before any run, "recorded": false; id NULL: "id": null. */
void cmd_refuse(struct peer *p, const char *id, const char *status, const char *reason);
/* The journal's group commit (journal_durable_cb, arg m): the waiting commands start, or fail
 * unrecorded. */
void cmd_durable(void *arg, int rc);
/* p is being freed: its waiting commands will answer nobody but still run. */
void cmd_peer_gone(struct mhc *m, struct peer *p);
/* Teardown: frees the waiting commands without running them (the journal is closed first, so
 * their records read back as "lost"). */
void cmd_free_starts(struct mhc *m);

/* sensors.c */
/* Each sensor's first reading within 200 ms, then every interval. */
void sensors_start(struct mhc *m);
/* Stops the timers (a running reading still ends, through mhc_maybe_exit). */
void sensors_stop(struct mhc *m);
/* The current values, one event each, to a peer that just said hello. */
void sensors_send_current(struct mhc *m, struct link *l);
/* Frees the values (m->sensors itself is main.c's). */
void sensors_free(struct mhc *m);

/* usage.c */
void usage_print(FILE *f);

#endif
