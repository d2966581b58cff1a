/* runner: child processes under a timeout watchdog in the agent's loop; see runner.h. */
#include "runner.h"
#include "tail.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* After the leader is reaped the rest of the group is SIGKILLed, so EOF follows at once; a
 * member that left the group (setsid) could hold a pipe forever, hence this bound. */
#define RUNNER_DRAIN_MS 500
/* Per readiness event, so one chatty child cannot starve the loop (epoll is level-triggered). */
#define RUNNER_READ_BUDGET (64 * 1024)

#define RUNNER_MIN_PATH "/usr/local/bin:/usr/bin:/bin"

static char *runner_min_env[] = { "PATH=" RUNNER_MIN_PATH, "LANG=C.UTF-8", NULL };

struct runner_stream {
	int fd;            /* read end, -1 after EOF */
	struct tail tail;
};

struct runner_job {
	struct runner *r;
	struct runner_job *prev, *next;
	runner_done_cb cb;
	void *arg;
	pid_t pid;
	int spawn_errno;
	bool reaped;
	bool term_sent;
	bool done;             /* the callback is running: kill requests are ignored */
	int wstatus;
	enum runner_status reason;   /* RUNNER_EXITED, or TIMEOUT/KILLED once we decided to stop it */
	uint64_t grace_ms;
	uint64_t start_ms;
	struct loop_timer t_kill;    /* timeout, then grace */
	struct loop_timer t_drain;   /* bounds the wait for the pipes after the reap */
	struct loop_defer d_failed;  /* delivers a spawn failure, never from inside runner_start */
	struct runner_stream out, err;
};

struct runner {
	struct loop *loop;
	struct runner_job *jobs;
	size_t count;
};

static uint64_t runner_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *runner_status_str(enum runner_status s)
{
	switch (s) {
	case RUNNER_EXITED: return "exited";
	case RUNNER_SIGNALED: return "signaled";
	case RUNNER_TIMEOUT: return "timeout";
	case RUNNER_KILLED: return "killed";
	case RUNNER_SPAWN_FAILED: return "spawn-failed";
	}
	return "unknown";
}

size_t runner_count(const struct runner *r) { return r->count; }
pid_t runner_job_pid(const struct runner_job *job) { return job->pid; }

/* --- output (tail.c keeps its last bytes) --- */

static void stream_close(struct runner *r, struct runner_stream *s)
{
	if (s->fd < 0)
		return;
	loop_io_del(r->loop, s->fd);
	close(s->fd);
	s->fd = -1;
}

/* Reads up to budget bytes; returns true at EOF (or a read error, logged). */
static bool stream_read(struct runner_job *job, struct runner_stream *s, size_t budget)
{
	char tmp[16384];

	while (budget > 0) {
		ssize_t n = read(s->fd, tmp, sizeof tmp < budget ? sizeof tmp : budget);
		if (n > 0) {
			tail_append(&s->tail, tmp, (size_t)n);
			budget -= (size_t)n;
			continue;
		}
		if (n == 0)
			return true;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return false;
		log_warn("runner: read output of pid %d", (int)job->pid);
		return true;
	}
	return false;
}

/* --- completion --- */

static void job_unlink(struct runner *r, struct runner_job *job)
{
	if (job->prev)
		job->prev->next = job->next;
	else
		r->jobs = job->next;
	if (job->next)
		job->next->prev = job->prev;
	job->prev = job->next = NULL;
	r->count--;
}

static void job_release(struct runner *r, struct runner_job *job)
{
	loop_timer_stop(r->loop, &job->t_kill);
	loop_timer_stop(r->loop, &job->t_drain);
	loop_defer_cancel(r->loop, &job->d_failed);
	stream_close(r, &job->out);
	stream_close(r, &job->err);
	tail_free(&job->out.tail);
	tail_free(&job->err.tail);
	free(job);
}

