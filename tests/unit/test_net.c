/* test_net: address parsing/formatting and non-blocking TCP/UDP sockets on loopback only. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

/* Generous: only a broken kernel or test takes this long, and a hang must not be silent. */
#define WAIT_MS 10000

static void wait_for(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, WAIT_MS);
	while (n < 0 && errno == EINTR);
	ck_assert_int_eq(n, 1);
}

START_TEST(test_addr_ipv4)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char buf[NET_ADDRSTRLEN];

	ck_assert_int_eq(net_addr_parse("127.0.0.2", 4000, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(net_addr_port((struct sockaddr *)&ss), 4000);
	ck_assert_str_eq(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "127.0.0.2:4000");
	ck_assert_str_eq(net_host_str((struct sockaddr *)&ss, buf, sizeof buf), "127.0.0.2");
	/* Empty, NULL and "*" all mean any. */
	ck_assert_int_eq(net_addr_parse("", 1, &ss, &len), 0);
	ck_assert_str_eq(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "0.0.0.0:1");
	ck_assert_int_eq(net_addr_parse(NULL, 2, &ss, NULL), 0);
	ck_assert_str_eq(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "0.0.0.0:2");
	ck_assert_int_eq(net_addr_parse("*", 65535, &ss, &len), 0);
	ck_assert_str_eq(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "0.0.0.0:65535");
}
END_TEST

START_TEST(test_addr_ipv6)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char buf[NET_ADDRSTRLEN];

	ck_assert_int_eq(net_addr_parse("::1", 4000, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
	ck_assert_str_eq(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "[::1]:4000");
	ck_assert_str_eq(net_host_str((struct sockaddr *)&ss, buf, sizeof buf), "::1");
	ck_assert_int_eq(net_addr_parse("[::1]", 80, &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_str_eq(net_addr_str((struct sockaddr *)&ss, buf, sizeof buf), "[::1]:80");
	/* The longest form still fits NET_ADDRSTRLEN. */
	ck_assert_int_eq(net_addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535,
					&ss, &len), 0);
	net_addr_str((struct sockaddr *)&ss, buf, sizeof buf);
	ck_assert_str_eq(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}
END_TEST

START_TEST(test_addr_bad)
{
	static const char *const bad[] = {
		"localhost", "1.2.3", "256.1.1.1", "1.2.3.4:80", "[::1", "::1]", "[]", "[",
		"::g", " 127.0.0.1", "127.0.0.1 ", "[127.0.0.1]x", "1.2.3.4.5",
	};
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char longest[200];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(net_addr_parse(bad[i], 1, &ss, &len) == -EINVAL, "accepted '%s'",
			      bad[i]);
	/* Longer than any address, bracketed: must not overflow the unbracketing buffer. */
	memset(longest, ':', sizeof longest);
	longest[0] = '[';
	longest[sizeof longest - 2] = ']';
	longest[sizeof longest - 1] = '\0';
	ck_assert_int_eq(net_addr_parse(longest, 1, &ss, &len), -EINVAL);
}
END_TEST

static int get_int_opt(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof v;

	ck_assert_int_eq(getsockopt(fd, level, opt, &v, &l), 0);
	return v;
}

static void assert_nonblock_cloexec(int fd)
{
	ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void tcp_pair(const char *bind_host, const char *want_peer)
{
	struct sockaddr_storage to, peer;
	char buf[NET_ADDRSTRLEN];
	int lfd, cfd, afd;
	uint16_t port;

	lfd = net_tcp_listen("127.0.0.1", 0, 16);
	ck_assert_int_ge(lfd, 0);
	assert_nonblock_cloexec(lfd);
	port = net_local_port(lfd);
	ck_assert_uint_ne(port, 0);
	ck_assert_int_eq(net_tcp_accept(lfd, &peer), -EAGAIN);

	ck_assert_int_eq(net_addr_parse("127.0.0.1", port, &to, NULL), 0);
	cfd = net_tcp_connect(&to, bind_host);
	ck_assert_int_ge(cfd, 0);
	assert_nonblock_cloexec(cfd);
	wait_for(cfd, POLLOUT);
	ck_assert_int_eq(net_tcp_connect_result(cfd), 0);

	wait_for(lfd, POLLIN);
	afd = net_tcp_accept(lfd, &peer);
	ck_assert_int_ge(afd, 0);
	assert_nonblock_cloexec(afd);
	ck_assert_str_eq(net_host_str((struct sockaddr *)&peer, buf, sizeof buf), want_peer);

	/* Nagle is off on both ends. */
	ck_assert_int_ne(get_int_opt(cfd, IPPROTO_TCP, TCP_NODELAY), 0);
	ck_assert_int_ne(get_int_opt(afd, IPPROTO_TCP, TCP_NODELAY), 0);

	ck_assert_int_eq(send(cfd, "ping", 4, MSG_NOSIGNAL), 4);
	wait_for(afd, POLLIN);
	ck_assert_int_eq(recv(afd, buf, sizeof buf, 0), 4);
	ck_assert_mem_eq(buf, "ping", 4);

	close(afd);
	close(cfd);
	close(lfd);
}

START_TEST(test_tcp_listen_connect_accept)
{
	tcp_pair(NULL, "127.0.0.1");
	/* From a chosen local address: the peer the listener sees. */
	tcp_pair("127.0.0.2", "127.0.0.2");
}
END_TEST

START_TEST(test_tcp_listen_bad)
{
	ck_assert_int_eq(net_tcp_listen("not-an-address", 0, 1), -EINVAL);
	struct sockaddr_storage to;
	ck_assert_int_eq(net_addr_parse("127.0.0.1", 1, &to, NULL), 0);
	ck_assert_int_eq(net_tcp_connect(&to, "bogus"), -EINVAL);
}
END_TEST

START_TEST(test_tcp_connect_refused)
{
	struct sockaddr_storage to;
	int lfd, cfd;
	uint16_t port;

	/* A port that was just ours and is now closed. */
	lfd = net_tcp_listen("127.0.0.1", 0, 1);
	ck_assert_int_ge(lfd, 0);
	port = net_local_port(lfd);
	close(lfd);
	ck_assert_int_eq(net_addr_parse("127.0.0.1", port, &to, NULL), 0);
	cfd = net_tcp_connect(&to, NULL);
	if (cfd == -ECONNREFUSED)
		return; /* the kernel may already know on loopback */
	ck_assert_int_ge(cfd, 0);
	wait_for(cfd, POLLOUT);
	ck_assert_int_eq(net_tcp_connect_result(cfd), -ECONNREFUSED);
	close(cfd);
}
END_TEST

START_TEST(test_udp_broadcast)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	char buf[64];
	int fd, quiet;
	uint16_t port;

	/* Broadcasts are delivered to sockets bound to the wildcard address. */
	fd = net_udp_bind("0.0.0.0", 0, true);
	ck_assert_int_ge(fd, 0);
	assert_nonblock_cloexec(fd);
	ck_assert_int_ne(get_int_opt(fd, SOL_SOCKET, SO_BROADCAST), 0);
	port = net_local_port(fd);
	ck_assert_uint_ne(port, 0);
	ck_assert_int_eq(recv(fd, buf, sizeof buf, 0), -1);
	ck_assert_int_eq(errno, EAGAIN);

	to.sin_port = htons(port);
	ck_assert_int_eq(inet_pton(AF_INET, "127.255.255.255", &to.sin_addr), 1);
	ck_assert_int_eq(sendto(fd, "hello", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
	wait_for(fd, POLLIN);
	ck_assert_int_eq(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), 5);
	ck_assert_mem_eq(buf, "hello", 5);

	/* Without SO_BROADCAST the kernel refuses the same send. */
	quiet = net_udp_bind("127.0.0.1", 0, false);
	ck_assert_int_ge(quiet, 0);
	ck_assert_int_eq(get_int_opt(quiet, SOL_SOCKET, SO_BROADCAST), 0);
	ck_assert_int_eq(sendto(quiet, "x", 1, 0, (struct sockaddr *)&to, sizeof to), -1);
	ck_assert_int_eq(errno, EACCES);
	close(quiet);
	close(fd);

	ck_assert_int_eq(net_udp_bind("nope", 0, false), -EINVAL);
}
END_TEST

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_addr_ipv4);
	tcase_add_test(tc, test_addr_ipv6);
	tcase_add_test(tc, test_addr_bad);
	tcase_add_test(tc, test_tcp_listen_connect_accept);
	tcase_add_test(tc, test_tcp_listen_bad);
	tcase_add_test(tc, test_tcp_connect_refused);
	tcase_add_test(tc, test_udp_broadcast);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
