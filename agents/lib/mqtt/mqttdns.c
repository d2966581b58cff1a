/* mqttdns: a name lookup on its own thread; see mqttdns.h. */
#include "mqttdns.h"

#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Shared by the thread and the client; whoever drops the last reference frees it, under
 * lock. */
struct mqttdns {
	pthread_mutex_t lock;
	int refs;
	bool cancelled, done;
	struct loop_wake *wake;   /* the client's; never touched once cancelled */
	char *host;
	int err;                  /* getaddrinfo's code, 0 = ok */
	char **addrs;
	size_t naddrs;
};

static void mqttdns_put(struct mqttdns *d)
{
	bool last;
	size_t i;

	pthread_mutex_lock(&d->lock);
	last = --d->refs == 0;
	pthread_mutex_unlock(&d->lock);
	if (!last)
		return;
	for (i = 0; i < d->naddrs; i++)
		free(d->addrs[i]);
	free(d->addrs);
	free(d->host);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void *mqttdns_thread(void *arg)
{
	struct mqttdns *d = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL, *ai;
	char **addrs = NULL;
	size_t n = 0;
	int err = getaddrinfo(d->host, NULL, &hints, &res);

	for (ai = res; !err && ai; ai = ai->ai_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *a = ai->ai_family == AF_INET6 ?
			(const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr :
			(const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		char **p;
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    !inet_ntop(ai->ai_family, a, buf, sizeof buf))
			continue;
		p = realloc(addrs, (n + 1) * sizeof *p);
		if (!p || !(p[n] = strdup(buf))) {
			addrs = p ? p : addrs;
			err = EAI_MEMORY;
			break;
		}
		addrs = p;
		n++;
	}
	if (res)
		freeaddrinfo(res);
	if (!err && n == 0)
		err = EAI_NONAME;
	pthread_mutex_lock(&d->lock);
	d->addrs = addrs;
	d->naddrs = n;
	d->err = err;
	d->done = true;
	if (!d->cancelled)
		loop_wake_notify(d->wake);
	pthread_mutex_unlock(&d->lock);
	mqttdns_put(d);
	return NULL;
}

struct mqttdns *mqttdns_start(const char *host, struct loop_wake *wake, int *err)
{
	struct mqttdns *d = calloc(1, sizeof *d);
	pthread_attr_t at;
	pthread_t th;
	int rc;

	if (!d || !(d->host = strdup(host))) {
		free(d);
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	d->refs = 2;
	d->wake = wake;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &at, mqttdns_thread, d);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		d->refs = 1;
		mqttdns_put(d);
		*err = -rc;
		return NULL;
	}
	return d;
}

int mqttdns_take(struct mqttdns *d, char ***addrs, size_t *n, char *why, size_t whylen)
{
	int rc = 1;
	pthread_mutex_lock(&d->lock);
	if (!d->done) {
		rc = 0;
	} else if (d->err) {
		snprintf(why, whylen, "cannot resolve %s: %s", d->host, gai_strerror(d->err));
		rc = -1;
	} else {
		*addrs = d->addrs;
		*n = d->naddrs;
		d->addrs = NULL;
		d->naddrs = 0;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void mqttdns_cancel(struct mqttdns *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->cancelled = true;
	pthread_mutex_unlock(&d->lock);
	mqttdns_put(d);
}
