/* fuzz_mqtttunnel: what a (hostile) broker sends to the WebSocket tunnel -- the HTTP upgrade
 * response and the frames after it -- fed whole and in small pieces: both must agree, and
 * never more bytes reach libmosquitto than the broker sent. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtttunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out1[1 << 17], out2[1 << 17];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool c1, c2;
	size_t n1 = mqtttunnel_parse_broker(data, size, size ? size : 1, out1, sizeof out1, &c1);
	/* Byte by byte where that stays cheap; larger inputs in odd-sized pieces. */
	size_t n2 = mqtttunnel_parse_broker(data, size, size <= 2048 ? 1 : 7, out2, sizeof out2, &c2);

	if (n1 > size)
		abort();
	/* Whole or byte by byte, the same stream comes out (as far as both got). */
	size_t m = n1 < n2 ? n1 : n2;
	if (m > sizeof out1)
		m = sizeof out1;
	if (memcmp(out1, out2, m) != 0)
		abort();
	if (!c1 && !c2 && n1 != n2)
		abort();
	return 0;
}
