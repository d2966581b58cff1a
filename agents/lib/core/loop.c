/* loop: epoll + deadline heap + signalfd + eventfd + deferred calls; see loop.h. */
#include "loop.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 64

struct loop_fd {
	loop_io_cb cb;
	void *arg;
	uint32_t gen;  /* bumped on every add/del: stale events from one epoll batch are dropped */
	bool active;
};

struct loop_sig {
	loop_signal_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	bool stop;
	uint64_t now;
	struct loop_fd *fds;
	size_t nfds;
	struct loop_timer **heap;
	size_t heap_len, heap_cap;
	int sigfd;
	sigset_t sigmask;
	struct loop_sig sigs[65];
	struct loop_defer *defer_head, *defer_tail;
	struct loop_defer *defer_last;   /* while the deferred calls run: the last one to run now */
};

struct loop_wake {
	struct loop *loop;
	int fd;
	loop_wake_cb cb;
	void *arg;
};

static uint64_t loop_clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t loop_wall_ms(void) { return loop_clock_ms(CLOCK_REALTIME); }

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof *loop);
	if (!loop)
		return NULL;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		log_warn("epoll_create1");
		free(loop);
		return NULL;
	}
	loop->now = loop_clock_ms(CLOCK_MONOTONIC);
	return loop;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	loop_defer_flush(loop);
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	close(loop->epfd);
	free(loop->fds);
	free(loop->heap);
	free(loop);
}

void loop_stop(struct loop *loop) { loop->stop = true; }
uint64_t loop_now(struct loop *loop) { return loop->now; }

static int loop_fd_slot(struct loop *loop, int fd)
{
	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= loop->nfds) {
		size_t n = loop->nfds ? loop->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct loop_fd *p = realloc(loop->fds, n * sizeof *p);
		if (!p)
			return -ENOMEM;
		memset(p + loop->nfds, 0, (n - loop->nfds) * sizeof *p);
		loop->fds = p;
		loop->nfds = n;
	}
	return 0;
}

int loop_io_add(struct loop *loop, int fd, uint32_t events, loop_io_cb cb, void *arg)
{
	int rc = loop_fd_slot(loop, fd);
	if (rc < 0)
		return rc;
	struct loop_fd *f = &loop->fds[fd];
	/* The generation only moves on success: a failed add (EEXIST) must leave a live
	 * registration's events matching. */
	uint32_t gen = f->gen + 1;
	struct epoll_event ev = { .events = events,
				  .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	f->gen = gen;
	f->cb = cb;
	f->arg = arg;
	f->active = true;
	return 0;
}

int loop_io_mod(struct loop *loop, int fd, uint32_t events)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].active)
		return -EBADF;
	struct epoll_event ev = { .events = events,
				  .data.u64 = ((uint64_t)loop->fds[fd].gen << 32) | (uint32_t)fd };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_io_del(struct loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].active)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->fds[fd].active = false;
	loop->fds[fd].gen++;
}

/* --- timers: binary min-heap on deadline --- */

static void heap_swap(struct loop *loop, size_t a, size_t b)
{
	struct loop_timer *t = loop->heap[a];
	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->heap_index = a;
	loop->heap[b]->heap_index = b;
}

static void heap_up(struct loop *loop, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (loop->heap[p]->deadline <= loop->heap[i]->deadline)
			break;
		heap_swap(loop, p, i);
		i = p;
	}
}

static void heap_down(struct loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < loop->heap_len && loop->heap[l]->deadline < loop->heap[m]->deadline)
			m = l;
		if (r < loop->heap_len && loop->heap[r]->deadline < loop->heap[m]->deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(loop, m, i);
		i = m;
	}
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg)
{
	t->deadline = 0;
	t->heap_index = SIZE_MAX;
	t->cb = cb;
	t->arg = arg;
}

bool loop_timer_armed(const struct loop_timer *t) { return t->heap_index != SIZE_MAX; }

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
	size_t i = t->heap_index;
	/* The second test turns stopping a timer that was never initialised (zeroed memory:
	 * index 0) into a no-op instead of a corrupted heap. */
	if (i == SIZE_MAX || i >= loop->heap_len || loop->heap[i] != t)
		return;
	size_t last = --loop->heap_len;
	if (i != last) {
		loop->heap[i] = loop->heap[last];
		loop->heap[i]->heap_index = i;
		heap_down(loop, i);
		heap_up(loop, i);
	}
	t->heap_index = SIZE_MAX;
}

void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_stop(loop, t);
	if (loop->heap_len == loop->heap_cap) {
		size_t n = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct loop_timer **h = realloc(loop->heap, n * sizeof *h);
		if (!h)
			fatalx("out of memory growing the timer heap");
		loop->heap = h;
		loop->heap_cap = n;
	}
	/* The deadline counts from the next whole millisecond: from the truncated clock a timer
	 * started at x.9 ms would fire up to 1 ms early (the loop compares truncated times), and
	 * device waits (lcd.c) must never be shorter than asked. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now_up = (uint64_t)ts.tv_sec * 1000u + ((uint64_t)ts.tv_nsec + 999999u) / 1000000u;
	t->deadline = delay_ms ? now_up + delay_ms : loop_clock_ms(CLOCK_MONOTONIC);
	t->heap_index = loop->heap_len;
	loop->heap[loop->heap_len++] = t;
	heap_up(loop, t->heap_index);
}

static void loop_run_timers(struct loop *loop)
{
	while (loop->heap_len > 0 && loop->heap[0]->deadline <= loop->now) {
		struct loop_timer *t = loop->heap[0];
		loop_timer_stop(loop, t);
		t->cb(t->arg);
	}
}

/* --- signals --- */

