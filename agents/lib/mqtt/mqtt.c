/* mqtt: libmosquitto on the agent's loop -- the connection: its attempts (name lookup,
 * TCP, TLS/WebSocket tunnel, CONNECT), libmosquitto's callbacks, backoff and failover; see
 * mqtt.h and mqtt_int.h. */
#include "mqtt_int.h"

#include "log.h"
#include "loop.h"
#include "mqttdns.h"
#include "mqtttunnel.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

int mqtt_err(int rc)
{
	switch (rc) {
	case MOSQ_ERR_NOMEM:
		return -ENOMEM;
	case MOSQ_ERR_NO_CONN:
		return -ENOTCONN;
	case MOSQ_ERR_INVAL:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_QOS_NOT_SUPPORTED:
	case MOSQ_ERR_NOT_SUPPORTED:
	case MOSQ_ERR_DUPLICATE_PROPERTY:
		return -EINVAL;
	case MOSQ_ERR_OVERSIZE_PACKET:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

static const char *mqtt_version_name(int v)
{
	return v == 5 ? "MQTT 5" : v == 4 ? "MQTT 3.1.1" : "no MQTT yet";
}

const char *mqtt_cur_uri(const struct mqtt *m)
{
	return m->targets[m->cur].uri;
}

/* --- name lookups (mqttdns) --- */

void mqtt_dns_cancel(struct mqtt *m)
{
	mqttdns_cancel(m->dns);
	m->dns = NULL;
}

void mqtt_addrs_clear(struct mqtt *m)
{
	size_t i;
	for (i = 0; i < m->naddrs; i++)
		free(m->addrs[i]);
	free(m->addrs);
	m->addrs = NULL;
	m->naddrs = m->addr_i = 0;
}

/* --- libmosquitto's callbacks: run inside mosquitto_loop_read/write on the loop thread --- */

static void mqtt_schedule_retry(struct mqtt *m);

/* The first connection of a clean_first client: a clean start that only drops the session a
 * previous process left (libmosquitto's clean start flag is fixed per struct mosquitto, so the
 * resumable session is the next connection, made by a new one: mqtt_wiped). */
static bool mqtt_wiping(const struct mqtt *m)
{
	return m->clean_first && !m->clean && !m->wiped;
}

static void mqtt_cb_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
			    const mosquitto_property *props)
{
	struct mqtt *m = obj;
	size_t i;

	(void)mosq;
	(void)props;
	if (m->state != MQTT_CONNECTING)
		return;
	m->got_connack = true;
	if (rc != 0) {
		/* libmosquitto closes the connection next; mqtt_cb_disconnect decides. */
		m->refused = rc;
		return;
	}
	loop_timer_stop(m->loop, &m->timeout);
	if (mqtt_wiping(m)) {
		/* The old session is gone; mqtt_after_io reconnects for the real session. */
		m->wipe_done = true;
		return;
	}
	m->state = MQTT_CONNECTED;
	m->connected_at = loop_now(m->loop);
	m->spoken = m->version;
	log_info("mqtt %s: connected as %s (%s)%s", mqtt_cur_uri(m), m->client_id,
		 mqtt_version_name(m->version),
		 (flags & 1) ? " (session present)" : "");
	for (i = 0; i < m->nsubs; i++)
		mqtt_send_sub(m, &m->subs[i]);
	mqtt_flush_buffer(m);
	if (m->ops.on_connected && m->state == MQTT_CONNECTED)
		m->ops.on_connected(m->arg, flags & 1);
}

static void mqtt_cb_disconnect(struct mosquitto *mosq, void *obj, int rc,
			       const mosquitto_property *props)
{
	struct mqtt *m = obj;
	const char *why;

	(void)mosq;
	(void)props;
	/* libmosquitto has closed the socket already. */
	if (m->fd >= 0)
		loop_io_del(m->loop, m->fd);
	m->fd = -1;
	m->events = 0;
	if (rc == MOSQ_ERR_ERRNO)
		why = strerror(errno);
	else if (rc == MOSQ_ERR_KEEPALIVE)
		why = "no answer within the keepalive";
	else if (rc == MOSQ_ERR_CONN_LOST && m->tunnel && *mqtttunnel_error(m->tunnel))
		why = mqtttunnel_error(m->tunnel);
	else
		why = mosquitto_strerror(rc);
	snprintf(m->lost_reason, sizeof m->lost_reason, "%s", why);
}

static void mqtt_cb_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
			    const mosquitto_property *props)
{
	struct mqtt *m = obj;
	struct mqtt_track *t = mqtt_track_take_mid(m, mid);

	(void)mosq;
	(void)props;
	mqtt_unacked_set(m, mid, false);
	if (!t)
		return;   /* untracked, or QoS 0 (completed when handed over) */
	if (reason >= 0x80)
		log_warnx("mqtt %s: the broker refused a publish: %s", mqtt_cur_uri(m),
			  mosquitto_reason_string(reason));
	mqtt_track_finish(m, t, mqtt_reason_err(reason));
}

