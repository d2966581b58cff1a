/* backoff: the reconnect delay; see backoff.h. */
#include "backoff.h"

uint64_t backoff_next(struct backoff *b, uint64_t rnd)
{
	uint64_t min = b->min_ms, max = b->max_ms > min ? b->max_ms : min;
	unsigned shift = b->failures < 32 ? b->failures : 32;
	uint64_t cap = min << shift;

	/* Past max, or shifted out of 64 bits. */
	if (cap > max || (cap >> shift) != min)
		cap = max;
	if (b->failures < ~0u)
		b->failures++;
	uint64_t span = cap - min;
	return min + (span == UINT64_MAX ? rnd : rnd % (span + 1));
}

void backoff_reset(struct backoff *b) { b->failures = 0; }

unsigned backoff_failures(const struct backoff *b) { return b->failures; }
