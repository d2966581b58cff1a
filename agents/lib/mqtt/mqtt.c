/* mqtt: libmosquitto on the agent's loop; see mqtt.h. */
#include "mqtt.h"
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
	uint64_t backoff_min, backoff_max;

	struct mosquitto *mosq;
	enum mqtt_state state;
	int version;              /* of the current attempt */
	int spoken;               /* of the last established connection */
	bool try_v4;              /* this attempt falls back to 3.1.1 */
	bool tcp_up;              /* the attempt's socket got connected */
	bool got_connack;
	int refused;              /* CONNACK reason of this attempt, 0 = none */
	bool in_mosq;             /* inside a libmosquitto call that runs our callbacks */
	bool stop_deferred;
	char lost_reason[160];
	int fd;
	uint32_t events;
	unsigned attempts;        /* failed attempts since the last success */
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

static pthread_once_t mqtt_lib_once = PTHREAD_ONCE_INIT;

static void mqtt_lib_init(void)
{
	mosquitto_lib_init();
}

static int mqtt_err(int rc)
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

static const char *mqtt_cur_uri(const struct mqtt *m)
{
	return m->targets[m->cur].uri;
}

/* --- name lookups (mqttdns) --- */

static void mqtt_dns_cancel(struct mqtt *m)
{
	mqttdns_cancel(m->dns);
	m->dns = NULL;
}

static void mqtt_addrs_clear(struct mqtt *m)
{
	size_t i;
	for (i = 0; i < m->naddrs; i++)
		free(m->addrs[i]);
	free(m->addrs);
	m->addrs = NULL;
	m->naddrs = m->addr_i = 0;
}

/* --- the disconnected buffer and tracked publishes --- */

static void mqtt_out_free(struct mqtt_out *o)
{
	if (!o)
		return;
	free(o->topic);
	free(o->rtopic);
	free(o->payload);
	free(o->corr);
	free(o);
}

static struct mqtt_track **mqtt_track_slot(struct mqtt *m, int mid)
{
	return &m->track[(unsigned)mid % MQTT_TRACK_BUCKETS];
}

static void mqtt_track_add(struct mqtt *m, struct mqtt_track *t)
{
	struct mqtt_track **s = mqtt_track_slot(m, t->mid);
	t->next = *s;
	*s = t;
}

static struct mqtt_track *mqtt_track_take_mid(struct mqtt *m, int mid)
{
	struct mqtt_track **p;
	for (p = mqtt_track_slot(m, mid); *p; p = &(*p)->next)
		if ((*p)->mid == mid) {
			struct mqtt_track *t = *p;
			*p = t->next;
			return t;
		}
	return NULL;
}

static void mqtt_on_flush(void *arg)
{
	struct mqtt *m = arg;
	struct mqtt_track *t;

	while ((t = m->finished)) {
		m->finished = t->next;
		if (!m->finished)
			m->finished_tail = &m->finished;
		if (t->done && m->state != MQTT_STOPPED)
			t->done(t->arg, t->ticket, t->err);
		free(t);
	}
}

/* Completions are delivered from the loop, never from inside the call that started them. */
static void mqtt_track_finish(struct mqtt *m, struct mqtt_track *t, int err)
{
	t->err = err;
	t->next = NULL;
	*m->finished_tail = t;
	m->finished_tail = &t->next;
	loop_defer(m->loop, &m->flush);
}

/* The reason code of a PUBACK/PUBREC/PUBCOMP as an error. */
static int mqtt_reason_err(int rc)
{
	if (rc < 0x80)
		return 0;
	switch (rc) {
	case MQTT_RC_NOT_AUTHORIZED:
		return -EACCES;
	case MQTT_RC_PACKET_TOO_LARGE:
		return -EMSGSIZE;
	case MQTT_RC_QUOTA_EXCEEDED:
		return -EDQUOT;
	default:
		return -EIO;
	}
}

