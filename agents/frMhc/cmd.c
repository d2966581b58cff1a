/* cmd.c: a command's lifecycle on the controller -- the checks of docs/lan-protocol.md
 * (command) in order, the journal before the spawn, the run, and its one result, serialised
 * once and sent to every peer.
 *
 * A command with "progress": false gets no accepted and no started: only its result crosses
 * the link (docs/lan-protocol.md, command).
 *
 * The journal before the spawn is a group commit: an admitted command is answered accepted,
 * its start record written, and it waits on m->starts; at the end of the loop iteration one
 * flush covers every record written in it, and cmd_durable starts them all (or fails them all,
 * unrecorded, as a failed flush of one record used to). */
#include "mhc_int.h"

#include "journal.h"
#include "lanmsg.h"
#include "link.h"
#include "log.h"
#include "runner.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A refusal before any run: it left no trace in the journal, so the home server must not keep
 * it as the id's outcome (docs/lan-protocol.md, result: "recorded": false). id NULL: null. */
void cmd_refuse(struct peer *p, const char *id, const char *status, const char *reason)
{
	struct lanmsg_result r = { .id = id, .status = status, .reason = reason, .unrecorded = true };
	mhc_send(p, lanmsg_result_new(&r));
}

/* A final result (o taken): serialised once, journalled, sent to every peer. */
static void cmd_final(struct mhc *m, const char *id, cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text) {
		log_warnx("command %s: no memory for its result", id);
		return;
	}
	journal_finished(m->journal, id, text);
	mhc_broadcast(m, text, strlen(text));
	free(text);
}

/* --- commands --- */

static void cmd_run_done(void *arg, const struct runner_result *res);

/* Accepted, written to the journal, queued for the group commit: the action's run slot is
 * taken now, so the commands of one iteration cannot together exceed max_running. argv is
 * taken (NULL for a builtin). */
static void cmd_admit(struct peer *p, const struct command *c, const struct conf_action *a,
		      char **argv)
{
	struct mhc *m = p->m;
	if (!c->final_only)
		mhc_send(p, lanmsg_accepted_new(c->id));
	struct start *s = calloc(1, sizeof *s);
	if (!s || journal_started(m->journal, c->id) < 0) {
		cmd_refuse(p, c->id, "failed", "could not record the command durably");
		conf_argv_free(argv);
		free(s);
		return;
	}
	s->p = p;
	s->action = a;
	s->action_idx = (int)(a - m->conf.actions);
	s->argv = argv;
	s->timeout_ms = a->timeout_ms;
	/* A caller may shorten the configured timeout, never extend it. */
	if (c->timeout_ms && c->timeout_ms < s->timeout_ms)
		s->timeout_ms = c->timeout_ms;
	s->final_only = c->final_only;
	strcpy(s->id, c->id);
	m->running[s->action_idx]++;
	*m->starts_tail = s;
	m->starts_tail = &s->next;
}

/* A builtin completes at once, without a process, but with the same records and replies. */
static void cmd_builtin_run(struct mhc *m, struct start *s)
{
	/* The pid of the process it runs in, frMhc's own: a started without one is not valid
	 * (docs/lan-protocol.md), and was dropped by every receiver. */
	if (s->p && !s->final_only)
		mhc_send(s->p, lanmsg_started_new(s->id, (long)getpid(), false));
	struct lanmsg_result r = { .id = s->id, .action = s->action->name, .status = "ok",
				   .run = true, .exited = true,
				   .started_ms = (int64_t)loop_wall_ms() };
	cmd_final(m, s->id, lanmsg_result_new(&r));
}

