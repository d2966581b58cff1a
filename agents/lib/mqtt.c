/* mqtt: paho MQTTAsync bridged onto the agent's loop (queue + eventfd); see mqtt.h. */
#include "mqtt.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <MQTTAsync.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MQTT_DEF_KEEPALIVE 30
#define MQTT_DEF_EXPIRY 86400u
#define MQTT_DEF_BACKOFF_MIN 500
#define MQTT_DEF_BACKOFF_MAX 30000
#define MQTT_DEF_BUFFERED 1000
#define MQTT_CONNECT_TIMEOUT 10       /* seconds, per attempt */
#define MQTT_MAX_PAYLOAD 268435455u   /* the protocol's remaining-length limit */
#define MQTT_FREE_STOP_MS 1000

enum mqtt_state { MQTT_IDLE, MQTT_CONNECTING, MQTT_CONNECTED, MQTT_BACKOFF, MQTT_STOPPED };

enum mqtt_ev_type { MQTT_EV_CONNECTED, MQTT_EV_CONNECT_FAILED, MQTT_EV_LOST, MQTT_EV_MESSAGE,
		    MQTT_EV_ERROR };

/* What a paho thread hands to the loop thread: a deep copy, owned by the queue. */
struct mqtt_ev {
	struct mqtt_ev *next;
	enum mqtt_ev_type type;
	bool session_present;
	char *text;
	char *topic;
	void *payload;
	size_t len;
	int qos;
	bool retained, dup;
	char *response_topic;
	void *corr;
	size_t corr_len;
	uint32_t *sub_ids;
	size_t nsub_ids;
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

	char *uri, *client_id, *username, *password, *ca_file, *cert_file, *key_file;
	char *will_topic, *will_payload;
	bool insecure, clean, clean_first, will_retain, tls;
	bool connected_once;
	int will_qos, version, keepalive, max_buffered;
	uint32_t session_expiry;
	uint64_t backoff_min, backoff_max;
	uint16_t port;

	MQTTAsync client;
	enum mqtt_state state;
	unsigned attempts;   /* failed attempts since the last success */
	uint64_t rng;
	struct loop_timer retry;
	struct loop_wake *wake;
	struct mqtt_sub *subs;
	size_t nsubs;

	/* The only state paho's threads touch, and only under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* mqtt_stop waits here for disc_done */
	struct mqtt_ev *head, **tail;
	bool disc_done;
};

static int mqtt_err(int rc)
{
	switch (rc) {
	case MQTTASYNC_DISCONNECTED:
		return -ENOTCONN;
	case MQTTASYNC_MAX_BUFFERED_MESSAGES:
	case MQTTASYNC_MAX_BUFFERED:
	case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
	case MQTTASYNC_NO_MORE_MSGIDS:
		return -ENOBUFS;
	case MQTTASYNC_BAD_UTF8_STRING:
	case MQTTASYNC_NULL_PARAMETER:
	case MQTTASYNC_TOPICNAME_TRUNCATED:
	case MQTTASYNC_BAD_QOS:
	case MQTTASYNC_BAD_STRUCTURE:
	case MQTTASYNC_BAD_PROTOCOL:
	case MQTTASYNC_BAD_MQTT_OPTION:
	case MQTTASYNC_WRONG_MQTT_VERSION:
	case MQTTASYNC_0_LEN_WILL_TOPIC:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static const char *mqtt_strerror(int rc)
{
	const char *s = MQTTAsync_strerror(rc);
	return s ? s : "unknown paho error";
}

/* --- paho threads: copy, queue, wake; nothing else --- */

static void mqtt_ev_free(struct mqtt_ev *ev)
{
	if (!ev)
		return;
	free(ev->text);
	free(ev->topic);
	free(ev->payload);
	free(ev->response_topic);
	free(ev->corr);
	free(ev->sub_ids);
	free(ev);
}

static void mqtt_push(struct mqtt *m, struct mqtt_ev *ev)
{
	ev->next = NULL;
	pthread_mutex_lock(&m->lock);
	*m->tail = ev;
	m->tail = &ev->next;
	pthread_mutex_unlock(&m->lock);
	loop_wake_notify(m->wake);
}

/* text may be NULL; losing it to ENOMEM only loses a log detail. */
static void mqtt_push_simple(struct mqtt *m, enum mqtt_ev_type type, bool sp, const char *text)
{
	struct mqtt_ev *ev = calloc(1, sizeof *ev);
	if (!ev)
		return;
	ev->type = type;
	ev->session_present = sp;
	if (text)
		ev->text = strdup(text);
	mqtt_push(m, ev);
}

static void mqtt_push_failure(struct mqtt *m, enum mqtt_ev_type type, const char *what, int code,
			      int reason, const char *msg)
{
	char buf[256];
	if (reason > 0)
		snprintf(buf, sizeof buf, "%s: reason 0x%02x %s%s%s", what, reason,
			 MQTTReasonCode_toString((enum MQTTReasonCodes)reason), msg ? ": " : "",
			 msg ? msg : "");
	else
		snprintf(buf, sizeof buf, "%s: %s%s%s", what, mqtt_strerror(code), msg ? ": " : "",
			 msg ? msg : "");
	mqtt_push_simple(m, type, false, buf);
}

static void mqtt_cb_conn_ok(void *ctx, MQTTAsync_successData *r)
{
	mqtt_push_simple(ctx, MQTT_EV_CONNECTED, r && r->alt.connect.sessionPresent, NULL);
}

static void mqtt_cb_conn_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	mqtt_push_simple(ctx, MQTT_EV_CONNECTED, r && r->alt.connect.sessionPresent, NULL);
}

static void mqtt_cb_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
	mqtt_push_failure(ctx, MQTT_EV_CONNECT_FAILED, "connect", r ? r->code : MQTTASYNC_FAILURE, 0,
			  r ? r->message : NULL);
}

