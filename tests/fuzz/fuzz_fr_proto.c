/* fuzz_fr_proto: the device side of the serial display protocol (the reference sketch's
 * fr_proto.c) on arbitrary byte streams, fed whole and split at a point taken from the input:
 * both must end in the same screen, every string stays terminated inside its buffer, and the
 * ASCII-font conversion of each stays within its bounds. Seeds: captures of a real frMhs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fr_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fr_proto whole, split;

static void check_state(const struct fr_proto_state *s)
{
	const char *f[] = { s->server, s->home, s->cmd, s->text };
	char ascii[FR_PROTO_LINE_MAX];
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (strnlen(f[i], FR_PROTO_LINE_MAX) >= FR_PROTO_LINE_MAX)
			abort();
		if (fr_proto_ascii(ascii, sizeof ascii, f[i]) > strlen(f[i]))
			abort();
	}
	if (s->online < 0 || s->total < 0)
		abort();
}

static int same(const struct fr_proto_state *a, const struct fr_proto_state *b)
{
	return !strcmp(a->server, b->server) && !strcmp(a->home, b->home) &&
	       !strcmp(a->cmd, b->cmd) && !strcmp(a->text, b->text) &&
	       a->broker_up == b->broker_up && a->online == b->online && a->total == b->total &&
	       a->stopped == b->stopped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut = size ? data[0] * size / 256 : 0;
	fr_proto_init(&whole);
	fr_proto_init(&split);
	fr_proto_feed(&whole, (const char *)data, size, 0);
	fr_proto_feed(&split, (const char *)data, cut, 0);
	fr_proto_feed(&split, (const char *)data + cut, size - cut, 0);
	check_state(&whole.shown);
	check_state(&whole.cur);
	if (whole.len >= FR_PROTO_LINE_MAX || !same(&whole.shown, &split.shown) ||
	    whole.frames != split.frames || whole.rejected != split.rejected ||
	    whole.syncs != split.syncs)
		abort();
	return 0;
}
