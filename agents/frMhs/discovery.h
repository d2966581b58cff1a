/* discovery: the UDP socket where controllers' announces arrive. Each datagram is verified
 * (framing, HMAC, fields, time window, replay) and handed to the registry, or dropped with one
 * logged reason. Drop logs are rate-limited so a flood cannot fill the disk. */
#ifndef MHS_DISCOVERY_H
#define MHS_DISCOVERY_H

#include <stdint.h>

struct loop;
struct registry;
struct discovery;

struct discovery *discovery_new(struct loop *loop, struct registry *reg, const char *addr,
				uint16_t port, const uint8_t announce_key[32], int window_s);
void discovery_free(struct discovery *d);
/* What a previous run accepted last from controller id (the state dir's registry), so an
 * announce recorded before a restart of frMhs is still a replay after it. */
void discovery_seed(struct discovery *d, const char *id, const char *boot, uint64_t seq, int64_t ts);
/* Counters for metrics and tests. */
uint64_t discovery_accepted(const struct discovery *d);
uint64_t discovery_dropped(const struct discovery *d);

#endif