static void mqtt_cb_conn_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	mqtt_push_failure(ctx, MQTT_EV_CONNECT_FAILED, "connect", r ? r->code : MQTTASYNC_FAILURE,
			  r ? (int)r->reasonCode : 0, r ? r->message : NULL);
}

static void mqtt_cb_lost(void *ctx, char *cause)
{
	mqtt_push_simple(ctx, MQTT_EV_LOST, false, cause ? cause : "connection lost");
}

/* MQTT 5: the server sent DISCONNECT. Treated like a loss; a later connectionLost for the same
 * connection is ignored by state. */
static void mqtt_cb_server_disconnect(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	char buf[128];
	(void)props;
	snprintf(buf, sizeof buf, "server sent DISCONNECT: reason 0x%02x %s", (int)rc,
		 MQTTReasonCode_toString(rc));
	mqtt_push_simple(ctx, MQTT_EV_LOST, false, buf);
}

static int mqtt_copy_prop(MQTTProperties *props, enum MQTTPropertyCodes id, void **out, size_t *len,
			  bool nul)
{
	MQTTProperty *p = MQTTProperties_getProperty(props, id);
	char *c;
	if (!p || p->value.data.len < 0)
		return 0;
	c = malloc((size_t)p->value.data.len + 1);
	if (!c)
		return -ENOMEM;
	if (p->value.data.len)
		memcpy(c, p->value.data.data, (size_t)p->value.data.len);
	if (nul)
		c[p->value.data.len] = '\0';
	*out = c;
	*len = (size_t)p->value.data.len;
	return 0;
}

/* Returning 0 makes paho keep the message and call again later: the right answer to ENOMEM. */
static int mqtt_cb_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = ctx;
	struct mqtt_ev *ev = calloc(1, sizeof *ev);
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t dummy;

	if (!ev)
		return 0;
	ev->type = MQTT_EV_MESSAGE;
	ev->topic = strndup(topic, tlen);
	ev->len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	ev->payload = malloc(ev->len + 1);   /* +1: never malloc(0), and a NUL for convenience */
	if (!ev->topic || !ev->payload)
		goto fail;
	if (ev->len)
		memcpy(ev->payload, msg->payload, ev->len);
	((char *)ev->payload)[ev->len] = '\0';
	ev->qos = msg->qos;
	ev->retained = msg->retained;
	ev->dup = msg->dup;
	if (mqtt_copy_prop(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC,
			   (void **)&ev->response_topic, &dummy, true) < 0 ||
	    mqtt_copy_prop(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA, &ev->corr,
			   &ev->corr_len, false) < 0)
		goto fail;
	int nids = MQTTProperties_propertyCount(&msg->properties,
						MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER);
	if (nids > 0) {
		ev->sub_ids = calloc((size_t)nids, sizeof *ev->sub_ids);
		if (!ev->sub_ids)
			goto fail;
		for (int i = 0; i < nids; i++) {
			MQTTProperty *p = MQTTProperties_getPropertyAt(
				&msg->properties, MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER, i);
			if (p)
				ev->sub_ids[ev->nsub_ids++] = (uint32_t)p->value.integer4;
		}
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	mqtt_push(m, ev);
	return 1;
fail:
	mqtt_ev_free(ev);
	return 0;
}

