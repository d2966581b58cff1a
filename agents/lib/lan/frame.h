/* frame: codec of the LAN link's frames, a 4-byte big-endian length N (1..max) followed by N
 * bytes of one UTF-8 JSON object. Pure (no I/O) so it can be fuzzed on its own. */
#ifndef FR_FRAME_H
#define FR_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_DEFAULT 65536
#define FRAME_HDR_LEN 4

enum {
	FRAME_MORE = 0,     /* everything consumed, need more bytes */
	FRAME_READY = 1,    /* a whole body waits in frame_dec_take */
	FRAME_ETOOBIG = -1, /* header announced more than max */
	FRAME_EEMPTY = -2,  /* header announced 0 */
	FRAME_ENOMEM = -3,
};

/* Resumable decoder state; lives inside its owner's struct. Fields are private. */
struct frame_dec {
	size_t max;
	uint8_t hdr[FRAME_HDR_LEN];
	size_t hdr_got;
	uint32_t want;  /* body length from the last complete header */
	size_t got;
	char *body;     /* want + 1 bytes once the header passed the checks */
	int state;      /* FRAME_MORE, FRAME_READY or a sticky error */
};

/* max 0 means FRAME_MAX_DEFAULT. */
void frame_dec_init(struct frame_dec *d, size_t max);
/* Frees a partial body; d may be initialised again afterwards. */
void frame_dec_free(struct frame_dec *d);
/* Consumes bytes from buf; *used tells how many. READY: a whole body is available through
 * frame_dec_take (call it before pushing more: until then push consumes nothing and returns
 * READY again). MORE: all len bytes consumed. Errors are sticky: the length is checked from the
 * header alone, before anything is allocated, and the stream cannot be resynchronised. */
int frame_dec_push(struct frame_dec *d, const void *buf, size_t len, size_t *used);
/* Returns the malloc'd NUL-terminated body (the caller owns it and frees it) and its length
 * in *len, and resets for the next frame; NULL if no frame is READY. The body may itself
 * contain NUL bytes: compare strlen with *len. */
char *frame_dec_take(struct frame_dec *d, size_t *len);
/* Length announced by the last complete header (for error messages). */
uint32_t frame_dec_announced(const struct frame_dec *d);

/* Writes header+body into a malloc'd buffer (the caller owns *out). Returns 0, -EINVAL if len
 * is 0, -EMSGSIZE if len > max (0 = FRAME_MAX_DEFAULT), -ENOMEM. */
int frame_encode(const char *body, size_t len, size_t max, uint8_t **out, size_t *outlen);
/* Writes the header of a len-byte body (len <= UINT32_MAX) into hdr. */
void frame_put_header(uint8_t hdr[FRAME_HDR_LEN], uint32_t len);

/* True if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). cJSON does not check this itself. */
bool frame_utf8_valid(const char *s, size_t len);

#endif
