/* notify: tells the service manager (systemd, Type=notify) that the daemon is ready or is
 * stopping, by the sd_notify datagram protocol: one AF_UNIX datagram "READY=1" to the socket
 * named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). No libsystemd needed;
 * without $NOTIFY_SOCKET (started by hand, by another supervisor) every call does nothing. */
#ifndef FR_NOTIFY_H
#define FR_NOTIFY_H

/* Sends state (e.g. "READY=1", "STOPPING=1", "STATUS=..."; newline-separated assignments).
 * Returns 1 if sent, 0 without $NOTIFY_SOCKET, or a negative errno (also logged once). */
int notify_send(const char *state);
/* "READY=1": call once the daemon serves (sockets bound, state loaded). */
int notify_ready(void);
/* "STOPPING=1": call when a stop request starts the shutdown. */
int notify_stopping(void);

#endif