static void mqtt_cb_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
	mqtt_push_failure(ctx, MQTT_EV_ERROR, "subscribe/unsubscribe",
			  r ? r->code : MQTTASYNC_FAILURE, 0, r ? r->message : NULL);
}

static void mqtt_cb_sub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	mqtt_push_failure(ctx, MQTT_EV_ERROR, "subscribe/unsubscribe",
			  r ? r->code : MQTTASYNC_FAILURE, r ? (int)r->reasonCode : 0,
			  r ? r->message : NULL);
}

static void mqtt_cb_sub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	if (r && r->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		mqtt_push_failure(ctx, MQTT_EV_ERROR, "subscribe/unsubscribe", MQTTASYNC_FAILURE,
				  (int)r->reasonCode, NULL);
}

static void mqtt_cb_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
	mqtt_push_failure(ctx, MQTT_EV_ERROR, "publish", r ? r->code : MQTTASYNC_FAILURE, 0,
			  r ? r->message : NULL);
}

static void mqtt_cb_pub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	mqtt_push_failure(ctx, MQTT_EV_ERROR, "publish", r ? r->code : MQTTASYNC_FAILURE,
			  r ? (int)r->reasonCode : 0, r ? r->message : NULL);
}

/* Signalled under the lock, so once mqtt_stop sees disc_done this thread no longer needs m. */
static void mqtt_disc_done(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	m->disc_done = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void mqtt_cb_disc_ok(void *ctx, MQTTAsync_successData *r)
{
	(void)r;
	mqtt_disc_done(ctx);
}

static void mqtt_cb_disc_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	mqtt_disc_done(ctx);
}

static void mqtt_cb_disc_fail(void *ctx, MQTTAsync_failureData *r)
{
	(void)r;
	mqtt_disc_done(ctx);
}

static void mqtt_cb_disc_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	(void)r;
	mqtt_disc_done(ctx);
}

/* --- loop thread --- */

/* paho 1.3 never sets TCP_NODELAY and does not expose its socket (paho.mqtt.c issue #530);
 * Nagle + delayed ACK costs ~40 ms whenever paho writes twice in a row (PUBACK then a
 * response PUBLISH). So walk our fds and set it on every connected TCP socket whose peer port
 * is the broker's. Doing this from the loop thread while paho's threads use the socket is
 * safe: setsockopt is atomic in the kernel, paho never touches TCP_NODELAY, and if the fd was
 * closed and reused meanwhile the option lands on some other TCP socket, which in our agents
 * wants TCP_NODELAY too (net.h), or fails harmlessly on a non-socket. */
static int mqtt_nodelay(uint16_t port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss, l;
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		int proto;

		if (end == de->d_name || *end || fd < 0 || fd > INT_MAX || fd == dirfd(d))
			continue;
		l = sizeof proto;
		if (getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) < 0 ||
		    proto != IPPROTO_TCP)
			continue;
		if (getpeername((int)fd, (struct sockaddr *)&ss, &sl) < 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
		    net_addr_port((struct sockaddr *)&ss) != port)
			continue;
		if (net_set_nodelay((int)fd) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static uint64_t mqtt_rand(struct mqtt *m)
{
	/* splitmix64: plenty for spreading reconnects, no shared state. */
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
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
	log_debug("mqtt %s: reconnecting in %llu ms", m->uri, (unsigned long long)delay);
	loop_timer_start(m->loop, &m->retry, delay);
}

static void mqtt_connect(struct mqtt *m)
{
	MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_connectOptions co4 = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions co = m->version == 5 ? co5 : co4;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	int rc;

	co.keepAliveInterval = m->keepalive;
	co.connectTimeout = MQTT_CONNECT_TIMEOUT;
	co.automaticReconnect = 0;
	co.context = m;
	co.username = m->username;
	co.password = m->password;
	if (m->version == 5) {
		co.cleansession = 0;
		co.cleanstart = m->clean || (m->clean_first && !m->connected_once);
		co.onSuccess5 = mqtt_cb_conn_ok5;
		co.onFailure5 = mqtt_cb_conn_fail5;
		if (m->session_expiry) {
			MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };
			p.value.integer4 = m->session_expiry;
			if (MQTTProperties_add(&props, &p) != 0) {
				log_warnx("mqtt %s: cannot add session expiry", m->uri);
				goto fail;
			}
			co.connectProperties = &props;
		}
	} else {
		co.cleansession = m->clean || (m->clean_first && !m->connected_once);
		co.onSuccess = mqtt_cb_conn_ok;
		co.onFailure = mqtt_cb_conn_fail;
	}
	if (m->will_topic) {
		will.topicName = m->will_topic;
		will.message = m->will_payload ? m->will_payload : "";
		will.qos = m->will_qos;
		will.retained = m->will_retain;
		co.will = &will;
	}
	if (m->tls) {
		ssl.trustStore = m->ca_file;
		ssl.keyStore = m->cert_file;
		ssl.privateKey = m->key_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = !m->insecure;
		co.ssl = &ssl;
	}
	m->state = MQTT_CONNECTING;
	rc = MQTTAsync_connect(m->client, &co);
	MQTTProperties_free(&props);   /* paho keeps its own copy */
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("mqtt %s: connect: %s", m->uri, mqtt_strerror(rc));
		goto fail;
	}
	return;
