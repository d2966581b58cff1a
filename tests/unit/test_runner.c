/* test_runner: runner's spawning, output tails, timeouts, group kills and reaping, with real
 * child processes (sh is used by the tests only, never by the runner). */
#include "log.h"
#include "loop.h"
#include "runner.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Only a bound for failing instead of hanging; nothing is expected to come near it. */
#define SAFETY_MS 20000
#define POLL_MS 10

struct got {
	int calls;
	struct runner_result res;
	char *out, *err;
};

struct ctx {
	struct loop *loop;
	struct runner *r;
	struct loop_timer safety;
	struct loop_timer poll;
	int want;              /* callbacks to wait for before loop_stop */
	int done;
	bool in_start;
	struct got got;
	/* poll: when ready_file exists, stop the loop or kill ready_job */
	const char *ready_file;
	struct runner_job *ready_job;
	bool ready_seen;
};

static void on_poll(void *arg);

static void on_safety(void *arg)
{
	(void)arg;
	ck_abort_msg("safety timer: the test did not finish within %d ms", SAFETY_MS);
}

static void ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof *c);
	c->loop = loop_new();
	ck_assert_ptr_nonnull(c->loop);
	c->r = runner_new(c->loop);
	ck_assert_ptr_nonnull(c->r);
	loop_timer_init(&c->safety, on_safety, c);
	loop_timer_start(c->loop, &c->safety, SAFETY_MS);
	loop_timer_init(&c->poll, on_poll, c);
	c->want = 1;
}

static void got_clear(struct got *g)
{
	free(g->out);
	free(g->err);
	memset(g, 0, sizeof *g);
}

static void ctx_done(struct ctx *c)
{
	runner_free(c->r);
	loop_timer_stop(c->loop, &c->safety);
	loop_timer_stop(c->loop, &c->poll);
	loop_free(c->loop);
	got_clear(&c->got);
}

static char *memdup0(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void got_set(struct got *g, const struct runner_result *res)
{
	free(g->out);
	free(g->err);
	g->calls++;
	g->res = *res;
	ck_assert_ptr_nonnull(res->out);
	ck_assert_ptr_nonnull(res->err);
	ck_assert_int_eq(res->out[res->out_len], '\0');
	ck_assert_int_eq(res->err[res->err_len], '\0');
	g->out = memdup0(res->out, res->out_len);
	g->err = memdup0(res->err, res->err_len);
	g->res.out = g->out;
	g->res.err = g->err;
}

static void on_done(void *arg, const struct runner_result *res)
{
	struct ctx *c = arg;
	ck_assert_msg(!c->in_start, "callback called from inside runner_start");
	got_set(&c->got, res);
	if (++c->done >= c->want)
		loop_stop(c->loop);
}

static struct runner_job *start(struct ctx *c, const struct runner_spec *spec)
{
	int err = 0;
	c->in_start = true;
	struct runner_job *job = runner_start(c->r, spec, on_done, c, &err);
	c->in_start = false;
	ck_assert_msg(job != NULL, "runner_start: %s", strerror(-err));
	return job;
}

/* Runs one job to completion; returns its result (owned by c). */
static const struct runner_result *run(struct ctx *c, const struct runner_spec *spec)
{
	c->done = 0;
	got_clear(&c->got);
	start(c, spec);
	ck_assert_int_eq(loop_run(c->loop), 0);
	ck_assert_int_eq(c->got.calls, 1);
	ck_assert_uint_eq(runner_count(c->r), 0);
	return &c->got.res;
}

static void on_poll(void *arg)
{
	struct ctx *c = arg;
	if (!c->ready_seen && access(c->ready_file, F_OK) == 0) {
		c->ready_seen = true;
		if (c->ready_job)
			runner_kill(c->r, c->ready_job);
		else
			loop_stop(c->loop);
		return;
	}
	loop_timer_start(c->loop, &c->poll, POLL_MS);
}

static void poll_for(struct ctx *c, const char *file, struct runner_job *kill_job)
{
	c->ready_file = file;
	c->ready_job = kill_job;
	c->ready_seen = false;
	loop_timer_start(c->loop, &c->poll, POLL_MS);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Gone, or a zombie waiting for init (which this container's init may never reap). The bound
 * is only there to fail rather than hang. */
static bool pid_gone(pid_t pid)
{
	for (int i = 0; i < 1000; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(path, "r");
		if (!f)
			return true;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		if (rp && (rp[2] == 'Z' || rp[2] == 'X'))
			return true;
		sleep_ms(10);
	}
	return false;
}

static pid_t read_pid_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_runner.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

#define ARGV(...) ((char *const[]){ __VA_ARGS__, NULL })

START_TEST(test_exit0_stdout)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/echo", "hello", "world") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 0);
	ck_assert_int_eq(res->signal, 0);
	ck_assert_str_eq(res->out, "hello world\n");
	ck_assert_uint_eq(res->out_len, 12);
	ck_assert(!res->out_truncated);
	ck_assert_uint_eq(res->err_len, 0);
	ck_assert_int_gt(res->pid, 0);
	ck_assert_uint_lt(res->duration_ms, SAFETY_MS);
	ck_assert_str_eq(runner_status_str(res->status), "exited");
	ctx_done(&c);
}
END_TEST

START_TEST(test_exit_codes)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", "exit 3") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 3);
	/* A real 127 stays an exit code, distinct from a failed exec. */
	spec.argv = ARGV("/bin/sh", "-c", "exit 127");
	res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 127);
	ctx_done(&c);
}
END_TEST

