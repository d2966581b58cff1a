/* peerlimit: what strangers may hold of a listener. A connection is *pending* from accept until
 * it authenticated (TLS-PSK handshake, shim auth) or, on a listener without authentication
 * (HTTP), until it was served. Pending connections get a budget per peer -- an IPv4 address,
 * an IPv6 /64, a local user (uid) on a unix socket -- and one in all. A connection over its
 * peer's budget closes that peer's oldest pending connection (with first_message_whole, its
 * oldest that spoke and stopped, if any). One over the total closes an
 * idle one first (nothing received yet: what a flood of idle connections is made of, while a
 * real client speaks at once), the oldest of the peer holding the most idle ones; when every
 * pending connection spoke, the oldest of the peer holding the most. A flood from one peer
 * only ever displaces that peer's own connections, and a client that authenticates at once
 * is not the one closed. An optional deadline closes a pending connection that takes too long.
 * Authenticated connections leave the budgets (peerlimit_done), so strangers never count
 * against them nor they against strangers.
 *
 * Refusals, deadlines and failures before authentication are logged here, not by the owner,
 * and at most once per PEERLIMIT_LOG_MS and kind per peer with a count ("link listener: refused
 * 2917 connections from 127.0.0.9 in the last 10 s (over its budget of 8 pending)"): the first
 * event after a quiet spell is logged at once, the rest summed up at the end of the spell. */
#ifndef FR_PEERLIMIT_H
#define FR_PEERLIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PEERLIMIT_LOG_MS 10000
/* Peers named in one log spell, those with the most events; the rest are summed up as
 * "other peers". Counts are kept for up to PEERLIMIT_LOG_TRACK peers per spell. */
#define PEERLIMIT_LOG_PEERS 8
#define PEERLIMIT_LOG_TRACK 64

struct loop;
struct peerlimit;
/* A pending connection's place in the budgets. Owned by the peerlimit; valid from
 * peerlimit_admit until peerlimit_done/peerlimit_failed or the close callback. */
struct peerlimit_slot;

struct peerlimit_opts {
	const char *what;          /* names the listener in logs ("link listener"); kept by pointer */
	int max_pending;           /* pending connections in all, >= 1 */
	int max_pending_per_peer;  /* from one peer, 1 .. max_pending */
	uint64_t deadline_ms;      /* 0 = none here (the owner has one, e.g. a handshake timeout) */
	uint64_t log_ms;           /* 0 = PEERLIMIT_LOG_MS (tests use less) */
	const char *deadline_what; /* what the deadline waits for, for the log: NULL =
				      "authenticate"; HTTP says "send its request" */
	/* The protocol's first message arrives whole (an HTTP request head, a shim auth line), so
	 * a client that spoke and stopped is a slow one: within a peer, the oldest connection
	 * that sent something goes before one that has not spoken yet. Without it (a TLS
	 * handshake, several round trips) the peer's oldest goes, whatever it sent. */
	bool first_message_whole;
};

enum peerlimit_why {
	PEERLIMIT_OVER_BUDGET,     /* displaced by a newer connection (logged as refused) */
	PEERLIMIT_DEADLINE,        /* did not authenticate within deadline_ms */
};

/* The slot is already given back when this runs: the owner closes the connection without
 * logging it (this module did) and forgets the slot. Never called from inside
 * peerlimit_admit for the connection being admitted. */
typedef void (*peerlimit_close_cb)(void *arg, enum peerlimit_why why);

/* NULL on bad options or out of memory (logged). */
struct peerlimit *peerlimit_new(struct loop *loop, const struct peerlimit_opts *o);
/* Slots not given back are freed without callbacks; their owners must not use them again. */
void peerlimit_free(struct peerlimit *pl);

/* A new connection on fd (the peer of a unix socket is read from fd: SO_PEERCRED) from peer
 * (borrowed). Makes room first, which may close older pending connections through their
 * callbacks. Returns the slot, or NULL when out of memory (logged): then close fd. */
struct peerlimit_slot *peerlimit_admit(struct peerlimit *pl, int fd,
				       const struct sockaddr_storage *peer, peerlimit_close_cb cb,
				       void *arg);
/* The connection received its first bytes: from now on idle connections are displaced
 * before it. Idempotent. */
void peerlimit_active(struct peerlimit *pl, struct peerlimit_slot *s);
/* The connection authenticated (or was served, or closed normally): gives the slot back. */
void peerlimit_done(struct peerlimit *pl, struct peerlimit_slot *s);
/* The connection failed before authenticating (bad handshake, garbage, an error): gives the
 * slot back and counts it in the log with detail (borrowed; "handshake failed: bad mac"). */
void peerlimit_failed(struct peerlimit *pl, struct peerlimit_slot *s, const char *detail);
/* Counts a failed attempt of a connection that stays pending (a wrong token) in the log. */
void peerlimit_note(struct peerlimit *pl, const struct peerlimit_slot *s, const char *detail);

/* Connections pending now: in all, and (for tests) from the peer of slot s. */
int peerlimit_pending(const struct peerlimit *pl);
int peerlimit_peer_pending(const struct peerlimit_slot *s);
/* "127.0.0.9", "2001:db8:0:1::/64", "uid 33": the peer of s, valid while s is. */
const char *peerlimit_peer_name(const struct peerlimit_slot *s);

#endif