/* Marks packet id mid as handed over (set) or acknowledged (clear); counts the set ones. */
static void mqtt_unacked_set(struct mqtt *m, int mid, bool set)
{
	if (mid <= 0 || mid > 65535)
		return;
	uint8_t bit = (uint8_t)(1u << (mid & 7));
	bool was = m->unacked_ids[mid >> 3] & bit;
	if (set && !was) {
		m->unacked_ids[mid >> 3] |= bit;
		m->unacked++;
	} else if (!set && was) {
		m->unacked_ids[mid >> 3] &= (uint8_t)~bit;
		m->unacked--;
	}
}

#define MQTT_DROP_LOG_MS 10000

/* --- libmosquitto's callbacks: run inside mosquitto_loop_read/write on the loop thread --- */

static void mqtt_schedule_retry(struct mqtt *m);
static void mqtt_send_sub(struct mqtt *m, const struct mqtt_sub *s);
static int mqtt_hand_over(struct mqtt *m, const char *topic, const void *payload, size_t len,
			  int qos, bool retain, const char *rtopic, const void *corr,
			  size_t corr_len, int *mid);

static void mqtt_flush_buffer(struct mqtt *m)
{
	struct mqtt_out *o;

	if (m->drops_unlogged && m->state == MQTT_CONNECTED &&
	    loop_wall_ms() - m->drop_logged_ms >= MQTT_DROP_LOG_MS) {
		log_warnx("mqtt %s: %lu more publishes were dropped while the buffer was full",
			  mqtt_cur_uri(m), m->drops_unlogged);
		m->drops_unlogged = 0;
		m->drop_logged_ms = loop_wall_ms();
	}
	while ((o = m->buf_head) && m->state == MQTT_CONNECTED) {
		int mid = 0;
		int rc = mqtt_hand_over(m, o->topic, o->payload, o->len, o->qos, o->retain,
					o->rtopic, o->corr, o->corr_len, &mid);
		struct mqtt_track *t = NULL;

		if (rc == -ENOTCONN)
			return;   /* lost again already: it stays buffered */
		m->buf_head = o->next;
		if (!m->buf_head)
			m->buf_tail = &m->buf_head;
		m->nbuf--;
		if (o->ticket) {
			/* The buffered entry's track record waits under mid -ticket-. */
			t = mqtt_track_take_mid(m, -(int)(o->ticket % INT_MAX) - 1);
			if (t && rc < 0) {
				mqtt_track_finish(m, t, rc);
			} else if (t && o->qos == 0) {
				mqtt_track_finish(m, t, 0);
			} else if (t) {
				t->mid = mid;
				mqtt_track_add(m, t);
			}
		}
		if (rc < 0)
			log_warnx("mqtt %s: buffered publish to %s dropped: %s", mqtt_cur_uri(m),
				  o->topic, strerror(-rc));
		mqtt_out_free(o);
	}
}

/* The first connection of a clean_first client: a clean start that only drops the session a
 * previous process left (libmosquitto's clean start flag is fixed per struct mosquitto, so the
 * resumable session is the next connection, made by a new one: mqtt_wiped). */
static bool mqtt_wiping(const struct mqtt *m)
{
	return m->clean_first && !m->clean && !m->wiped;
}

/* The Subscription Identifiers in props (a message may carry several, MQTT 5 3.3.2.3.8): the
 * first max of them into ids; returns how many there are. */
static size_t mqtt_sub_ids(const mosquitto_property *props, uint32_t *ids, size_t max)
{
	const mosquitto_property *p;
	uint32_t v;
	size_t n = 0;

	for (p = mosquitto_property_read_varint(props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &v,
						false);
	     p; p = mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &v, true))
		if (n++ < max)
			ids[n - 1] = v;
	return n;
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
	m->attempts = 0;
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