START_TEST(test_stderr_separate)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = {
		.argv = ARGV("/bin/sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"),
	};
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_str_eq(res->out, "out1\nout2\n");
	ck_assert_str_eq(res->err, "err1\nerr2\n");
	ck_assert(!res->err_truncated);
	ctx_done(&c);
}
END_TEST

START_TEST(test_signaled)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", "kill -USR1 $$") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_SIGNALED);
	ck_assert_int_eq(res->signal, SIGUSR1);
	ctx_done(&c);
}
END_TEST

START_TEST(test_tail)
{
	struct ctx c;
	ctx_init(&c);
	/* seq found through the child's PATH. */
	struct runner_spec spec = { .argv = ARGV("seq", "1", "20000"), .tail_max = 1000 };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 0);

	size_t cap = 200000, len = 0;
	char *want = malloc(cap);
	ck_assert_ptr_nonnull(want);
	for (int i = 1; i <= 20000; i++)
		len += (size_t)snprintf(want + len, cap - len, "%d\n", i);
	ck_assert_uint_eq(res->out_len, 1000);
	ck_assert(res->out_truncated);
	ck_assert_int_eq(memcmp(res->out, want + len - 1000, 1000), 0);
	ck_assert(!res->err_truncated);
	free(want);

	/* Exactly tail_max bytes is not truncated; one more is. */
	spec.argv = ARGV("/usr/bin/head", "-c", "1000", "/dev/zero");
	res = run(&c, &spec);
	ck_assert_uint_eq(res->out_len, 1000);
	ck_assert(!res->out_truncated);
	spec.argv = ARGV("/bin/sh", "-c", "head -c 999 /dev/zero; printf ab");
	res = run(&c, &spec);
	ck_assert_uint_eq(res->out_len, 1000);
	ck_assert(res->out_truncated);
	ck_assert_int_eq(res->out[0], '\0');
	ck_assert_int_eq(res->out[998], 'a');
	ck_assert_int_eq(res->out[999], 'b');

	/* Default tail and the same on stderr. */
	spec.tail_max = 0;
	spec.argv = ARGV("/bin/sh", "-c", "seq 1 20000 >&2");
	res = run(&c, &spec);
	ck_assert_uint_eq(res->err_len, RUNNER_TAIL_MAX);
	ck_assert(res->err_truncated);
	ck_assert_uint_eq(res->out_len, 0);
	ck_assert(strncmp(res->err + res->err_len - 12, "19999\n20000\n", 12) == 0);
	ctx_done(&c);
}
END_TEST

