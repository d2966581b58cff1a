/* broker.h: a real mosquitto for unit suites that need one: on a free loopback port (kept for a
 * restart), in its own temp dir, optionally with websockets and TLS listeners, killed with the
 * test process (PR_SET_PDEATHSIG); and running an agent loop until a condition is observed,
 * with a bound. Header-only (static inline: each suite uses what it needs), included by one
 * suite each. */
#ifndef FR_TEST_BROKER_H
#define FR_TEST_BROKER_H

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

struct test_broker {
	pid_t pid;
	uint16_t port;      /* 0: a free port, chosen by the first start */
	uint16_t ws_port;   /* also a websockets listener when set */
	uint16_t tls_port;  /* also a TLS listener with dir/srv.crt when set */
	bool ws_tls;        /* the websockets listener uses TLS too (wss://) */
	const char *extra;  /* more config lines */
	char dir[64], conf[128], log[128];
};

/* A loopback port nobody listens on now. */
/* A free loopback port below the kernel's ephemeral range (32768-60999): one from that range can
 * become another test's outgoing source port before our broker binds it (EADDRINUSE, seen in CI
 * beside the hostile floods). */
/* Reserves p machine-wide for this process as tests/tools/free_port.py does (a file per port in
 * $FR_PORT_DIR or /tmp/fr-ports with the owner's pid, under its lock): false if a live process
 * holds it. Scripts of another ./fr test beside this one pick from the same range. */
static inline bool test_port_reserve(uint16_t p)
{
	const char *d = getenv("FR_PORT_DIR") ? getenv("FR_PORT_DIR") : "/tmp/fr-ports";
	char path[256], buf[32];
	mkdir(d, 01777);
	snprintf(path, sizeof path, "%s/.lock", d);
	int lk = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	if (lk < 0)
		return true;   /* no shared directory: only the bind check */
	flock(lk, LOCK_EX);
	bool ok = false;
	snprintf(path, sizeof path, "%s/%u", d, p);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		pid_t owner = n > 0 ? (pid_t)atoi((buf[n] = '\0', buf)) : 0;
		if (owner > 0 && (kill(owner, 0) == 0 || errno == EPERM))
			goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dprintf(fd, "%d\n", (int)getpid());
		close(fd);
	}
	ok = true;
out:
	close(lk);   /* drops the lock */
	return ok;
}

static inline uint16_t test_free_port(void)
{
	static pid_t seeded_for;   /* Check forks each test: seed in every process, or all pick alike */
	if (seeded_for != getpid()) {
		seeded_for = getpid();
		srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	}
	for (int i = 0; i < 10000; i++) {
		uint16_t p = (uint16_t)(20000 + (unsigned)random() % 12768);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
		close(fd);
		if (rc == 0 && test_port_reserve(p))
			return p;
	}
	ck_abort_msg("no free port in 20000-32767");
	return 0;
}

static inline int test_broker_connect(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	return rc;
}

static inline void test_broker_dump(const struct test_broker *b)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(b->log, "r");
	if (!f)
		return;
	fprintf(stderr, "--- mosquitto log (%s) ---\n", b->log);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
}

