/* backoff: the one reconnect delay of fr -- a dial to the home server, a redial of a
 * controller, an MQTT reconnect. "Full jitter" (AWS architecture blog, "Exponential backoff and
 * jitter"): uniform between the floor and a cap that doubles with each failure up to max, so a
 * house of agents does not come back in lockstep after a restart, and the floor stops a tight
 * loop. */
#ifndef FR_BACKOFF_H
#define FR_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint64_t min_ms, max_ms;   /* set by the owner; max_ms < min_ms counts as min_ms */
	unsigned failures;         /* since the last backoff_reset */
};

/* The delay before the next attempt, in [min_ms, min(min_ms << failures, max_ms)], picked by
 * rnd (any random number: the caller's source); counts one more failure. */
uint64_t backoff_next(struct backoff *b, uint64_t rnd);
/* An attempt succeeded: the next delay starts from the floor again. */
void backoff_reset(struct backoff *b);
unsigned backoff_failures(const struct backoff *b);

#endif
