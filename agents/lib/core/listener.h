/* listener: a listening socket in the loop that accepts pending connections (a few per loop
 * iteration, so the connections just accepted are read in between) and hands each to its
 * owner, the same way in every agent. When the process is out of descriptors (EMFILE,
 * ENFILE) or memory, the pending connection cannot be taken and a level-triggered loop would
 * spin on it, logging at every turn: the listener stops polling for a second instead, logging
 * once per pause. */
#ifndef FR_LISTENER_H
#define FR_LISTENER_H

#include <sys/socket.h>

struct loop;
struct listener;

/* fd is the accepted connection (non-blocking, close-on-exec, TCP_NODELAY where TCP), now
 * owned by the callback. peer is borrowed for the call. */
typedef void (*listener_cb)(void *arg, int fd, const struct sockaddr_storage *peer);

/* Watches lfd (still owned by the caller, who closes it after listener_free). what names it in
 * logs ("link", "shim"). NULL on failure (logged). */
struct listener *listener_new(struct loop *loop, int lfd, const char *what, listener_cb cb,
			      void *arg);
void listener_free(struct listener *l);

#endif
