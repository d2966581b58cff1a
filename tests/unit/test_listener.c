/* Unit tests of listener: connections are handed over, and running out of descriptors pauses
 * accepting (one log line) instead of spinning, then resumes and hands the connection over. */
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct ctx {
	struct loop *loop;
	int accepted;
	int last_fd;
};

static void on_conn(void *arg, int fd, const struct sockaddr_storage *peer)
{
	struct ctx *c = arg;
	ck_assert_int_eq(peer->ss_family, AF_INET);
	c->accepted++;
	c->last_fd = fd;
	close(fd);
	loop_stop(c->loop);
}

static void on_timeout(void *arg)
{
	loop_stop(arg);
}

static int connect_to(int lfd)
{
	struct sockaddr_storage to;
	net_addr_parse("127.0.0.1", net_local_port(lfd), &to, NULL);
	int fd = net_tcp_connect(&to, NULL);
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(test_hands_over)
{
	struct ctx c = { .loop = loop_new() };
	int lfd = net_tcp_listen("127.0.0.1", 0, 16);
	ck_assert_int_ge(lfd, 0);
	struct listener *l = listener_new(c.loop, lfd, "test", on_conn, &c);
	ck_assert_ptr_nonnull(l);
	int cfd = connect_to(lfd);
	struct loop_timer t;
	loop_timer_init(&t, on_timeout, c.loop);
	loop_timer_start(c.loop, &t, 5000);
	loop_run(c.loop);
	ck_assert_int_eq(c.accepted, 1);
	loop_timer_stop(c.loop, &t);
	listener_free(l);
	close(cfd);
	close(lfd);
	loop_free(c.loop);
}
END_TEST

static size_t count_in(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t n = 0;
	while (f && fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

START_TEST(test_emfile_pauses)
{
	char logpath[] = "/tmp/fr-listener-XXXXXX";
	int logfd = mkstemp(logpath);
	ck_assert_int_ge(logfd, 0);
	int saved = dup(2);
	dup2(logfd, 2);

	struct ctx c = { .loop = loop_new() };
	int lfd = net_tcp_listen("127.0.0.1", 0, 16);
	struct listener *l = listener_new(c.loop, lfd, "test", on_conn, &c);
	int cfd = connect_to(lfd);
	/* Use up every descriptor, so the pending connection cannot be accepted. */
	struct rlimit old, low;
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = (rlim_t)cfd + 40;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	int hog[64], nhog = 0;
	while (nhog < 64 && (hog[nhog] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		nhog++;
	ck_assert_int_eq(errno, EMFILE);
	/* 300 ms with the connection pending and no descriptor to take it. */
	struct loop_timer t;
	loop_timer_init(&t, on_timeout, c.loop);
	loop_timer_start(c.loop, &t, 300);
	loop_run(c.loop);
	ck_assert_int_eq(c.accepted, 0);
	/* Descriptors free again (reading the log needs one too); the listener is still paused. */
	for (int i = 0; i < nhog; i++)
		close(hog[i]);
	setrlimit(RLIMIT_NOFILE, &old);
	size_t pauses = count_in(logpath, "accept; pausing");
	/* Spinning would log at every loop turn; a pause logs once per second. */
	ck_assert_msg(pauses == 1, "%zu pause lines in 300 ms", pauses);
	/* The listener resumes by itself and hands the connection over. */
	loop_timer_start(c.loop, &t, 5000);
	loop_run(c.loop);
	ck_assert_int_eq(c.accepted, 1);

	loop_timer_stop(c.loop, &t);
	listener_free(l);
	close(cfd);
	close(lfd);
	loop_free(c.loop);
	dup2(saved, 2);
	close(saved);
	close(logfd);
	unlink(logpath);
}
END_TEST

int main(void)
{
	log_init("test_listener", true, 0);
	Suite *s = suite_create("listener");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_hands_over);
	tcase_add_test(tc, test_emfile_pauses);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
