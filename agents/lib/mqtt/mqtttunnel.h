/* mqtttunnel: the TLS and WebSocket transport under the MQTT client. libmosquitto speaks plain
 * MQTT to a private unix socket of ours; the tunnel carries those bytes to the broker over TCP,
 * TLS (mqtts://), WebSocket (ws://) or both (wss://), on the agent's loop, non-blocking from
 * TCP connect through TLS handshake and HTTP upgrade. Why not libmosquitto's own TLS: it would
 * resolve the broker's name itself, blocking the loop (a DNS outage would stall every
 * controller link); and libmosquitto 2.0 has no WebSocket client at all. TLS is OpenSSL with
 * the broker's name checked and sent as SNI; WebSocket per RFC 6455 (client frames masked,
 * subprotocol "mqtt").
 *
 * One tunnel carries one connection: made for a connection attempt, freed when it ends.
 * Ownership: the caller owns the tunnel (mqtttunnel_free); strings in opts are copied. */
#ifndef FR_MQTTTUNNEL_H
#define FR_MQTTTUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct mqtttunnel;
struct pollfd;

struct mqtttunnel_opts {
	const char *host;     /* the broker's name: TLS name check, SNI, HTTP Host */
	const char *addr;     /* a numeric address of host to connect to */
	uint16_t port;
	const char *path;     /* WebSocket request path ("/mqtt"); ws only */
	bool tls, ws;
	const char *ca_file, *cert_file, *key_file;  /* ca_file NULL: the system's CAs */
	bool insecure;        /* skip the name check (the chain is still verified) */
};

/* Listens on a fresh private unix socket (its path in *unix_path, owned by the tunnel) and
 * starts connecting to the broker. The first connection made to the socket by this process is
 * relayed; the socket file is removed once it is accepted. NULL (logged) on failure. */
struct mqtttunnel *mqtttunnel_new(struct loop *loop, const struct mqtttunnel_opts *o,
				  const char **unix_path);
/* Whether the broker side got through TCP, TLS and the WebSocket upgrade: a connection that
 * ends before CONNACK means "refused by the broker" only if it did. */
bool mqtttunnel_reached(const struct mqtttunnel *t);
/* Why the broker side failed or ended ("" if it did not); borrowed. */
const char *mqtttunnel_error(const struct mqtttunnel *t);
/* For a stop that runs the connection off the loop (mqtt_stop): the tunnel's descriptors with
 * the events it waits for (at most 2, into p; returns how many), and one relaying step once
 * poll(2) has looked at them. */
size_t mqtttunnel_pollfds(const struct mqtttunnel *t, struct pollfd *p);
void mqtttunnel_step(struct mqtttunnel *t);
/* Blocks at most timeout_ms relaying what the client side already wrote (e.g. a DISCONNECT),
 * then closes the broker side cleanly. For shutdown only. */
void mqtttunnel_drain(struct mqtttunnel *t, uint64_t timeout_ms);
/* NULL is fine. Closes both sides. */
void mqtttunnel_free(struct mqtttunnel *t);

/* The parsers of what a broker sends over WebSocket, without sockets (for the fuzz target and
 * tests): p is fed in chunks of at most chunk bytes to a ws tunnel that sent an upgrade with the
 * key "dGhlIHNhbXBsZSBub25jZQ==" (RFC 6455's example), through the 101 response and the frames.
 * The MQTT bytes that would reach libmosquitto go to out (at most cap, the rest is counted).
 * Returns how many there were; *closed says whether the tunnel ended (bad input, close frame).
 * Not thread-safe (one scratch tunnel, kept for the process's life). */
size_t mqtttunnel_parse_broker(const uint8_t *p, size_t n, size_t chunk, uint8_t *out,
			       size_t cap, bool *closed);

#endif