static void job_finish(struct runner_job *job)
{
	struct runner *r = job->r;
	struct runner_result res = { 0 };

	loop_timer_stop(r->loop, &job->t_kill);
	loop_timer_stop(r->loop, &job->t_drain);
	loop_defer_cancel(r->loop, &job->d_failed);
	stream_close(r, &job->out);
	stream_close(r, &job->err);
	job_unlink(r, job);
	job->done = true;

	res.pid = job->pid;
	res.duration_ms = runner_mono_ms() - job->start_ms;
	res.out = tail_str(&job->out.tail);
	res.out_len = tail_len(&job->out.tail);
	res.out_truncated = tail_truncated(&job->out.tail);
	res.err = tail_str(&job->err.tail);
	res.err_len = tail_len(&job->err.tail);
	res.err_truncated = tail_truncated(&job->err.tail);
	if (job->spawn_errno) {
		res.status = RUNNER_SPAWN_FAILED;
		res.spawn_errno = job->spawn_errno;
	} else {
		if (WIFEXITED(job->wstatus)) {
			res.status = RUNNER_EXITED;
			res.exit_code = WEXITSTATUS(job->wstatus);
		} else {
			res.status = RUNNER_SIGNALED;
			res.signal = WTERMSIG(job->wstatus);
		}
		if (job->reason != RUNNER_EXITED)
			res.status = job->reason;
	}
	log_debug("runner: pid %d %s (code %d, signal %d) after %llu ms", (int)res.pid,
		  runner_status_str(res.status), res.exit_code, res.signal,
		  (unsigned long long)res.duration_ms);
	job->cb(job->arg, &res);
	job_release(r, job);
}

static void job_maybe_finish(struct runner_job *job)
{
	if (job->reaped && job->out.fd < 0 && job->err.fd < 0)
		job_finish(job);
}

static void job_on_output(void *arg, int fd, uint32_t events)
{
	struct runner_job *job = arg;
	struct runner_stream *s = fd == job->out.fd ? &job->out : &job->err;
	(void)events;

	if (stream_read(job, s, RUNNER_READ_BUDGET)) {
		stream_close(job->r, s);
		job_maybe_finish(job);
	}
}

static void job_on_drain(void *arg)
{
	struct runner_job *job = arg;

	/* Whatever is still buffered in the pipes; a writer that escaped the group may keep
	 * going, so bound it. */
	if (job->out.fd >= 0)
		stream_read(job, &job->out, 16 * RUNNER_READ_BUDGET);
	if (job->err.fd >= 0)
		stream_read(job, &job->err, 16 * RUNNER_READ_BUDGET);
	log_warnx("runner: pid %d: output still open %d ms after exit, a process left its group",
		  (int)job->pid, RUNNER_DRAIN_MS);
	job_finish(job);
}

static void job_on_failed(void *arg) { job_finish(arg); }

/* --- reaping --- */

static struct runner_job *runner_find(struct runner *r, pid_t pid)
{
	for (struct runner_job *job = r->jobs; job; job = job->next)
		if (job->pid == pid && !job->reaped && !job->spawn_errno)
			return job;
	return NULL;
}

/* Collects the exit of pid, which has exited (a zombie): the rest of its group is SIGKILLed
 * while the zombie still pins the group id, then it is reaped. May finish (and free) its job. */
static void runner_collect(struct runner *r, pid_t pid)
{
	struct runner_job *job = runner_find(r, pid);
	if (job)
		kill(-pid, SIGKILL);
	int st = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (w != pid || !job)
		return;
	job->reaped = true;
	job->wstatus = st;
	loop_timer_stop(r->loop, &job->t_kill);
	if (job->out.fd >= 0 || job->err.fd >= 0)
		loop_timer_start(r->loop, &job->t_drain, RUNNER_DRAIN_MS);
	job_maybe_finish(job);
}

/* True if the leader has exited but its SIGCHLD was not handled yet: the loop was held up
 * (the agent stopped by SIGSTOP, or busy) and the timer or a kill request comes first. The
 * process ended by itself before anyone acted, so its exit is the verdict (docs/lan-protocol.md,
 * result). */
static bool job_exited(const struct runner_job *job)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)job->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return false;
	return si.si_pid == job->pid;
}

/* --- stopping --- */

/* The group id is the leader's pid; only used while the leader is unreaped (a zombie at worst),
 * so the id cannot have been reused. */
static void job_term(struct runner_job *job)
{
	job->term_sent = true;
	kill(-job->pid, SIGTERM);
	/* A stopped process would never act on SIGTERM. */
	kill(-job->pid, SIGCONT);
	loop_timer_start(job->r->loop, &job->t_kill, job->grace_ms);
}