static void mqtt_cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *mm,
			    const mosquitto_property *props)
{
	struct mqtt *m = obj;
	struct mqtt_msg msg = { 0 };
	char *rt = NULL;
	void *corr = NULL;
	uint16_t clen = 0;
	uint32_t ids_here[8], *ids = ids_here;
	size_t nids = 0;

	(void)mosq;
	if (m->state != MQTT_CONNECTED || !m->ops.on_message)
		return;
	if (props) {
		mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false);
		mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &clen,
					       false);
		nids = mqtt_sub_ids(props, ids, sizeof ids_here / sizeof *ids_here);
		if (nids > sizeof ids_here / sizeof *ids_here) {
			ids = malloc(nids * sizeof *ids);
			if (!ids) {
				log_warnx("mqtt %s: message on %s dropped: out of memory",
					  mqtt_cur_uri(m), mm->topic);
				goto done;
			}
			mqtt_sub_ids(props, ids, nids);
		}
	}
	msg.topic = mm->topic;
	msg.payload = mm->payloadlen > 0 ? mm->payload : "";
	msg.len = mm->payloadlen > 0 ? (size_t)mm->payloadlen : 0;
	msg.qos = mm->qos;
	msg.retained = mm->retain;
	msg.response_topic = rt;
	msg.correlation = corr;
	msg.correlation_len = corr ? clen : 0;
	msg.sub_ids = nids ? ids : NULL;
	msg.nsub_ids = nids;
	m->ops.on_message(m->arg, &msg);
	if (ids != ids_here)
		free(ids);
done:
	free(rt);
	free(corr);
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
	(void)mid;
	(void)props;
	for (i = 0; i < n; i++)
		if (granted[i] >= 0x80)
			log_warnx("mqtt %s: subscription refused: %s", mqtt_cur_uri(m),
				  mosquitto_reason_string(granted[i]));
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
	/* Full jitter (uniform up to an exponentially growing cap) keeps a house of agents from
	 * reconnecting in lockstep after a broker restart; the floor stops a tight loop. */
	unsigned shift = m->attempts < 32 ? m->attempts : 32;
	uint64_t cap = m->backoff_min << shift;
	uint64_t delay;

	if (cap > m->backoff_max || (cap >> shift) != m->backoff_min)
		cap = m->backoff_max;
	delay = m->backoff_min + mqtt_rand(m) % (cap - m->backoff_min + 1);
	m->attempts++;
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
	if (m->attempts == 0)
		log_warnx("mqtt %s: %s", mqtt_cur_uri(m), why);
	else
		log_debug("mqtt %s: %s", mqtt_cur_uri(m), why);
	mqtt_teardown(m);
	m->try_v4 = false;
	mqtt_advance(m);
	mqtt_schedule_retry(m);
}

static void mqtt_update_events(struct mqtt *m)
{
	uint32_t ev;

	if (m->fd < 0)
		return;
	ev = EPOLLIN | (mosquitto_want_write(m->mosq) ? EPOLLOUT : 0);
	if (ev != m->events && loop_io_mod(m->loop, m->fd, ev) == 0)
		m->events = ev;
}

static void mqtt_do_stop(struct mqtt *m, uint64_t timeout_ms);

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
		mqtt_teardown(m);
		m->try_v4 = false;
		/* After a loss the next broker of the list is tried first (its node may be gone). */
		mqtt_advance(m);
		mqtt_schedule_retry(m);
		if (m->ops.on_disconnected)
			m->ops.on_disconnected(m->arg, why);
	}
}

static int mqtt_mosq_setup(struct mqtt *m);

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
static void mqtt_on_misc(void *arg)
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

static void mqtt_on_timeout(void *arg)
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

static void mqtt_on_dns(void *arg)
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

static void mqtt_attempt(struct mqtt *m)
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

