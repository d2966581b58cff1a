/* mqttpub: the MQTT client's publishing -- handing messages to libmosquitto, the buffer kept
 * while disconnected, tracked publishes and their completions; see mqtt.h. */
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

/* --- the disconnected buffer and tracked publishes --- */

void mqtt_out_free(struct mqtt_out *o)
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

struct mqtt_track *mqtt_track_take_mid(struct mqtt *m, int mid)
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

void mqtt_on_flush(void *arg)
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
void mqtt_track_finish(struct mqtt *m, struct mqtt_track *t, int err)
{
	t->err = err;
	t->next = NULL;
	*m->finished_tail = t;
	m->finished_tail = &t->next;
	loop_defer(m->loop, &m->flush);
}

/* The reason code of a PUBACK/PUBREC/PUBCOMP as an error. */
int mqtt_reason_err(int rc)
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
void mqtt_unacked_set(struct mqtt *m, int mid, bool set)
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

static int mqtt_hand_over(struct mqtt *m, const char *topic, const void *payload, size_t len,
			  int qos, bool retain, const char *rtopic, const void *corr,
			  size_t corr_len, int *mid);

void mqtt_flush_buffer(struct mqtt *m)
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
