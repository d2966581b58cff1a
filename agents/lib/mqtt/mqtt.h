/* mqtt: the agents' one MQTT client, libmosquitto driven from the agent's event loop with no
 * threads of its own: its socket is in our epoll and every callback below runs on the loop
 * thread. Reconnects (exponential backoff, full jitter), failover over several broker URIs,
 * MQTT 5 with a fall back to 3.1.1, resubscribes, buffering while disconnected and
 * TCP_NODELAY are handled here. mqtts://, ws:// and wss:// go through mqtttunnel (TLS and
 * WebSocket done by us, so libmosquitto only speaks MQTT); names are resolved off the loop.
 *
 * Ownership: struct mqtt is owned by the caller (mqtt_free). Strings in mqtt_opts are copied
 * by mqtt_new. Everything in struct mqtt_msg and the reason string of on_disconnected are
 * borrowed for the duration of the callback only. */
#ifndef FR_MQTT_H
#define FR_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct mqtt;

/* Zero means "default" for every numeric field. */
struct mqtt_opts {
	/* mqtt://host:port (tcp), mqtts:// (TLS), ws://host:port/path, wss://; tcp:// and ssl://
	 * are accepted as aliases. With uris/nuris set, uri is ignored: the client tries them
	 * in order, moving on after a failed attempt and after a lost connection. */
	const char *uri, *client_id, *username, *password;
	const char *const *uris;
	size_t nuris;
	const char *ca_file, *cert_file, *key_file;  /* TLS; NULL = none (ca_file NULL: system CAs) */
	bool insecure;            /* skip hostname verification (tests only) */
	/* 0 (default) = auto: MQTT 5, and 3.1.1 when the broker refuses 5 (CONNACK "unsupported
	 * protocol version", or the connection closed before any CONNACK); 5 or 4 = only that. */
	int version;
	bool clean;               /* false = persistent session */
	/* With !clean: the first connect of this process starts a clean session anyway (what a
	 * previous process subscribed is dropped); reconnects resume it. */
	bool clean_first;
	/* MQTT 5, seconds; default 1 day when !clean. With clean, 0 (the default) sends no
	 * property, so the session ends with the connection. UINT32_MAX = never expires. */
	uint32_t session_expiry;
	int keepalive;            /* seconds, default 30 */
	const char *will_topic, *will_payload; int will_qos; bool will_retain;  /* topic NULL: no will */
	uint64_t backoff_min_ms, backoff_max_ms;  /* reconnect delay bounds, default 500 / 30000 */
	int max_buffered;         /* messages kept while disconnected, default 1000 */
};

/* retained: with MQTT 5 a subscription is made with Retain As Published (unless its
 * mqtt_subopts say otherwise), so it says whether the message was published with retain set;
 * with 3.1.1 (and without Retain As Published) it is only set for messages the broker sends
 * from its retained store when a subscription is made. dup is always false (libmosquitto does
 * not report the DUP flag; repeated deliveries are the application's to recognise, e.g. by an
 * id). */
struct mqtt_msg {
	const char *topic; const void *payload; size_t len; int qos; bool retained; bool dup;
	const char *response_topic;  /* NULL if absent (always with 3.1.1) */
	const void *correlation; size_t correlation_len;  /* NULL/0 if absent */
	/* MQTT 5: the Subscription Identifiers of the subscriptions this copy was sent for (a
	 * broker sends one copy per matching subscription, or one copy with all their ids);
	 * none with 3.1.1. Mosquitto sends one copy per subscription. libmosquitto (2.0.11 to
	 * 2.0.20) takes a PUBLISH with several identifiers for a duplicate property and drops
	 * the connection, so a broker that combines copies cannot be used with identifiers. */
	const uint32_t *sub_ids; size_t nsub_ids;
};   /* all borrowed for the duration of on_message */

/* Subscription options beyond the qos; all zero = the defaults. The MQTT 5 ones are ignored
 * with 3.1.1. */
struct mqtt_subopts {
	uint32_t id;       /* Subscription Identifier, 1..MQTT_SUB_ID_MAX; 0 = none */
	/* Without Retain As Published: the broker clears the retain flag of live messages, so
	 * `retained` marks only what it sends from its retained store for this subscription. */
	bool no_retain_as_published;
	/* Called (if set) for every SUBACK of the filter's latest SUBSCRIBE, with every
	 * protocol: err 0 = granted, else the refusal (-EACCES not authorized, -EIO any other
	 * reason >= 0x80). Again after each reconnect's resubscribe; never for a SUBACK that a
	 * newer SUBSCRIBE of the filter overtook. filter is borrowed until the callback returns
	 * or unsubscribes it. Unlike the other fields, honoured with 3.1.1 too. */
	void (*on_suback)(void *arg, const char *filter, int err);
	void *suback_arg;
};
#define MQTT_SUB_ID_MAX 268435455u

