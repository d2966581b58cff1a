/* listener: accept loop with a pause when out of descriptors; see listener.h. */
#include "listener.h"

#include "log.h"
#include "loop.h"
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LISTENER_PAUSE_MS 1000
/* Connections taken per readiness event; the listener stays readable (level-triggered) and
 * is served again in the next iteration. Between the two, the connections just taken get to
 * speak: under a flood a client that sends at once is read before a whole backlog of the
 * flood is taken behind it and pushes it out of its peer's pending budget (peerlimit). */
#define LISTENER_BATCH 8

struct listener {
	struct loop *loop;
	int lfd;
	const char *what;
	listener_cb cb;
	void *arg;
	struct loop_timer resume;
};

static void listener_on_readable(void *arg, int fd, uint32_t events);

static void listener_resume(void *arg)
{
	struct listener *l = arg;
	if (loop_io_mod(l->loop, l->lfd, EPOLLIN) < 0)
		log_warnx("%s: cannot resume accepting", l->what);
	else
		listener_on_readable(l, l->lfd, EPOLLIN);
}

static void listener_on_readable(void *arg, int fd, uint32_t events)
{
	struct listener *l = arg;
	(void)fd;
	(void)events;
	for (int n = 0; n < LISTENER_BATCH; n++) {
		struct sockaddr_storage peer;
		memset(&peer, 0, sizeof peer);
		int cfd = net_tcp_accept(l->lfd, &peer);
		if (cfd == -EAGAIN)
			return;
		if (cfd == -ECONNABORTED || cfd == -EINTR || cfd == -EPROTO)
			continue;   /* counted: a storm of aborted connections must not hold the loop */
		if (cfd < 0) {
			errno = -cfd;
			log_warn("%s: accept; pausing for %d ms", l->what, LISTENER_PAUSE_MS);
			loop_io_mod(l->loop, l->lfd, 0);
			loop_timer_start(l->loop, &l->resume, LISTENER_PAUSE_MS);
			return;
		}
		l->cb(l->arg, cfd, &peer);
	}
}

struct listener *listener_new(struct loop *loop, int lfd, const char *what, listener_cb cb,
			      void *arg)
{
	struct listener *l = calloc(1, sizeof *l);
	if (!l) {
		log_warnx("%s: out of memory", what);
		return NULL;
	}
	l->loop = loop;
	l->lfd = lfd;
	l->what = what;
	l->cb = cb;
	l->arg = arg;
	loop_timer_init(&l->resume, listener_resume, l);
	int rc = loop_io_add(loop, lfd, EPOLLIN, listener_on_readable, l);
	if (rc < 0) {
		errno = -rc;
		log_warn("%s: watching the listening socket", what);
		free(l);
		return NULL;
	}
	return l;
}

void listener_free(struct listener *l)
{
	if (!l)
		return;
	loop_timer_stop(l->loop, &l->resume);
	loop_io_del(l->loop, l->lfd);
	free(l);
}
