/* subs: frAroundWeb's subscriptions at the broker and who consumes them. Each distinct filter is
 * one broker subscription with its own MQTT 5 Subscription Identifier, shared (refcounted) by
 * its consumers: the cache's filters, the relay's reply filter and every shim "subscribe". A
 * message is handed to the consumers of exactly the subscriptions whose identifiers it carries.
 * Overlapping filters are the normal case (fr/home1/# and the cache's fr/+/status); whether a
 * broker then sends one copy per matching subscription (Mosquitto) or one copy with all their
 * identifiers (MQTT 5, 3.3.4), each consumer gets the message once, and nothing is guessed from
 * consecutive copies. On MQTT 3.1.1 there are no identifiers: Mosquitto and RabbitMQ send one
 * copy for all overlapping subscriptions, and it reaches the consumers of every filter that
 * matches its topic.
 *
 * Ownership: struct subs is owned by the caller (subs_free) and borrows mqtt. A struct subs_ref
 * is owned by subs from subs_add until subs_remove. A consumer's callback must not add or
 * remove consumers (callbacks that end a client defer that, as the shim does). */
#ifndef WEB_SUBS_H
#define WEB_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqtt;
struct mqtt_msg;
struct subs;
struct subs_ref;

/* m->retained: with retain_as_published, whether the message was published retained;
 * without, whether the broker sent it from its retained store because a subscription to this
 * filter was made (the live copy of a retained publish then reads false). */
typedef void (*subs_cb)(void *arg, const struct mqtt_msg *m);
/* The broker's answer for a consumer that waits for it: err 0 = acknowledged; else refused
 * (-EACCES not authorized, -EIO otherwise) and the consumer is removed already. */
typedef void (*subs_done_cb)(void *arg, int err);

struct subs *subs_new(struct mqtt *mqtt);
void subs_free(struct subs *s);
/* Adds a consumer of filter (subscribed at QoS 1). The first consumer's retain_as_published
 * holds for the filter; a later consumer asking otherwise is refused. A filter already
 * subscribed is subscribed again, so the broker sends its retained messages for the newcomer
 * (every consumer of that filter sees them, marked retained). NULL on error (logged). */
struct subs_ref *subs_add(struct subs *s, const char *filter, bool retain_as_published,
			  subs_cb cb, void *arg);
/* subs_add, for a consumer that must not miss what is published once it is told "subscribed"
 * (SUBACK semantics): it gets no message until the broker acknowledges the SUBSCRIBE sent for
 * it -- for a filter held already, the repeated one (or a later one that overtook it); while
 * disconnected, the resubscribe on reconnect -- then done(arg, 0), then messages (Mosquitto and
 * RabbitMQ send the retained ones after the SUBACK). A refusal: done(arg, err) with the
 * consumer removed (the last one of its filter unsubscribes it). done must not add or remove
 * consumers. A consumer already acknowledged is not told again (a refused resubscribe after a
 * reconnect is only logged). */
struct subs_ref *subs_add_acked(struct subs *s, const char *filter, bool retain_as_published,
				subs_cb cb, subs_done_cb done, void *arg);
/* Removes the consumer; the last one of a filter unsubscribes it at the broker. NULL is fine. */
void subs_remove(struct subs *s, struct subs_ref *r);
/* Hands m to the consumers of the subscriptions it was sent for. */
void subs_on_message(struct subs *s, const struct mqtt_msg *m);
/* Broker subscriptions held now. */
size_t subs_count(const struct subs *s);
/* The Subscription Identifier of r's filter. */
uint32_t subs_id(const struct subs_ref *r);

#endif
