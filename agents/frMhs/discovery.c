/* discovery: receive and verify announces; see discovery.h. */
#include "discovery.h"

#include "announce.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISCOVERY_LOGS_PER_SEC 10

struct discovery {
	struct loop *loop;
	struct registry *reg;
	int fd;
	uint8_t key[32];
	int window_s;
	struct announce_replay *replay;
	uint64_t accepted, dropped;
	uint64_t log_second;
	unsigned log_count, log_suppressed;
};

static void discovery_drop(struct discovery *d, const char *from, int rc, const char *why)
{
	d->dropped++;
	uint64_t sec = loop_now(d->loop) / 1000;
	if (sec != d->log_second) {
		if (d->log_suppressed)
			log_warnx("announces: %u more dropped in the last second (logs suppressed)",
				  d->log_suppressed);
		d->log_second = sec;
		d->log_count = 0;
		d->log_suppressed = 0;
	}
	if (++d->log_count > DISCOVERY_LOGS_PER_SEC) {
		d->log_suppressed++;
		return;
	}
	log_warnx("announce from %s dropped: %s%s%s", from, announce_strerror(rc), why[0] ? ": " : "",
		  why);
}

static void discovery_on_read(void *arg, int fd, uint32_t events)
{
	struct discovery *d = arg;
	(void)events;
	/* Bounded per wake-up so a flood cannot starve links and MQTT. */
	for (int i = 0; i < 256; i++) {
		char buf[ANNOUNCE_MAX + 1];
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("discovery recvfrom");
			return;
		}
		char addr[NET_ADDRSTRLEN], why[160] = "";
		net_addr_str((struct sockaddr *)&from, addr, sizeof addr);
		struct announce a;
		int rc = announce_receive(buf, (size_t)n, d->key, (int64_t)(loop_wall_ms() / 1000),
					  d->window_s, d->replay, &a, why, sizeof why);
		if (rc < 0) {
			discovery_drop(d, addr, rc, why);
			continue;
		}
		d->accepted++;
		registry_announce(d->reg, &a, &from);
		announce_clear(&a);
	}
}

struct discovery *discovery_new(struct loop *loop, struct registry *reg, const char *addr,
				uint16_t port, const uint8_t announce_key[32], int window_s)
{
	struct discovery *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->loop = loop;
	d->reg = reg;
	d->window_s = window_s;
	memcpy(d->key, announce_key, 32);
	d->replay = announce_replay_new(65536);
	d->fd = net_udp_bind(addr, port, false);
	if (d->fd < 0) {
		errno = -d->fd;
		log_warn("discovery: bind %s:%u", addr, port);
		goto fail;
	}
	/* 1000 controllers announcing together must not overflow the default buffer. */
	int sz = 4 << 20;
	setsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	if (!d->replay || loop_io_add(loop, d->fd, EPOLLIN, discovery_on_read, d) < 0)
		goto fail;
	log_info("discovery: listening for announces on %s:%u", addr, port);
	return d;
fail:
	discovery_free(d);
	return NULL;
}

void discovery_free(struct discovery *d)
{
	if (!d)
		return;
	if (d->fd >= 0) {
		loop_io_del(d->loop, d->fd);
		close(d->fd);
	}
	announce_replay_free(d->replay);
	free(d);
}

void discovery_seed(struct discovery *d, const char *id, const char *boot, uint64_t seq, int64_t ts)
{
	struct announce a = { .seq = seq, .ts = ts };
	snprintf(a.id, sizeof a.id, "%s", id);
	snprintf(a.boot, sizeof a.boot, "%s", boot);
	announce_replay_check(d->replay, &a);
}

uint64_t discovery_accepted(const struct discovery *d) { return d->accepted; }
uint64_t discovery_dropped(const struct discovery *d) { return d->dropped; }
