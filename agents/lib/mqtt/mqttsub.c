/* mqttsub: the MQTT client's subscriptions (kept, renewed on every connection) and the
 * messages they bring; see mqtt.h. */
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

/* --- incoming messages --- */

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

void mqtt_cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *mm,
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

/* --- subscriptions --- */

void mqtt_send_sub(struct mqtt *m, struct mqtt_sub *s)
{
	mosquitto_property *props = NULL;
	int opts = 0, rc;

	s->mid = 0;
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
	rc = mosquitto_subscribe_v5(m->mosq, &s->mid, s->filter, s->qos, opts, props);
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
		s->mid = 0;
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