static void mqtt_cb_subscribe(struct mosquitto *mosq, void *obj, int mid, int n,
			      const int *granted, const mosquitto_property *props)
{
	struct mqtt *m = obj;
	int i;

	(void)mosq;
	(void)props;
	for (i = 0; i < n; i++)
		if (granted[i] >= 0x80)
			log_warnx("mqtt %s: subscription refused: %s", mqtt_cur_uri(m),
				  mosquitto_reason_string(granted[i]));
	/* One filter per SUBSCRIBE (mqtt_send_sub). 3.1.1's refusal 0x80 is 5's "unspecified". */
	for (i = 0; n > 0 && (size_t)i < m->nsubs; i++)
		if (m->subs[i].mid == mid && m->subs[i].opts.on_suback) {
			m->subs[i].opts.on_suback(m->subs[i].opts.suback_arg, m->subs[i].filter,
						  granted[0] == MQTT_RC_NOT_AUTHORIZED ? -EACCES :
						  granted[0] >= 0x80 ? -EIO : 0);
			break;
		}
}

/* libmosquitto's own notes; its per-packet trace (MOSQ_LOG_DEBUG) would drown the agents'. */
static void mqtt_cb_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	(void)mosq;
	if (level != MOSQ_LOG_DEBUG)
		log_debug("mqtt %s: libmosquitto: %s", mqtt_cur_uri(obj), str);
}

/* --- connection attempts --- */

static uint64_t mqtt_rand(struct mqtt *m)
{
	/* splitmix64: plenty for spreading reconnects, no shared state. */
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Drops everything of the current attempt's transport (not libmosquitto's session state). */
static void mqtt_teardown(struct mqtt *m)
{
	loop_timer_stop(m->loop, &m->timeout);
	loop_timer_stop(m->loop, &m->misc);
	mqtt_dns_cancel(m);
	if (m->fd >= 0) {
		/* Closed here, not by libmosquitto: keep epoll in step before the fd is reused. */
		loop_io_del(m->loop, m->fd);
		m->fd = -1;
		m->events = 0;
		mosquitto_disconnect(m->mosq);
		m->in_mosq = true;
		mosquitto_loop_write(m->mosq, 1);
		m->in_mosq = false;
	}
	mqtttunnel_free(m->tunnel);
	m->tunnel = NULL;
}

static void mqtt_schedule_retry(struct mqtt *m)
{
	uint64_t delay = backoff_next(&m->backoff, mqtt_rand(m));
	m->state = MQTT_BACKOFF;
	loop_defer_cancel(m->loop, &m->retry_now);
	log_debug("mqtt %s: reconnecting in %llu ms", mqtt_cur_uri(m), (unsigned long long)delay);
	loop_timer_start(m->loop, &m->retry, delay);
}

/* The next address of this target, else the next target (failover). */
static void mqtt_advance(struct mqtt *m)
{
	if (m->addr_i + 1 < m->naddrs) {
		m->addr_i++;
		return;
	}
	mqtt_addrs_clear(m);
	if (m->ntargets > 1) {
		m->cur = (m->cur + 1) % m->ntargets;
		log_info("mqtt: next broker %s", mqtt_cur_uri(m));
	}
}

/* An attempt ended without a connection. */
static void mqtt_attempt_failed(struct mqtt *m, const char *why)
{
	/* Only the first failure in a row is worth a warning; the rest repeat it. */
	if (backoff_failures(&m->backoff) == 0)
		log_warnx("mqtt %s: %s", mqtt_cur_uri(m), why);
	else
		log_debug("mqtt %s: %s", mqtt_cur_uri(m), why);
	mqtt_teardown(m);
	m->try_v4 = false;
	mqtt_advance(m);
	mqtt_schedule_retry(m);
}