START_TEST(test_timeout)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sleep", "30"), .timeout_ms = 200 };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_TIMEOUT);
	ck_assert_int_eq(res->signal, SIGTERM);
	ck_assert_uint_ge(res->duration_ms, 200);
	ck_assert_uint_lt(res->duration_ms, SAFETY_MS);
	ck_assert_str_eq(runner_status_str(res->status), "timeout");
	ctx_done(&c);
}
END_TEST

/* Waits (bounded) until pid has exited but is not reaped yet: a zombie. */
static void wait_zombie(pid_t pid)
{
	for (int i = 0; i < SAFETY_MS / POLL_MS; i++) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
		if (si.si_pid == pid)
			return;
		sleep_ms(POLL_MS);
	}
	ck_abort_msg("pid %d did not exit", (int)pid);
}

/* A loop that was held up (the controller frozen by SIGSTOP, or busy) past an action's
 * timeout finds both the timer and the exit pending: the action ended by itself, in time as
 * far as anyone acted on it, so its exit is the verdict, not a timeout nobody enforced. */
START_TEST(test_exit_before_late_timeout)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", "echo done; exit 0"),
				    .timeout_ms = 50 };
	struct runner_job *job = start(&c, &spec);
	pid_t pid = runner_job_pid(job);
	wait_zombie(pid);
	sleep_ms(100);   /* past the timeout, with the loop not running: both events pending */
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert_int_eq(c.got.calls, 1);
	ck_assert_int_eq(c.got.res.status, RUNNER_EXITED);
	ck_assert_int_eq(c.got.res.exit_code, 0);
	ck_assert_int_eq(c.got.res.signal, 0);
	ck_assert_str_eq(c.got.out, "done\n");
	ctx_done(&c);
}
END_TEST

/* The same for a kill request (shutdown) that meets an exit not yet collected. */
START_TEST(test_exit_before_kill)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", "exit 3") };
	struct runner_job *job = start(&c, &spec);
	wait_zombie(runner_job_pid(job));
	runner_kill(c.r, job);
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert_int_eq(c.got.calls, 1);
	ck_assert_int_eq(c.got.res.status, RUNNER_EXITED);
	ck_assert_int_eq(c.got.res.exit_code, 3);
	ctx_done(&c);
}
END_TEST

/* The ready file is written after the trap, so if it exists SIGTERM came after the trap; if
 * the machine was too slow for it, try again with a longer timeout. */
START_TEST(test_timeout_ignores_term)
{
	struct ctx c;
	char ready[128], script[256];
	make_tmpdir();
	snprintf(ready, sizeof ready, "%s/ready", tmpdir);
	snprintf(script, sizeof script, "trap '' TERM; : > '%s'; exec sleep 30", ready);
	ctx_init(&c);
	const struct runner_result *res = NULL;
	for (uint64_t t = 300; t <= 4800; t *= 4) {
		struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", script), .timeout_ms = t,
					    .grace_ms = 300 };
		res = run(&c, &spec);
		if (access(ready, F_OK) == 0)
			break;
	}
	ck_assert_msg(access(ready, F_OK) == 0, "the action never got to install its trap");
	ck_assert_int_eq(res->status, RUNNER_TIMEOUT);
	ck_assert_int_eq(res->signal, SIGKILL);
	ck_assert_uint_ge(res->duration_ms, 600);
	ctx_done(&c);
	rm_tmpdir();
}
END_TEST