static void job_on_timer(void *arg)
{
	struct runner_job *job = arg;

	if (!job->term_sent) {
		if (job_exited(job)) {
			log_debug("runner: pid %d exited before its timeout was handled", (int)job->pid);
			runner_collect(job->r, job->pid);
			return;
		}
		job->reason = RUNNER_TIMEOUT;
		log_debug("runner: pid %d timed out, SIGTERM to its group", (int)job->pid);
		job_term(job);
	} else {
		log_debug("runner: pid %d still there after grace, SIGKILL to its group", (int)job->pid);
		kill(-job->pid, SIGKILL);
	}
}

void runner_kill(struct runner *r, struct runner_job *job)
{
	(void)r;
	if (job->done || job->spawn_errno || job->reaped || job->term_sent)
		return;
	/* Not collected here: runner_kill_all walks the job list, and the pending SIGCHLD reports
	 * the exit as it was. */
	if (job_exited(job))
		return;
	job->reason = RUNNER_KILLED;
	job_term(job);
}

void runner_kill_all(struct runner *r)
{
	for (struct runner_job *job = r->jobs; job; job = job->next)
		runner_kill(r, job);
}

static void runner_on_sigchld(void *arg, const struct signalfd_siginfo *ssi)
{
	struct runner *r = arg;
	(void)ssi;

	/* SIGCHLDs coalesce: reap everything that is ready. WNOWAIT first, so the group is killed
	 * while the zombie leader still pins its pid (and thus the group id). */
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != ECHILD)
				log_warn("runner: waitid");
			return;
		}
		if (si.si_pid == 0)
			return;
		runner_collect(r, si.si_pid);
	}
}

/* --- starting --- */

static const char *env_path(char *const *envp)
{
	for (; *envp; envp++)
		if (strncmp(*envp, "PATH=", 5) == 0)
			return *envp + 5;
	return RUNNER_MIN_PATH;
}

/* execvp's search, but in the child's PATH rather than the daemon's. Returns 0 or -errno. */
static int resolve_path(const char *name, char *const *envp, char *out, size_t outsz)
{
	const char *p = env_path(envp);
	int rc = -ENOENT;

	if (!*name)
		return -ENOENT;
	for (;;) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p);
		int n = dl == 0 ? snprintf(out, outsz, "%s", name)
				: snprintf(out, outsz, "%.*s/%s", (int)dl, p, name);
		if (n > 0 && (size_t)n < outsz) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(out, X_OK) == 0)
					return 0;
				rc = -EACCES;
			}
		}
		if (!*end)
			return rc;
		p = end + 1;
	}
}

/* Read end non-blocking (ours), write end blocking (the child's stdout must behave normally).
 * Both >= 3 so the dup2 onto 0..2 in the child cannot clobber one of them. */
static int make_pipe(int fds[2])
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		if (p[i] < 3) {
			int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				int e = -errno;
				close(p[0]);
				close(p[1]);
				return e;
			}
			close(p[i]);
			p[i] = fd;
		}
	}
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int e = -errno;
		close(p[0]);
		close(p[1]);
		return e;
	}
	fds[0] = p[0];
	fds[1] = p[1];
	return 0;
}

static int stream_init(struct runner *r, struct runner_job *job, struct runner_stream *s, size_t cap,
		       int *wfd)
{
	int p[2] = { -1, -1 };  /* gcc -O2 cannot see that make_pipe sets both on success */
	int rc;

	if (tail_init(&s->tail, cap) < 0)
		return -ENOMEM;
	rc = make_pipe(p);
	if (rc < 0)
		return rc;
	rc = loop_io_add(r->loop, p[0], EPOLLIN, job_on_output, job);
	if (rc < 0) {
		close(p[0]);
		close(p[1]);
		return rc;
	}
	s->fd = p[0];
	*wfd = p[1];
	return 0;
}

/* glibc's posix_spawn (clone with CLONE_VFORK) returns the child's exec/chdir errno itself, so
 * no exec-error pipe is needed and a failed exec never looks like exit code 127. */
