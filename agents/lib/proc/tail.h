/* tail: the last cap bytes of a byte stream -- a child's stdout or stderr, whose tail is what a
 * result reports -- kept in a ring so a chatty child costs no more memory than cap. */
#ifndef FR_TAIL_H
#define FR_TAIL_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded by its owner; only this module touches the fields. */
struct tail {
	char *buf;         /* ring of cap bytes, +1 for the final NUL; owned (tail_free) */
	size_t cap, head, len;
	bool truncated;    /* bytes were dropped from the front */
};

/* 0, or -ENOMEM. */
int tail_init(struct tail *t, size_t cap);
void tail_append(struct tail *t, const char *p, size_t n);
/* The kept bytes, NUL-terminated, from buf[0] (the ring is rotated in place); borrowed, valid
 * until the next tail_append or tail_free. NULL if tail_init never succeeded. */
const char *tail_str(struct tail *t);
size_t tail_len(const struct tail *t);
bool tail_truncated(const struct tail *t);
void tail_free(struct tail *t);

#endif
