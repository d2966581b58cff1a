/* keys: every key fr uses is derived from the home's one 32-byte secret (HKDF-SHA256, OpenSSL 3),
 * plus HMAC-SHA256, constant-time MAC comparison and random hex tokens. */
#ifndef FR_KEYS_H
#define FR_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS_SECRET_LEN 32
#define KEYS_LEN 32

/* HKDF-SHA256 (RFC 5869) with salt "fr-v1" and info = label || 0x00 || context. The 0x00
 * separator keeps ("ab", "c") and ("a", "bc") apart; context may be NULL or "" (same result).
 * outlen 1..8160. Returns 0, -EINVAL (bad arguments) or -EIO (OpenSSL failed; logged). */
int keys_derive(const uint8_t secret[KEYS_SECRET_LEN], const char *label, const char *context,
		uint8_t *out, size_t outlen);
/* Key of the UDP announce MAC: label "fr announce", no context. Returns as keys_derive. */
int keys_announce_key(const uint8_t secret[KEYS_SECRET_LEN], uint8_t key[KEYS_LEN]);
/* Pre-shared key of one controller's TCP link: label "fr link psk", context = ctl_id
 * (must be non-empty). Returns as keys_derive. */
int keys_link_psk(const uint8_t secret[KEYS_SECRET_LEN], const char *ctl_id, uint8_t psk[KEYS_LEN]);
/* HMAC-SHA256 of data (NULL allowed when len is 0). Returns 0 or -EIO (logged). */
int keys_hmac(const uint8_t key[KEYS_LEN], const void *data, size_t len, uint8_t mac[32]);
/* Constant-time comparison of two 32-byte MACs. */
bool keys_mac_equal(const uint8_t a[32], const uint8_t b[32]);
/* Writes 2*nbytes lowercase hex chars of RAND_bytes output plus a NUL: out must hold
 * 2*nbytes+1 bytes. Returns 0, -EINVAL (nbytes 0 or > 4096) or -EIO (logged). */
int keys_random_hex(char *out, size_t nbytes);

#endif
