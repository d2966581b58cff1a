/* fuzz_announce: announce_parse on raw datagrams, and (so the fuzzer gets past the MAC) on each
 * input line signed as a body, fed through check_time and a small replay table. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "announce.h"
#include "keys.h"

/* The fixed fuzzing key: bytes 0x00..0x1f. The seed corpus is signed with it. */
static const uint8_t fuzz_key[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dgram[ANNOUNCE_MAX + 64];
static char again[ANNOUNCE_MAX + 64];

/* Compared as printed text: cJSON_Compare mismatches objects that repeat a key. */
static bool same_json(const cJSON *x, const cJSON *y)
{
	char *px = cJSON_PrintUnformatted(x), *py = cJSON_PrintUnformatted(y);
	bool same = px == NULL || py == NULL || strcmp(px, py) == 0;

	cJSON_free(px);
	cJSON_free(py);
	return same;
}

static void check_ok(struct announce *a, struct announce_replay *r)
{
	struct announce b;
	size_t len;
	int ret;

	(void)announce_check_time(a, 1700000000, 30);
	if (announce_replay_check(r, a) == ANNOUNCE_OK) {
		/* Just recorded and most recently updated: the same announce is a replay. */
		if (announce_replay_check(r, a) != ANNOUNCE_EREPLAY)
			abort();
	}
	/* What parse accepts, build must accept and reproduce (unless re-encoding grew it). */
	ret = announce_build(a, fuzz_key, again, sizeof again, &len);
	if (ret == ANNOUNCE_ETOOBIG)
		return;
	if (ret != ANNOUNCE_OK)
		abort();
	if (announce_parse(again, len, fuzz_key, &b, NULL, 0) != ANNOUNCE_OK)
		abort();
	if (strcmp(a->id, b.id) != 0 || strcmp(a->name, b.name) != 0 || a->port != b.port ||
	    strcmp(a->boot, b.boot) != 0 || a->seq != b.seq || a->ts != b.ts ||
	    strcmp(a->version, b.version) != 0 || !same_json(a->actions, b.actions) ||
	    !same_json(a->sensors, b.sensors))
		abort();
	announce_clear(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct announce_replay *r;
	struct announce a;
	char why[160];
	const uint8_t *line, *end = data + size;

	r = announce_replay_new(2);
	if (r == NULL)
		return 0;
	if (announce_parse(data, size, fuzz_key, &a, why, sizeof why) == ANNOUNCE_OK) {
		check_ok(&a, r);
		announce_clear(&a);
	}
	/* Each line is a body: sign it so the JSON validation and replay logic get fuzzed. */
	for (line = data; line < end;) {
		const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
		size_t blen = (nl ? nl : end) - line;
		uint8_t mac[32];
		size_t i;

		if (ANNOUNCE_HEADER_LEN + blen <= sizeof dgram &&
		    keys_hmac(fuzz_key, line, blen, mac) == 0) {
			static const char hex[] = "0123456789abcdef";

			memcpy(dgram, "fr1 ", 4);
			for (i = 0; i < 32; i++) {
				dgram[4 + 2 * i] = hex[mac[i] >> 4];
				dgram[5 + 2 * i] = hex[mac[i] & 0x0f];
			}
			dgram[68] = ' ';
			memcpy(dgram + ANNOUNCE_HEADER_LEN, line, blen);
			if (announce_parse(dgram, ANNOUNCE_HEADER_LEN + blen, fuzz_key, &a, why,
					   sizeof why) == ANNOUNCE_OK) {
				check_ok(&a, r);
				announce_clear(&a);
			}
		}
		line = nl ? nl + 1 : end;
	}
	announce_replay_free(r);
	return 0;
}
