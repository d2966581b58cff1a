/* test_loop: timers, fd callbacks (with deletes and fd reuse inside a batch), signalfd,
 * cross-thread wake-ups and deferred calls of the epoll loop. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

/* --- timers --- */

struct order {
	struct loop *loop;
	int fired[16];
	int n;
};

struct tag {
	struct order *o;
	int id;
};

static void on_order(void *arg)
{
	struct tag *t = arg;

	ck_assert_int_lt(t->o->n, 16);
	t->o->fired[t->o->n++] = t->id;
}

static void on_stop(void *arg)
{
	loop_stop(arg);
}

START_TEST(test_timer_order)
{
	struct order o = { 0 };
	struct loop_timer t[5], stop;
	struct tag tags[5];
	/* Started out of order; the gaps are wide so the start sequence itself cannot reorder
	 * them. */
	static const int delay[5] = { 200, 50, 150, 0, 100 };
	static const int want[5] = { 3, 1, 4, 2, 0 };

	o.loop = loop_new();
	ck_assert_ptr_nonnull(o.loop);
	for (int i = 0; i < 5; i++) {
		tags[i] = (struct tag){ &o, i };
		loop_timer_init(&t[i], on_order, &tags[i]);
		ck_assert(!loop_timer_armed(&t[i]));
		loop_timer_start(o.loop, &t[i], (uint64_t)delay[i]);
		ck_assert(loop_timer_armed(&t[i]));
	}
	loop_timer_init(&stop, on_stop, o.loop);
	loop_timer_start(o.loop, &stop, 300);
	ck_assert_int_eq(loop_run(o.loop), 0);
	ck_assert_int_eq(o.n, 5);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(o.fired[i], want[i]);
		ck_assert(!loop_timer_armed(&t[i]));
	}
	loop_free(o.loop);
}
END_TEST

struct stopper {
	struct loop *loop;
	struct loop_timer *victim;
};

static void on_stop_other(void *arg)
{
	struct stopper *s = arg;

	loop_timer_stop(s->loop, s->victim);
	ck_assert(!loop_timer_armed(s->victim));
}

static void on_never(void *arg)
{
	(void)arg;
	ck_abort_msg("a stopped timer fired");
}

START_TEST(test_timer_stopped_never_fires)
{
	struct loop *loop = loop_new();
	struct loop_timer a, b, c, stop;
	struct stopper s;

	ck_assert_ptr_nonnull(loop);
	/* Stopped before the loop runs. */
	loop_timer_init(&a, on_never, NULL);
	loop_timer_start(loop, &a, 0);
	loop_timer_stop(loop, &a);
	ck_assert(!loop_timer_armed(&a));
	loop_timer_stop(loop, &a); /* twice is harmless */
	/* Stopped by an earlier timer, possibly in the same expiry pass. */
	loop_timer_init(&c, on_never, NULL);
	s = (struct stopper){ loop, &c };
	loop_timer_init(&b, on_stop_other, &s);
	loop_timer_start(loop, &b, 0);
	loop_timer_start(loop, &c, 1);
	/* Restarting an armed timer replaces its deadline rather than adding a second one. */
	loop_timer_init(&stop, on_stop, loop);
	loop_timer_start(loop, &stop, 5);
	loop_timer_start(loop, &stop, 30);
	ck_assert_int_eq(loop_run(loop), 0);
	ck_assert(!loop_timer_armed(&stop));
	loop_free(loop);
}
END_TEST

struct again {
	struct loop *loop;
	struct loop_timer t;
	int count;
	uint64_t delay;
};

static void on_again(void *arg)
{
	struct again *a = arg;

	ck_assert(!loop_timer_armed(&a->t));
	if (++a->count == 5) {
		loop_stop(a->loop);
		return;
	}
	loop_timer_start(a->loop, &a->t, a->delay);
	ck_assert(loop_timer_armed(&a->t));
}

START_TEST(test_timer_restart_from_callback)
{
	for (uint64_t d = 0; d < 3; d++) {
		struct again a = { .loop = loop_new(), .delay = d };

		ck_assert_ptr_nonnull(a.loop);
		loop_timer_init(&a.t, on_again, &a);
		loop_timer_start(a.loop, &a.t, 0);
		ck_assert_int_eq(loop_run(a.loop), 0);
		ck_assert_int_eq(a.count, 5);
		ck_assert(!loop_timer_armed(&a.t));
		loop_free(a.loop);
	}
}
END_TEST

