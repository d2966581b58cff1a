/* fuzz_frame: the frame decoder fed in input-chosen chunk sizes, then each body through the
 * same checks the link makes (UTF-8, cJSON, object with a string "type").
 * Input: byte 0 = control (bits 0-2: how many chunk-size bytes follow, minus one; bit 3: use
 * a 1024-byte max instead of the default), then the chunk sizes (each 1..256), then the stream.
 * Longer run: build-x-fuzz/bin/fuzz_frame -max_len=70000 tests/fuzz/corpus/fuzz_frame */
#include "frame.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_body(const char *body, size_t len, size_t max)
{
	if (len == 0 || len > max || body[len] != '\0')
		abort();
	/* Encoding the body again must give back the same body in one push. */
	uint8_t *enc;
	size_t enclen, used, len2;
	struct frame_dec d;
	if (frame_encode(body, len, max, &enc, &enclen) != 0)
		abort();
	frame_dec_init(&d, max);
	if (frame_dec_push(&d, enc, enclen, &used) != FRAME_READY || used != enclen)
		abort();
	char *again = frame_dec_take(&d, &len2);
	if (!again || len2 != len || memcmp(again, body, len) != 0)
		abort();
	free(again);
	free(enc);
	frame_dec_free(&d);

	if (strlen(body) != len || !frame_utf8_valid(body, len))
		return;
	cJSON *m = cJSON_ParseWithOpts(body, NULL, 1);
	if (!m)
		return;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
	if (cJSON_IsObject(m) && cJSON_IsString(type) && type->valuestring) {
		volatile size_t tl = strlen(type->valuestring);
		(void)tl;
	}
	cJSON_Delete(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t nsizes = (data[0] & 7) + 1;
	size_t max = (data[0] & 8) ? 1024 : FRAME_MAX_DEFAULT;
	if (size < 1 + nsizes)
		return 0;
	const uint8_t *sizes = data + 1;
	const uint8_t *p = data + 1 + nsizes;
	size_t left = size - 1 - nsizes, k = 0;
	struct frame_dec d;

	frame_dec_init(&d, max);
	while (left > 0) {
		size_t chunk = (size_t)sizes[k++ % nsizes] + 1;
		if (chunk > left)
			chunk = left;
		size_t off = 0;
		while (off < chunk) {
			size_t used;
			int rc = frame_dec_push(&d, p + off, chunk - off, &used);
			if (used > chunk - off)
				abort();
			off += used;
			if (rc == FRAME_READY) {
				size_t len;
				char *body = frame_dec_take(&d, &len);
				if (!body)
					abort();
				fuzz_check_body(body, len, max);
				free(body);
				continue;
			}
			if (rc == FRAME_MORE) {
				if (off != chunk)
					abort();
				continue;
			}
			/* Errors are sticky and consume nothing more. */
			size_t used2;
			if (frame_dec_push(&d, p, left, &used2) != rc || used2 != 0)
				abort();
			if (rc == FRAME_ETOOBIG && frame_dec_announced(&d) <= max)
				abort();
			if (rc == FRAME_EEMPTY && frame_dec_announced(&d) != 0)
				abort();
			goto out;
		}
		p += chunk;
		left -= chunk;
	}
out:
	frame_dec_free(&d);
	return 0;
}