START_TEST(test_kill_ignores_term)
{
	struct ctx c;
	char ready[128], script[256];
	make_tmpdir();
	snprintf(ready, sizeof ready, "%s/ready", tmpdir);
	snprintf(script, sizeof script, "trap '' TERM; : > '%s'; exec sleep 30", ready);
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", script), .grace_ms = 300 };
	struct runner_job *job = start(&c, &spec);
	ck_assert_int_gt(runner_job_pid(job), 0);
	poll_for(&c, ready, job);
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert(c.ready_seen);
	ck_assert_int_eq(c.got.calls, 1);
	ck_assert_int_eq(c.got.res.status, RUNNER_KILLED);
	ck_assert_int_eq(c.got.res.signal, SIGKILL);
	ck_assert_uint_ge(c.got.res.duration_ms, 300);
	ctx_done(&c);
	rm_tmpdir();
}
END_TEST

START_TEST(test_timeout_grandchild)
{
	struct ctx c;
	char pidf[128], script[512];
	make_tmpdir();
	snprintf(pidf, sizeof pidf, "%s/pid", tmpdir);
	snprintf(script, sizeof script, "sleep 60 & echo $! > '%s.tmp' && mv '%s.tmp' '%s'; exec sleep 60",
		 pidf, pidf, pidf);
	ctx_init(&c);
	const struct runner_result *res = NULL;
	for (uint64_t t = 500; t <= 8000; t *= 4) {
		struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", script), .timeout_ms = t };
		res = run(&c, &spec);
		if (access(pidf, F_OK) == 0)
			break;
	}
	ck_assert_int_eq(res->status, RUNNER_TIMEOUT);
	pid_t gc = read_pid_file(pidf);
	ck_assert_int_gt(gc, 0);
	ck_assert_msg(pid_gone(gc), "background grandchild %d survived", (int)gc);
	ck_assert(pid_gone(res->pid));
	ctx_done(&c);
	rm_tmpdir();
}
END_TEST

START_TEST(test_leader_exit_kills_group)
{
	struct ctx c;
	ctx_init(&c);
	/* The background sleep holds stdout open: completion must not wait for it. */
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", "sleep 60 & echo $!") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 0);
	ck_assert_uint_lt(res->duration_ms, SAFETY_MS);
	pid_t gc = (pid_t)atoi(res->out);
	ck_assert_int_gt(gc, 0);
	ck_assert_msg(pid_gone(gc), "background child %d survived", (int)gc);
	ctx_done(&c);
}
END_TEST

START_TEST(test_spawn_failed)
{
	struct ctx c;
	char path[128];
	make_tmpdir();
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/nonexistent/fr-runner-test") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_SPAWN_FAILED);
	ck_assert_int_eq(res->spawn_errno, ENOENT);
	ck_assert_uint_eq(res->out_len, 0);
	ck_assert_str_eq(runner_status_str(res->status), "spawn-failed");

	spec.argv = ARGV("fr-runner-no-such-command");
	res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_SPAWN_FAILED);
	ck_assert_int_eq(res->spawn_errno, ENOENT);

	snprintf(path, sizeof path, "%s/noexec", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	spec.argv = ARGV(path);
	res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_SPAWN_FAILED);
	ck_assert_int_eq(res->spawn_errno, EACCES);

	/* A missing cwd fails the spawn too, with chdir's errno. */
	snprintf(path, sizeof path, "%s/missing-dir", tmpdir);
	spec.argv = ARGV("/bin/true");
	spec.cwd = path;
	res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_SPAWN_FAILED);
	ck_assert_int_eq(res->spawn_errno, ENOENT);
	ctx_done(&c);
	rm_tmpdir();
}
END_TEST

