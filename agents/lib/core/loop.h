/* loop: the one event loop of each agent (epoll). File descriptors, one-shot timers kept as
 * deadlines in a heap (the epoll timeout is the nearest one), signals through one signalfd,
 * and eventfd wake-ups that other threads (paho's) may trigger. Everything else in an agent
 * runs inside the callbacks of this loop, on one thread. */
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

/* A timer lives inside its owner's struct (no allocation); fields are private to loop.c.
 * A stopped or fired timer may be restarted or simply forgotten. */
struct loop_timer {
	uint64_t deadline;   /* private */
	size_t heap_index;   /* private: SIZE_MAX when not armed */
	loop_timer_cb cb;    /* private */
	void *arg;           /* private */
};

struct loop *loop_new(void);
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