static void mqtt_on_retry(void *arg)
{
	struct mqtt *m = arg;
	if (m->state == MQTT_BACKOFF)
		mqtt_attempt(m);
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

/* Everything of libmosquitto's client but the id and the clean start flag (mosquitto_new). */
static int mqtt_mosq_setup(struct mqtt *m)
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
	m->backoff_min = o->backoff_min_ms ? o->backoff_min_ms : MQTT_DEF_BACKOFF_MIN;
	m->backoff_max = o->backoff_max_ms ? o->backoff_max_ms : MQTT_DEF_BACKOFF_MAX;
	if (m->backoff_max < m->backoff_min)
		m->backoff_max = m->backoff_min;
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

/* --- subscriptions --- */

static void mqtt_send_sub(struct mqtt *m, const struct mqtt_sub *s)
{
	mosquitto_property *props = NULL;
	int opts = 0, rc;

	if (m->version == 5) {
		/* Retain As Published: without it the broker clears the retain flag on live
		 * deliveries, and frMhs could not tell a retained command from a fresh one. */
		if (!s->opts.no_retain_as_published)
			opts |= MQTT_SUB_OPT_RETAIN_AS_PUBLISHED;
		if (s->opts.id &&
		    mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
						  s->opts.id) != MOSQ_ERR_SUCCESS) {
			log_warnx("mqtt %s: subscribe %s: out of memory", mqtt_cur_uri(m),
				  s->filter);
			return;
		}
	}
	rc = mosquitto_subscribe_v5(m->mosq, NULL, s->filter, s->qos, opts, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
		log_warnx("mqtt %s: subscribe %s: %s", mqtt_cur_uri(m), s->filter,
			  mosquitto_strerror(rc));
}

static struct mqtt_sub *mqtt_find(struct mqtt *m, const char *filter)
{
	size_t i;
	for (i = 0; i < m->nsubs; i++)
		if (strcmp(m->subs[i].filter, filter) == 0)
			return &m->subs[i];
	return NULL;
}

int mqtt_subscribe(struct mqtt *m, const char *filter, int qos)
{
	return mqtt_subscribe_opts(m, filter, qos, NULL);
}

int mqtt_subscribe_opts(struct mqtt *m, const char *filter, int qos,
			const struct mqtt_subopts *opts)
{
	struct mqtt_sub *s, *n;

	if (!filter || !*filter || qos < 0 || qos > 2 || (opts && opts->id > MQTT_SUB_ID_MAX) ||
	    mosquitto_sub_topic_check(filter) != MOSQ_ERR_SUCCESS ||
	    mosquitto_validate_utf8(filter, (int)strlen(filter)) != MOSQ_ERR_SUCCESS) {
		log_warnx("mqtt %s: bad subscription '%s' qos %d", mqtt_cur_uri(m),
			  filter ? filter : "", qos);
		return -EINVAL;
	}
	s = mqtt_find(m, filter);
	if (!s) {
		char *f = strdup(filter);
		n = f ? realloc(m->subs, (m->nsubs + 1) * sizeof *n) : NULL;
		if (!n) {
			free(f);
			log_warnx("mqtt %s: subscribe %s: out of memory", mqtt_cur_uri(m), filter);
			return -ENOMEM;
		}
		m->subs = n;
		s = &m->subs[m->nsubs++];
		s->filter = f;
	}
	s->qos = qos;
	s->opts = opts ? *opts : (struct mqtt_subopts){ 0 };
	if (m->state == MQTT_CONNECTED) {
		mqtt_send_sub(m, s);
		if (!m->in_mosq)
			mqtt_update_events(m);
	}
	return 0;
}

int mqtt_unsubscribe(struct mqtt *m, const char *filter)
{
	struct mqtt_sub *s = filter ? mqtt_find(m, filter) : NULL;
	int rc;

	if (!s)
		return -ENOENT;
	free(s->filter);
	*s = m->subs[--m->nsubs];
	if (m->state != MQTT_CONNECTED)
		return 0;
	rc = mosquitto_unsubscribe_v5(m->mosq, NULL, filter, NULL);
	if (!m->in_mosq)
		mqtt_update_events(m);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		log_warnx("mqtt %s: unsubscribe %s: %s", mqtt_cur_uri(m), filter,
			  mosquitto_strerror(rc));
		return mqtt_err(rc);
	}
	return 0;
}

/* --- publishing --- */

/* Hands a message to libmosquitto on an established connection. A QoS 1/2 message stays in
 * libmosquitto until acknowledged, across reconnects; -ENOTCONN means it was not taken. */
