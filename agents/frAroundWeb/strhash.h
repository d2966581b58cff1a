/* strhash: the string hash of frAroundWeb's hash tables (cache topics, relay request ids,
 * subscription filters): 64-bit FNV-1a, fast on short keys; the tables use its low bits. */
#ifndef WEB_STRHASH_H
#define WEB_STRHASH_H

#include <stddef.h>

static inline size_t strhash(const char *s)
{
	size_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

#endif