START_TEST(test_bad_spec)
{
	struct ctx c;
	int err = 0;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV(NULL) };
	ck_assert_ptr_null(runner_start(c.r, &spec, on_done, &c, &err));
	ck_assert_int_eq(err, -EINVAL);
	spec.argv = NULL;
	ck_assert_ptr_null(runner_start(c.r, &spec, on_done, &c, &err));
	spec.argv = ARGV("/bin/true");
	spec.tail_max = RUNNER_TAIL_LIMIT + 1;
	err = 0;
	ck_assert_ptr_null(runner_start(c.r, &spec, on_done, &c, &err));
	ck_assert_int_eq(err, -EINVAL);
	ck_assert_uint_eq(runner_count(c.r), 0);
	ctx_done(&c);
}
END_TEST

START_TEST(test_stdin_devnull)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("cat") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 0);
	ck_assert_uint_eq(res->out_len, 0);
	ck_assert_uint_eq(res->err_len, 0);
	ctx_done(&c);
}
END_TEST

START_TEST(test_env_and_cwd)
{
	struct ctx c;
	ctx_init(&c);
	ck_assert_int_eq(setenv("FR_RUNNER_TEST_SECRET", "leak", 1), 0);
	struct runner_spec spec = { .argv = ARGV("/usr/bin/env") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_ptr_nonnull(strstr(res->out, "PATH=/usr/local/bin:/usr/bin:/bin\n"));
	ck_assert_ptr_nonnull(strstr(res->out, "LANG=C.UTF-8\n"));
	ck_assert_ptr_null(strstr(res->out, "FR_RUNNER_TEST_SECRET"));
	ck_assert_ptr_null(strstr(res->out, "HOME="));

	spec.envp = ARGV("FOO=bar");
	res = run(&c, &spec);
	ck_assert_str_eq(res->out, "FOO=bar\n");

	spec.envp = NULL;
	spec.argv = ARGV("/bin/pwd");
	spec.cwd = "/";
	res = run(&c, &spec);
	ck_assert_str_eq(res->out, "/\n");
	ctx_done(&c);
}
END_TEST

/* Signals blocked by the loop (signalfd) or ignored by the daemon must not reach the action. */
START_TEST(test_signal_state_reset)
{
	struct ctx c;
	ctx_init(&c);
	signal(SIGPIPE, SIG_IGN);
	struct runner_spec spec = { .argv = ARGV("/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	/* glibc's posix_spawn ignores its own internal real-time signals (32, 33); the classic
	 * signals must be unblocked and at their default. */
	unsigned long long blk = 1, ign = 1;
	ck_assert_int_eq(sscanf(res->out, "SigBlk: %llx SigIgn: %llx", &blk, &ign), 2);
	ck_assert_msg((blk & 0x7fffffffULL) == 0, "blocked: %llx", blk);
	ck_assert_msg((ign & 0x7fffffffULL) == 0, "ignored: %llx", ign);
	ctx_done(&c);
}
END_TEST

START_TEST(test_kill)
{
	struct ctx c;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sleep", "30") };
	struct runner_job *job = start(&c, &spec);
	runner_kill(c.r, job);
	runner_kill(c.r, job);   /* idempotent */
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert_int_eq(c.got.calls, 1);
	ck_assert_int_eq(c.got.res.status, RUNNER_KILLED);
	ck_assert_int_eq(c.got.res.signal, SIGTERM);
	ck_assert_str_eq(runner_status_str(c.got.res.status), "killed");
	ctx_done(&c);
}
END_TEST

struct many {
	struct ctx *c;
	int idx;
	int calls;
	char want[16];
	bool ok;
};

static void on_many(void *arg, const struct runner_result *res)
{
	struct many *m = arg;
	m->calls++;
	m->ok = res->status == RUNNER_EXITED && res->exit_code == 0 && strcmp(res->out, m->want) == 0;
	if (++m->c->done >= m->c->want)
		loop_stop(m->c->loop);
}

START_TEST(test_concurrent)
{
	struct ctx c;
	struct many m[20];
	char num[20][8];
	ctx_init(&c);
	c.want = 20;
	for (int i = 0; i < 20; i++) {
		int err = 0;
		m[i] = (struct many){ .c = &c, .idx = i };
		snprintf(num[i], sizeof num[i], "%d", i);
		snprintf(m[i].want, sizeof m[i].want, "%d\n", i);
		/* Mixed durations so completions interleave. */
		struct runner_spec spec = {
			.argv = i % 2 ? ARGV("/bin/echo", num[i])
				      : ARGV("/bin/sh", "-c", "sleep 0.1; echo $0", num[i]),
		};
		ck_assert_ptr_nonnull(runner_start(c.r, &spec, on_many, &m[i], &err));
	}
	ck_assert_uint_eq(runner_count(c.r), 20);
	ck_assert_int_eq(loop_run(c.loop), 0);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(m[i].calls, 1);
		ck_assert_msg(m[i].ok, "job %d", i);
	}
	ck_assert_uint_eq(runner_count(c.r), 0);
	ctx_done(&c);
}
END_TEST

/* A sensor restarting itself from its done callback. */
struct chain {
	struct ctx *c;
	int runs;
	pid_t pids[3];
};

static void on_chain(void *arg, const struct runner_result *res)
{
	struct chain *ch = arg;
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ch->pids[ch->runs++] = res->pid;
	if (ch->runs == 3) {
		loop_stop(ch->c->loop);
		return;
	}
	int err = 0;
	struct runner_spec spec = { .argv = ARGV("/bin/true") };
	ck_assert_ptr_nonnull(runner_start(ch->c->r, &spec, on_chain, ch, &err));
}

START_TEST(test_restart_from_callback)
{
	struct ctx c;
	struct chain ch = { .c = &c };
	int err = 0;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/true") };
	ck_assert_ptr_nonnull(runner_start(c.r, &spec, on_chain, &ch, &err));
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert_int_eq(ch.runs, 3);
	ck_assert_int_ne(ch.pids[0], ch.pids[1]);
	ck_assert_uint_eq(runner_count(c.r), 0);
	ctx_done(&c);
}
END_TEST

struct killer {
	struct ctx *c;
	struct runner_job *victim;
	int calls;
};

static void on_killer(void *arg, const struct runner_result *res)
{
	struct killer *k = arg;
	(void)res;
	k->calls++;
	runner_kill_all(k->c->r);
	runner_kill(k->c->r, k->victim);
}

START_TEST(test_kill_from_callback)
{
	struct ctx c;
	struct killer k = { .c = &c };
	int err = 0;
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sleep", "30") };
	k.victim = start(&c, &spec);
	spec.argv = ARGV("/bin/true");
	ck_assert_ptr_nonnull(runner_start(c.r, &spec, on_killer, &k, &err));
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert_int_eq(k.calls, 1);
	ck_assert_int_eq(c.got.calls, 1);
	ck_assert_int_eq(c.got.res.status, RUNNER_KILLED);
	ctx_done(&c);
}
END_TEST

/* waitpid(-1) also reaps children the runner did not start; they must be ignored. */
START_TEST(test_foreign_child)
{
	struct ctx c;
	ctx_init(&c);
	pid_t other = fork();
	ck_assert_int_ge(other, 0);
	if (other == 0)
		_exit(0);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", "sleep 0.2; echo ok") };
	const struct runner_result *res = run(&c, &spec);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_str_eq(res->out, "ok\n");
	ck_assert_int_eq(waitpid(other, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	ctx_done(&c);
}
END_TEST

/* A member that left the group (setsid) keeps stdout open forever: the job must still end,
 * shortly after its leader, with the output written so far. */
START_TEST(test_escaped_member_holds_pipe)
{
	struct ctx c;
	char pidf[128], script[768];
	make_tmpdir();
	snprintf(pidf, sizeof pidf, "%s/pid", tmpdir);
	snprintf(script, sizeof script,
		 "setsid sh -c 'echo $$ > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"; exec sleep 30' '%s' & "
		 "while [ ! -e '%s' ]; do sleep 0.01; done; echo done", pidf, pidf);
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sh", "-c", script) };
	const struct runner_result *res = run(&c, &spec);
	pid_t esc = read_pid_file(pidf);
	ck_assert_int_gt(esc, 0);
	kill(esc, SIGKILL);
	ck_assert_int_eq(res->status, RUNNER_EXITED);
	ck_assert_int_eq(res->exit_code, 0);
	ck_assert_str_eq(res->out, "done\n");
	ck_assert_uint_lt(res->duration_ms, SAFETY_MS);
	ctx_done(&c);
	rm_tmpdir();
}
END_TEST

static void on_never(void *arg, const struct runner_result *res)
{
	(void)arg;
	(void)res;
	ck_abort_msg("runner_free must not call callbacks");
}

START_TEST(test_free_running)
{
	struct ctx c;
	char pidf[128], script[512];
	pid_t leaders[3];
	int err = 0;
	make_tmpdir();
	snprintf(pidf, sizeof pidf, "%s/pid", tmpdir);
	snprintf(script, sizeof script, "sleep 60 & echo $! > '%s.tmp' && mv '%s.tmp' '%s'; exec sleep 60",
		 pidf, pidf, pidf);
	ctx_init(&c);
	struct runner_spec spec = { .argv = ARGV("/bin/sleep", "60"), .timeout_ms = 60000 };
	for (int i = 0; i < 2; i++) {
		struct runner_job *job = runner_start(c.r, &spec, on_never, NULL, &err);
		ck_assert_ptr_nonnull(job);
		leaders[i] = runner_job_pid(job);
	}
	spec.argv = ARGV("/bin/sh", "-c", script);
	struct runner_job *job = runner_start(c.r, &spec, on_never, NULL, &err);
	ck_assert_ptr_nonnull(job);
	leaders[2] = runner_job_pid(job);
	poll_for(&c, pidf, NULL);
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert(c.ready_seen);
	ck_assert_uint_eq(runner_count(c.r), 3);
	pid_t gc = read_pid_file(pidf);
	ck_assert_int_gt(gc, 0);

	runner_free(c.r);
	c.r = NULL;
	for (int i = 0; i < 3; i++) {
		/* Reaped synchronously by runner_free. */
		ck_assert_int_eq(waitpid(leaders[i], NULL, WNOHANG), -1);
		ck_assert(pid_gone(leaders[i]));
	}
	ck_assert_msg(pid_gone(gc), "grandchild %d survived runner_free", (int)gc);
	ctx_done(&c);
	rm_tmpdir();
}
END_TEST

static Suite *runner_suite(void)
{
	Suite *s = suite_create("runner");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_exit0_stdout);
	tcase_add_test(tc, test_exit_codes);
	tcase_add_test(tc, test_stderr_separate);
	tcase_add_test(tc, test_signaled);
	tcase_add_test(tc, test_tail);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_exit_before_late_timeout);
	tcase_add_test(tc, test_exit_before_kill);
	tcase_add_test(tc, test_timeout_ignores_term);
	tcase_add_test(tc, test_kill_ignores_term);
	tcase_add_test(tc, test_timeout_grandchild);
	tcase_add_test(tc, test_leader_exit_kills_group);
	tcase_add_test(tc, test_spawn_failed);
	tcase_add_test(tc, test_bad_spec);
	tcase_add_test(tc, test_stdin_devnull);
	tcase_add_test(tc, test_env_and_cwd);
	tcase_add_test(tc, test_signal_state_reset);
	tcase_add_test(tc, test_kill);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_restart_from_callback);
	tcase_add_test(tc, test_kill_from_callback);
	tcase_add_test(tc, test_foreign_child);
	tcase_add_test(tc, test_free_running);
	tcase_add_test(tc, test_escaped_member_holds_pipe);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_init("test_runner", true, 0);
	SRunner *sr = srunner_create(runner_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
