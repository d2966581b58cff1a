/* frcmd: a debugging client of the LAN protocol. It sends one command to a controller over a
 * TLS-PSK link and prints the result as JSON, or listens for announces and prints the ones
 * that verify. The integration tests drive frMhc with it; so can a person on the LAN. */
#include "announce.h"
#include "cfg.h"
#include "command.h"
#include "keys.h"
#include "lanmsg.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cmdctx {
	struct loop *loop;
	struct link *link;
	char *cmd;            /* the command frame's body, sent as it is; owned */
	const char *id;
	int verbose;
	int exit_code;
	struct loop_timer timer;
};

static void frcmd_print(const cJSON *msg)
{
	char *s = cJSON_PrintUnformatted(msg);
	if (s) {
		puts(s);
		fflush(stdout);
	}
	free(s);
}

static void frcmd_on_up(struct link *l, void *arg)
{
	struct cmdctx *c = arg;
	struct lanmsg_hello h = { .id = "frcmd" };
	cJSON *hello = lanmsg_hello_new(&h);
	if (hello)
		link_send(l, hello);
	cJSON_Delete(hello);
	link_send_raw(l, c->cmd, strlen(c->cmd));
}

/* Printed as the bytes it arrived in. */
static void frcmd_print_msg(const struct lanmsg *m)
{
	fwrite(m->text, 1, m->len, stdout);
	putchar('\n');
	fflush(stdout);
}

static void frcmd_on_msg(struct link *l, const struct lanmsg *msg, void *arg)
{
	struct cmdctx *c = arg;
	struct lanmsg_result r;
	struct lanmsg_progress p;
	char why[256];
	(void)l;
	bool result = msg->type == LANMSG_RESULT, ours = false;
	if (result && lanmsg_result(msg, &r, why, sizeof why) == 0)
		/* A rejection of an unparseable command carries a null id. */
		ours = !r.id || strcmp(r.id, c->id) == 0;
	else if (result)
		fprintf(stderr, "frcmd: %s\n", why);
	else if ((msg->type == LANMSG_ACCEPTED || msg->type == LANMSG_STARTED) &&
		 lanmsg_progress(msg, &p, why, sizeof why) == 0)
		ours = strcmp(p.id, c->id) == 0;
	if (c->verbose && (ours || msg->type == LANMSG_HELLO || msg->type == LANMSG_EVENT))
		frcmd_print_msg(msg);
	if (ours && result) {
		if (!c->verbose)
			frcmd_print_msg(msg);
		c->exit_code = strcmp(r.status, "ok") == 0 ? 0 : 1;
		loop_stop(c->loop);
	}
}

static void frcmd_on_down(struct link *l, enum link_down why, const char *detail, void *arg)
{
	struct cmdctx *c = arg;
	fprintf(stderr, "frcmd: link to %s: %s%s%s\n", link_peer_addr(l), link_down_str(why),
		detail ? ": " : "", detail ? detail : "");
	link_free(l);
	c->link = NULL;
	c->exit_code = 2;
	loop_stop(c->loop);
}

static void frcmd_timeout(void *arg)
{
	struct cmdctx *c = arg;
	fprintf(stderr, "frcmd: no result for %s within the wait time\n", c->id);
	c->exit_code = 2;
	loop_stop(c->loop);
}

static const struct link_ops frcmd_ops = { frcmd_on_up, frcmd_on_msg, frcmd_on_down, NULL };

static void frcmd_usage(FILE *f)
{
	fputs(
"NAME\n"
"    frcmd - send one command to an fr controller, or watch announces\n"
"\n"
"SYNOPSIS\n"
"    frcmd -s SECRET [options] ADDRESS:PORT CONTROLLER ACTION [NAME=VALUE]...\n"
"    frcmd -s SECRET [options] --raw JSON ADDRESS:PORT CONTROLLER\n"
"    frcmd -s SECRET --announces [ADDRESS:]PORT [--count N] [--wait SECONDS]\n"
"    frcmd -s SECRET --psk CONTROLLER\n"
"\n"
"DESCRIPTION\n"
"    In the first form frcmd dials the controller's link port (TLS 1.3 with the PSK derived\n"
"    from the home secret for CONTROLLER), sends one command and prints the final result as\n"
"    one JSON line (with -v every message about it: accepted, started, result). In the\n"
"    --announces form it binds a UDP port and prints each announce that verifies (MAC, time\n"
"    window, replay) as a JSON line; rejected datagrams are logged with their reason.\n"
"\n"
"OPTIONS\n"
"    -s, --secret FILE     the home secret (64 hex digits)\n"
"    -i, --id ID           command id (default: random); reuse one to test exactly-once\n"
"    -t, --timeout SECS    ask for a shorter timeout than the action's\n"
"    -d, --deadline UNIX   do not run after this unix time (seconds, decimals allowed)\n"
"    -D, --deadline-in S   deadline relative to now (negative: already passed)\n"
"    -r, --raw JSON        send this JSON object as the command, byte for byte (with\n"
"                          \"type\":\"command\" put in front when it has no \"type\")\n"
"    -w, --wait SECS       give up after this long (default 60)\n"
"    -b, --bind ADDRESS    local address to dial from\n"
"    -a, --announces       announce listening mode\n"
"    -n, --count N         with --announces: exit after N verified announces\n"
"        --psk CONTROLLER  print the link PSK of CONTROLLER in hex, for openssl s_client\n"
"                          -psk_identity CONTROLLER -psk HEX -tls1_3 (interop and fault tests)\n"
"    -v, --verbose         print every related message; -vv adds debug logs\n"
"    -h, --help            this text\n"
"\n"
"EXIT STATUS\n"
"    0: result \"ok\" (or N announces seen); 1: another final status; 2: usage, connection\n"
"    or wait-time error.\n",
	      f);
}