static int mqtt_hand_over(struct mqtt *m, const char *topic, const void *payload, size_t len,
			  int qos, bool retain, const char *rtopic, const void *corr,
			  size_t corr_len, int *mid)
{
	mosquitto_property *props = NULL;
	int rc;

	if (m->version == 5 && rtopic &&
	    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, rtopic) !=
		    MOSQ_ERR_SUCCESS)
		goto nomem;
	if (m->version == 5 && corr && corr_len &&
	    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
					  (uint16_t)corr_len) != MOSQ_ERR_SUCCESS)
		goto nomem;
	rc = mosquitto_publish_v5(m->mosq, mid, topic, (int)len, payload, qos, retain, props);
	mosquitto_property_free_all(&props);
	switch (rc) {
	case MOSQ_ERR_SUCCESS:
	case MOSQ_ERR_NOMEM:
	case MOSQ_ERR_INVAL:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_OVERSIZE_PACKET:
	case MOSQ_ERR_QOS_NOT_SUPPORTED:
	case MOSQ_ERR_NOT_SUPPORTED:
	case MOSQ_ERR_DUPLICATE_PROPERTY:
	case MOSQ_ERR_PROTOCOL:
		break;   /* refused before it was queued */
	default:
		/* The write found the connection gone. A QoS 1/2 message is queued all the same
		 * and sent again after the reconnect; a QoS 0 one is not, so it is buffered. The
		 * loss itself surfaces on the next read. */
		rc = qos > 0 ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NO_CONN;
	}
	if (rc == MOSQ_ERR_SUCCESS && qos > 0)
		mqtt_unacked_set(m, *mid, true);
	if (!m->in_mosq && m->fd >= 0)
		mqtt_update_events(m);
	return rc == MOSQ_ERR_SUCCESS ? 0 : mqtt_err(rc);
nomem:
	mosquitto_property_free_all(&props);
	return -ENOMEM;
}

/* A publish the full buffer refused: logged at once when none was for MQTT_DROP_LOG_MS, else
 * counted and summed up with the next one logged. */
static void mqtt_log_drop(struct mqtt *m, const char *topic)
{
	uint64_t now = loop_wall_ms();

	if (m->drop_logged_ms && now - m->drop_logged_ms < MQTT_DROP_LOG_MS) {
		m->drops_unlogged++;
		return;
	}
	if (m->drops_unlogged)
		log_warnx("mqtt %s: publish to %s: %d messages already wait for the broker (and %lu "
			  "more publishes dropped since the last such line)", mqtt_cur_uri(m), topic,
			  m->nbuf, m->drops_unlogged);
	else
		log_warnx("mqtt %s: publish to %s: %d messages already wait for the broker",
			  mqtt_cur_uri(m), topic, m->nbuf);
	m->drop_logged_ms = now;
	m->drops_unlogged = 0;
}

static int mqtt_buffer(struct mqtt *m, const char *topic, const void *payload, size_t len,
		       int qos, bool retain, const char *rtopic, const void *corr,
		       size_t corr_len, uint64_t ticket)
{
	struct mqtt_out *o;

	if (m->nbuf >= m->max_buffered)
		return -ENOBUFS;
	o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->topic = strdup(topic);
	o->payload = malloc(len + 1);
	o->rtopic = rtopic ? strdup(rtopic) : NULL;
	o->corr = corr && corr_len ? malloc(corr_len) : NULL;
	if (!o->topic || !o->payload || (rtopic && !o->rtopic) || (corr && corr_len && !o->corr)) {
		mqtt_out_free(o);
		return -ENOMEM;
	}
	if (len)
		memcpy(o->payload, payload, len);
	if (o->corr)
		memcpy(o->corr, corr, corr_len);
	o->len = len;
	o->corr_len = o->corr ? corr_len : 0;
	o->qos = qos;
	o->retain = retain;
	o->ticket = ticket;
	*m->buf_tail = o;
	m->buf_tail = &o->next;
	m->nbuf++;
	return 0;
}