/* The broker's temp dir (made once), e.g. for certificates before the first start. */
static inline void test_broker_dir(struct test_broker *b)
{
	if (b->dir[0])
		return;
	strcpy(b->dir, "/tmp/fr-test-broker-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(b->dir));
	snprintf(b->conf, sizeof b->conf, "%s/mosquitto.conf", b->dir);
	snprintf(b->log, sizeof b->log, "%s/mosquitto.log", b->dir);
}

/* Makes the broker (before its start) refuse subscriptions matching pattern -- SUBACK 0x87
 * "not authorized" on MQTT 5, 0x80 on 3.1.1 -- and allow everything else, with Mosquitto's
 * dynamic security plugin (in Debian's mosquitto; its acl_file does not refuse subscribes). */
static inline void test_broker_refuse_subscribe(struct test_broker *b, const char *pattern)
{
	static char extra[512];
	static const char *const paths[] = {
		"/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
		"/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
		"/usr/lib/mosquitto_dynamic_security.so",
	};
	const char *plugin = NULL;
	for (size_t i = 0; i < sizeof paths / sizeof *paths && !plugin; i++)
		if (access(paths[i], R_OK) == 0)
			plugin = paths[i];
	ck_assert_msg(plugin != NULL, "mosquitto_dynamic_security.so not found");
	test_broker_dir(b);
	char json[128];
	snprintf(json, sizeof json, "%s/dynsec.json", b->dir);
	FILE *f = fopen(json, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "{\"defaultACLAccess\":{\"publishClientSend\":true,\"publishClientReceive\":true,"
		   "\"subscribe\":true,\"unsubscribe\":true},\"clients\":[],"
		   "\"groups\":[{\"groupname\":\"anon\",\"roles\":[{\"rolename\":\"r\"}]}],"
		   "\"roles\":[{\"rolename\":\"r\",\"acls\":[{\"acltype\":\"subscribePattern\","
		   "\"topic\":\"%s\",\"priority\":0,\"allow\":false}]}],"
		   "\"anonymousGroup\":\"anon\"}\n", pattern);
	fclose(f);
	snprintf(extra, sizeof extra, "plugin %s\nplugin_opt_config_file %s\n", plugin, json);
	b->extra = extra;
}

/* Starts mosquitto, again on the same port after test_broker_kill, and waits until every
 * listener accepts. */
static inline void test_broker_start(struct test_broker *b)
{
	int st;

	test_broker_dir(b);
	if (!b->port)
		b->port = test_free_port();
	FILE *f = fopen(b->conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "listener %u 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
		   "persistence false\n", b->port);
	if (b->ws_port)
		fprintf(f, "listener %u 127.0.0.1\nprotocol websockets\n", b->ws_port);
	if (b->ws_port && b->ws_tls)
		fprintf(f, "cafile %s/ca.crt\ncertfile %s/srv.crt\nkeyfile %s/srv.key\n", b->dir,
			b->dir, b->dir);
	if (b->tls_port)
		fprintf(f, "listener %u 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/srv.crt\n"
			   "keyfile %s/srv.key\n", b->tls_port, b->dir, b->dir, b->dir);
	/* As root mosquitto would switch to its own user, which clears PR_SET_PDEATHSIG. */
	if (geteuid() == 0)
		fprintf(f, "user root\n");
	if (b->extra)
		fputs(b->extra, f);
	fclose(f);
	b->pid = fork();
	ck_assert_int_ge(b->pid, 0);
	if (b->pid == 0) {
		int lfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		/* Dies with the test process even when an assertion ends it early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		if (lfd >= 0) {
			dup2(lfd, 1);
			dup2(lfd, 2);
		}
		execlp("mosquitto", "mosquitto", "-c", b->conf, (char *)NULL);
		_exit(127);
	}
	/* Bounded by attempts, not by speed: 1000 x 10 ms is far beyond any real start-up. */
	for (int i = 0; i < 1000; i++) {
		if (test_broker_connect(b->port) == 0 &&
		    (!b->ws_port || test_broker_connect(b->ws_port) == 0) &&
		    (!b->tls_port || test_broker_connect(b->tls_port) == 0))
			return;
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			test_broker_dump(b);
			ck_abort_msg("mosquitto exited during start-up (status %d)", st);
		}
		usleep(10000);
	}
	test_broker_dump(b);
	ck_abort_msg("mosquitto never accepted on port %u", b->port);
}

/* Kills it (the port, dir and files stay for a restart). */
static inline void test_broker_kill(struct test_broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGKILL);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

/* Kills it and removes its dir; b is as new (zero) afterwards. */
static inline void test_broker_stop(struct test_broker *b)
{
	test_broker_kill(b);
	if (b->dir[0]) {
		DIR *d = opendir(b->dir);
		struct dirent *e;
		char path[sizeof b->dir + 256 + 2];
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(path, sizeof path, "%s/%s", b->dir, e->d_name);
				unlink(path);
			}
		if (d)
			closedir(d);
		rmdir(b->dir);
	}
	memset(b, 0, sizeof *b);
}

/* --- running the loop until something is observed --- */

struct test_wait {
	struct loop *loop;
	bool (*done)(void *arg);
	void *arg;
	struct loop_timer poll, give_up;
	bool timed_out;
};

static inline void test_wait_poll(void *arg)
{
	struct test_wait *w = arg;
	if (w->done(w->arg)) {
		loop_stop(w->loop);
		return;
	}
	loop_timer_start(w->loop, &w->poll, 5);
}

static inline void test_wait_give_up(void *arg)
{
	struct test_wait *w = arg;
	w->timed_out = true;
	loop_stop(w->loop);
}

/* Runs loop until done(arg) holds (checked every 5 ms), failing the test after ms. */
static inline void test_run_until(struct loop *loop, const struct test_broker *b, uint64_t ms,
			   bool (*done)(void *arg), void *arg, const char *what)
{
	struct test_wait w = { .loop = loop, .done = done, .arg = arg };
	loop_timer_init(&w.poll, test_wait_poll, &w);
	loop_timer_init(&w.give_up, test_wait_give_up, &w);
	loop_timer_start(loop, &w.poll, 0);
	loop_timer_start(loop, &w.give_up, ms);
	loop_run(loop);
	loop_timer_stop(loop, &w.poll);
	loop_timer_stop(loop, &w.give_up);
	if (w.timed_out && b)
		test_broker_dump(b);
	ck_assert_msg(!w.timed_out, "timed out waiting for %s", what);
}

#endif