/* Its start record is durable: the action runs now. */
static void cmd_run(struct mhc *m, struct start *s)
{
	char why[256];
	const struct conf_action *a = s->action;

	if (m->stopping) {
		/* Recorded, so it gets a recorded outcome: the one a shutdown gives a run. */
		struct lanmsg_result r = { .id = s->id, .action = a->name, .status = "failed",
					   .reason = "stopped: the controller is shutting down" };
		cmd_final(m, s->id, lanmsg_result_new(&r));
		return;
	}
	if (a->builtin) {
		cmd_builtin_run(m, s);
		return;
	}
	struct run *run = calloc(1, sizeof *run);
	if (!run) {
		struct lanmsg_result r = { .id = s->id, .action = a->name, .status = "failed",
					   .reason = "could not start: out of memory" };
		cmd_final(m, s->id, lanmsg_result_new(&r));
		return;
	}
	run->m = m;
	run->action = a;
	run->action_idx = s->action_idx;
	run->started_wall = loop_wall_ms();
	strcpy(run->id, s->id);
	struct runner_spec spec = { .argv = s->argv, .timeout_ms = s->timeout_ms,
				    .grace_ms = a->grace_ms };
	int err = 0;
	struct runner_job *job = runner_start(m->runner, &spec, cmd_run_done, run, &err);
	if (!job) {
		snprintf(why, sizeof why, "could not start: %s", strerror(-err));
		log_warnx("command %s (%s): %s", s->id, a->name, why);
		struct lanmsg_result r = { .id = s->id, .action = a->name, .status = "failed",
					   .reason = why };
		cmd_final(m, s->id, lanmsg_result_new(&r));
		free(run);
		return;
	}
	m->running[s->action_idx]++;   /* cmd_run_done gives it back */
	run->next = m->runs;
	m->runs = run;
	log_info("command %s: %s started, pid %d", s->id, a->name, (int)runner_job_pid(job));
	if (s->p && !s->final_only)
		mhc_send(s->p, lanmsg_started_new(s->id, (long)runner_job_pid(job), false));
}

void cmd_durable(void *arg, int rc)
{
	struct mhc *m = arg;
	/* Every command on the list was written before the flush: all of them are covered (no
	 * command arrives while this runs). Each leaves the list only when it is handled, so a
	 * peer freed meanwhile is still forgotten by the ones after it (cmd_peer_gone). */
	struct start *s;
	while ((s = m->starts)) {
		m->starts = s->next;
		if (!m->starts)
			m->starts_tail = &m->starts;
		m->running[s->action_idx]--;   /* the admission's slot; a run takes its own */
		if (rc < 0) {
			if (s->p)
				cmd_refuse(s->p, s->id, "failed", "could not record the command durably");
		} else {
			cmd_run(m, s);
		}
		conf_argv_free(s->argv);
		free(s);
	}
	mhc_maybe_exit(m);
}

void cmd_peer_gone(struct mhc *m, struct peer *p)
{
	for (struct start *s = m->starts; s; s = s->next)
		if (s->p == p)
			s->p = NULL;
}

void cmd_free_starts(struct mhc *m)
{
	while (m->starts) {
		struct start *s = m->starts;
		m->starts = s->next;
		conf_argv_free(s->argv);
		free(s);
	}
	m->starts_tail = &m->starts;
}

/* A repeat of an id the journal holds: its result again, marked duplicate, to this peer. */
static void cmd_repeat(struct peer *p, const char *id, const char *stored)
{
	static const char *const drop[] = { "duplicate", NULL };
	struct lanmsg was;
	char why[200];
	if (lanmsg_decode(&was, stored, strlen(stored), why, sizeof why) < 0) {
		/* Still never run again: what a repeat of a running id gets. */
		log_warnx("command %s: journalled result unreadable (%s); answered started", id, why);
		mhc_send(p, lanmsg_started_new(id, 0, true));
		return;
	}
	cJSON *dup = cJSON_CreateObject();
	cJSON_AddTrueToObject(dup, "duplicate");
	size_t len;
	char *text = lanmsg_forward(&was, drop, dup, &len);
	if (text)
		link_send_raw(p->link, text, len);
	free(text);
	cJSON_Delete(dup);
	lanmsg_clear(&was);
}

