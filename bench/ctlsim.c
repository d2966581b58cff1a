/* ctlsim: simulated controllers for fr's benchmarks, speaking LAN protocol v1 with the shared
 * library (link, announce, keys) the way frMhc does. Two modes:
 *   events     one controller that accepts frMhs's link, answers hello, then pushes N sensor
 *              events as fast as the link's output queue drains;
 *   discovery  N controllers sim-0000.. on 127.0.1.1, 127.0.1.2, ... each with a signed
 *              announce every interval (from its own address) and a listening link port that
 *              accepts frMhs's dial (expect_id) and answers hello.
 * Bounded in count and in time (-T); stops by itself. Prints "LISTEN <port>" (events),
 * "STARTED {json}" and at the end "RESULT {json}" on stdout. */
#include "announce.h"
#include "cfg.h"
#include "keys.h"
#include "lanmsg.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Pushing stops above this many queued bytes; the link drops a peer above max_outq (1 MiB). */
#define SIM_OUTQ_HIGH (256 * 1024)
#define SIM_SIMS_PER_NET 250

struct sim;

struct simctx {
	struct loop *loop;
	struct link_ctx *lctx;
	uint8_t announce_key[32];
	struct sim *sims;
	int nsims;
	int ufd;
	struct sockaddr_storage announce_to;
	uint64_t interval_ms;
	/* events mode */
	int nevents, pushed;
	double rate;          /* events per second; 0 = as fast as the link drains */
	bool hold;            /* -w: push only once SIGUSR1 said go */
	double t_push0, t_push1;
	uint64_t wall_push0;  /* when the first event was pushed, wall clock ms */
	struct loop_timer t_push, t_linger;
	double linger_s;
	/* counters */
	long announces, accepts, hellos, linked, downs;
	bool all_linked_said;
	struct loop_timer t_bound;
	int exit_code;
};

struct sim {
	struct simctx *x;
	char id[16], boot[33];
	struct in_addr addr;
	uint16_t port;
	int lfd;
	uint64_t seq;
	struct link *link;
	bool hello, ever_hello;
	struct loop_timer t_announce;
};

static double sim_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sim_line(const char *tag, cJSON *o)
{
	char *t = cJSON_PrintUnformatted(o);
	printf("%s %s\n", tag, t ? t : "{}");
	fflush(stdout);
	free(t);
	cJSON_Delete(o);
}

/* --- events mode: pushing --- */

static void sim_push(void *arg)
{
	struct sim *s = arg;
	struct simctx *x = s->x;
	if (!s->link || !link_is_up(s->link) || !s->hello || x->hold)
		return;
	if (x->pushed == 0) {
		x->t_push0 = sim_now_ms();
		x->wall_push0 = loop_wall_ms();
	}
	/* Paced (-R): as many as the schedule says by now, never ahead of it. */
	int due = x->nevents;
	if (x->rate > 0) {
		due = (int)((sim_now_ms() - x->t_push0) * x->rate / 1000.0) + 1;
		if (due > x->nevents)
			due = x->nevents;
	}
	while (x->pushed < due && link_outq_len(s->link) < SIM_OUTQ_HIGH) {
		char ev[192], value[16];
		snprintf(value, sizeof value, "%d", x->pushed);
		int len = lanmsg_event_state(ev, sizeof ev, "s", value, (int64_t)loop_wall_ms());
		int rc = len < 0 ? len : link_send_raw(s->link, ev, (size_t)len);
		if (rc < 0) {
			/* The link is dropped (on_down follows): nothing more to push. */
			log_warnx("event %d not sent: %s", x->pushed, strerror(-rc));
			return;
		}
		x->pushed++;
	}
	if (x->pushed < x->nevents || link_outq_len(s->link) > 0) {
		/* Queue high (or draining): let the loop write, come back in a moment. */
		loop_timer_start(x->loop, &x->t_push, x->pushed < due &&
					 link_outq_len(s->link) < SIM_OUTQ_HIGH ? 0 : 1);
		return;
	}
	x->t_push1 = sim_now_ms();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "pushed", x->pushed);
	cJSON_AddNumberToObject(o, "push_s", (x->t_push1 - x->t_push0) / 1e3);
	sim_line("PUSHED", o);
	/* Stay a moment: closing with unread input could reset the link before frMhs read all. */
	loop_timer_start(x->loop, &x->t_linger, (uint64_t)(x->linger_s * 1000));
}

static void sim_linger_over(void *arg)
{
	struct simctx *x = arg;
	x->exit_code = 0;
	loop_stop(x->loop);
}

/* --- links --- */

