/* net: socket helpers; see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int net_addr_parse(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	if (!host || !*host || strcmp(host, "*") == 0)
		host = "0.0.0.0";
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (len)
			*len = sizeof *in;
		return 0;
	}
	char tmp[INET6_ADDRSTRLEN + 2];
	size_t hl = strlen(host);
	/* Accept "[::1]" as well as "::1". */
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof tmp) {
		memcpy(tmp, host + 1, hl - 2);
		tmp[hl - 2] = '\0';
		host = tmp;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (len)
			*len = sizeof *in6;
		return 0;
	}
	return -EINVAL;
}

static socklen_t net_sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

const char *net_host_str(const struct sockaddr *sa, char *buf, size_t n)
{
	const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
						   : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)n))
		snprintf(buf, n, "?");
	return buf;
}

uint16_t net_addr_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
					       : ((const struct sockaddr_in *)sa)->sin_port);
}

const char *net_addr_str(const struct sockaddr *sa, char *buf, size_t n)
{
	char h[INET6_ADDRSTRLEN];
	net_host_str(sa, h, sizeof h);
	if (sa->sa_family == AF_INET6)
		snprintf(buf, n, "[%s]:%u", h, net_addr_port(sa));
	else
		snprintf(buf, n, "%s:%u", h, net_addr_port(sa));
	return buf;
}

int net_set_nodelay(int fd)
{
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		return -errno;
	return 0;
}

/* A socket of type for host:port, SO_REUSEADDR set, not bound yet (ss, len: where to bind).
 * The fd, or -errno. */
static int net_socket_for(const char *host, uint16_t port, int type, struct sockaddr_storage *ss,
			  socklen_t *len)
{
	int rc = net_addr_parse(host, port, ss, len);
	if (rc < 0)
		return rc;
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	return fd;
}

int net_tcp_listen(const char *host, uint16_t port, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc, fd = net_socket_for(host, port, SOCK_STREAM, &ss, &len);
	if (fd < 0)
		return fd;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int net_tcp_accept(int lfd, struct sockaddr_storage *peer)
{
	socklen_t len = sizeof *peer;
	int fd;
	do
		fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	net_set_nodelay(fd);
	return fd;
}

int net_tcp_connect(const struct sockaddr_storage *to, const char *bind_host)
{
	int rc;
	int fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	net_set_nodelay(fd);
	if (bind_host && *bind_host) {
		struct sockaddr_storage b;
		socklen_t bl;
		rc = net_addr_parse(bind_host, 0, &b, &bl);
		if (rc < 0)
			goto fail;
		if (bind(fd, (struct sockaddr *)&b, bl) < 0) {
			rc = -errno;
			goto fail;
		}
	}
	if (connect(fd, (const struct sockaddr *)to, net_sa_len((const struct sockaddr *)to)) < 0 &&
	    errno != EINPROGRESS) {
		rc = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

int net_tcp_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int net_udp_bind(const char *host, uint16_t port, bool broadcast)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc, one = 1, fd = net_socket_for(host, port, SOCK_DGRAM, &ss, &len);
	if (fd < 0)
		return fd;
	/* Several receivers (a test listener beside frMhs) may share a discovery port. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) {
		rc = -errno;
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		rc = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

uint16_t net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return net_addr_port((struct sockaddr *)&ss);
}

static uint64_t net_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void net_shutdown_drain(int fd, uint64_t timeout_ms)
{
	char buf[4096];
	uint64_t end = net_now_ms() + timeout_ms;

	if (fd < 0 || shutdown(fd, SHUT_WR) < 0)
		return;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return;
		uint64_t now = net_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= end || poll(&p, 1, (int)(end - now)) < 0)
			return;
	}
}