static int job_spawn(struct runner_job *job, const struct runner_spec *spec, int wout, int werr)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	char pathbuf[PATH_MAX];
	const char *path = spec->argv[0];
	char *const *envp = spec->envp ? spec->envp : runner_min_env;
	int rc;

	if (!strchr(path, '/')) {
		rc = resolve_path(path, envp, pathbuf, sizeof pathbuf);
		if (rc < 0)
			return -rc;
		path = pathbuf;
	}
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	/* The loop blocks the signals it handles through signalfd, and the daemon may ignore
	 * SIGPIPE: neither must leak into the action. */
	sigemptyset(&none);
	sigfillset(&all);
	if ((rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (rc = posix_spawnattr_setsigmask(&at, &none)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(&at, &all)) != 0 ||
	    (rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, wout, 1)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, werr, 2)) != 0 ||
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0 ||
	    (spec->cwd && (rc = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd)) != 0))
		goto out;
	rc = posix_spawn(&job->pid, path, &fa, &at, spec->argv, envp);
	if (rc != 0)
		job->pid = 0;
out:
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

struct runner_job *runner_start(struct runner *r, const struct runner_spec *spec, runner_done_cb cb,
				void *arg, int *err)
{
	struct runner_job *job = NULL;
	int wout = -1, werr = -1;
	int rc;

	if (!spec || !spec->argv || !spec->argv[0] || !cb || spec->tail_max > RUNNER_TAIL_LIMIT) {
		rc = -EINVAL;
		goto fail;
	}
	job = calloc(1, sizeof *job);
	if (!job) {
		rc = -ENOMEM;
		goto fail;
	}
	job->r = r;
	job->cb = cb;
	job->arg = arg;
	job->out.fd = job->err.fd = -1;
	job->reason = RUNNER_EXITED;
	job->grace_ms = spec->grace_ms ? spec->grace_ms : RUNNER_GRACE_MS;
	loop_timer_init(&job->t_kill, job_on_timer, job);
	loop_timer_init(&job->t_drain, job_on_drain, job);
	loop_defer_init(&job->d_failed, job_on_failed, job);
	size_t cap = spec->tail_max ? spec->tail_max : RUNNER_TAIL_MAX;
	if ((rc = stream_init(r, job, &job->out, cap, &wout)) < 0 ||
	    (rc = stream_init(r, job, &job->err, cap, &werr)) < 0)
		goto fail;

	job->start_ms = runner_mono_ms();
	rc = job_spawn(job, spec, wout, werr);
	close(wout);
	close(werr);
	wout = werr = -1;

	job->next = r->jobs;
	if (r->jobs)
		r->jobs->prev = job;
	r->jobs = job;
	r->count++;
	if (rc != 0) {
		/* Reported through the callback, which must not run from inside runner_start. */
		job->spawn_errno = rc;
		stream_close(r, &job->out);
		stream_close(r, &job->err);
		loop_defer(r->loop, &job->d_failed);
		log_debug("runner: spawn %s: %s", spec->argv[0], strerror(rc));
		return job;
	}
	if (spec->timeout_ms)
		loop_timer_start(r->loop, &job->t_kill, spec->timeout_ms);
	log_debug("runner: started %s as pid %d", spec->argv[0], (int)job->pid);
	return job;

fail:
	if (wout >= 0)
		close(wout);
	if (werr >= 0)
		close(werr);
	if (job)
		job_release(r, job);
	if (err)
		*err = rc;
	return NULL;
}

/* --- lifetime --- */

struct runner *runner_new(struct loop *loop)
{
	struct runner *r = calloc(1, sizeof *r);
	int rc;

	if (!r) {
		log_warnx("runner: out of memory");
		return NULL;
	}
	r->loop = loop;
	rc = loop_signal_add(loop, SIGCHLD, runner_on_sigchld, r);
	if (rc < 0) {
		errno = -rc;
		log_warn("runner: SIGCHLD handler");
		free(r);
		return NULL;
	}
	return r;
}

void runner_free(struct runner *r)
{
	if (!r)
		return;
	while (r->jobs) {
		struct runner_job *job = r->jobs;
		if (job->pid > 0 && !job->reaped) {
			kill(-job->pid, SIGKILL);
			while (waitpid(job->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		job_unlink(r, job);
		job_release(r, job);
	}
	/* A NULL callback detaches the runner; SIGCHLD stays blocked, so nothing is lost. */
	loop_signal_add(r->loop, SIGCHLD, NULL, NULL);
	free(r);
}
