/* link_int.h: what link.c (the link: state, frames, keepalive, teardown) and linktls.c (its
 * TLS: the contexts, the PSK callbacks, error text) share. Nothing outside them includes it;
 * see link.h. */
#ifndef FR_LINK_INT_H
#define FR_LINK_INT_H

#include "link.h"

#include "frame.h"
#include "loop.h"
#include "net.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_SECRET_LEN 32
#define LINK_READ_CHUNK 16384   /* one TLS record of plaintext at most */
#define LINK_WRITE_CHUNK 16384


enum link_state { LS_CONNECTING, LS_HANDSHAKE, LS_UP, LS_DOWN };

struct link_ctx {
	SSL_CTX *cli, *srv;
	uint8_t secret[LINK_SECRET_LEN];
	uint64_t ping_interval_ms, ping_timeout_ms, handshake_timeout_ms;
	size_t max_frame, max_outq;
};

struct link {
	struct link_ctx *ctx;
	struct loop *loop;
	const struct link_ops *ops;
	void *arg;
	int fd;
	SSL *ssl;
	enum link_state state;
	bool server;
	bool has_expect;
	char expect_id[LINK_ID_MAX + 1];
	char peer_id[LINK_ID_MAX + 1];
	char addr[NET_ADDRSTRLEN];
	char reject[192];           /* why the PSK callback refused the identity */
	uint32_t events;            /* current epoll interest */
	bool read_wants_write, write_wants_read;
	struct frame_dec dec;
	uint8_t *out;               /* output queue: bytes [out_off, out_len) are pending */
	size_t out_off, out_len, out_cap;
	size_t wpend;               /* length of an SSL_write to repeat after WANT_*, 0 if none */
	uint64_t last_rx, last_tx, ping_seq;
	struct loop_timer t_hs, t_ping, t_rx;
	struct loop_defer d_down;   /* on_down, never from inside the call that failed */
	struct loop_defer d_free;   /* link_free: the memory goes at the end of the iteration */
	bool rx_seen;               /* on_rx was called */
	enum link_down why;
	char detail[256];
};

/* linktls.c */
/* The reason of a failed SSL call on l (the PSK callback's refusal first, then the error
 * queue, then errno, saved by the caller) into buf; clears the error queue. */
void linktls_reason(struct link *l, int err, int rc, int saved_errno, char *buf, size_t n);

#endif
