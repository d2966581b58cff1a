/* keys: HKDF-SHA256 key derivation from the home secret, HMAC-SHA256 and random tokens. */
#include "keys.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "log.h"

#define KEYS_SALT "fr-v1"
/* OpenSSL's HKDF keeps info in a 1024-byte buffer; longer labels are a programming error. */
#define KEYS_INFO_MAX 1024
/* RFC 5869: at most 255 blocks of the hash output. */
#define KEYS_OUT_MAX (255 * 32)
#define KEYS_RANDOM_MAX 4096

static void keys_log_ssl(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof buf);
	else
		strcpy(buf, "unknown error");
	ERR_clear_error();
	log_warnx("keys: %s: %s", what, buf);
}

int keys_derive(const uint8_t secret[KEYS_SECRET_LEN], const char *label, const char *context,
		uint8_t *out, size_t outlen)
{
	unsigned char info[KEYS_INFO_MAX];
	size_t llen, clen, ilen;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int ret = -EIO;

	if (secret == NULL || label == NULL || out == NULL || outlen == 0 || outlen > KEYS_OUT_MAX)
		return -EINVAL;
	llen = strlen(label);
	clen = context ? strlen(context) : 0;
	if (llen + 1 + clen > sizeof info)
		return -EINVAL;
	memcpy(info, label, llen);
	info[llen] = 0x00;
	if (clen > 0)
		memcpy(info + llen + 1, context, clen);
	ilen = llen + 1 + clen;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL) {
		keys_log_ssl("fetch HKDF");
		goto fail;
	}
	ctx = EVP_KDF_CTX_new(kdf);
	if (ctx == NULL) {
		keys_log_ssl("HKDF context");
		goto fail;
	}
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret,
						 KEYS_SECRET_LEN);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)KEYS_SALT,
						 sizeof KEYS_SALT - 1);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, ilen);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, outlen, params) != 1) {
		keys_log_ssl("HKDF derive");
		goto fail;
	}
	ret = 0;
fail:
	OPENSSL_cleanse(info, sizeof info);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ret;
}

int keys_announce_key(const uint8_t secret[KEYS_SECRET_LEN], uint8_t key[KEYS_LEN])
{
	return keys_derive(secret, "fr announce", NULL, key, KEYS_LEN);
}

int keys_link_psk(const uint8_t secret[KEYS_SECRET_LEN], const char *ctl_id, uint8_t psk[KEYS_LEN])
{
	/* An empty id would make every controller's PSK the same as a context-less key. */
	if (ctl_id == NULL || ctl_id[0] == '\0')
		return -EINVAL;
	return keys_derive(secret, "fr link psk", ctl_id, psk, KEYS_LEN);
}

int keys_hmac(const uint8_t key[KEYS_LEN], const void *data, size_t len, uint8_t mac[32])
{
	unsigned int maclen = 0;

	if (key == NULL || mac == NULL || (data == NULL && len > 0))
		return -EINVAL;
	if (data == NULL)
		data = "";
	if (HMAC(EVP_sha256(), key, KEYS_LEN, data, len, mac, &maclen) == NULL || maclen != 32) {
		keys_log_ssl("HMAC-SHA256");
		return -EIO;
	}
	return 0;
}

bool keys_mac_equal(const uint8_t a[32], const uint8_t b[32])
{
	return CRYPTO_memcmp(a, b, 32) == 0;
}

int keys_random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[KEYS_RANDOM_MAX];
	size_t i;

	if (out == NULL || nbytes == 0 || nbytes > sizeof raw)
		return -EINVAL;
	if (RAND_bytes(raw, (int)nbytes) != 1) {
		keys_log_ssl("RAND_bytes");
		return -EIO;
	}
	for (i = 0; i < nbytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0x0f];
	}
	out[2 * nbytes] = '\0';
	OPENSSL_cleanse(raw, nbytes);
	return 0;
}