fail:
	mqtt_schedule_retry(m);
}

static void mqtt_on_retry(void *arg)
{
	struct mqtt *m = arg;
	if (m->state == MQTT_BACKOFF)
		mqtt_connect(m);
}

static int mqtt_send_sub(struct mqtt *m, const struct mqtt_sub *s)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	ro.context = m;
	if (m->version == 5) {
		ro.onSuccess5 = mqtt_cb_sub_ok5;
		ro.onFailure5 = mqtt_cb_sub_fail5;
		/* Retain As Published: without it the broker clears the retain flag on live
		 * deliveries, and frMhs could not tell a retained command from a fresh one. */
		ro.subscribeOptions.retainAsPublished = !s->opts.no_retain_as_published;
		if (s->opts.id) {
			MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER };
			p.value.integer4 = s->opts.id;
			if (MQTTProperties_add(&ro.properties, &p) != 0) {
				log_warnx("mqtt %s: subscribe %s: out of memory", m->uri, s->filter);
				return -ENOMEM;
			}
		}
	} else {
		ro.onFailure = mqtt_cb_sub_fail;
	}
	rc = MQTTAsync_subscribe(m->client, s->filter, s->qos, &ro);
	MQTTProperties_free(&ro.properties);   /* paho copied them */
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("mqtt %s: subscribe %s: %s", m->uri, s->filter, mqtt_strerror(rc));
		return mqtt_err(rc);
	}
	return 0;
}

static void mqtt_handle(struct mqtt *m, struct mqtt_ev *ev)
{
	struct mqtt_msg msg;
	size_t i;

	switch (ev->type) {
	case MQTT_EV_CONNECTED:
		if (m->state != MQTT_CONNECTING)
			break;
		m->state = MQTT_CONNECTED;
		m->attempts = 0;
		m->connected_once = true;
		if (mqtt_nodelay(m->port) <= 0)
			log_warnx("mqtt %s: no broker socket found to set TCP_NODELAY on", m->uri);
		log_info("mqtt %s: connected as %s%s", m->uri, m->client_id,
			 ev->session_present ? " (session present)" : "");
		for (i = 0; i < m->nsubs; i++)
			mqtt_send_sub(m, &m->subs[i]);
		if (m->ops.on_connected)
			m->ops.on_connected(m->arg, ev->session_present);
		break;
	case MQTT_EV_CONNECT_FAILED:
		if (m->state != MQTT_CONNECTING)
			break;
		/* Only the first failure in a row is worth a warning; the rest repeat it. */
		if (m->attempts == 0)
			log_warnx("mqtt %s: %s", m->uri, ev->text ? ev->text : "connect failed");
		else
			log_debug("mqtt %s: %s", m->uri, ev->text ? ev->text : "connect failed");
		mqtt_schedule_retry(m);
		break;
	case MQTT_EV_LOST:
		if (m->state != MQTT_CONNECTED)
			break;
		log_warnx("mqtt %s: %s", m->uri, ev->text ? ev->text : "connection lost");
		mqtt_schedule_retry(m);
		if (m->ops.on_disconnected)
			m->ops.on_disconnected(m->arg, ev->text ? ev->text : "connection lost");
		break;
	case MQTT_EV_MESSAGE:
		if (!m->ops.on_message)
			break;
		msg = (struct mqtt_msg){
			.topic = ev->topic, .payload = ev->payload, .len = ev->len, .qos = ev->qos,
			.retained = ev->retained, .dup = ev->dup, .response_topic = ev->response_topic,
			.correlation = ev->corr, .correlation_len = ev->corr_len,
			.sub_ids = ev->sub_ids, .nsub_ids = ev->nsub_ids,
		};
		m->ops.on_message(m->arg, &msg);
		break;
	case MQTT_EV_ERROR:
		log_warnx("mqtt %s: %s", m->uri, ev->text ? ev->text : "error");
		break;
	}
}