static int mqtt_publish_common(struct mqtt *m, const char *topic, const void *payload,
			       size_t len, int qos, bool retain, const char *rtopic,
			       const void *corr, size_t corr_len, mqtt_done_fn done, void *arg,
			       uint64_t *ticket)
{
	struct mqtt_track *t = NULL;
	int rc, mid = 0;

	if (!topic || !*topic || qos < 0 || qos > 2 || len > MQTT_MAX_PAYLOAD || corr_len > 65535 ||
	    (len && !payload) || (rtopic && strlen(rtopic) > 65535) ||
	    mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS ||
	    mosquitto_validate_utf8(topic, (int)strlen(topic)) != MOSQ_ERR_SUCCESS) {
		log_warnx("mqtt %s: publish to %s: bad arguments", mqtt_cur_uri(m),
			  topic ? topic : "(null)");
		return -EINVAL;
	}
	if (m->state == MQTT_STOPPED) {
		log_warnx("mqtt %s: publish to %s after stop", mqtt_cur_uri(m), topic);
		return -ENOTCONN;
	}
	if (done) {
		t = calloc(1, sizeof *t);
		if (!t)
			goto nomem;
		t->ticket = ++m->next_ticket;
		t->done = done;
		t->arg = arg;
		t->qos = qos;
	}
	if (m->state == MQTT_CONNECTED && !m->buf_head) {
		rc = mqtt_hand_over(m, topic, payload ? payload : "", len, qos, retain, rtopic,
				    corr, corr_len, &mid);
		if (rc == 0) {
			if (t && qos == 0)
				mqtt_track_finish(m, t, 0);
			else if (t) {
				t->mid = mid;
				mqtt_track_add(m, t);
			}
			goto done;
		}
		if (rc != -ENOTCONN) {
			free(t);
			log_warnx("mqtt %s: publish to %s: %s", mqtt_cur_uri(m), topic, strerror(-rc));
			return rc;
		}
	}
	/* Not connected (or older messages still wait): keep order, keep it for later. */
	rc = mqtt_buffer(m, topic, payload, len, qos, retain, rtopic, corr, corr_len,
			 t ? t->ticket : 0);
	if (rc < 0) {
		free(t);
		if (rc == -ENOBUFS)
			mqtt_log_drop(m, topic);
		else
			log_warnx("mqtt %s: publish to %s: out of memory", mqtt_cur_uri(m), topic);
		return rc;
	}
	if (t) {
		/* Kept under a negative id (packet ids are positive) until it is handed over. */
		t->mid = -(int)(t->ticket % INT_MAX) - 1;
		mqtt_track_add(m, t);
	}
done:
	if (ticket)
		*ticket = t ? t->ticket : 0;
	return 0;
nomem:
	log_warnx("mqtt %s: publish to %s: out of memory", mqtt_cur_uri(m), topic);
	return -ENOMEM;
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		 bool retain, const char *response_topic, const void *corr, size_t corr_len)
{
	return mqtt_publish_common(m, topic, payload, len, qos, retain, response_topic, corr,
				   corr_len, NULL, NULL, NULL);
}

int mqtt_publish_tracked(struct mqtt *m, const char *topic, const void *payload, size_t len,
			 int qos, bool retain, const char *response_topic, const void *corr,
			 size_t corr_len, mqtt_done_fn done, void *arg, uint64_t *ticket)
{
	if (!done) {
		log_warnx("mqtt %s: publish_tracked without a completion", mqtt_cur_uri(m));
		return -EINVAL;
	}
	return mqtt_publish_common(m, topic, payload, len, qos, retain, response_topic, corr,
				   corr_len, done, arg, ticket);
}

void mqtt_publish_forget(struct mqtt *m, uint64_t ticket)
{
	size_t i;
	struct mqtt_track *t;

	if (!ticket)
		return;
	for (i = 0; i < MQTT_TRACK_BUCKETS; i++)
		for (t = m->track[i]; t; t = t->next)
			if (t->ticket == ticket) {
				t->done = NULL;   /* stays until its ack, so the id is not reused */
				return;
			}
	for (t = m->finished; t; t = t->next)
		if (t->ticket == ticket)
			t->done = NULL;
}

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

/* --- stopping --- */

static void mqtt_do_stop(struct mqtt *m, uint64_t timeout_ms)
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
