/* mqtt_int.h: what the MQTT client's files share -- mqtt.c (the connection: libmosquitto's
 * callbacks, attempts, backoff, the socket in our loop), mqttpub.c (publishing, the buffer kept
 * while disconnected, tracked publishes), mqttsub.c (subscriptions and incoming messages) and
 * mqttlife.c (options, start, clean stop, free). Nothing outside them includes it; see mqtt.h. */
#ifndef FR_MQTT_INT_H
#define FR_MQTT_INT_H

#include "mqtt.h"

#include "backoff.h"
#include "loop.h"

#include <mosquitto.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqttdns;
struct mqtttunnel;

#define MQTT_DEF_KEEPALIVE 30
#define MQTT_DEF_EXPIRY 86400u
#define MQTT_DEF_BACKOFF_MIN 500
#define MQTT_DEF_BACKOFF_MAX 30000
#define MQTT_DEF_BUFFERED 1000
#define MQTT_CONNECT_TIMEOUT_MS 10000  /* per attempt: TCP, TLS, upgrade and CONNACK */

#define MQTT_FREE_STOP_MS 1000
#define MQTT_INFLIGHT 1000             /* our receive maximum; 3.1.1 send maximum */
#define MQTT_TRACK_BUCKETS 256

enum mqtt_state { MQTT_IDLE, MQTT_RESOLVING, MQTT_CONNECTING, MQTT_CONNECTED, MQTT_BACKOFF,
		  MQTT_STOPPED };

/* One broker URI of the list. */
struct mqtt_target {
	char *uri, *host, *path;
	uint16_t port;
	bool tls, ws;
	bool v5_refused;   /* its CONNACK said "unsupported protocol version" to MQTT 5 */
};

/* A message kept while disconnected (copies, owned by the buffer). */
struct mqtt_out {
	struct mqtt_out *next;
	char *topic, *rtopic;
	void *payload, *corr;
	size_t len, corr_len;
	int qos;
	bool retain;
	uint64_t ticket;          /* 0 = untracked */
};

/* A tracked publish handed to libmosquitto, found again by its packet id. */
struct mqtt_track {
	struct mqtt_track *next;
	uint64_t ticket;
	int mid;
	int qos;
	mqtt_done_fn done;
	void *arg;
	int err;
};

struct mqtt_sub {
	char *filter;
	int qos;
	int mid;                  /* of its latest SUBSCRIBE, 0 = none (libmosquitto skips 0) */
	struct mqtt_subopts opts;
};

struct mqtt {
	struct loop *loop;
	struct mqtt_ops ops;
	void *arg;

	struct mqtt_target *targets;
	size_t ntargets, cur;
	char *client_id, *username, *password, *ca_file, *cert_file, *key_file;
	char *will_topic, *will_payload;
	bool insecure, clean, will_retain;
	/* clean_first: until the first clean connection was made (wiped), libmosquitto runs with
	 * clean start; wipe_done: its CONNACK came, switch over once libmosquitto returns. */
	bool clean_first, wiped, wipe_done;
	int will_qos, version_cfg, keepalive, max_buffered;
	uint32_t session_expiry;
	struct backoff backoff;   /* reconnect delays; its failures: attempts since the last success */

	struct mosquitto *mosq;
	enum mqtt_state state;
	int version;              /* of the current attempt */
	int spoken;               /* of the last established connection */
	bool try_v4;              /* this attempt falls back to 3.1.1 */
	bool tcp_up;              /* the attempt's socket got connected */
	bool got_connack;
	/* loop ms of the last CONNACK. A connection lost sooner than MQTT_STABLE_MS after it
	 * counts as one more failure for the backoff (a broker that closes the connection at
	 * each SUBSCRIBE, or a client id taken over in turns, must not become a reconnect loop
	 * at backoff_min); one that lasted resets it. */
	uint64_t connected_at;
	int refused;              /* CONNACK reason of this attempt, 0 = none */
	bool in_mosq;             /* inside a libmosquitto call that runs our callbacks */
	bool stop_deferred;
	char lost_reason[160];
	int fd;
	uint32_t events;
	uint64_t rng;
	struct loop_timer retry, misc, timeout;
	struct loop_defer flush;       /* delivers publish completions from the loop */
	struct loop_defer retry_now;   /* the next attempt at once, not from inside a callback */

	struct loop_wake *dns_wake;
	struct mqttdns *dns;
	char **addrs;             /* numeric addresses of the current target */
	size_t naddrs, addr_i;
	struct mqtttunnel *tunnel;

	struct mqtt_sub *subs;
	size_t nsubs;
	struct mqtt_out *buf_head, **buf_tail;
	int nbuf;
	/* Publishes refused because the buffer was full: the first is logged, the rest summed up
	 * at most every MQTT_DROP_LOG_MS (a broker outage under an event stream gave 79 000 lines). */
	uint64_t drop_logged_ms;
	unsigned long drops_unlogged;
	struct mqtt_track *track[MQTT_TRACK_BUCKETS];
	struct mqtt_track *finished, **finished_tail;   /* completions waiting for the flush */
	uint64_t next_ticket;
	/* QoS 1/2 publishes handed to libmosquitto that the broker has not acknowledged, by
	 * packet id (1..65535): a clean stop waits for them (mqtt_drain). */
	uint8_t unacked_ids[65536 / 8];
	unsigned unacked;
};

#define MQTT_STABLE_MS 10000     /* see struct mqtt: connected_at */
#define MQTT_DROP_LOG_MS 10000   /* see struct mqtt: drop_logged_ms */

/* mqtt.c */
void mqtt_addrs_clear(struct mqtt *m);
void mqtt_attempt(struct mqtt *m);
const char *mqtt_cur_uri(const struct mqtt *m);
void mqtt_dns_cancel(struct mqtt *m);
int mqtt_err(int rc);
int mqtt_mosq_setup(struct mqtt *m);
void mqtt_on_dns(void *arg);
void mqtt_on_misc(void *arg);
void mqtt_on_retry(void *arg);
void mqtt_on_timeout(void *arg);
void mqtt_update_events(struct mqtt *m);

/* mqttpub.c */
void mqtt_flush_buffer(struct mqtt *m);
void mqtt_on_flush(void *arg);
void mqtt_out_free(struct mqtt_out *o);
int mqtt_reason_err(int rc);
void mqtt_track_finish(struct mqtt *m, struct mqtt_track *t, int err);
struct mqtt_track *mqtt_track_take_mid(struct mqtt *m, int mid);
void mqtt_unacked_set(struct mqtt *m, int mid, bool set);

/* mqttsub.c */
void mqtt_send_sub(struct mqtt *m, struct mqtt_sub *s);
void mqtt_cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *mm,
		     const mosquitto_property *props);

/* mqttlife.c */
void mqtt_do_stop(struct mqtt *m, uint64_t timeout_ms);

#endif