void mqtt_update_events(struct mqtt *m)
{
	uint32_t ev;

	if (m->fd < 0)
		return;
	ev = EPOLLIN | (mosquitto_want_write(m->mosq) ? EPOLLOUT : 0);
	if (ev != m->events && loop_io_mod(m->loop, m->fd, ev) == 0)
		m->events = ev;
}

static void mqtt_wiped(struct mqtt *m);

/* After every libmosquitto call that may have ended the connection. */
static void mqtt_after_io(struct mqtt *m)
{
	enum mqtt_state st = m->state;

	if (m->stop_deferred) {
		m->stop_deferred = false;
		mqtt_do_stop(m, MQTT_FREE_STOP_MS);
		return;
	}
	if (m->wipe_done) {
		mqtt_wiped(m);
		return;
	}
	if (m->fd >= 0 || st == MQTT_STOPPED) {
		mqtt_update_events(m);
		return;
	}
	/* The connection ended inside libmosquitto. */
	if (st == MQTT_CONNECTING) {
		bool reached = m->tunnel ? mqtttunnel_reached(m->tunnel) : m->tcp_up;
		bool refused_v5 = m->refused == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ||
				  m->refused == CONNACK_REFUSED_PROTOCOL_VERSION;
		if (m->version_cfg == 0 && m->version == 5 && !m->try_v4 &&
		    (refused_v5 || (!m->got_connack && reached))) {
			struct mqtt_target *t = &m->targets[m->cur];
			/* A definite refusal is remembered for this broker; a closed connection may
			 * have been anything, so the next reconnect tries MQTT 5 again. */
			if (refused_v5)
				t->v5_refused = true;
			log_info("mqtt %s: the broker %s MQTT 5; trying MQTT 3.1.1", t->uri,
				 refused_v5 ? "refused" : "closed the connection to");
			mqtt_teardown(m);
			m->try_v4 = true;
			m->state = MQTT_BACKOFF;
			loop_defer(m->loop, &m->retry_now);
			return;
		}
		char why[256];
		if (m->refused)
			snprintf(why, sizeof why, "connection refused: %s",
				 m->version == 5 ? mosquitto_reason_string(m->refused) :
						   mosquitto_connack_string(m->refused));
		else
			snprintf(why, sizeof why, "connect failed: %s", m->lost_reason);
		mqtt_attempt_failed(m, why);
		return;
	}
	if (st == MQTT_CONNECTED) {
		char why[sizeof m->lost_reason];
		snprintf(why, sizeof why, "%s", m->lost_reason);
		log_warnx("mqtt %s: connection lost: %s", mqtt_cur_uri(m), why);
		if (loop_now(m->loop) - m->connected_at >= MQTT_STABLE_MS)
			backoff_reset(&m->backoff);
		mqtt_teardown(m);
		m->try_v4 = false;
		/* After a loss the next broker of the list is tried first (its node may be gone). */
		mqtt_advance(m);
		mqtt_schedule_retry(m);
		if (m->ops.on_disconnected)
			m->ops.on_disconnected(m->arg, why);
	}
}

/* The clean connection of a clean_first client is up: the previous process's session is gone.
 * It is closed (DISCONNECT) and a new libmosquitto client without clean start takes over, for
 * the session that reconnects resume; it connects at once, to the same broker with the same
 * protocol (try_v4 stays). Nothing was subscribed or handed over on the clean connection:
 * both wait for MQTT_CONNECTED. */
static void mqtt_wiped(struct mqtt *m)
{
	struct mosquitto *old = m->mosq;

	m->wipe_done = false;
	mqtt_teardown(m);
	m->wiped = true;
	m->mosq = mosquitto_new(m->client_id, false, m);
	if (!m->mosq || mqtt_mosq_setup(m) < 0) {
		if (m->mosq)
			mosquitto_destroy(m->mosq);
		m->mosq = old;
		m->wiped = false;   /* wiped again on the next attempt */
		mqtt_attempt_failed(m, "cannot set up the client for the session: out of memory");
		return;
	}
	mosquitto_destroy(old);
	log_debug("mqtt %s: previous session dropped; reconnecting for the resumable one",
		  mqtt_cur_uri(m));
	m->state = MQTT_BACKOFF;
	loop_defer(m->loop, &m->retry_now);
}

