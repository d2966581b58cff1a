/* mqttdns: one name lookup on a thread of its own (getaddrinfo blocks for seconds when DNS is
 * down, and the loop must not), for the MQTT client's broker host names. The thread only
 * writes the answer under a lock and wakes the loop (loop_wake); everything else happens on
 * the loop thread. */
#ifndef FR_MQTTDNS_H
#define FR_MQTTDNS_H

#include <stddef.h>

struct loop_wake;
struct mqttdns;

/* Starts looking host up (IPv4 and IPv6 stream addresses). wake (borrowed; it must outlive
 * the lookup or mqttdns_cancel) is notified from the thread when the answer is there, never
 * after mqttdns_cancel. NULL with *err -ENOMEM or pthread_create's -errno. */
struct mqttdns *mqttdns_start(const char *host, struct loop_wake *wake, int *err);
/* 0: not done yet. 1: *addrs (numeric addresses; the caller owns each and the array) and *n
 * set. -1: the lookup failed, why says so ("cannot resolve HOST: REASON"). d is still the
 * caller's to cancel. */
int mqttdns_take(struct mqttdns *d, char ***addrs, size_t *n, char *why, size_t whylen);
/* Gives d up (NULL: nothing): the thread, if still running, frees it when it ends. */
void mqttdns_cancel(struct mqttdns *d);

#endif