static void loop_on_signal(void *arg, int fd, uint32_t events)
{
	struct loop *loop = arg;
	struct signalfd_siginfo si;
	(void)events;
	for (;;) {
		ssize_t n = read(fd, &si, sizeof si);
		if (n != (ssize_t)sizeof si)
			return;
		if (si.ssi_signo < 65 && loop->sigs[si.ssi_signo].cb)
			loop->sigs[si.ssi_signo].cb(loop->sigs[si.ssi_signo].arg, &si);
	}
}

int loop_signal_add(struct loop *loop, int signo, loop_signal_cb cb, void *arg)
{
	if (signo <= 0 || signo >= 65)
		return -EINVAL;
	sigaddset(&loop->sigmask, signo);
	if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) < 0)
		return -errno;
	int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		int rc = loop_io_add(loop, fd, EPOLLIN, loop_on_signal, loop);
		if (rc < 0)
			return rc;
	}
	loop->sigs[signo].cb = cb;
	loop->sigs[signo].arg = arg;
	return 0;
}

/* --- wake-ups --- */

static void loop_on_wake(void *arg, int fd, uint32_t events)
{
	struct loop_wake *w = arg;
	uint64_t v;
	(void)events;
	while (read(fd, &v, sizeof v) == (ssize_t)sizeof v)
		;
	w->cb(w->arg);
}

struct loop_wake *loop_wake_new(struct loop *loop, loop_wake_cb cb, void *arg)
{
	struct loop_wake *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->loop = loop;
	w->cb = cb;
	w->arg = arg;
	w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->fd < 0) {
		log_warn("eventfd");
		free(w);
		return NULL;
	}
	if (loop_io_add(loop, w->fd, EPOLLIN, loop_on_wake, w) < 0) {
		log_warn("epoll add eventfd");
		close(w->fd);
		free(w);
		return NULL;
	}
	return w;
}

void loop_wake_notify(struct loop_wake *w)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
	while (write(w->fd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

void loop_wake_free(struct loop_wake *w)
{
	if (!w)
		return;
	loop_io_del(w->loop, w->fd);
	close(w->fd);
	free(w);
}

/* --- deferred calls --- */

void loop_defer_init(struct loop_defer *d, loop_defer_cb cb, void *arg)
{
	d->prev = d->next = NULL;
	d->cb = cb;
	d->arg = arg;
	d->queued = false;
}

bool loop_defer_queued(const struct loop_defer *d) { return d->queued; }

void loop_defer(struct loop *loop, struct loop_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = NULL;
	d->prev = loop->defer_tail;
	if (loop->defer_tail)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
}

void loop_defer_cancel(struct loop *loop, struct loop_defer *d)
{
	if (!d->queued)
		return;
	/* The batch being run ends one earlier (or, if d was all that was left of it, now). */
	if (d == loop->defer_last)
		loop->defer_last = d->prev;
	if (d->prev)
		d->prev->next = d->next;
	else
		loop->defer_head = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		loop->defer_tail = d->prev;
	d->prev = d->next = NULL;
	d->queued = false;
}

/* The calls queued before this phase began; later ones wait for the next iteration, so a call
 * that queues itself again cannot hold the loop here. */
static void loop_run_deferred(struct loop *loop)
{
	loop->defer_last = loop->defer_tail;
	while (loop->defer_last) {
		struct loop_defer *d = loop->defer_head;
		if (d == loop->defer_last)
			loop->defer_last = NULL;
		loop_defer_cancel(loop, d);
		d->cb(d->arg);
	}
}

void loop_defer_flush(struct loop *loop)
{
	while (loop->defer_head)
		loop_run_deferred(loop);
}

/* --- run --- */

int loop_run(struct loop *loop)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];

	loop->stop = false;
	while (!loop->stop) {
		loop->now = loop_clock_ms(CLOCK_MONOTONIC);
		loop_run_timers(loop);
		int n = 0;
		if (!loop->stop) {
			int timeout = -1;
			if (loop->defer_head) {
				timeout = 0;
			} else if (loop->heap_len > 0) {
				uint64_t d = loop->heap[0]->deadline;
				timeout = d <= loop->now ? 0 : (int)(d - loop->now > 86400000 ? 86400000 : d - loop->now);
			}
			n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout);
			if (n < 0) {
				if (errno != EINTR) {
					int e = errno;
					log_warn("epoll_wait");
					return -e;
				}
				n = 0;
			}
			loop->now = loop_clock_ms(CLOCK_MONOTONIC);
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64;
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			if ((size_t)fd >= loop->nfds)
				continue;
			struct loop_fd *f = &loop->fds[fd];
			if (!f->active || f->gen != gen)
				continue;
			f->cb(f->arg, fd, evs[i].events);
		}
		loop_run_deferred(loop);
	}
	return 0;
}