static void sim_on_up(struct link *l, void *arg)
{
	struct sim *s = arg;
	/* What frMhc's mhc_hello says, with no actions and one sensor. */
	cJSON *actions = cJSON_CreateArray(), *sens = cJSON_CreateArray();
	cJSON *one = cJSON_CreateObject();
	cJSON_AddStringToObject(one, "name", "s");
	cJSON_AddNumberToObject(one, "interval", 1);
	cJSON_AddItemToArray(sens, one);
	struct lanmsg_hello hello = { .controller = true, .id = s->id, .name = s->id, .boot = s->boot,
				      .port = s->port, .actions = actions, .sensors = sens };
	cJSON *h = lanmsg_hello_new(&hello);
	if (h)
		link_send(l, h);
	cJSON_Delete(h);
	cJSON_Delete(actions);
	cJSON_Delete(sens);
}

static void sim_on_msg(struct link *l, const struct lanmsg *msg, void *arg)
{
	struct sim *s = arg;
	struct simctx *x = s->x;
	(void)l;
	if (msg->type != LANMSG_HELLO || s->hello)
		return;   /* pings are answered by the link; commands are not part of these benches */
	s->hello = true;
	x->hellos++;
	if (!s->ever_hello) {
		s->ever_hello = true;
		x->linked++;
	}
	if (x->nevents > 0) {
		sim_push(s);
	} else if (x->linked == x->nsims && !x->all_linked_said) {
		x->all_linked_said = true;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "linked", (double)x->linked);
		cJSON_AddNumberToObject(o, "wall_ms", (double)loop_wall_ms());
		sim_line("ALL_LINKED", o);
	}
}

static void sim_on_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct sim *s = arg;
	log_info("%s: link %s down: %s%s%s", s->id, link_peer_addr(l), link_down_str(why),
		 detail ? ": " : "", detail ? detail : "");
	s->x->downs++;
	link_free(l);
	if (s->link == l) {
		s->link = NULL;
		s->hello = false;
	}
}

static const struct link_ops sim_link_ops = { sim_on_up, sim_on_msg, sim_on_down, NULL };

static void sim_on_accept(void *arg, int fd, uint32_t events)
{
	struct sim *s = arg;
	(void)fd;
	(void)events;
	for (;;) {
		struct sockaddr_storage peer;
		int cfd = net_tcp_accept(s->lfd, &peer);
		if (cfd < 0) {
			if (cfd != -EAGAIN) {
				errno = -cfd;
				log_warn("%s: accept", s->id);
			}
			return;
		}
		s->x->accepts++;
		/* The newest link wins, as in frMhc: an older one may be half-open. */
		if (s->link) {
			link_free(s->link);
			s->link = NULL;
			s->hello = false;
		}
		s->link = link_accept(s->x->lctx, s->x->loop, cfd, &peer, s->id, &sim_link_ops, s);
		if (!s->link)
			log_warn("%s: link_accept", s->id);
	}
}

/* --- announces --- */

static void sim_announce(void *arg)
{
	struct sim *s = arg;
	struct simctx *x = s->x;
	struct announce a = { .v = ANNOUNCE_PROTO_VERSION, .port = s->port, .seq = ++s->seq,
			      .ts = (int64_t)(loop_wall_ms() / 1000) };
	snprintf(a.id, sizeof a.id, "%s", s->id);
	snprintf(a.name, sizeof a.name, "%s", s->id);
	snprintf(a.boot, sizeof a.boot, "%s", s->boot);
	snprintf(a.version, sizeof a.version, "%s", FR_VERSION);
	char buf[ANNOUNCE_MAX];
	size_t len;
	int rc = announce_build(&a, x->announce_key, buf, sizeof buf, &len);
	if (rc < 0) {
		log_warnx("%s: announce not built: %s", s->id, announce_strerror(rc));
	} else {
		/* One socket for all: IP_PKTINFO picks each controller's own source address, so frMhs
		 * sees 1000 hosts without this process holding 1000 more descriptors. */
		struct iovec iov = { buf, len };
		char cbuf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		memset(cbuf, 0, sizeof cbuf);
		struct msghdr mh = { .msg_name = &x->announce_to, .msg_namelen = sizeof(struct sockaddr_in),
				     .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof cbuf };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
		struct in_pktinfo pi = { .ipi_spec_dst = s->addr };
		memcpy(CMSG_DATA(cm), &pi, sizeof pi);
		if (sendmsg(x->ufd, &mh, 0) < 0)
			log_warn("%s: announce", s->id);
		else
			x->announces++;
	}
	/* ±10 % jitter like frMhc. */
	uint64_t span = x->interval_ms / 10;
	uint64_t d = x->interval_ms - span + (uint64_t)(random() % (long)(2 * span + 1));
	loop_timer_start(x->loop, &s->t_announce, d);
}

/* --- setup --- */

