/* mqttlife: an MQTT client's life -- made from its options (broker URIs checked), started,
 * stopped cleanly (waiting for unacknowledged publishes), freed; see mqtt.h. */
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

static pthread_once_t mqtt_lib_once = PTHREAD_ONCE_INIT;

static void mqtt_lib_init(void)
{
	mosquitto_lib_init();
}

/* --- set-up --- */

/* "scheme://host[:port][/path]" into t (host without IPv6 brackets). */
static int mqtt_parse_uri(const char *uri, struct mqtt_target *t)
{
	static const struct { const char *scheme; bool tls, ws; uint16_t port; } schemes[] = {
		{ "mqtt://", false, false, 1883 }, { "tcp://", false, false, 1883 },
		{ "mqtts://", true, false, 8883 }, { "ssl://", true, false, 8883 },
		{ "ws://", false, true, 80 },      { "wss://", true, true, 443 },
	};
	const char *h = NULL, *e, *p;
	size_t i;
	char *end;
	unsigned long v;

	for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i].scheme);
		if (strncmp(uri, schemes[i].scheme, n) == 0) {
			h = uri + n;
			t->tls = schemes[i].tls;
			t->ws = schemes[i].ws;
			t->port = schemes[i].port;
			break;
		}
	}
	if (!h || !*h)
		return -EINVAL;
	if (*h == '[') {
		e = strchr(h, ']');
		if (!e)
			return -EINVAL;
		t->host = strndup(h + 1, (size_t)(e - h - 1));
		p = e + 1;
	} else {
		p = h + strcspn(h, ":/");
		t->host = strndup(h, (size_t)(p - h));
	}
	if (!t->host || !*t->host)
		return -EINVAL;
	if (*p == ':') {
		errno = 0;
		v = strtoul(p + 1, &end, 10);
		if (errno || end == p + 1 || v == 0 || v > 65535 || (*end && *end != '/'))
			return -EINVAL;
		t->port = (uint16_t)v;
		p = end;
	}
	if (*p && *p != '/')
		return -EINVAL;
	t->path = strdup(*p ? p : "/mqtt");
	t->uri = strdup(uri);
	return t->path && t->uri ? 0 : -ENOMEM;
}

static int mqtt_dup(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

struct mqtt *mqtt_new(struct loop *loop, const struct mqtt_opts *o, const struct mqtt_ops *ops,
		      void *arg)
{
	const char *const *uris = o->nuris ? o->uris : &o->uri;
	size_t nuris = o->nuris ? o->nuris : 1, i;
	const char *first = uris && uris[0] ? uris[0] : "(no uri)";
	struct mqtt *m;
	int rc;

	if (!uris || !uris[0] || !o->client_id) {
		log_warnx("mqtt: uri and client_id are required");
		return NULL;
	}
	if ((o->version && o->version != 4 && o->version != 5) || o->will_qos < 0 ||
	    o->will_qos > 2 || o->keepalive < 0 || o->max_buffered < 0 ||
	    (o->keepalive && (o->keepalive < 5 || o->keepalive > 65535)) ||
	    (o->backoff_min_ms && o->backoff_max_ms && o->backoff_min_ms > o->backoff_max_ms)) {
		log_warnx("mqtt %s: bad options", first);
		return NULL;
	}
	pthread_once(&mqtt_lib_once, mqtt_lib_init);
	m = calloc(1, sizeof *m);
	if (!m) {
		log_warn("mqtt: calloc");
		return NULL;
	}
	m->loop = loop;
	if (ops)
		m->ops = *ops;
	m->arg = arg;
	m->fd = -1;
	m->buf_tail = &m->buf_head;
	m->finished_tail = &m->finished;
	m->state = MQTT_IDLE;
	loop_timer_init(&m->retry, mqtt_on_retry, m);
	loop_timer_init(&m->misc, mqtt_on_misc, m);
	loop_timer_init(&m->timeout, mqtt_on_timeout, m);
	loop_defer_init(&m->flush, mqtt_on_flush, m);
	loop_defer_init(&m->retry_now, mqtt_on_retry, m);
	m->targets = calloc(nuris, sizeof *m->targets);
	if (!m->targets)
		goto nomem;
	m->ntargets = nuris;
	for (i = 0; i < nuris; i++) {
		rc = uris[i] ? mqtt_parse_uri(uris[i], &m->targets[i]) : -EINVAL;
		if (rc == -ENOMEM)
			goto nomem;
		if (rc < 0) {
			log_warnx("mqtt %s: bad uri (want mqtt://, mqtts://, ws:// or "
				  "wss://host[:port][/path])", uris[i] ? uris[i] : "(null)");
			goto fail;
		}
	}
	if (mqtt_dup(&m->client_id, o->client_id) < 0 || mqtt_dup(&m->username, o->username) < 0 ||
	    mqtt_dup(&m->password, o->password) < 0 || mqtt_dup(&m->ca_file, o->ca_file) < 0 ||
	    mqtt_dup(&m->cert_file, o->cert_file) < 0 || mqtt_dup(&m->key_file, o->key_file) < 0 ||
	    mqtt_dup(&m->will_topic, o->will_topic) < 0 ||
	    mqtt_dup(&m->will_payload, o->will_payload) < 0)
		goto nomem;
	m->insecure = o->insecure;
	m->clean = o->clean;
	m->clean_first = o->clean_first;
	m->version_cfg = o->version;
	m->session_expiry = o->session_expiry ? o->session_expiry : (o->clean ? 0 : MQTT_DEF_EXPIRY);
	m->keepalive = o->keepalive ? o->keepalive : MQTT_DEF_KEEPALIVE;
	m->will_qos = o->will_qos;
	m->will_retain = o->will_retain;
	m->backoff.min_ms = o->backoff_min_ms ? o->backoff_min_ms : MQTT_DEF_BACKOFF_MIN;
	m->backoff.max_ms = o->backoff_max_ms ? o->backoff_max_ms : MQTT_DEF_BACKOFF_MAX;
	m->max_buffered = o->max_buffered ? o->max_buffered : MQTT_DEF_BUFFERED;
	if (getrandom(&m->rng, sizeof m->rng, GRND_NONBLOCK) != (ssize_t)sizeof m->rng)
		m->rng = loop_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)m;

	m->dns_wake = loop_wake_new(loop, mqtt_on_dns, m);
	if (!m->dns_wake)
		goto fail;
	m->mosq = mosquitto_new(m->client_id, m->clean || m->clean_first, m);
	if (!m->mosq)
		goto nomem;
	rc = mqtt_mosq_setup(m);
	if (rc == -ENOMEM)
		goto nomem;
	if (rc < 0)
		goto fail;
	return m;
nomem:
	log_warnx("mqtt %s: out of memory", first);
fail:
	m->state = MQTT_STOPPED;
	mqtt_free(m);
	return NULL;
}

