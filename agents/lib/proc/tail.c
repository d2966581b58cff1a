/* tail: the last bytes of a stream in a ring; see tail.h. */
#include "tail.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int tail_init(struct tail *t, size_t cap)
{
	memset(t, 0, sizeof *t);
	t->cap = cap;
	t->buf = malloc(cap + 1);
	if (!t->buf)
		return -ENOMEM;
	t->buf[0] = '\0';
	return 0;
}

void tail_append(struct tail *s, const char *p, size_t n)
{
	if (n >= s->cap) {
		if (n > s->cap || s->len > 0)
			s->truncated = true;
		memcpy(s->buf, p + n - s->cap, s->cap);
		s->head = 0;
		s->len = s->cap;
		return;
	}
	size_t pos = (s->head + s->len) % s->cap;
	size_t first = n < s->cap - pos ? n : s->cap - pos;
	memcpy(s->buf + pos, p, first);
	memcpy(s->buf, p + first, n - first);
	if (s->len + n > s->cap) {
		s->truncated = true;
		s->head = (s->head + s->len + n - s->cap) % s->cap;
		s->len = s->cap;
	} else {
		s->len += n;
	}
}

static void mem_reverse(char *p, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		char c = p[i];
		p[i] = p[n - 1 - i];
		p[n - 1 - i] = c;
	}
}

/* Rotates the ring in place so the tail starts at buf[0]; head > 0 implies a full ring. */
const char *tail_str(struct tail *s)
{
	if (!s->buf)
		return NULL;
	if (s->head > 0) {
		mem_reverse(s->buf, s->head);
		mem_reverse(s->buf + s->head, s->cap - s->head);
		mem_reverse(s->buf, s->cap);
		s->head = 0;
	}
	s->buf[s->len] = '\0';
	return s->buf;
}

size_t tail_len(const struct tail *t) { return t->len; }

bool tail_truncated(const struct tail *t) { return t->truncated; }

void tail_free(struct tail *t)
{
	free(t->buf);
	t->buf = NULL;
}