static int frcmd_split(const char *s, char *host, size_t hl, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon) {
		snprintf(host, hl, "0.0.0.0");
		colon = s - 1;
	} else if ((size_t)(colon - s) >= hl) {
		return -1;
	} else {
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p < 0 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

struct annctx {
	struct loop *loop;
	int fd;
	uint8_t key[32];
	struct announce_replay *replay;
	long count, seen;
};

static void frcmd_on_announce(void *arg, int fd, uint32_t events)
{
	struct annctx *a = arg;
	(void)events;
	for (;;) {
		char buf[ANNOUNCE_MAX + 1];
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		char addr[NET_ADDRSTRLEN], why[160] = "";
		net_addr_str((struct sockaddr *)&from, addr, sizeof addr);
		struct announce an;
		int rc = announce_receive(buf, (size_t)n, a->key, (int64_t)(loop_wall_ms() / 1000), 30,
					  a->replay, &an, why, sizeof why);
		if (rc < 0) {
			log_warnx("announce from %s dropped: %s%s%s", addr, announce_strerror(rc),
				  why[0] ? ": " : "", why);
			continue;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "from", addr);
		cJSON_AddStringToObject(o, "id", an.id);
		cJSON_AddStringToObject(o, "name", an.name);
		cJSON_AddNumberToObject(o, "port", an.port);
		cJSON_AddStringToObject(o, "boot", an.boot);
		cJSON_AddNumberToObject(o, "seq", (double)an.seq);
		cJSON_AddNumberToObject(o, "ts", (double)an.ts);
		cJSON_AddStringToObject(o, "version", an.version);
		cJSON_AddItemToObject(o, "actions", cJSON_Duplicate(an.actions, 1));
		cJSON_AddItemToObject(o, "sensors", cJSON_Duplicate(an.sensors, 1));
		frcmd_print(o);
		cJSON_Delete(o);
		announce_clear(&an);
		if (a->count && ++a->seen >= a->count) {
			loop_stop(a->loop);
			return;
		}
	}
}

static void frcmd_ann_timeout(void *arg)
{
	struct annctx *a = arg;
	fprintf(stderr, "frcmd: %ld announce(s) seen before the wait time ran out\n", a->seen);
	loop_stop(a->loop);
}

static int frcmd_announces(const uint8_t secret[32], const char *where, long count, double wait)
{
	char host[128];
	uint16_t port;
	if (frcmd_split(where, host, sizeof host, &port) < 0) {
		fprintf(stderr, "frcmd: bad [ADDRESS:]PORT '%s'\n", where);
		return 2;
	}
	struct annctx a = { .count = count };
	keys_announce_key(secret, a.key);
	a.replay = announce_replay_new(1024);
	a.loop = loop_new();
	a.fd = net_udp_bind(host, port, false);
	if (a.fd < 0) {
		fprintf(stderr, "frcmd: bind %s: %s\n", where, strerror(-a.fd));
		return 2;
	}
	loop_io_add(a.loop, a.fd, EPOLLIN, frcmd_on_announce, &a);
	struct loop_timer t;
	loop_timer_init(&t, frcmd_ann_timeout, &a);
	loop_timer_start(a.loop, &t, (uint64_t)(wait * 1000));
	loop_run(a.loop);
	loop_io_del(a.loop, a.fd);
	close(a.fd);
	loop_free(a.loop);
	announce_replay_free(a.replay);
	return (count == 0 || a.seen >= count) ? 0 : 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "secret", required_argument, NULL, 's' },  { "id", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' }, { "deadline", required_argument, NULL, 'd' },
		{ "deadline-in", required_argument, NULL, 'D' }, { "raw", required_argument, NULL, 'r' },
		{ "wait", required_argument, NULL, 'w' },    { "bind", required_argument, NULL, 'b' },
		{ "announces", no_argument, NULL, 'a' },      { "count", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },        { "help", no_argument, NULL, 'h' },
		{ "psk", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 }
	};
	const char *secret_file = NULL, *id = NULL, *raw = NULL, *bind_host = NULL, *psk_for = NULL;
	double timeout = 0, deadline = 0, wait = 60;
	bool announces = false, have_deadline = false;
	long count = 0;
	int verbose = 0, ch;
	while ((ch = getopt_long(argc, argv, "s:i:t:d:D:r:w:b:an:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 's': secret_file = optarg; break;
		case 'i': id = optarg; break;
		case 't': timeout = atof(optarg); break;
		case 'd': deadline = atof(optarg); have_deadline = true; break;
		case 'D': deadline = (double)loop_wall_ms() / 1000.0 + atof(optarg); have_deadline = true; break;
		case 'r': raw = optarg; break;
		case 'w': wait = atof(optarg); break;
		case 'b': bind_host = optarg; break;
		case 'a': announces = true; break;
		case 'n': count = atol(optarg); break;
		case 'v': verbose++; break;
		case 'h': frcmd_usage(stdout); return 0;
		case 'K': psk_for = optarg; break;
		default: frcmd_usage(stderr); return 2;
		}
	}
	log_init("frcmd", true, verbose > 1);
	uint8_t secret[32];
	if (!secret_file) {
		fprintf(stderr, "frcmd: --secret FILE is required\nTry 'frcmd --help'.\n");
		return 2;
	}
	if (cfg_read_secret(secret_file, secret) < 0)
		return 2;
	if (psk_for) {
		uint8_t psk[32];
		if (keys_link_psk(secret, psk_for, psk) < 0)
			return 2;
		for (int i = 0; i < 32; i++)
			printf("%02x", psk[i]);
		printf("\n");
		return 0;
	}
	if (announces) {
		if (optind + 1 != argc) {
			fprintf(stderr, "frcmd: --announces takes one [ADDRESS:]PORT\n");
			return 2;
		}
		return frcmd_announces(secret, argv[optind], count, wait);
	}
	if (argc - optind < (raw ? 2 : 3)) {
		fprintf(stderr, "frcmd: expected ADDRESS:PORT CONTROLLER ACTION\nTry 'frcmd --help'.\n");
		return 2;
	}
	char host[128];
	uint16_t port;
	struct sockaddr_storage to;
	if (frcmd_split(argv[optind], host, sizeof host, &port) < 0 ||
	    net_addr_parse(host, port, &to, NULL) < 0) {
		fprintf(stderr, "frcmd: bad ADDRESS:PORT '%s'\n", argv[optind]);
		return 2;
	}
	const char *ctl = argv[optind + 1];
	struct cmdctx c = { .verbose = verbose, .exit_code = 2 };
	char idbuf[65];
	if (raw) {
		/* Sent byte for byte, so a test can put what a re-encoding would lose (an escaped
		 * NUL, a duplicate key) in front of the controller; parsed only to read it. */
		cJSON *o = cJSON_Parse(raw);
		if (!cJSON_IsObject(o)) {
			fprintf(stderr, "frcmd: --raw needs a JSON object\n");
			cJSON_Delete(o);
			return 2;
		}
		const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "id");
		snprintf(idbuf, sizeof idbuf, "%s", cJSON_IsString(rid) ? rid->valuestring : "");
		c.id = idbuf;
		c.cmd = lanmsg_command_raw(raw);
		cJSON_Delete(o);
		if (!c.cmd)
			return 2;
	} else {
		if (!id) {
			keys_random_hex(idbuf, 16);
			id = idbuf;
		}
		c.id = id;
		struct command cmd = { .args = cJSON_CreateObject() };
		snprintf(cmd.id, sizeof cmd.id, "%s", id);
		snprintf(cmd.action, sizeof cmd.action, "%s", argv[optind + 2]);
		for (int i = optind + 3; i < argc; i++) {
			char *eq = strchr(argv[i], '=');
			if (!eq) {
				fprintf(stderr, "frcmd: argument '%s' is not NAME=VALUE\n", argv[i]);
				command_clear(&cmd);
				return 2;
			}
			*eq = '\0';
			cJSON_AddStringToObject(cmd.args, argv[i], eq + 1);
		}
		if (timeout > 0)   /* at least 1 ms, as command.c reads a tiny one */
			cmd.timeout_ms = timeout < 0.001 ? 1 : (uint64_t)(timeout * 1000.0 + 0.5);
		if (have_deadline)
			cmd.deadline_ms = (int64_t)(deadline * 1000.0 + 0.5);
		cJSON *o = lanmsg_command_new(&cmd);
		command_clear(&cmd);
		c.cmd = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!c.cmd)
			return 2;
	}
	c.loop = loop_new();
	struct link_ctx_opts lo = { .secret = secret };
	struct link_ctx *lctx = link_ctx_new(&lo);
	if (!c.loop || !lctx)
		return 2;
	c.link = link_dial(lctx, c.loop, &to, bind_host, ctl, &frcmd_ops, &c);
	if (!c.link) {
		fprintf(stderr, "frcmd: dial %s: %s\n", argv[optind], strerror(errno));
		return 2;
	}
	loop_timer_init(&c.timer, frcmd_timeout, &c);
	loop_timer_start(c.loop, &c.timer, (uint64_t)(wait * 1000));
	loop_run(c.loop);
	if (c.link)
		link_free(c.link);
	free(c.cmd);
	link_ctx_free(lctx);
	loop_free(c.loop);
	return c.exit_code;
}