int mqtt_start(struct mqtt *m)
{
	if (m->state != MQTT_IDLE)
		return m->state == MQTT_STOPPED ? -EINVAL : 0;
	mqtt_attempt(m);
	return 0;
}

/* --- stopping --- */

void mqtt_do_stop(struct mqtt *m, uint64_t timeout_ms)
{
	uint64_t deadline = loop_wall_ms() + timeout_ms;
	bool was_connected = m->fd >= 0 && m->tcp_up;

	loop_timer_stop(m->loop, &m->retry);
	loop_defer_cancel(m->loop, &m->retry_now);
	loop_timer_stop(m->loop, &m->timeout);
	loop_timer_stop(m->loop, &m->misc);
	loop_defer_cancel(m->loop, &m->flush);
	mqtt_dns_cancel(m);
	if (m->fd >= 0) {
		int fd = m->fd;
		loop_io_del(m->loop, fd);
		m->fd = -1;
		/* libmosquitto closes its socket right after the DISCONNECT; with messages of the
		 * broker unread in it, that close would send RST and drop what is still queued for
		 * the broker (the last answers, the DISCONNECT): a copy keeps the connection for an
		 * orderly end (net_shutdown_drain). What is left unread was never acknowledged, so
		 * the broker keeps it for the session. */
		int keep = m->tunnel ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
		/* DISCONNECT with reason 0: the broker drops the will. Written with a bounded wait. */
		mosquitto_disconnect(m->mosq);
		while (mosquitto_socket(m->mosq) >= 0 && mosquitto_want_write(m->mosq)) {
			uint64_t now = loop_wall_ms();
			struct pollfd p = { .fd = mosquitto_socket(m->mosq), .events = POLLOUT };
			if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
				break;
			if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
				break;
		}
		uint64_t now = loop_wall_ms();
		if (m->tunnel)
			mqtttunnel_drain(m->tunnel, now < deadline ? deadline - now : 0);
		if (keep >= 0) {
			net_shutdown_drain(keep, now < deadline ? deadline - now : 0);
			close(keep);
		}
		if (was_connected)
			log_info("mqtt %s: disconnected", mqtt_cur_uri(m));
	}
	mqtttunnel_free(m->tunnel);
	m->tunnel = NULL;
}

