/* net: non-blocking TCP and UDP socket helpers in the Redis anet.c style. Every socket is
 * SOCK_NONBLOCK|SOCK_CLOEXEC; every TCP socket gets TCP_NODELAY, because Nagle plus delayed
 * ACK adds ~40 ms to each request/response on loopback. Functions return an fd or 0 on
 * success, -errno on failure, and do not log: the caller knows the context. */
#ifndef FR_NET_H
#define FR_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest "[addr]:port" net_addr_str writes, NUL included. */
#define NET_ADDRSTRLEN 64

/* host must be a numeric IPv4 or IPv6 address; "" or NULL means any (0.0.0.0). */
int net_addr_parse(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
/* "127.0.0.2:4000" or "[::1]:4000" into buf (at least NET_ADDRSTRLEN bytes); returns buf. */
const char *net_addr_str(const struct sockaddr *sa, char *buf, size_t n);
/* Just the address part, without the port. */
const char *net_host_str(const struct sockaddr *sa, char *buf, size_t n);
uint16_t net_addr_port(const struct sockaddr *sa);

int net_set_nodelay(int fd);
int net_tcp_listen(const char *host, uint16_t port, int backlog);
/* accept4 with NONBLOCK|CLOEXEC and TCP_NODELAY; -EAGAIN when nothing is pending. */
int net_tcp_accept(int lfd, struct sockaddr_storage *peer);
/* Starts a non-blocking connect (optionally from a local address); the fd becomes writable when
 * it completes; then net_tcp_connect_result tells how it went. */
int net_tcp_connect(const struct sockaddr_storage *to, const char *bind_host);
int net_tcp_connect_result(int fd);
/* UDP socket bound to host:port (port 0 = any); broadcast enables SO_BROADCAST. */
int net_udp_bind(const char *host, uint16_t port, bool broadcast);
/* Local port of a bound socket, 0 on error. */
uint16_t net_local_port(int fd);
/* The end of a TCP connection that loses nothing of what was written: closing a socket with
 * unread input sends RST, and the kernel then drops what is still queued for the peer. So this
 * sends FIN after the queued data (shutdown SHUT_WR) and reads and discards what the peer still
 * sends until its EOF, an error or timeout_ms (it blocks up to that long); the caller closes
 * the fd after. */
void net_shutdown_drain(int fd, uint64_t timeout_ms);

#endif
