/* frame: length-prefixed JSON frame codec; see frame.h. */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_dec_init(struct frame_dec *d, size_t max)
{
	memset(d, 0, sizeof *d);
	d->max = max ? max : FRAME_MAX_DEFAULT;
	d->state = FRAME_MORE;
}

void frame_dec_free(struct frame_dec *d)
{
	free(d->body);
	d->body = NULL;
	d->hdr_got = 0;
	d->got = 0;
}

uint32_t frame_dec_announced(const struct frame_dec *d)
{
	return d->want;
}

int frame_dec_push(struct frame_dec *d, const void *buf, size_t len, size_t *used)
{
	const uint8_t *p = buf;
	size_t off = 0;

	*used = 0;
	if (d->state != FRAME_MORE)
		return d->state;
	while (off < len) {
		if (d->hdr_got < FRAME_HDR_LEN) {
			size_t n = FRAME_HDR_LEN - d->hdr_got;
			if (n > len - off)
				n = len - off;
			memcpy(d->hdr + d->hdr_got, p + off, n);
			d->hdr_got += n;
			off += n;
			if (d->hdr_got < FRAME_HDR_LEN)
				break;
			d->want = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 |
				  (uint32_t)d->hdr[2] << 8 | d->hdr[3];
			/* Judge the length before allocating anything (cf. CVE-2023-0809). */
			if (d->want == 0)
				d->state = FRAME_EEMPTY;
			else if (d->want > d->max)
				d->state = FRAME_ETOOBIG;
			else if (!(d->body = malloc((size_t)d->want + 1)))
				d->state = FRAME_ENOMEM;
			if (d->state != FRAME_MORE) {
				*used = off;
				return d->state;
			}
			d->got = 0;
			continue;
		}
		size_t n = d->want - d->got;
		if (n > len - off)
			n = len - off;
		memcpy(d->body + d->got, p + off, n);
		d->got += n;
		off += n;
		if (d->got == d->want) {
			d->body[d->want] = '\0';
			d->state = FRAME_READY;
			break;
		}
	}
	*used = off;
	return d->state;
}

char *frame_dec_take(struct frame_dec *d, size_t *len)
{
	if (d->state != FRAME_READY)
		return NULL;
	char *b = d->body;
	if (len)
		*len = d->want;
	d->body = NULL;
	d->hdr_got = 0;
	d->got = 0;
	d->state = FRAME_MORE;
	return b;
}

void frame_put_header(uint8_t hdr[FRAME_HDR_LEN], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

int frame_encode(const char *body, size_t len, size_t max, uint8_t **out, size_t *outlen)
{
	if (!max)
		max = FRAME_MAX_DEFAULT;
	if (len == 0)
		return -EINVAL;
	if (len > max || len > UINT32_MAX)
		return -EMSGSIZE;
	uint8_t *b = malloc(FRAME_HDR_LEN + len);
	if (!b)
		return -ENOMEM;
	frame_put_header(b, (uint32_t)len);
	memcpy(b + FRAME_HDR_LEN, body, len);
	*out = b;
	*outlen = FRAME_HDR_LEN + len;
	return 0;
}

bool frame_utf8_valid(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s, *end = p + len;

	while (p < end) {
		uint8_t c = *p;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t n;
		uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* UTF-16 surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return false;
		}
		if ((size_t)(end - p) <= n)
			return false;
		if (p[1] < lo || p[1] > hi)
			return false;
		for (size_t i = 2; i <= n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n + 1;
	}
	return true;
}
