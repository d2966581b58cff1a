/* mqtttunnel_int.h: what mqtttunnel.c (sockets, TLS, the pump) and mqttws.c (the WebSocket
 * upgrade and framing, RFC 6455) share. Nothing outside them includes it; see mqtttunnel.h. */
#ifndef FR_MQTTTUNNEL_INT_H
#define FR_MQTTTUNNEL_INT_H

#include "mqtttunnel.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUN_BUF 65536            /* each direction; a full buffer stops reading the other side */
#define TUN_HTTP_MAX 8192        /* the upgrade response's headers */
#define TUN_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum tun_state { TUN_TCP, TUN_TLS, TUN_UPGRADE, TUN_OPEN, TUN_CLOSED };

struct mqtttunnel {
	struct loop *loop;
	enum tun_state st;
	bool reached, client_eof, close_sent;
	char err[200];
	char dir[40], sock[80];
	int lfd, cfd, rfd;
	uint32_t cev, rev;       /* registered epoll events (0 = not registered) */
	SSL_CTX *ctx;
	SSL *ssl;
	bool ssl_want_write;
	char *host, *path;
	uint16_t port;
	bool tls, ws, insecure;
	char key[32];            /* Sec-WebSocket-Key */
	/* to the broker (framed when ws) */
	unsigned char up[TUN_BUF + 16];
	size_t up_len;
	/* to the client (plain MQTT) */
	unsigned char down[TUN_BUF];
	size_t down_len;
	/* from the broker, not yet parsed (HTTP response, WebSocket frame headers/control) */
	unsigned char in[TUN_HTTP_MAX];
	size_t in_len;
	/* the WebSocket frame being read */
	uint64_t frame_left;     /* payload bytes still to come */
	int frame_op;
	bool in_frame;
	unsigned char ctl[125];  /* a control frame's payload */
	size_t ctl_len;
};

/* mqtttunnel.c */
/* The broker side is over (why, the first one kept): the client side is closed too. */
void mqtttunnel_fail(struct mqtttunnel *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* mqttws.c */
/* The upgrade request into up, with a fresh Sec-WebSocket-Key. 0, or -1. */
int mqttws_upgrade_request(struct mqtttunnel *t);
/* Parses the 101 answer once in holds all of it (TUN_OPEN, or tun_fail); leaves what follows
 * it in in. */
void mqttws_upgrade_response(struct mqtttunnel *t);
/* Appends one masked client frame (FIN set) to up; the caller checked the room. 0, or -1. */
int mqttws_frame(struct mqtttunnel *t, int op, const void *p, size_t n);
/* Moves what in holds of WebSocket frames: data to down, control frames answered. Returns
 * whether anything moved. */
bool mqttws_deframe(struct mqtttunnel *t);

#endif