static void mqtt_on_wake(void *arg)
{
	struct mqtt *m = arg;
	struct mqtt_ev *ev, *next;

	pthread_mutex_lock(&m->lock);
	ev = m->head;
	m->head = NULL;
	m->tail = &m->head;
	pthread_mutex_unlock(&m->lock);
	for (; ev; ev = next) {
		next = ev->next;
		/* A callback may call mqtt_stop: what is left is then dropped. */
		if (m->state != MQTT_STOPPED)
			mqtt_handle(m, ev);
		mqtt_ev_free(ev);
	}
}

/* "scheme://host:port/..." → TLS or not, and the port (the scheme's default if absent). */
static int mqtt_parse_uri(const char *uri, bool *tls, uint16_t *port)
{
	static const struct { const char *scheme; bool tls; uint16_t port; } schemes[] = {
		{ "mqtt://", false, 1883 }, { "tcp://", false, 1883 },
		{ "mqtts://", true, 8883 }, { "ssl://", true, 8883 },
		{ "ws://", false, 80 },     { "wss://", true, 443 },
	};
	const char *h = NULL, *p;
	size_t i;
	char *end;
	unsigned long v;

	for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		size_t n = strlen(schemes[i].scheme);
		if (strncmp(uri, schemes[i].scheme, n) == 0) {
			h = uri + n;
			*tls = schemes[i].tls;
			*port = schemes[i].port;
			break;
		}
	}
	if (!h || !*h)
		return -EINVAL;
	if (*h == '[') {
		p = strchr(h, ']');
		if (!p)
			return -EINVAL;
		p++;
	} else {
		p = h + strcspn(h, ":/");
	}
	if (*p != ':')
		return *p == '\0' || *p == '/' ? 0 : -EINVAL;
	errno = 0;
	v = strtoul(p + 1, &end, 10);
	if (errno || end == p + 1 || v == 0 || v > 65535 || (*end && *end != '/'))
		return -EINVAL;
	*port = (uint16_t)v;
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
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
	pthread_condattr_t ca;
	struct mqtt *m;
	int rc;

	if (!o->uri || !o->client_id) {
		log_warnx("mqtt: uri and client_id are required");
		return NULL;
	}
	if ((o->version && o->version != 4 && o->version != 5) || o->will_qos < 0 ||
	    o->will_qos > 2 || o->keepalive < 0 || o->max_buffered < 0 ||
	    (o->backoff_min_ms && o->backoff_max_ms && o->backoff_min_ms > o->backoff_max_ms)) {
		log_warnx("mqtt %s: bad options", o->uri);
		return NULL;
	}
	m = calloc(1, sizeof *m);
	if (!m) {
		log_warn("mqtt: calloc");
		return NULL;
	}
	m->loop = loop;
	if (ops)
		m->ops = *ops;
	m->arg = arg;
	m->tail = &m->head;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		log_warnx("mqtt: mutex init failed");
		return NULL;
	}
	/* Monotonic, so mqtt_stop's bounded wait survives wall-clock steps. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		log_warnx("mqtt: cond init failed");
		return NULL;
	}
	loop_timer_init(&m->retry, mqtt_on_retry, m);
	if (mqtt_dup(&m->uri, o->uri) < 0 || mqtt_dup(&m->client_id, o->client_id) < 0 ||
	    mqtt_dup(&m->username, o->username) < 0 || mqtt_dup(&m->password, o->password) < 0 ||
	    mqtt_dup(&m->ca_file, o->ca_file) < 0 || mqtt_dup(&m->cert_file, o->cert_file) < 0 ||
	    mqtt_dup(&m->key_file, o->key_file) < 0 ||
	    mqtt_dup(&m->will_topic, o->will_topic) < 0 ||
	    mqtt_dup(&m->will_payload, o->will_payload) < 0) {
		log_warnx("mqtt %s: out of memory", o->uri);
		goto fail;
	}
	if (mqtt_parse_uri(m->uri, &m->tls, &m->port) < 0) {
		log_warnx("mqtt %s: bad uri (want mqtt://, mqtts://, ws:// or wss://host[:port])",
			  m->uri);
		goto fail;
	}
	m->insecure = o->insecure;
	m->clean = o->clean;
	m->clean_first = o->clean_first;
	m->version = o->version ? o->version : 5;
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

	m->wake = loop_wake_new(loop, mqtt_on_wake, m);
	if (!m->wake)
		goto fail;

	cro.MQTTVersion = m->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	cro.sendWhileDisconnected = 1;
	cro.allowDisconnectedSendAtAnyTime = 1;
	cro.maxBufferedMessages = m->max_buffered;
	cro.deleteOldestMessages = 0;   /* a full buffer refuses the newest: the caller hears */
	rc = MQTTAsync_createWithOptions(&m->client, m->uri, m->client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("mqtt %s: create: %s", m->uri, mqtt_strerror(rc));
		m->client = NULL;
		goto fail;
	}
	rc = MQTTAsync_setCallbacks(m->client, m, mqtt_cb_lost, mqtt_cb_arrived, NULL);
	if (rc == MQTTASYNC_SUCCESS && m->version == 5)
		rc = MQTTAsync_setDisconnected(m->client, m, mqtt_cb_server_disconnect);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("mqtt %s: set callbacks: %s", m->uri, mqtt_strerror(rc));
		goto fail;
	}
	return m;