/* A clean stop's first part: until the broker has acknowledged every publish handed over (the
 * answers to what was taken in, also those waiting for a free slot of the broker's receive
 * maximum), the connection runs here as on the loop, messages included -- each message read
 * is acknowledged by libmosquitto, so it must reach the application, whose answers are then
 * waited for too. What is not read by the end is not acknowledged: the broker keeps it for
 * the session. Bounded by deadline. */
static void mqtt_drain(struct mqtt *m, uint64_t deadline)
{
	while (m->state == MQTT_CONNECTED && m->fd >= 0 &&
	       (m->unacked > 0 || mosquitto_want_write(m->mosq))) {
		uint64_t now = loop_wall_ms();
		struct pollfd p[3] = { { .fd = m->fd,
				 .events = POLLIN | (mosquitto_want_write(m->mosq) ? POLLOUT : 0) } };
		/* TLS and WebSocket: the tunnel relays on the loop, which does not run now. */
		nfds_t n = 1 + (nfds_t)mqtttunnel_pollfds(m->tunnel, p + 1);
		if (now >= deadline || poll(p, n, (int)(deadline - now)) < 0)
			break;
		if (n > 1)
			mqtttunnel_step(m->tunnel);
		m->in_mosq = true;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			mosquitto_loop_read(m->mosq, 1);
		if (m->fd >= 0 && mosquitto_want_write(m->mosq))
			mosquitto_loop_write(m->mosq, 1);
		m->in_mosq = false;
		if (m->stop_deferred)
			break;   /* a callback asked to stop */
	}
	if (m->unacked > 0)
		log_warnx("mqtt %s: stopping with %u publish%s the broker has not acknowledged",
			  mqtt_cur_uri(m), m->unacked, m->unacked == 1 ? "" : "es");
}

static void mqtt_stop_now(struct mqtt *m, uint64_t timeout_ms, bool drain)
{
	if (!m || m->state == MQTT_STOPPED)
		return;
	if (timeout_ms > INT_MAX)
		timeout_ms = INT_MAX;
	/* Inside libmosquitto's own call (a callback): finish once it has returned. */
	if (m->in_mosq) {
		m->state = MQTT_STOPPED;
		m->stop_deferred = true;
		return;
	}
	uint64_t deadline = loop_wall_ms() + timeout_ms;
	/* A quarter of the time (at most 250 ms) stays for the DISCONNECT and the orderly end. */
	if (drain)
		mqtt_drain(m, deadline - (timeout_ms / 4 < 250 ? timeout_ms / 4 : 250));
	/* (A callback may have asked to stop meanwhile: this is that stop.) */
	m->state = MQTT_STOPPED;
	m->stop_deferred = false;
	uint64_t now = loop_wall_ms();
	mqtt_do_stop(m, now < deadline ? deadline - now : 0);
}

void mqtt_stop(struct mqtt *m, uint64_t timeout_ms) { mqtt_stop_now(m, timeout_ms, true); }

void mqtt_free(struct mqtt *m)
{
	struct mqtt_out *o, *on;
	struct mqtt_track *t, *tn;
	size_t i;

	if (!m)
		return;
	/* No draining here: the application may have freed what its callbacks use. */
	mqtt_stop_now(m, MQTT_FREE_STOP_MS, false);
	if (m->stop_deferred)
		mqtt_do_stop(m, MQTT_FREE_STOP_MS);
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	/* The stop's last callbacks may have queued completions: they go with m. */
	loop_defer_cancel(m->loop, &m->flush);
	loop_defer_cancel(m->loop, &m->retry_now);
	loop_wake_free(m->dns_wake);
	mqtt_addrs_clear(m);
	for (o = m->buf_head; o; o = on) {
		on = o->next;
		mqtt_out_free(o);
	}
	for (i = 0; i < MQTT_TRACK_BUCKETS; i++)
		for (t = m->track[i]; t; t = tn) {
			tn = t->next;
			free(t);
		}
	for (t = m->finished; t; t = tn) {
		tn = t->next;
		free(t);
	}
	for (i = 0; i < m->nsubs; i++)
		free(m->subs[i].filter);
	free(m->subs);
	for (i = 0; i < m->ntargets; i++) {
		free(m->targets[i].uri);
		free(m->targets[i].host);
		free(m->targets[i].path);
	}
	free(m->targets);
	free(m->client_id);
	free(m->username);
	free(m->password);
	free(m->ca_file);
	free(m->cert_file);
	free(m->key_file);
	free(m->will_topic);
	free(m->will_payload);
	free(m);
}
