/* loop: the one event loop of each agent (epoll). File descriptors, one-shot timers kept as
 * deadlines in a heap (the epoll timeout is the nearest one), signals through one signalfd,
 * eventfd wake-ups that other threads may trigger, and deferred calls run at the end of each
 * iteration (libuv's closing phase). Everything else in an agent runs inside the callbacks of
 * this loop, on one thread.
 *
 * One iteration: update the time, run the expired timers, wait for I/O (not at all while a
 * deferred call is queued) and run its callbacks, then run the deferred calls queued so far. */
#ifndef FR_LOOP_H
#define FR_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

struct loop;

typedef void (*loop_io_cb)(void *arg, int fd, uint32_t events);
typedef void (*loop_timer_cb)(void *arg);
typedef void (*loop_signal_cb)(void *arg, const struct signalfd_siginfo *si);
typedef void (*loop_wake_cb)(void *arg);
typedef void (*loop_defer_cb)(void *arg);

/* A timer lives inside its owner's struct (no allocation); fields are private to loop.c.
 * A stopped or fired timer may be restarted or simply forgotten. */
struct loop_timer {
	uint64_t deadline;   /* private */
	size_t heap_index;   /* private: SIZE_MAX when not armed */
	loop_timer_cb cb;    /* private */
	void *arg;           /* private */
};

/* A deferred call lives inside its owner's struct too; fields are private to loop.c. */
struct loop_defer {
	struct loop_defer *prev, *next;   /* private: the queue */
	loop_defer_cb cb;                 /* private */
	void *arg;                        /* private */
	bool queued;                      /* private */
};

struct loop *loop_new(void);
/* Runs the deferred calls still queued (those may queue more: they run too), then frees. */
void loop_free(struct loop *loop);
/* Runs until loop_stop; returns 0, or -errno if epoll itself failed. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* Milliseconds on CLOCK_MONOTONIC, refreshed once per iteration. */
uint64_t loop_now(struct loop *loop);
/* Wall clock in milliseconds since the epoch (not cached). */
uint64_t loop_wall_ms(void);

/* The fd stays owned by the caller; call loop_io_del before closing it. Safe to call from any
 * callback: events already collected for a deleted fd are not delivered. */
int loop_io_add(struct loop *loop, int fd, uint32_t events, loop_io_cb cb, void *arg);
int loop_io_mod(struct loop *loop, int fd, uint32_t events);
void loop_io_del(struct loop *loop, int fd);

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg);
/* (Re)arms t to fire once after delay_ms. */
void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);

/* Deferred calls: libuv's closing phase. loop_defer queues d to run once at the end of the
 * current iteration, after every timer and I/O callback of it, in the order queued; queuing a
 * queued d does nothing. A call queued while the deferred calls run waits for the end of the
 * next iteration (which then does not wait for I/O). This is how a module frees an object
 * from inside that object's own callback (the memory stays valid until the iteration ends:
 * callers up the stack see a closed object, never a freed one), and how a callback is kept
 * from running inside the call that caused it (a link's on_down, a spawn failure, a publish
 * completion). No module keeps graveyards, depth counters or 0-ms timers of its own. */
void loop_defer_init(struct loop_defer *d, loop_defer_cb cb, void *arg);
void loop_defer(struct loop *loop, struct loop_defer *d);
/* Unqueues d if queued; its owner may then free it. */
void loop_defer_cancel(struct loop *loop, struct loop_defer *d);
bool loop_defer_queued(const struct loop_defer *d);
/* Runs every queued deferred call now (and those they queue). For teardown only: an owner
 * about to free what its deferred calls still use (shim_free: the sessions its closed clients
 * hold) lets them run first. */
void loop_defer_flush(struct loop *loop);

/* Blocks signo for the process and delivers it through the loop's signalfd. One callback per
 * signal. */
int loop_signal_add(struct loop *loop, int signo, loop_signal_cb cb, void *arg);

/* An eventfd whose callback runs on the loop thread after any thread called loop_wake_notify.
 * Owned by the caller: free with loop_wake_free. Notifications coalesce. */
struct loop_wake;
struct loop_wake *loop_wake_new(struct loop *loop, loop_wake_cb cb, void *arg);
void loop_wake_notify(struct loop_wake *w);
void loop_wake_free(struct loop_wake *w);

#endif