void cmd_serve(struct peer *p, const struct lanmsg *msg)
{
	struct mhc *m = p->m;
	struct command c;
	char why[256];

	if (lanmsg_command(msg, &c, why, sizeof why) < 0) {
		log_warnx("command from %s rejected: %s", link_peer_addr(p->link), why);
		cmd_refuse(p, c.id[0] ? c.id : NULL, "rejected", why);
		return;
	}
	const char *stored = NULL;
	switch (journal_lookup(m->journal, c.id, &stored)) {
	case JOURNAL_RUNNING:
		/* A redelivery while it runs: acknowledge; the result reaches every peer. */
		log_info("command %s: repeated while running, not run again", c.id);
		if (!c.final_only)
			mhc_send(p, lanmsg_started_new(c.id, 0, true));
		goto out;
	case JOURNAL_DONE:
		log_info("command %s: repeated after it ended, answered from the journal", c.id);
		cmd_repeat(p, c.id, stored);
		goto out;
	case JOURNAL_NONE:
		break;
	}
	if (c.deadline_ms && (int64_t)loop_wall_ms() > c.deadline_ms) {
		log_info("command %s (%s): deadline passed, not run", c.id, c.action);
		cmd_refuse(p, c.id, "expired", "the command's deadline had passed");
		goto out;
	}
	const struct conf_action *a = conf_action_find(&m->conf, c.action);
	if (!a) {
		log_info("command %s: unknown action '%s'", c.id, c.action);
		snprintf(why, sizeof why, "no action '%s' on %s", c.action, m->conf.id);
		cmd_refuse(p, c.id, "unknown_action", why);
		goto out;
	}
	int idx = (int)(a - m->conf.actions);
	if (a->builtin) {
		if (cJSON_GetArraySize(c.args) > 0)
			cmd_refuse(p, c.id, "rejected", "a builtin takes no args");
		else
			cmd_admit(p, &c, a, NULL);
		goto out;
	}
	char **argv = NULL;
	if (conf_action_argv(a, c.args, &argv, why, sizeof why) < 0) {
		log_info("command %s (%s) rejected: %s", c.id, c.action, why);
		cmd_refuse(p, c.id, "rejected", why);
		goto out;
	}
	if (m->running[idx] >= a->max_running) {
		log_info("command %s (%s): busy, %d already running", c.id, c.action, m->running[idx]);
		snprintf(why, sizeof why, "action '%s' already runs %d time(s), its limit", a->name,
			 m->running[idx]);
		cmd_refuse(p, c.id, "busy", why);
		conf_argv_free(argv);
		goto out;
	}
	cmd_admit(p, &c, a, argv);
out:
	command_clear(&c);
}

static void cmd_run_done(void *arg, const struct runner_result *res)
{
	struct run *run = arg;
	struct mhc *m = run->m;
	const char *status = "failed";
	char reason[160] = "";

	switch (res->status) {
	case RUNNER_EXITED:
		status = res->exit_code == 0 ? "ok" : "failed";
		if (res->exit_code)
			snprintf(reason, sizeof reason, "exit code %d", res->exit_code);
		break;
	case RUNNER_SIGNALED:
		snprintf(reason, sizeof reason, "killed by signal %d (%s)", res->signal,
			 strsignal(res->signal));
		break;
	case RUNNER_TIMEOUT:
		status = "timeout";
		snprintf(reason, sizeof reason, "no result within the timeout; process group killed");
		break;
	case RUNNER_KILLED:
		snprintf(reason, sizeof reason, "stopped: the controller is shutting down");
		break;
	case RUNNER_SPAWN_FAILED:
		snprintf(reason, sizeof reason, "could not start %s: %s", run->action->argv[0],
			 strerror(res->spawn_errno));
		break;
	}
	struct lanmsg_result r = {
		.id = run->id, .action = run->action->name, .status = status, .run = true,
		.exited = res->status == RUNNER_EXITED ||
			  (res->status != RUNNER_SPAWN_FAILED && !res->signal),
		.exit_code = res->exit_code, .signal = res->signal, .duration_ms = res->duration_ms,
		.started_ms = (int64_t)run->started_wall, .out = res->out, .err = res->err,
		.out_truncated = res->out_truncated, .err_truncated = res->err_truncated,
		.reason = reason[0] ? reason : NULL,
	};
	cmd_final(m, run->id, lanmsg_result_new(&r));
	log_info("command %s: %s ended: %s%s%s (%llu ms)", run->id, run->action->name, status,
		 reason[0] ? ", " : "", reason, (unsigned long long)res->duration_ms);

	m->running[run->action_idx]--;
	for (struct run **pp = &m->runs; *pp; pp = &(*pp)->next)
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	free(run);
	mhc_maybe_exit(m);
}
