/* link: one TCP connection of the LAN protocol v1 between the home server and a controller,
 * in either role, inside the agent's epoll loop: TLS 1.3 with a pre-shared key derived from the
 * home secret and the controller id (no certificates), carrying length-prefixed JSON frames
 * (frame.h), with its own keepalive, timeouts and a bounded output queue. Every failure
 * closes that link only and is reported once through on_down. */
#ifndef FR_LINK_H
#define FR_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "lanmsg.h"

struct loop;
struct link;
/* One per agent: the SSL_CTXs and a copy of the secret. Owned by the caller; free it after
 * every link made from it. */
struct link_ctx;

#define LINK_ID_MAX 63  /* controller ids are names (name.h): [A-Za-z0-9_-]{1,63} */

/* Zero fields take the defaults in brackets. */
struct link_ctx_opts {
	const uint8_t *secret;          /* 32 bytes, copied */
	uint64_t ping_interval_ms;      /* [10000] send a ping after this long without sending */
	uint64_t ping_timeout_ms;       /* [30000] drop after this long without receiving */
	uint64_t handshake_timeout_ms;  /* [10000] TCP connect + TLS handshake */
	size_t max_frame;               /* [FRAME_MAX_DEFAULT] body bytes, both directions */
	size_t max_outq;                /* [1 MiB] pending output bytes before the peer is dropped */
};

/* NULL on failure (logged). Sets SIGPIPE to SIG_IGN process-wide: OpenSSL writes to sockets
 * with plain write(). */
struct link_ctx *link_ctx_new(const struct link_ctx_opts *o);
void link_ctx_free(struct link_ctx *c);

enum link_down {
	LINK_DOWN_CONNECT,   /* TCP connect failed or timed out */
	LINK_DOWN_HANDSHAKE, /* TLS failed (wrong key, refused identity, not TLS) or timed out */
	LINK_DOWN_CLOSED,    /* peer closed cleanly (close_notify) */
	LINK_DOWN_IO,        /* reset, EOF without close_notify, TLS error after the handshake */
	LINK_DOWN_BAD_FRAME, /* bad length, not UTF-8, not a JSON object with a string "type" */
	LINK_DOWN_TIMEOUT,   /* nothing received for ping_timeout */
	LINK_DOWN_OUTQ,      /* output queue above max_outq */
	LINK_DOWN_LOCAL,     /* closed by us (not reported through on_down: link_free is silent) */
};
/* Static string: "connect failed", "bad frame", "ping timeout", ... */
const char *link_down_str(enum link_down r);

struct link_ops {
	void (*on_up)(struct link *l, void *arg);                    /* handshake done */
	/* A message that passed the frame checks (lanmsg_decode; ping and pong are the link's
	 * own and never come here); m borrowed for the call. */
	void (*on_msg)(struct link *l, const struct lanmsg *m, void *arg);
	/* Exactly once per link that did not get link_free first; always called from the loop,
	 * never from inside link_send. detail is borrowed for the call. */
	void (*on_down)(struct link *l, enum link_down why, const char *detail, void *arg);
	/* Optional, accepted links only: the first bytes of the handshake arrived (the peer is not
	 * merely holding a connection open; peerlimit_active). Called once, before on_up. */
	void (*on_rx)(struct link *l, void *arg);
};

/* Starts a non-blocking connect (from bind_host if not NULL) and a TLS client handshake with
 * identity ctl_id. Returns NULL (errno set: EINVAL for a bad id, ENOMEM) only for local errors;
 * a failed connect is reported through on_down(LINK_DOWN_CONNECT). ops must outlive the link. */
struct link *link_dial(struct link_ctx *c, struct loop *loop, const struct sockaddr_storage *to,
		       const char *bind_host, const char *ctl_id, const struct link_ops *ops,
		       void *arg);
/* Server side of a connected fd (from net_tcp_accept); the link owns fd from now on, also when
 * this fails (NULL, errno set, fd closed). expect_id NULL accepts any valid id, otherwise only
 * that one (copied). A failure before on_up (the handshake: any stranger can cause one) is
 * logged at debug level only: the owner reports it through its peerlimit, rate-limited. */
struct link *link_accept(struct link_ctx *c, struct loop *loop, int fd,
			 const struct sockaddr_storage *peer, const char *expect_id,
			 const struct link_ops *ops, void *arg);

/* Queues one JSON object (serialised compactly) as a frame and starts writing it. Returns 0;
 * -ENOTCONN if the link is not up; -EMSGSIZE if the body exceeds max_frame (the link stays up);
 * -ENOBUFS if the queue overflowed or -EIO if writing failed: then the link is dropped and
 * on_down follows later from the loop. */
int link_send(struct link *l, const cJSON *msg);
/* Same with an already serialised object; json is not checked, only framed. */
int link_send_raw(struct link *l, const char *json, size_t len);

/* Closes now (close_notify if the link is up) without calling on_down; l is freed at the end
 * of the loop iteration (loop_defer), so this is safe inside any of this link's own callbacks.
 * The owner calls it exactly once, after on_down or instead of waiting for it, and uses l no
 * more; the loop must outlive it (loop_free runs what is still deferred). */
void link_free(struct link *l);

bool link_is_up(const struct link *l);
/* Bytes queued but not yet written to the socket (TLS records excluded). A sender that must not
 * overflow max_outq (a bench pushing events as fast as it can) waits while this is high. */
size_t link_outq_len(const struct link *l);
/* The PSK identity (controller id): known from the start when dialling, after the handshake
 * when accepting ("" before). Valid while l lives. */
const char *link_peer_id(const struct link *l);
/* "127.0.0.2:7410"; valid while l lives. */
const char *link_peer_addr(const struct link *l);
/* Hands the link to another owner: its later callbacks go to ops with arg (ops must outlive
 * the link). Safe inside the link's own callbacks: an accept side that learns who the peer is in
 * on_up passes the link on to that peer's record. */
void link_set_ops(struct link *l, const struct link_ops *ops, void *arg);

#endif