static int sim_fd_check(int need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= (rlim_t)need)
		return 0;
	if (rl.rlim_max >= (rlim_t)need) {
		rl.rlim_cur = (rlim_t)need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return 0;
	}
	fprintf(stderr, "ctlsim: %d file descriptors needed, the limit is %llu (hard %llu): "
		"raise it with ulimit -n %d\n", need, (unsigned long long)rl.rlim_cur,
		(unsigned long long)rl.rlim_max, need);
	return -EMFILE;
}

static int sim_setup(struct simctx *x, struct sim *s, int i, const char *listen_host,
		     uint16_t port)
{
	s->x = x;
	char host[32];
	if (listen_host) {
		snprintf(host, sizeof host, "%s", listen_host);
		snprintf(s->id, sizeof s->id, "sim-ev");
	} else {
		snprintf(host, sizeof host, "127.0.%d.%d", 1 + i / SIM_SIMS_PER_NET,
			 1 + i % SIM_SIMS_PER_NET);
		snprintf(s->id, sizeof s->id, "sim-%04d", i);
	}
	inet_pton(AF_INET, host, &s->addr);
	if (keys_random_hex(s->boot, 16) < 0)
		return -EIO;
	s->lfd = net_tcp_listen(host, port, 64);
	if (s->lfd < 0) {
		fprintf(stderr, "ctlsim: listen on %s: %s\n", host, strerror(-s->lfd));
		return s->lfd;
	}
	s->port = net_local_port(s->lfd);
	return loop_io_add(x->loop, s->lfd, EPOLLIN, sim_on_accept, s);
}

static void sim_bound(void *arg)
{
	struct simctx *x = arg;
	if (x->nevents > 0)
		fprintf(stderr, "ctlsim: time bound reached with %d of %d events pushed\n", x->pushed,
			x->nevents);
	else
		x->exit_code = 0;   /* discovery mode runs until the bound or a signal */
	loop_stop(x->loop);
}

static void sim_on_signal(void *arg, const struct signalfd_siginfo *si)
{
	struct simctx *x = arg;
	(void)si;
	if (x->nevents == 0)
		x->exit_code = 0;
	loop_stop(x->loop);
}

/* -w: the bench says go once frMhs is connected to its broker too, so that the events are
 * not offered to a home server that could only buffer them. */
static void sim_on_go(void *arg, const struct signalfd_siginfo *si)
{
	struct simctx *x = arg;
	(void)si;
	if (!x->hold)
		return;
	x->hold = false;
	sim_push(&x->sims[0]);
}