static void mqtt_on_io(void *arg, int fd, uint32_t events)
{
	struct mqtt *m = arg;
	int err = 0;
	socklen_t l = sizeof err;

	if (m->state == MQTT_CONNECTING && !m->tcp_up && (events & EPOLLOUT) &&
	    !(events & (EPOLLERR | EPOLLHUP)) &&
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0)
		m->tcp_up = true;
	m->in_mosq = true;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		mosquitto_loop_read(m->mosq, 1);
	/* What the callbacks queued (acks, answers) goes out now, not one epoll round later. */
	if (m->fd >= 0 && ((events & EPOLLOUT) || mosquitto_want_write(m->mosq)))
		mosquitto_loop_write(m->mosq, 1);
	m->in_mosq = false;
	mqtt_after_io(m);
}

/* Keepalive (PINGREQ, and the end of a connection whose broker stopped answering). */
void mqtt_on_misc(void *arg)
{
	struct mqtt *m = arg;

	if (m->fd < 0)
		return;
	m->in_mosq = true;
	mosquitto_loop_misc(m->mosq);
	if (m->fd >= 0 && mosquitto_want_write(m->mosq))
		mosquitto_loop_write(m->mosq, 1);
	m->in_mosq = false;
	if (m->fd >= 0)
		loop_timer_start(m->loop, &m->misc, 1000);
	mqtt_after_io(m);
}

void mqtt_on_timeout(void *arg)
{
	struct mqtt *m = arg;
	char why[64];

	if (m->state == MQTT_RESOLVING) {
		mqtt_attempt_failed(m, "name lookup timed out");
		return;
	}
	if (m->state != MQTT_CONNECTING)
		return;
	snprintf(why, sizeof why, "no CONNACK within %d s", MQTT_CONNECT_TIMEOUT_MS / 1000);
	mqtt_attempt_failed(m, why);
}

/* MQTT 5 connect properties can only be given to libmosquitto's blocking connect, which keeps
 * them for every later (async) reconnect: so hand them over with an attempt that fails at
 * once (an empty unix socket path), before the real, non-blocking one. */
static int mqtt_set_connect_props(struct mqtt *m, int version)
{
	mosquitto_property *props = NULL;
	int rc;

	/* The wiping connection's session ends with it. */
	if (version == 5 && m->session_expiry && !mqtt_wiping(m) &&
	    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					 m->session_expiry) != MOSQ_ERR_SUCCESS)
		return -ENOMEM;
	rc = mosquitto_connect_bind_v5(m->mosq, "", 0, m->keepalive, NULL, props);
	mosquitto_property_free_all(&props);
	return rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_SUCCESS ? 0 : -EIO;
}

