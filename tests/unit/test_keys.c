/* test_keys: HKDF derivation against vectors computed outside fr, HMAC against RFC 4231. */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

/* Secret 00 01 .. 1f. Expected values computed twice, independently of this code:
 *   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:0001..1f -kdfopt salt:fr-v1
 *     -kdfopt hexinfo:<hex(label) 00 hex(context)> HKDF
 * and a 10-line Python RFC 5869 implementation on hmac/hashlib. */
static const char announce_hex[] =
	"0f5aa97a6f7e2415cfe321891c782c3fc9be085efa4fdaf2ac6cd8d931e7ac4e";
static const char psk_ctl1_hex[] =
	"9e8ad0658e7ec135791d6b1c33815bb7c8d88fca04a691781ccd567b72417d9a";
static const char psk_ctl2_hex[] =
	"d4bbd007745e280203c3113e824cd0d68e6b3c64fef87ddc14caa79167261201";
static const char test_ctx_64_hex[] =
	"b0d30bb236cedfd317ef44b1b18f44beecf63852610fa36f596996b781376171"
	"fc3395ea1246358a82409b06a3eea712135f54713187022ec5c9a8fdbcf46755";

static void secret_init(uint8_t s[KEYS_SECRET_LEN])
{
	int i;

	for (i = 0; i < KEYS_SECRET_LEN; i++)
		s[i] = (uint8_t)i;
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t i;

	ck_assert_uint_eq(strlen(hex), 2 * n);
	for (i = 0; i < n; i++) {
		unsigned int b;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
}

START_TEST(test_announce_key_vector)
{
	uint8_t s[32], k[32], want[32];

	secret_init(s);
	unhex(announce_hex, want, sizeof want);
	ck_assert_int_eq(keys_announce_key(s, k), 0);
	ck_assert_mem_eq(k, want, 32);
	/* NULL and empty context are the same derivation. */
	ck_assert_int_eq(keys_derive(s, "fr announce", "", k, 32), 0);
	ck_assert_mem_eq(k, want, 32);
	ck_assert_int_eq(keys_derive(s, "fr announce", NULL, k, 32), 0);
	ck_assert_mem_eq(k, want, 32);
}
END_TEST

START_TEST(test_link_psk_vector)
{
	uint8_t s[32], k1[32], k2[32], want[32], ann[32];

	secret_init(s);
	ck_assert_int_eq(keys_link_psk(s, "ctl-1", k1), 0);
	unhex(psk_ctl1_hex, want, sizeof want);
	ck_assert_mem_eq(k1, want, 32);
	ck_assert_int_eq(keys_link_psk(s, "ctl-2", k2), 0);
	unhex(psk_ctl2_hex, want, sizeof want);
	ck_assert_mem_eq(k2, want, 32);
	ck_assert(memcmp(k1, k2, 32) != 0);
	ck_assert_int_eq(keys_announce_key(s, ann), 0);
	ck_assert(memcmp(k1, ann, 32) != 0);
	ck_assert_int_eq(keys_link_psk(s, "", k1), -EINVAL);
	ck_assert_int_eq(keys_link_psk(s, NULL, k1), -EINVAL);
}
END_TEST

START_TEST(test_derive_long_and_distinct)
{
	uint8_t s[32], out[64], want[64], a[32], b[32];

	secret_init(s);
	unhex(test_ctx_64_hex, want, sizeof want);
	ck_assert_int_eq(keys_derive(s, "test label", "ctx", out, sizeof out), 0);
	ck_assert_mem_eq(out, want, 64);
	/* The 0x00 separator keeps label/context boundaries apart. */
	ck_assert_int_eq(keys_derive(s, "ab", "c", a, 32), 0);
	ck_assert_int_eq(keys_derive(s, "a", "bc", b, 32), 0);
	ck_assert(memcmp(a, b, 32) != 0);
	/* A different secret gives a different key. */
	s[31] ^= 1;
	ck_assert_int_eq(keys_derive(s, "test label", "ctx", a, 32), 0);
	ck_assert(memcmp(a, want, 32) != 0);
	ck_assert_int_eq(keys_derive(s, "x", NULL, a, 0), -EINVAL);
	ck_assert_int_eq(keys_derive(s, NULL, NULL, a, 32), -EINVAL);
}
END_TEST

/* RFC 4231 keys are shorter than 32 bytes; HMAC zero-pads a key to the 64-byte block, so the
 * key zero-padded to 32 bytes gives the same MAC. */
START_TEST(test_hmac_rfc4231)
{
	static const struct {
		size_t keylen;
		uint8_t keybyte;   /* 0: key is given in str_key */
		const char *str_key;
		const char *data;
		size_t datalen;
		uint8_t databyte;
		const char *mac;
	} tc[] = {
		{ 20, 0x0b, NULL, "Hi There", 8, 0,
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ 4, 0, "Jefe", "what do ya want for nothing?", 28, 0,
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
		{ 20, 0xaa, NULL, NULL, 50, 0xdd,
		  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
	};
	size_t i;

	for (i = 0; i < sizeof tc / sizeof tc[0]; i++) {
		uint8_t key[32] = { 0 }, mac[32], want[32], data[64];

		if (tc[i].str_key)
			memcpy(key, tc[i].str_key, tc[i].keylen);
		else
			memset(key, tc[i].keybyte, tc[i].keylen);
		if (tc[i].data)
			memcpy(data, tc[i].data, tc[i].datalen);
		else
			memset(data, tc[i].databyte, tc[i].datalen);
		unhex(tc[i].mac, want, 32);
		ck_assert_int_eq(keys_hmac(key, data, tc[i].datalen, mac), 0);
		ck_assert_mem_eq(mac, want, 32);
		ck_assert(keys_mac_equal(mac, want));
		mac[31] ^= 0x80;
		ck_assert(!keys_mac_equal(mac, want));
	}
	/* RFC 4231 test case 4: key 01..19 (25 bytes), data 50 x 0xcd. */
	{
		uint8_t key[32] = { 0 }, data[50], mac[32], want[32];

		for (i = 0; i < 25; i++)
			key[i] = (uint8_t)(i + 1);
		memset(data, 0xcd, sizeof data);
		unhex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", want, 32);
		ck_assert_int_eq(keys_hmac(key, data, sizeof data, mac), 0);
		ck_assert_mem_eq(mac, want, 32);
	}
}
END_TEST

START_TEST(test_hmac_empty)
{
	uint8_t key[32] = { 0 }, a[32], b[32];

	ck_assert_int_eq(keys_hmac(key, NULL, 0, a), 0);
	ck_assert_int_eq(keys_hmac(key, "", 0, b), 0);
	ck_assert_mem_eq(a, b, 32);
	ck_assert_int_eq(keys_hmac(key, NULL, 1, a), -EINVAL);
}
END_TEST

START_TEST(test_random_hex)
{
	char a[33], b[33], big[2 * 4096 + 1];
	size_t i;

	memset(a, 'X', sizeof a);
	ck_assert_int_eq(keys_random_hex(a, 16), 0);
	ck_assert_uint_eq(strlen(a), 32);
	for (i = 0; i < 32; i++)
		ck_assert(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
	ck_assert_int_eq(keys_random_hex(b, 16), 0);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(keys_random_hex(big, 4096), 0);
	ck_assert_uint_eq(strlen(big), 8192);
	ck_assert_int_eq(keys_random_hex(a, 0), -EINVAL);
	ck_assert_int_eq(keys_random_hex(big, 4097), -EINVAL);
}
END_TEST

static Suite *keys_suite(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_announce_key_vector);
	tcase_add_test(tc, test_link_psk_vector);
	tcase_add_test(tc, test_derive_long_and_distinct);
	tcase_add_test(tc, test_hmac_rfc4231);
	tcase_add_test(tc, test_hmac_empty);
	tcase_add_test(tc, test_random_hex);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(keys_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