/* A timer due every iteration must not starve I/O. */
struct starve {
	struct loop *loop;
	struct loop_timer t;
	int ticks;
	int fd_calls;
};

static void on_busy_timer(void *arg)
{
	struct starve *s = arg;

	s->ticks++;
	loop_timer_start(s->loop, &s->t, 0);
}

static void on_starve_fd(void *arg, int fd, uint32_t events)
{
	struct starve *s = arg;

	(void)fd;
	(void)events;
	s->fd_calls++;
	loop_stop(s->loop);
}

START_TEST(test_timer_zero_delay_does_not_starve_io)
{
	struct starve s = { .loop = loop_new() };
	int p[2];

	ck_assert_ptr_nonnull(s.loop);
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(loop_io_add(s.loop, p[0], EPOLLIN, on_starve_fd, &s), 0);
	loop_timer_init(&s.t, on_busy_timer, &s);
	loop_timer_start(s.loop, &s.t, 0);
	ck_assert_int_eq(loop_run(s.loop), 0);
	ck_assert_int_eq(s.fd_calls, 1);
	ck_assert_int_ge(s.ticks, 1);
	loop_timer_stop(s.loop, &s.t);
	loop_io_del(s.loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(s.loop);
}
END_TEST

/* --- fd callbacks --- */

struct io {
	struct loop *loop;
	char buf[16];
	ssize_t got;
	uint32_t events;
	int calls;
};

static void on_read(void *arg, int fd, uint32_t events)
{
	struct io *io = arg;

	io->calls++;
	io->events = events;
	io->got = read(fd, io->buf, sizeof io->buf);
	loop_stop(io->loop);
}

START_TEST(test_fd_callback)
{
	struct io io = { .loop = loop_new() };
	int p[2];

	ck_assert_ptr_nonnull(io.loop);
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(loop_io_add(io.loop, p[0], EPOLLIN, on_read, &io), 0);
	ck_assert_int_eq(loop_io_add(io.loop, p[0], EPOLLIN, on_read, &io), -EEXIST);
	ck_assert_int_eq(loop_io_add(io.loop, -1, EPOLLIN, on_read, &io), -EBADF);
	ck_assert_int_eq(write(p[1], "hello", 5), 5);
	ck_assert_int_eq(loop_run(io.loop), 0);
	ck_assert_int_eq(io.calls, 1);
	ck_assert_int_eq(io.got, 5);
	ck_assert_mem_eq(io.buf, "hello", 5);
	ck_assert(io.events & EPOLLIN);

	/* Switched to EPOLLOUT on the write end. */
	ck_assert_int_eq(loop_io_mod(io.loop, p[1], EPOLLOUT), -EBADF);
	ck_assert_int_eq(loop_io_add(io.loop, p[1], 0, on_read, &io), 0);
	ck_assert_int_eq(loop_io_mod(io.loop, p[1], EPOLLOUT), 0);
	io.calls = 0;
	ck_assert_int_eq(loop_run(io.loop), 0);
	ck_assert_int_eq(io.calls, 1);
	ck_assert(io.events & EPOLLOUT);

	loop_io_del(io.loop, p[0]);
	loop_io_del(io.loop, p[0]); /* twice is harmless */
	loop_io_del(io.loop, p[1]);
	close(p[0]);
	close(p[1]);
	loop_free(io.loop);
}
END_TEST

/* Two pipes readable in the same epoll batch. Whichever callback runs first deletes the other
 * read end, closes it and puts a fresh, empty pipe on the same fd number with another
 * callback: the event already collected for the old fd must not reach anyone. */
struct reuse {
	struct loop *loop;
	int a[2], b[2], fresh[2];
	int victim;         /* the fd number that was deleted and reused */
	int a_calls, b_calls, fresh_calls;
	bool written;       /* set by the timer that makes the fresh pipe readable */
	struct loop_timer writer, guard;
};

static void on_fresh(void *arg, int fd, uint32_t events)
{
	struct reuse *r = arg;
	char c;

	(void)events;
	ck_assert_msg(r->written, "stale event delivered to the reused fd");
	ck_assert_int_eq(fd, r->victim);
	ck_assert_int_eq(read(fd, &c, 1), 1);
	r->fresh_calls++;
	loop_stop(r->loop);
}

static void on_writer(void *arg)
{
	struct reuse *r = arg;

	r->written = true;
	ck_assert_int_eq(write(r->fresh[1], "y", 1), 1);
}

static void replace(struct reuse *r, int *other)
{
	int fd = other[0];

	loop_io_del(r->loop, fd);
	close(fd);
	close(other[1]);
	other[0] = other[1] = -1;
	ck_assert_int_eq(pipe2(r->fresh, O_NONBLOCK | O_CLOEXEC), 0);
	/* The kernel usually hands the lowest free number back; make sure of it. */
	if (r->fresh[0] != fd) {
		ck_assert_int_eq(dup3(r->fresh[0], fd, O_CLOEXEC), fd);
		close(r->fresh[0]);
		r->fresh[0] = fd;
	}
	r->victim = fd;
	ck_assert_int_eq(loop_io_add(r->loop, fd, EPOLLIN, on_fresh, r), 0);
	/* Timers run before the next epoll_wait, so every stale event of this batch comes
	 * before the fresh pipe turns readable. */
	loop_timer_start(r->loop, &r->writer, 0);
}

static void on_a(void *arg, int fd, uint32_t events)
{
	struct reuse *r = arg;
	char c;

	(void)events;
	ck_assert_int_eq(fd, r->a[0]);
	ck_assert_int_eq(read(fd, &c, 1), 1);
	r->a_calls++;
	if (r->b_calls == 0 && r->victim < 0)
		replace(r, r->b);
}

static void on_b(void *arg, int fd, uint32_t events)
{
	struct reuse *r = arg;
	char c;

	(void)events;
	ck_assert_int_eq(fd, r->b[0]);
	ck_assert_int_eq(read(fd, &c, 1), 1);
	r->b_calls++;
	if (r->a_calls == 0 && r->victim < 0)
		replace(r, r->a);
}

START_TEST(test_fd_delete_and_reuse_in_batch)
{
	struct reuse r = { .loop = loop_new(), .victim = -1 };

	ck_assert_ptr_nonnull(r.loop);
	ck_assert_int_eq(pipe2(r.a, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(r.b, O_NONBLOCK | O_CLOEXEC), 0);
	loop_timer_init(&r.writer, on_writer, &r);
	loop_timer_init(&r.guard, on_never, NULL);
	/* Both readable before the first epoll_wait: one batch holds both events. */
	ck_assert_int_eq(write(r.a[1], "a", 1), 1);
	ck_assert_int_eq(write(r.b[1], "b", 1), 1);
	ck_assert_int_eq(loop_io_add(r.loop, r.a[0], EPOLLIN, on_a, &r), 0);
	ck_assert_int_eq(loop_io_add(r.loop, r.b[0], EPOLLIN, on_b, &r), 0);
	ck_assert_int_eq(loop_run(r.loop), 0);
	ck_assert_int_eq(r.a_calls + r.b_calls, 1);
	ck_assert_int_eq(r.fresh_calls, 1);

	loop_io_del(r.loop, r.victim);
	for (int i = 0; i < 2; i++) {
		if (r.a[i] >= 0)
			close(r.a[i]);
		if (r.b[i] >= 0)
			close(r.b[i]);
	}
	close(r.fresh[0]);
	close(r.fresh[1]);
	loop_free(r.loop);
}
END_TEST

/* Deleting (without closing) an fd from another fd's callback in the same batch. */
struct delpair {
	struct loop *loop;
	int p[2], q[2];
	int calls;
	struct loop_timer stop;
};

static void on_del_first(void *arg, int fd, uint32_t events)
{
	struct delpair *d = arg;

	(void)events;
	d->calls++;
	ck_assert_int_eq(d->calls, 1);
	loop_io_del(d->loop, fd == d->p[0] ? d->q[0] : d->p[0]);
	loop_io_del(d->loop, fd);
	/* Nothing left registered: a timer ends the run. */
	loop_timer_start(d->loop, &d->stop, 20);
}

START_TEST(test_fd_delete_other_in_batch)
{
	struct delpair d = { .loop = loop_new() };

	ck_assert_ptr_nonnull(d.loop);
	ck_assert_int_eq(pipe2(d.p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(d.q, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(write(d.p[1], "p", 1), 1);
	ck_assert_int_eq(write(d.q[1], "q", 1), 1);
	loop_timer_init(&d.stop, on_stop, d.loop);
	ck_assert_int_eq(loop_io_add(d.loop, d.p[0], EPOLLIN, on_del_first, &d), 0);
	ck_assert_int_eq(loop_io_add(d.loop, d.q[0], EPOLLIN, on_del_first, &d), 0);
	ck_assert_int_eq(loop_run(d.loop), 0);
	ck_assert_int_eq(d.calls, 1);
	close(d.p[0]);
	close(d.p[1]);
	close(d.q[0]);
	close(d.q[1]);
	loop_free(d.loop);
}
END_TEST

/* --- signals --- */

struct sig {
	struct loop *loop;
	int signo;
	int calls;
};

static void on_signal(void *arg, const struct signalfd_siginfo *si)
{
	struct sig *s = arg;

	s->signo = (int)si->ssi_signo;
	s->calls++;
	loop_stop(s->loop);
}

START_TEST(test_signal)
{
	struct sig s = { .loop = loop_new() }, s2 = { 0 };

	ck_assert_ptr_nonnull(s.loop);
	s2.loop = s.loop;
	ck_assert_int_eq(loop_signal_add(s.loop, 0, on_signal, &s), -EINVAL);
	ck_assert_int_eq(loop_signal_add(s.loop, 65, on_signal, &s), -EINVAL);
	ck_assert_int_eq(loop_signal_add(s.loop, SIGUSR1, on_signal, &s), 0);
	/* A second signal shares the same signalfd. */
	ck_assert_int_eq(loop_signal_add(s.loop, SIGUSR2, on_signal, &s2), 0);
	ck_assert_int_eq(raise(SIGUSR1), 0);
	ck_assert_int_eq(loop_run(s.loop), 0);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_int_eq(s.signo, SIGUSR1);
	ck_assert_int_eq(s2.calls, 0);
	ck_assert_int_eq(raise(SIGUSR2), 0);
	ck_assert_int_eq(loop_run(s.loop), 0);
	ck_assert_int_eq(s2.calls, 1);
	ck_assert_int_eq(s2.signo, SIGUSR2);
	ck_assert_int_eq(s.calls, 1);
	loop_free(s.loop);
}
END_TEST

/* --- wake-ups --- */

struct wake {
	struct loop *loop;
	struct loop_wake *w;
	int calls;
	int notifies;
	bool stop_on_wake;
};

static void on_wake(void *arg)
{
	struct wake *w = arg;

	w->calls++;
	if (w->stop_on_wake)
		loop_stop(w->loop);
}

static void *notifier(void *arg)
{
	struct wake *w = arg;

	for (int i = 0; i < w->notifies; i++)
		loop_wake_notify(w->w);
	return NULL;
}

START_TEST(test_wake_from_thread)
{
	struct wake w = { .loop = loop_new(), .notifies = 1, .stop_on_wake = true };
	pthread_t th;

	ck_assert_ptr_nonnull(w.loop);
	w.w = loop_wake_new(w.loop, on_wake, &w);
	ck_assert_ptr_nonnull(w.w);
	/* The loop has nothing else to wait for: only the other thread can end this run. */
	ck_assert_int_eq(pthread_create(&th, NULL, notifier, &w), 0);
	ck_assert_int_eq(loop_run(w.loop), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(w.calls, 1);
	loop_wake_free(w.w);
	loop_free(w.loop);
}
END_TEST

START_TEST(test_wake_coalesces)
{
	struct wake w = { .loop = loop_new(), .notifies = 1000, .stop_on_wake = false };
	struct loop_timer stop;
	pthread_t th;

	ck_assert_ptr_nonnull(w.loop);
	w.w = loop_wake_new(w.loop, on_wake, &w);
	ck_assert_ptr_nonnull(w.w);
	ck_assert_int_eq(pthread_create(&th, NULL, notifier, &w), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	/* All 1000 notifications happened before the loop looked: one callback. A pending
	 * second one would be delivered by epoll before the timer's deadline. */
	loop_timer_init(&stop, on_stop, w.loop);
	loop_timer_start(w.loop, &stop, 50);
	ck_assert_int_eq(loop_run(w.loop), 0);
	ck_assert_int_eq(w.calls, 1);

	/* And it wakes again afterwards. */
	w.stop_on_wake = true;
	loop_wake_notify(w.w);
	ck_assert_int_eq(loop_run(w.loop), 0);
	ck_assert_int_eq(w.calls, 2);
	loop_wake_free(w.w);
	loop_wake_free(NULL);
	loop_free(w.loop);
}
END_TEST

/* A timer never fires before its delay has passed on CLOCK_MONOTONIC, whatever the phase of
 * the start within a millisecond (device waits such as the LCD's depend on it), while the loop
 * is kept busy by an always-readable pipe (an idle loop sleeps the whole timeout in epoll and
 * hides early deadlines). The starts are spread over the millisecond by busy-waiting. */
struct early {
	struct loop *loop;
	struct loop_timer t;
	struct timespec start;
	int left, early;
	long worst_ns;
};

static long elapsed_ns(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000000000L + (b.tv_nsec - a->tv_nsec);
}

static void on_early(void *arg)
{
	struct early *e = arg;
	long ns = elapsed_ns(&e->start);
	if (ns < 1000000L)
		e->early++;
	if (e->worst_ns < 0 || ns < e->worst_ns)
		e->worst_ns = ns;
	if (--e->left == 0) {
		loop_stop(e->loop);
		return;
	}
	struct timespec spin;
	clock_gettime(CLOCK_MONOTONIC, &spin);
	while (elapsed_ns(&spin) < (e->left * 37 % 1000) * 1000L)
		;
	clock_gettime(CLOCK_MONOTONIC, &e->start);
	loop_timer_start(e->loop, &e->t, 1);
}

static void on_busy(void *arg, int fd, uint32_t events)
{
	(void)arg, (void)fd, (void)events;
}

START_TEST(test_timer_never_early)
{
	struct early e = { .left = 300, .worst_ns = -1 };
	int p[2];
	e.loop = loop_new();
	ck_assert_ptr_nonnull(e.loop);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);   /* never read: EPOLLIN on every iteration */
	ck_assert_int_eq(loop_io_add(e.loop, p[0], EPOLLIN, on_busy, NULL), 0);
	loop_timer_init(&e.t, on_early, &e);
	clock_gettime(CLOCK_MONOTONIC, &e.start);
	loop_timer_start(e.loop, &e.t, 1);
	loop_run(e.loop);
	ck_assert_msg(e.early == 0, "%d of 300 1-ms timers fired early (shortest %ld ns)", e.early,
		      e.worst_ns);
	loop_io_del(e.loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(e.loop);
}
END_TEST

START_TEST(test_now_and_wall)
{
	struct loop *loop = loop_new();
	uint64_t wall = loop_wall_ms();

	ck_assert_ptr_nonnull(loop);
	ck_assert_uint_gt(loop_now(loop), 0);
	/* After 2020-01-01. */
	ck_assert_uint_gt(wall, 1577836800000ull);
	loop_free(loop);
	loop_free(NULL);
}
END_TEST

/* --- deferred calls --- */

/* A log of what ran, in order: 'T' a timer, 'I' an fd callback, digits deferred calls. */
struct trace {
	struct loop *loop;
	char s[64];
	int n;
	int iteration;          /* counted by an always-readable fd, where a test has one */
	int ran_in[8];          /* the iteration each deferred call last ran in */
	struct loop_defer d[8];
	struct loop_timer t;
	bool timer_queues;      /* the timer queues d[1] and d[2] */
	int requeue;            /* d[0] queues itself again this many times, then stops the loop */
	int cancel_from;        /* the deferred call that cancels d[cancel_target], -1: none */
	int cancel_target;
};

static void trace_put(struct trace *tr, char c)
{
	ck_assert_int_lt(tr->n, 63);
	tr->s[tr->n++] = c;
	tr->s[tr->n] = '\0';
}

struct dtag {
	struct trace *tr;
	int id;
};

static void on_deferred(void *arg)
{
	struct dtag *t = arg;
	struct trace *tr = t->tr;

	trace_put(tr, (char)('0' + t->id));
	tr->ran_in[t->id] = tr->iteration;
	if (t->id == tr->cancel_from)
		loop_defer_cancel(tr->loop, &tr->d[tr->cancel_target]);
	if (t->id == 0) {
		if (tr->requeue-- <= 0) {
			loop_stop(tr->loop);
			return;
		}
		loop_defer(tr->loop, &tr->d[0]);
		/* Queued again from here on: a second loop_defer changes nothing. */
		ck_assert(loop_defer_queued(&tr->d[0]));
		loop_defer(tr->loop, &tr->d[0]);
	}
}

static void on_trace_timer(void *arg)
{
	struct trace *tr = arg;

	trace_put(tr, 'T');
	if (tr->timer_queues) {
		/* Queued from a timer: after the I/O of this same iteration. */
		loop_defer(tr->loop, &tr->d[1]);
		loop_defer(tr->loop, &tr->d[2]);
	} else {
		loop_stop(tr->loop);
	}
}

/* Reads one byte, queues d[3] and stops the loop (which ends the iteration first). */
static void on_trace_fd(void *arg, int fd, uint32_t events)
{
	struct trace *tr = arg;
	char c;

	(void)events;
	if (read(fd, &c, 1) != 1)
		return;
	trace_put(tr, 'I');
	loop_defer(tr->loop, &tr->d[3]);
	loop_stop(tr->loop);
}

/* Never reads: level-triggered, it runs once per iteration. */
static void on_tick_fd(void *arg, int fd, uint32_t events)
{
	struct trace *tr = arg;

	(void)fd;
	(void)events;
	tr->iteration++;
}

static void trace_init(struct trace *tr, struct dtag *tags)
{
	memset(tr, 0, sizeof *tr);
	tr->loop = loop_new();
	ck_assert_ptr_nonnull(tr->loop);
	tr->cancel_from = -1;
	for (int i = 0; i < 8; i++) {
		tags[i] = (struct dtag){ tr, i };
		loop_defer_init(&tr->d[i], on_deferred, &tags[i]);
		ck_assert(!loop_defer_queued(&tr->d[i]));
		tr->ran_in[i] = -1;
	}
	loop_timer_init(&tr->t, on_trace_timer, tr);
}

/* Timers, then I/O, then the deferred calls in the order they were queued, once each. */
START_TEST(test_defer_end_of_iteration)
{
	struct trace tr;
	struct dtag tags[8];
	int p[2];

	trace_init(&tr, tags);
	tr.timer_queues = true;
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(loop_io_add(tr.loop, p[0], EPOLLIN, on_trace_fd, &tr), 0);
	/* Queued before the loop runs: at the end of its first iteration, first of all. */
	loop_defer(tr.loop, &tr.d[4]);
	loop_defer(tr.loop, &tr.d[4]);
	loop_timer_start(tr.loop, &tr.t, 0);
	ck_assert_int_eq(loop_run(tr.loop), 0);
	ck_assert_str_eq(tr.s, "TI4123");
	for (int i = 1; i <= 4; i++)
		ck_assert(!loop_defer_queued(&tr.d[i]));
	loop_io_del(tr.loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(tr.loop);
}
END_TEST

/* One queued while the deferred calls run waits for the end of the next iteration. */
START_TEST(test_defer_requeue_next_iteration)
{
	struct trace tr;
	struct dtag tags[8];
	int p[2];

	trace_init(&tr, tags);
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(loop_io_add(tr.loop, p[0], EPOLLIN, on_tick_fd, &tr), 0);
	tr.requeue = 3;
	loop_defer(tr.loop, &tr.d[0]);
	loop_defer(tr.loop, &tr.d[1]);
	ck_assert_int_eq(loop_run(tr.loop), 0);
	ck_assert_str_eq(tr.s, "01000");
	ck_assert_int_eq(tr.ran_in[1], 1);
	ck_assert_int_eq(tr.ran_in[0], 4);
	ck_assert_int_eq(tr.iteration, 4);
	loop_io_del(tr.loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(tr.loop);
}
END_TEST

/* With nothing else to wake it (no fd, no timer) the loop does not sleep in epoll while a
 * deferred call is queued: this returns (a hang would be the test's timeout). */
START_TEST(test_defer_no_sleep)
{
	struct trace tr;
	struct dtag tags[8];

	trace_init(&tr, tags);
	tr.requeue = 5;
	loop_defer(tr.loop, &tr.d[0]);
	ck_assert_int_eq(loop_run(tr.loop), 0);
	ck_assert_str_eq(tr.s, "000000");
	loop_free(tr.loop);
}
END_TEST

/* A cancelled call never runs, also when the cancel comes from a deferred call of the same
 * batch, and also when it was the batch's last one. */
START_TEST(test_defer_cancel)
{
	struct trace tr;
	struct dtag tags[8];

	trace_init(&tr, tags);
	loop_defer(tr.loop, &tr.d[5]);
	loop_defer(tr.loop, &tr.d[6]);
	loop_defer(tr.loop, &tr.d[7]);
	loop_defer_cancel(tr.loop, &tr.d[6]);
	ck_assert(!loop_defer_queued(&tr.d[6]));
	loop_defer_cancel(tr.loop, &tr.d[6]);   /* not queued: nothing */
	tr.cancel_from = 5;
	tr.cancel_target = 7;                   /* the batch's last */
	loop_timer_start(tr.loop, &tr.t, 0);    /* stops the loop: one iteration */
	ck_assert_int_eq(loop_run(tr.loop), 0);
	ck_assert_str_eq(tr.s, "T5");
	ck_assert(!loop_defer_queued(&tr.d[7]));
	/* Cancelled, it can be queued again; loop_free runs it. */
	loop_defer(tr.loop, &tr.d[7]);
	loop_free(tr.loop);
	ck_assert_str_eq(tr.s, "T57");
}
END_TEST

/* libuv's use: an object closed inside its own callback stays readable until the iteration
 * ends, then is freed (ASan would report a use after free or a leak). */
struct closable {
	struct loop *loop;
	int fd;
	bool closed;
	int *freed;
	struct loop_defer free_later;
};

static void closable_free(void *arg)
{
	struct closable *c = arg;

	(*c->freed)++;
	free(c);
}

static void closable_close(struct closable *c)
{
	loop_io_del(c->loop, c->fd);
	c->closed = true;
	loop_defer(c->loop, &c->free_later);
}

static void on_closable(void *arg, int fd, uint32_t events)
{
	struct closable *c = arg;

	(void)fd;
	(void)events;
	closable_close(c);
	/* What a caller up the stack would do next: look at the object it was handed. */
	ck_assert(c->closed);
	ck_assert_int_eq(*c->freed, 0);
	loop_stop(c->loop);
}

START_TEST(test_defer_free_in_own_callback)
{
	struct loop *loop = loop_new();
	int p[2], freed = 0;

	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	struct closable *c = calloc(1, sizeof *c);
	ck_assert_ptr_nonnull(c);
	c->loop = loop;
	c->fd = p[0];
	c->freed = &freed;
	loop_defer_init(&c->free_later, closable_free, c);
	ck_assert_int_eq(loop_io_add(loop, p[0], EPOLLIN, on_closable, c), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(loop_run(loop), 0);
	/* loop_stop from the callback still ends the iteration with its deferred calls. */
	ck_assert_int_eq(freed, 1);
	close(p[0]);
	close(p[1]);
	loop_free(loop);
}
END_TEST

/* What is still queued when the loop is freed (or flushed for a teardown) runs, once. */
START_TEST(test_defer_flush_and_free)
{
	struct trace tr;
	struct dtag tags[8];

	trace_init(&tr, tags);
	tr.requeue = 2;
	loop_defer(tr.loop, &tr.d[0]);
	loop_defer(tr.loop, &tr.d[1]);
	loop_defer_flush(tr.loop);
	ck_assert_str_eq(tr.s, "0100");   /* d[0] stops a loop that is not running: harmless */
	loop_defer(tr.loop, &tr.d[2]);
	loop_free(tr.loop);
	ck_assert_str_eq(tr.s, "01002");
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_timer_order);
	tcase_add_test(tc, test_timer_stopped_never_fires);
	tcase_add_test(tc, test_timer_restart_from_callback);
	tcase_add_test(tc, test_timer_zero_delay_does_not_starve_io);
	tcase_add_test(tc, test_fd_callback);
	tcase_add_test(tc, test_fd_delete_and_reuse_in_batch);
	tcase_add_test(tc, test_fd_delete_other_in_batch);
	tcase_add_test(tc, test_signal);
	tcase_add_test(tc, test_wake_from_thread);
	tcase_add_test(tc, test_wake_coalesces);
	tcase_add_test(tc, test_now_and_wall);
	tcase_add_test(tc, test_timer_never_early);
	tcase_add_test(tc, test_defer_end_of_iteration);
	tcase_add_test(tc, test_defer_requeue_next_iteration);
	tcase_add_test(tc, test_defer_no_sleep);
	tcase_add_test(tc, test_defer_cancel);
	tcase_add_test(tc, test_defer_free_in_own_callback);
	tcase_add_test(tc, test_defer_flush_and_free);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