fail:
	m->state = MQTT_STOPPED;
	mqtt_free(m);
	return NULL;
}

int mqtt_start(struct mqtt *m)
{
	if (m->state != MQTT_IDLE)
		return m->state == MQTT_STOPPED ? -EINVAL : 0;
	mqtt_connect(m);
	return 0;
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

	if (!filter || !*filter || qos < 0 || qos > 2 || (opts && opts->id > MQTT_SUB_ID_MAX)) {
		log_warnx("mqtt %s: bad subscription '%s' qos %d", m->uri, filter ? filter : "",
			  qos);
		return -EINVAL;
	}
	s = mqtt_find(m, filter);
	if (!s) {
		char *f = strdup(filter);
		n = f ? realloc(m->subs, (m->nsubs + 1) * sizeof *n) : NULL;
		if (!n) {
			free(f);
			log_warnx("mqtt %s: subscribe %s: out of memory", m->uri, filter);
			return -ENOMEM;
		}
		m->subs = n;
		s = &m->subs[m->nsubs++];
		s->filter = f;
	}
	s->qos = qos;
	s->opts = opts ? *opts : (struct mqtt_subopts){ 0 };
	if (m->state != MQTT_CONNECTED)
		return 0;
	return mqtt_send_sub(m, s);
}

int mqtt_unsubscribe(struct mqtt *m, const char *filter)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	struct mqtt_sub *s = filter ? mqtt_find(m, filter) : NULL;
	int rc;

	if (!s)
		return -ENOENT;
	free(s->filter);
	*s = m->subs[--m->nsubs];
	if (m->state != MQTT_CONNECTED)
		return 0;
	ro.context = m;
	if (m->version == 5) {
		ro.onSuccess5 = mqtt_cb_sub_ok5;
		ro.onFailure5 = mqtt_cb_sub_fail5;
		/* Retain As Published: without it the broker clears the retain flag on live
		 * deliveries, and frMhs could not tell a retained command from a fresh one. */
		ro.subscribeOptions.retainAsPublished = 1;
	} else {
		ro.onFailure = mqtt_cb_sub_fail;
	}
	rc = MQTTAsync_unsubscribe(m->client, filter, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("mqtt %s: unsubscribe %s: %s", m->uri, filter, mqtt_strerror(rc));
		return mqtt_err(rc);
	}
	return 0;
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		 bool retain, const char *response_topic, const void *corr, size_t corr_len)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (!topic || qos < 0 || qos > 2 || len > MQTT_MAX_PAYLOAD || corr_len > 65535 ||
	    (response_topic && strlen(response_topic) > 65535)) {
		log_warnx("mqtt %s: publish to %s: bad arguments", m->uri, topic ? topic : "(null)");
		return -EINVAL;
	}
	if (m->state == MQTT_STOPPED) {
		log_warnx("mqtt %s: publish to %s after stop", m->uri, topic);
		return -ENOTCONN;
	}
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retain;
	ro.context = m;
	if (m->version == 5) {
		MQTTProperty p;
		if (response_topic) {
			p = (MQTTProperty){ .identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC };
			p.value.data.data = (char *)response_topic;
			p.value.data.len = (int)strlen(response_topic);
			if (MQTTProperties_add(&msg.properties, &p) != 0)
				goto nomem;
		}
		if (corr && corr_len) {
			p = (MQTTProperty){ .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
			p.value.data.data = (char *)corr;
			p.value.data.len = (int)corr_len;
			if (MQTTProperties_add(&msg.properties, &p) != 0)
				goto nomem;
		}
		ro.onFailure5 = mqtt_cb_pub_fail5;
	} else {
		ro.onFailure = mqtt_cb_pub_fail;
	}
	rc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);   /* paho copied them */
	if (rc != MQTTASYNC_SUCCESS) {
		log_warnx("mqtt %s: publish to %s: %s", m->uri, topic, mqtt_strerror(rc));
		return mqtt_err(rc);
	}
	return 0;
