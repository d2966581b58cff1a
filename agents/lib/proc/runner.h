/* runner: runs actions and sensor readings as child processes (never through a shell) inside
 * the agent's event loop, each in its own session, with a timeout, SIGTERM -> SIGKILL
 * escalation on the whole process group, and a bounded tail of stdout and stderr. */
#ifndef FR_RUNNER_H
#define FR_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;

/* One per process: it owns SIGCHLD (registered with loop_signal_add) and reaps every child of
 * the process with waitpid(-1); children it did not start are reaped and ignored. */
struct runner;
/* Owned by the runner; valid from runner_start until its done callback returns. */
struct runner_job;

struct runner_spec {
	char *const *argv;   /* argv[0] is a path; without a '/' it is searched in the child's PATH.
				Borrowed for the call only. */
	char *const *envp;   /* NULL = minimal environment (PATH=/usr/local/bin:/usr/bin:/bin,
				LANG=C.UTF-8). Borrowed for the call only. */
	const char *cwd;     /* NULL = inherit. Borrowed for the call only. */
	uint64_t timeout_ms; /* 0 = none */
	uint64_t grace_ms;   /* SIGTERM -> SIGKILL delay; 0 = RUNNER_GRACE_MS */
	size_t tail_max;     /* bytes of each stream kept (the last ones); 0 = RUNNER_TAIL_MAX */
};

#define RUNNER_GRACE_MS 2000
#define RUNNER_TAIL_MAX 4096
/* Larger tail_max values are refused with -EINVAL. */
#define RUNNER_TAIL_LIMIT (16u * 1024 * 1024)

enum runner_status {
	RUNNER_EXITED,
	RUNNER_SIGNALED,
	RUNNER_TIMEOUT,
	RUNNER_KILLED,       /* runner_kill */
	RUNNER_SPAWN_FAILED,
};

struct runner_result {
	enum runner_status status;
	int exit_code;       /* RUNNER_EXITED (also TIMEOUT/KILLED when the leader exited by itself
				after SIGTERM) */
	int signal;          /* RUNNER_SIGNALED, or the signal that finally ended a TIMEOUT/KILLED run */
	int spawn_errno;     /* RUNNER_SPAWN_FAILED: ENOENT, EACCES, ... (exec or chdir errno) */
	uint64_t duration_ms;
	/* Borrowed for the callback only; NUL-terminated; the last tail_max bytes of each stream. */
	const char *out;
	size_t out_len;
	bool out_truncated;
	const char *err;
	size_t err_len;
	bool err_truncated;
	pid_t pid;           /* 0 for RUNNER_SPAWN_FAILED */
};

/* res and everything it points to are valid only during the call. The callback may call
 * runner_start, runner_kill and runner_kill_all, but not runner_free. */
typedef void (*runner_done_cb)(void *arg, const struct runner_result *res);

/* Registers the SIGCHLD handler on loop. Returns NULL on allocation failure (logged). */
struct runner *runner_new(struct loop *loop);
/* Kills (SIGKILL) every running group and reaps the leaders synchronously, without calling
 * callbacks. Call before loop_free. NULL is a no-op. */
void runner_free(struct runner *r);
/* Returns the job, or NULL with *err = -errno (-EINVAL for a bad spec, -ENOMEM, -EMFILE...)
 * and no callback. When a job is returned, cb is called exactly once later from the loop, never
 * from inside runner_start, also for RUNNER_SPAWN_FAILED. */
struct runner_job *runner_start(struct runner *r, const struct runner_spec *spec, runner_done_cb cb,
				void *arg, int *err);
/* 0 when the spawn failed. */
pid_t runner_job_pid(const struct runner_job *job);
/* SIGTERM to the group now, SIGKILL after grace; the callback reports RUNNER_KILLED (or
 * RUNNER_TIMEOUT if the timeout already fired). No-op for a job whose leader already ended,
 * also when its exit was not collected yet: the callback reports that exit. Likewise a timeout
 * that is handled after the leader ended by itself (the loop was held up) reports the exit. */
void runner_kill(struct runner *r, struct runner_job *job);
void runner_kill_all(struct runner *r);
/* Jobs whose callback has not run yet. */
size_t runner_count(const struct runner *r);
/* A static string. */
const char *runner_status_str(enum runner_status s);

#endif