/* Starts libmosquitto on host:port (port 0: a unix socket path). */
static void mqtt_connect_to(struct mqtt *m, const char *host, uint16_t port)
{
	int rc;
	char why[160];

	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
			     m->version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	if (mqtt_set_connect_props(m, m->version) < 0) {
		mqtt_attempt_failed(m, "cannot set the connect properties");
		return;
	}
	m->tcp_up = false;
	m->got_connack = false;
	m->refused = 0;
	m->lost_reason[0] = '\0';
	rc = mosquitto_connect_bind_async(m->mosq, host, port, m->keepalive, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(why, sizeof why, "connect: %s",
			 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		mqtt_attempt_failed(m, why);
		return;
	}
	m->fd = mosquitto_socket(m->mosq);
	m->events = EPOLLIN | EPOLLOUT;
	if (m->fd < 0 || loop_io_add(m->loop, m->fd, m->events, mqtt_on_io, m) < 0) {
		m->fd = -1;
		mqtt_attempt_failed(m, "cannot watch the broker socket");
		return;
	}
	m->state = MQTT_CONNECTING;
	loop_timer_start(m->loop, &m->misc, 1000);
}

/* The current target's address is known: connect, directly or through a tunnel. */
static void mqtt_connect_addr(struct mqtt *m, const char *addr)
{
	struct mqtt_target *t = &m->targets[m->cur];
	const char *path;

	if (!t->tls && !t->ws) {
		mqtt_connect_to(m, addr, t->port);
		return;
	}
	struct mqtttunnel_opts to = {
		.host = t->host, .addr = addr, .port = t->port, .path = t->path, .tls = t->tls,
		.ws = t->ws, .ca_file = m->ca_file, .cert_file = m->cert_file,
		.key_file = m->key_file, .insecure = m->insecure,
	};
	m->tunnel = mqtttunnel_new(m->loop, &to, &path);
	if (!m->tunnel) {
		mqtt_attempt_failed(m, "cannot set up the TLS/WebSocket transport");
		return;
	}
	mqtt_connect_to(m, path, 0);
}

void mqtt_on_dns(void *arg)
{
	struct mqtt *m = arg;
	char why[160];

	if (!m->dns || m->state != MQTT_RESOLVING)
		return;
	int rc = mqttdns_take(m->dns, &m->addrs, &m->naddrs, why, sizeof why);
	if (rc == 0)
		return;
	mqtt_dns_cancel(m);
	if (rc < 0) {
		mqtt_attempt_failed(m, why);
		return;
	}
	m->addr_i = 0;
	loop_timer_stop(m->loop, &m->timeout);
	mqtt_connect_addr(m, m->addrs[0]);
}

static bool mqtt_is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void mqtt_attempt(struct mqtt *m)
{
	struct mqtt_target *t = &m->targets[m->cur];

	m->version = m->version_cfg ? m->version_cfg :
		     (t->v5_refused || m->try_v4) ? 4 : 5;
	if (m->naddrs) {
		mqtt_connect_addr(m, m->addrs[m->addr_i]);
		return;
	}
	if (mqtt_is_numeric(t->host)) {
		mqtt_connect_addr(m, t->host);
		return;
	}
	int err;
	if (!(m->dns = mqttdns_start(t->host, m->dns_wake, &err))) {
		char why[96];
		snprintf(why, sizeof why, "cannot start the name lookup: %s", strerror(-err));
		mqtt_attempt_failed(m, why);
		return;
	}
	m->state = MQTT_RESOLVING;
	loop_timer_start(m->loop, &m->timeout, MQTT_CONNECT_TIMEOUT_MS);
}

void mqtt_on_retry(void *arg)
{
	struct mqtt *m = arg;
	if (m->state == MQTT_BACKOFF)
		mqtt_attempt(m);
}

/* Everything of libmosquitto's client but the id and the clean start flag (mosquitto_new). */
int mqtt_mosq_setup(struct mqtt *m)
{
	mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_int_option(m->mosq, MOSQ_OPT_SEND_MAXIMUM, MQTT_INFLIGHT);
	mosquitto_int_option(m->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, MQTT_INFLIGHT);
	mosquitto_connect_v5_callback_set(m->mosq, mqtt_cb_connect);
	mosquitto_disconnect_v5_callback_set(m->mosq, mqtt_cb_disconnect);
	mosquitto_message_v5_callback_set(m->mosq, mqtt_cb_message);
	mosquitto_publish_v5_callback_set(m->mosq, mqtt_cb_publish);
	mosquitto_subscribe_v5_callback_set(m->mosq, mqtt_cb_subscribe);
	mosquitto_log_callback_set(m->mosq, mqtt_cb_log);
	if ((m->username || m->password) &&
	    mosquitto_username_pw_set(m->mosq, m->username, m->password) != MOSQ_ERR_SUCCESS)
		return -ENOMEM;
	if (m->will_topic &&
	    mosquitto_will_set(m->mosq, m->will_topic,
			       m->will_payload ? (int)strlen(m->will_payload) : 0,
			       m->will_payload, m->will_qos, m->will_retain) != MOSQ_ERR_SUCCESS) {
		log_warnx("mqtt %s: bad will topic '%s'", mqtt_cur_uri(m), m->will_topic);
		return -EINVAL;
	}
	/* Checked above all the same; the clean connection that only drops the old session
	 * must not leave a will behind if it is cut. */
	if (m->will_topic && mqtt_wiping(m))
		mosquitto_will_clear(m->mosq);
	return 0;
}

/* --- what the connection is --- */

bool mqtt_is_connected(const struct mqtt *m)
{
	return m->state == MQTT_CONNECTED;
}

int mqtt_version(const struct mqtt *m)
{
	return m->spoken;
}

const char *mqtt_uri(const struct mqtt *m)
{
	return mqtt_cur_uri(m);
}