/* Any of these may be NULL. None of them may call mqtt_free on the mqtt that calls it. */
struct mqtt_ops {
	/* After every successful (re)connect, once every remembered filter was resubscribed. */
	void (*on_connected)(void *arg, bool session_present);
	/* An established connection was lost (not called for failed attempts or mqtt_stop). */
	void (*on_disconnected)(void *arg, const char *reason);
	void (*on_message)(void *arg, const struct mqtt_msg *m);
};

/* Error codes beyond -errno: -ENOTCONN (stopped), -ENOBUFS (the disconnected buffer is full),
 * -EINVAL (bad topic/qos/UTF-8), -EIO (anything else from libmosquitto). Functions below log
 * their failures themselves, once. */

/* Strings in opts are copied. Returns NULL (logged) on bad options or no memory. */
struct mqtt *mqtt_new(struct loop *loop, const struct mqtt_opts *o, const struct mqtt_ops *ops,
		      void *arg);
/* Begins connecting; returns at once. A failed attempt is retried on a loop timer forever. */
int mqtt_start(struct mqtt *m);
/* Remembered (re-subscribed on every connect); sent now if connected. Subscribing to a known
 * filter again updates its qos. */
int mqtt_subscribe(struct mqtt *m, const char *filter, int qos);
/* The same with options (NULL = defaults); they are remembered with the filter. */
int mqtt_subscribe_opts(struct mqtt *m, const char *filter, int qos,
			const struct mqtt_subopts *opts);
int mqtt_unsubscribe(struct mqtt *m, const char *filter);
/* qos 0..2. response_topic/corr are MQTT 5 properties (dropped on a 3.1.1 connection); NULL/0
 * = none. While disconnected the message is buffered (up to max_buffered) and sent on
 * reconnect; a QoS 1/2 message the broker has not acknowledged when a connection is lost is
 * sent again on the next one (at least once). */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		 bool retain, const char *response_topic, const void *corr, size_t corr_len);

/* Completion of one publish: err 0 = QoS 1/2: the broker acknowledged it (PUBACK/PUBCOMP with
 * a success reason; "no matching subscribers" is a success); QoS 0: it was written to the
 * connection (MQTT has no acknowledgment for QoS 0). err < 0: the broker refused it
 * (-EACCES not authorized, -EMSGSIZE too large, -EDQUOT quota exceeded, -EIO any other
 * reason code >= 0x80). Called once, on the loop thread, unless forgotten first. */
typedef void (*mqtt_done_fn)(void *arg, uint64_t ticket, int err);
/* mqtt_publish, and done(arg, *ticket, err) once the outcome is known. A message waiting in
 * the disconnected buffer or for its acknowledgment stays pending across reconnects (it is
 * sent again); callers that cannot wait keep their own deadline and call mqtt_publish_forget.
 * On failure nothing is pending and done is never called. mqtt_stop/mqtt_free drop pending
 * completions without calling them. */
int mqtt_publish_tracked(struct mqtt *m, const char *topic, const void *payload, size_t len,
			 int qos, bool retain, const char *response_topic, const void *corr,
			 size_t corr_len, mqtt_done_fn done, void *arg, uint64_t *ticket);
/* No call for this ticket any more (unknown or finished tickets are fine). */
void mqtt_publish_forget(struct mqtt *m, uint64_t ticket);

bool mqtt_is_connected(const struct mqtt *m);
/* The protocol spoken on the current connection (or the last one): 5, 4 (3.1.1), 0 before
 * the first connection. */
int mqtt_version(const struct mqtt *m);
/* The broker URI of the current (or last) connection attempt; borrowed. */
const char *mqtt_uri(const struct mqtt *m);
/* Disconnects cleanly (MQTT DISCONNECT; with MQTT5 reason 0 the will is NOT sent, so callers
 * publish their own "offline" first if they want one), within timeout_ms, running only this
 * client's I/O on the loop thread: first until the broker has acknowledged every QoS 1/2
 * publish handed over -- meanwhile messages that arrive are still delivered to on_message
 * (libmosquitto acknowledges each one it reads, so it must be handled; what is not read is
 * not acknowledged and stays with the broker's session) -- then the DISCONNECT, and an
 * orderly TCP end that loses nothing written. Called from one of this client's callbacks it
 * stops without the wait. No callback is called after it returns; it cannot be restarted. */
void mqtt_stop(struct mqtt *m, uint64_t timeout_ms);
/* Stops (1 s at most, without the wait for acknowledgments: the application may have freed
 * what its callbacks use) if still running, then frees. NULL is fine. */
void mqtt_free(struct mqtt *m);

#endif
