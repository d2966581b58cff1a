/* strhash: the one string hash of fr's hash tables (frMhc's journal ids, frMhs's requests,
 * frAroundWeb's cache topics, relay request ids, subscription filters): 64-bit FNV-1a, fast on
 * short keys; the tables use its low bits. */
#ifndef FR_STRHASH_H
#define FR_STRHASH_H

#include <stddef.h>

static inline size_t strhash(const char *s)
{
	size_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

#endif