nomem:
	MQTTProperties_free(&msg.properties);
	log_warnx("mqtt %s: publish to %s: out of memory", m->uri, topic);
	return -ENOMEM;
}

bool mqtt_is_connected(const struct mqtt *m)
{
	return m->state == MQTT_CONNECTED;
}

void mqtt_stop(struct mqtt *m, uint64_t timeout_ms)
{
	MQTTAsync_disconnectOptions d4 = MQTTAsync_disconnectOptions_initializer;
	MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
	MQTTAsync_disconnectOptions d;
	enum mqtt_state prev;
	struct timespec ts;
	bool done;
	int rc;

	if (!m || m->state == MQTT_STOPPED)
		return;
	prev = m->state;
	m->state = MQTT_STOPPED;
	loop_timer_stop(m->loop, &m->retry);
	if (prev != MQTT_CONNECTED && prev != MQTT_CONNECTING)
		return;
	if (timeout_ms > INT_MAX)
		timeout_ms = INT_MAX;
	d = m->version == 5 ? d5 : d4;
	d.timeout = (int)timeout_ms;
	d.context = m;
	if (m->version == 5) {
		d.onSuccess5 = mqtt_cb_disc_ok5;
		d.onFailure5 = mqtt_cb_disc_fail5;
	} else {
		d.onSuccess = mqtt_cb_disc_ok;
		d.onFailure = mqtt_cb_disc_fail;
	}
	pthread_mutex_lock(&m->lock);
	m->disc_done = false;
	pthread_mutex_unlock(&m->lock);
	rc = MQTTAsync_disconnect(m->client, &d);
	if (rc != MQTTASYNC_SUCCESS) {
		log_debug("mqtt %s: disconnect: %s", m->uri, mqtt_strerror(rc));
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(timeout_ms / 1000);
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&m->lock);
	while (!m->disc_done)
		if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) == ETIMEDOUT)
			break;
	done = m->disc_done;
	pthread_mutex_unlock(&m->lock);
	if (!done)
		log_warnx("mqtt %s: disconnect not confirmed within %llu ms", m->uri,
			  (unsigned long long)timeout_ms);
	else
		log_info("mqtt %s: disconnected", m->uri);
}

void mqtt_free(struct mqtt *m)
{
	struct mqtt_ev *ev, *next;
	size_t i;

	if (!m)
		return;
	mqtt_stop(m, MQTT_FREE_STOP_MS);
	/* After destroy paho calls nothing of ours any more, so the queue can go. */
	if (m->client)
		MQTTAsync_destroy(&m->client);
	loop_timer_stop(m->loop, &m->retry);
	loop_wake_free(m->wake);
	for (ev = m->head; ev; ev = next) {
		next = ev->next;
		mqtt_ev_free(ev);
	}
	for (i = 0; i < m->nsubs; i++)
		free(m->subs[i].filter);
	free(m->subs);
	free(m->uri);
	free(m->client_id);
	free(m->username);
	free(m->password);
	free(m->ca_file);
	free(m->cert_file);
	free(m->key_file);
	free(m->will_topic);
	free(m->will_payload);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