static void sim_usage(FILE *f)
{
	fputs("usage: ctlsim events -s SECRET [-l ADDR] [-p PORT] -n EVENTS [-R RATE] [-w] [-L LINGER] [-T SECS]\n"
	      "       ctlsim discovery -s SECRET -a ANNOUNCE_ADDR:PORT -n CONTROLLERS [-I INTERVAL] [-T SECS]\n"
	      "  events: one controller 'sim-ev' listening on ADDR:PORT (default 127.0.0.1:0,\n"
	      "          printed as LISTEN <port>) pushes EVENTS sensor events after hello, RATE\n"
	      "          per second (default: as fast as the link's output queue drains); with -w\n"
	      "          only once it got SIGUSR1 too.\n"
	      "  discovery: controllers sim-0000.. on 127.0.1.1.. announce every INTERVAL seconds\n"
	      "          (default 5) and accept frMhs's links. -T: time bound (default 60).\n", f);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		sim_usage(stdout);
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "events") && strcmp(argv[1], "discovery"))) {
		sim_usage(stderr);
		return 2;
	}
	bool events = strcmp(argv[1], "events") == 0;
	const char *secret_file = NULL, *listen_host = "127.0.0.1", *ann = NULL;
	int n = 0, port = 0, verbose = 0, ch;
	double bound = 60, interval = 5;
	struct simctx x = { .exit_code = 1, .ufd = -1, .linger_s = 2 };
	optind = 2;
	while ((ch = getopt(argc, argv, "s:l:p:n:a:I:L:R:wT:v")) != -1) {
		switch (ch) {
		case 's': secret_file = optarg; break;
		case 'l': listen_host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'a': ann = optarg; break;
		case 'I': interval = atof(optarg); break;
		case 'L': x.linger_s = atof(optarg); break;
		case 'R': x.rate = atof(optarg); break;
		case 'w': x.hold = true; break;
		case 'T': bound = atof(optarg); break;
		case 'v': verbose++; break;
		default: sim_usage(stderr); return 2;
		}
	}
	if (!secret_file || n < 1 || bound <= 0 || interval < 0.1 || port < 0 || port > 65535 ||
	    x.rate < 0 ||
	    (!events && (!ann || n > 250 * 200))) {
		sim_usage(stderr);
		return 2;
	}
	log_init("ctlsim", true, verbose);
	uint8_t secret[32];
	if (cfg_read_secret(secret_file, secret) < 0)
		return 2;
	x.nsims = events ? 1 : n;
	x.nevents = events ? n : 0;
	x.interval_ms = (uint64_t)(interval * 1000);
	/* A listener and a link per controller, plus a little for stdio, epoll and the rest. */
	if (sim_fd_check(2 * x.nsims + 32) < 0)
		return 2;
	x.loop = loop_new();
	struct link_ctx_opts lo = { .secret = secret };
	x.lctx = link_ctx_new(&lo);
	x.sims = calloc((size_t)x.nsims, sizeof *x.sims);
	loop_timer_init(&x.t_push, sim_push, x.sims);
	loop_timer_init(&x.t_linger, sim_linger_over, &x);
	loop_timer_init(&x.t_bound, sim_bound, &x);
	for (int i = 0; x.sims && i < x.nsims; i++) {
		x.sims[i].lfd = -1;
		loop_timer_init(&x.sims[i].t_announce, sim_announce, &x.sims[i]);
	}
	if (!x.loop || !x.lctx || !x.sims || keys_announce_key(secret, x.announce_key) < 0)
		goto out;
	for (int i = 0; i < x.nsims; i++)
		if (sim_setup(&x, &x.sims[i], i, events ? listen_host : NULL, (uint16_t)port) < 0)
			goto out;
	/* Before LISTEN is printed: a go (SIGUSR1) may follow at once. */
	loop_signal_add(x.loop, SIGTERM, sim_on_signal, &x);
	loop_signal_add(x.loop, SIGINT, sim_on_signal, &x);
	if (events)
		loop_signal_add(x.loop, SIGUSR1, sim_on_go, &x);
	if (!events) {
		char host[64];
		const char *colon = strrchr(ann, ':');
		if (!colon || (size_t)(colon - ann) >= sizeof host) {
			fprintf(stderr, "ctlsim: -a wants ADDRESS:PORT\n");
			goto out;
		}
		memcpy(host, ann, (size_t)(colon - ann));
		host[colon - ann] = '\0';
		if (net_addr_parse(host, (uint16_t)atoi(colon + 1), &x.announce_to, NULL) < 0 ||
		    x.announce_to.ss_family != AF_INET) {
			fprintf(stderr, "ctlsim: -a wants a numeric IPv4 ADDRESS:PORT\n");
			goto out;
		}
		x.ufd = net_udp_bind(NULL, 0, true);
		if (x.ufd < 0) {
			fprintf(stderr, "ctlsim: udp socket: %s\n", strerror(-x.ufd));
			goto out;
		}
		/* Like frMhc booting: every controller announces at once, then every interval. */
		for (int i = 0; i < x.nsims; i++)
			loop_timer_start(x.loop, &x.sims[i].t_announce, 0);
	} else {
		printf("LISTEN %u\n", x.sims[0].port);
		fflush(stdout);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "controllers", x.nsims);
	cJSON_AddNumberToObject(o, "start_wall_ms", (double)loop_wall_ms());
	sim_line("STARTED", o);
	loop_timer_start(x.loop, &x.t_bound, (uint64_t)(bound * 1000));
	loop_run(x.loop);
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "controllers", x.nsims);
	cJSON_AddNumberToObject(o, "announces", (double)x.announces);
	cJSON_AddNumberToObject(o, "accepts", (double)x.accepts);
	cJSON_AddNumberToObject(o, "hellos", (double)x.hellos);
	cJSON_AddNumberToObject(o, "linked", (double)x.linked);
	cJSON_AddNumberToObject(o, "link_downs", (double)x.downs);
	if (events) {
		cJSON_AddNumberToObject(o, "pushed", x.pushed);
		cJSON_AddNumberToObject(o, "push_s", x.t_push1 > 0 ? (x.t_push1 - x.t_push0) / 1e3 : 0);
		cJSON_AddNumberToObject(o, "rate", x.rate);
		cJSON_AddNumberToObject(o, "first_push_wall_ms", (double)x.wall_push0);
	}
	sim_line("RESULT", o);
out:
	for (int i = 0; x.sims && i < x.nsims; i++) {
		struct sim *s = &x.sims[i];
		if (s->link)
			link_free(s->link);
		if (s->lfd >= 0) {
			loop_io_del(x.loop, s->lfd);
			close(s->lfd);
		}
		if (x.loop)
			loop_timer_stop(x.loop, &s->t_announce);
	}
	if (x.ufd >= 0)
		close(x.ufd);
	if (x.loop) {
		loop_timer_stop(x.loop, &x.t_push);
		loop_timer_stop(x.loop, &x.t_linger);
		loop_timer_stop(x.loop, &x.t_bound);
	}
	free(x.sims);
	link_ctx_free(x.lctx);
	loop_free(x.loop);
	return x.exit_code;
}
