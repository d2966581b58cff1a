/* test_announce: the announce codec of LAN protocol v1: round trip, every rejection reason,
 * the clock window and the replay guard. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "announce.h"
#include "keys.h"

static uint8_t key[32];
static uint8_t other_key[32];

static void keys_init(void)
{
	int i;

	for (i = 0; i < 32; i++) {
		key[i] = (uint8_t)(0x40 + i);
		other_key[i] = (uint8_t)(0x41 + i);
	}
}

static cJSON *named_list(const char *n1, const char *n2)
{
	cJSON *arr = cJSON_CreateArray();
	cJSON *o;

	ck_assert_ptr_nonnull(arr);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", n1);
	cJSON_AddStringToObject(o, "kind", "extra");
	cJSON_AddItemToArray(arr, o);
	if (n2) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", n2);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

/* A valid announce; the caller announce_clear()s it. */
static void fill_valid(struct announce *a)
{
	memset(a, 0, sizeof *a);
	strcpy(a->id, "kitchen-1_A");
	strcpy(a->name, "Kitchen \"controller\" \xc3\xa9");
	a->port = 7341;
	strcpy(a->boot, "0123456789abcdef0123456789abcdef");
	a->seq = 5;
	a->ts = 1700000000;
	strcpy(a->version, "0.1.0");
	a->actions = named_list("light on", "light off");
	a->sensors = named_list("temp", NULL);
}

/* Frames body as a datagram signed with k: the tests craft bodies the builder refuses. */
static size_t sign_body(const char *body, size_t blen, const uint8_t *k, char *buf, size_t cap)
{
	uint8_t mac[32];
	size_t i;

	ck_assert_uint_le(ANNOUNCE_HEADER_LEN + blen, cap);
	ck_assert_int_eq(keys_hmac(k, body, blen, mac), 0);
	memcpy(buf, "fr1 ", 4);
	for (i = 0; i < 32; i++)
		snprintf(buf + 4 + 2 * i, 3, "%02x", mac[i]);
	buf[68] = ' ';
	memcpy(buf + ANNOUNCE_HEADER_LEN, body, blen);
	return ANNOUNCE_HEADER_LEN + blen;
}

/* Body of a valid announce as a cJSON tree, for mutation. */
static cJSON *valid_body(void)
{
	struct announce a;
	char buf[ANNOUNCE_MAX + 1];
	size_t len;
	cJSON *j;

	fill_valid(&a);
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_OK);
	announce_clear(&a);
	j = cJSON_ParseWithLength(buf + ANNOUNCE_HEADER_LEN, len - ANNOUNCE_HEADER_LEN);
	ck_assert_ptr_nonnull(j);
	return j;
}

/* Signs j, parses it and checks the result code and that why contains want_why. */
static void expect_json(cJSON *j, int want, const char *want_why)
{
	char buf[ANNOUNCE_MAX + 1], why[160];
	char *body = cJSON_PrintUnformatted(j);
	struct announce out;
	size_t len;
	int ret;

	ck_assert_ptr_nonnull(body);
	len = sign_body(body, strlen(body), key, buf, sizeof buf);
	ret = announce_parse(buf, len, key, &out, why, sizeof why);
	ck_assert_msg(ret == want, "body %s: got %d (%s: %s), want %d", body, ret,
		      announce_strerror(ret), why, want);
	if (want_why)
		ck_assert_msg(strstr(why, want_why) != NULL, "body %s: why '%s' lacks '%s'",
			      body, why, want_why);
	if (ret != ANNOUNCE_OK) {
		ck_assert_ptr_null(out.actions);
		ck_assert_ptr_null(out.sensors);
	}
	announce_clear(&out);
	cJSON_free(body);
}

/* Replaces (or adds) field in a valid body with value, expects want. Takes value. */
static void expect_field(const char *field, cJSON *value, int want, const char *want_why)
{
	cJSON *j = valid_body();

	if (cJSON_GetObjectItemCaseSensitive(j, field))
		cJSON_ReplaceItemInObjectCaseSensitive(j, field, value);
	else
		cJSON_AddItemToObject(j, field, value);
	expect_json(j, want, want_why);
	cJSON_Delete(j);
}

static void expect_raw(const void *buf, size_t len, const uint8_t *k, int want,
		       const char *want_why)
{
	struct announce out;
	char why[160];
	int ret;

	ret = announce_parse(buf, len, k, &out, why, sizeof why);
	ck_assert_msg(ret == want, "got %d (%s: %s), want %d", ret, announce_strerror(ret), why,
		      want);
	if (want_why)
		ck_assert_msg(strstr(why, want_why) != NULL, "why '%s' lacks '%s'", why, want_why);
	announce_clear(&out);
}

static size_t build_valid(char *buf, size_t cap)
{
	struct announce a;
	size_t len;

	fill_valid(&a);
	ck_assert_int_eq(announce_build(&a, key, buf, cap, &len), ANNOUNCE_OK);
	announce_clear(&a);
	return len;
}

START_TEST(test_round_trip)
{
	struct announce a, b;
	char buf[ANNOUNCE_MAX + 1], why[128];
	uint8_t mac[32];
	size_t len, i;

	fill_valid(&a);
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_OK);
	ck_assert_uint_eq(strlen(buf), len);
	/* The wire format, checked independently of the parser. */
	ck_assert(memcmp(buf, "fr1 ", 4) == 0);
	for (i = 4; i < 68; i++)
		ck_assert(strchr("0123456789abcdef", buf[i]) != NULL);
	ck_assert_int_eq(buf[68], ' ');
	ck_assert_int_eq(buf[69], '{');
	ck_assert_int_eq(keys_hmac(key, buf + 69, len - 69, mac), 0);
	for (i = 0; i < 32; i++) {
		char h[3];

		snprintf(h, sizeof h, "%02x", mac[i]);
		ck_assert(memcmp(buf + 4 + 2 * i, h, 2) == 0);
	}
	ck_assert_ptr_nonnull(strstr(buf, "\"v\":1,\"type\":\"announce\""));

	ck_assert_int_eq(announce_parse(buf, len, key, &b, why, sizeof why), ANNOUNCE_OK);
	ck_assert_int_eq(b.v, 1);
	ck_assert_str_eq(b.id, a.id);
	ck_assert_str_eq(b.name, a.name);
	ck_assert_uint_eq(b.port, a.port);
	ck_assert_str_eq(b.boot, a.boot);
	ck_assert_uint_eq(b.seq, a.seq);
	ck_assert_int_eq(b.ts, a.ts);
	ck_assert_str_eq(b.version, a.version);
	ck_assert(cJSON_Compare(a.actions, b.actions, 1));
	ck_assert(cJSON_Compare(a.sensors, b.sensors, 1));
	ck_assert_int_eq(cJSON_GetArraySize(b.actions), 2);
	announce_clear(&b);
	ck_assert_ptr_null(b.actions);
	announce_clear(&b);   /* twice is harmless */

	/* Extremes of the integer ranges survive the trip exactly. */
	a.seq = (uint64_t)ANNOUNCE_INT_MAX;
	a.ts = -ANNOUNCE_INT_MAX;
	a.port = 65535;
	cJSON_Delete(a.actions);
	a.actions = NULL;   /* sent as [] */
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_OK);
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":9007199254740991"));
	ck_assert_int_eq(announce_parse(buf, len, key, &b, NULL, 0), ANNOUNCE_OK);
	ck_assert_uint_eq(b.seq, (uint64_t)ANNOUNCE_INT_MAX);
	ck_assert_int_eq(b.ts, -ANNOUNCE_INT_MAX);
	ck_assert_uint_eq(b.port, 65535);
	ck_assert_int_eq(cJSON_GetArraySize(b.actions), 0);
	announce_clear(&b);
	announce_clear(&a);
}
END_TEST

START_TEST(test_build_rejects)
{
	struct announce a;
	char buf[ANNOUNCE_MAX + 1];
	size_t len;

	fill_valid(&a);
	strcpy(a.id, "has space");
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	strcpy(a.id, "");
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	strcpy(a.id, "ok");
	a.port = 0;
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	a.port = 1;
	a.seq = 0;
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	a.seq = (uint64_t)ANNOUNCE_INT_MAX + 1;
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	a.seq = 1;
	strcpy(a.boot, "0123456789ABCDEF0123456789abcdef");
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	strcpy(a.boot, "0123456789abcdef0123456789abcdef");
	a.version[0] = '\0';
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	strcpy(a.version, "1");
	a.name[0] = '\0';
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	strcpy(a.name, "n");
	cJSON_AddItemToArray(a.sensors, cJSON_CreateNumber(3));
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_EFIELD);
	cJSON_DeleteItemFromArray(a.sensors, 1);
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_OK);
	/* cap must leave room for the NUL. */
	ck_assert_int_eq(announce_build(&a, key, buf, len, &len), ANNOUNCE_ETOOBIG);
	ck_assert_int_eq(announce_build(&a, key, buf, len + 1, &len), ANNOUNCE_OK);
	announce_clear(&a);
}
END_TEST

START_TEST(test_too_big)
{
	struct announce a;
	static char buf[2 * ANNOUNCE_MAX];
	char pad[200];
	cJSON *j;
	char *body;
	size_t len, blen;
	int i;

	fill_valid(&a);
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	/* 50 actions with 200-byte names: over 8192 even with a big enough buffer. */
	cJSON_Delete(a.actions);
	a.actions = cJSON_CreateArray();
	for (i = 0; i < 50; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", pad);
		cJSON_AddItemToArray(a.actions, o);
	}
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_ETOOBIG);
	announce_clear(&a);

	/* Parse: exactly ANNOUNCE_MAX is fine, one byte more is not (checked before the MAC). */
	j = valid_body();
	body = cJSON_PrintUnformatted(j);
	blen = strlen(body);
	cJSON_free(body);
	{
		size_t padlen = ANNOUNCE_MAX - ANNOUNCE_HEADER_LEN - blen - strlen(",\"pad\":\"\"");
		char *big = malloc(padlen + 1);

		memset(big, 'p', padlen);
		big[padlen] = '\0';
		cJSON_AddStringToObject(j, "pad", big);
		free(big);
	}
	body = cJSON_PrintUnformatted(j);
	len = sign_body(body, strlen(body), key, buf, sizeof buf);
	ck_assert_uint_eq(len, ANNOUNCE_MAX);
	expect_raw(buf, len, key, ANNOUNCE_OK, NULL);
	expect_raw(buf, len + 1, key, ANNOUNCE_ETOOBIG, "8193 bytes");
	cJSON_free(body);
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_framing)
{
	char buf[ANNOUNCE_MAX + 1], bad[ANNOUNCE_MAX + 1];
	size_t len = build_valid(buf, sizeof buf);

	expect_raw(buf, 0, key, ANNOUNCE_EFORMAT, "shorter");
	expect_raw(NULL, 0, key, ANNOUNCE_EFORMAT, "shorter");
	expect_raw(buf, 3, key, ANNOUNCE_EFORMAT, "shorter");
	expect_raw(buf, 40, key, ANNOUNCE_EFORMAT, "shorter");
	/* Header but no body. */
	expect_raw(buf, ANNOUNCE_HEADER_LEN, key, ANNOUNCE_EFORMAT, "shorter");
	/* A truncated body fails the MAC. */
	expect_raw(buf, ANNOUNCE_HEADER_LEN + 1, key, ANNOUNCE_EMAC, NULL);
	expect_raw(buf, len - 1, key, ANNOUNCE_EMAC, NULL);

	memcpy(bad, buf, len);
	bad[2] = '2';
	expect_raw(bad, len, key, ANNOUNCE_EFORMAT, "prefix");
	memcpy(bad, "FR1 ", 4);
	expect_raw(bad, len, key, ANNOUNCE_EFORMAT, "prefix");
	memcpy(bad, "fr1\t", 4);
	expect_raw(bad, len, key, ANNOUNCE_EFORMAT, "prefix");

	memcpy(bad, buf, len);
	bad[10] = 'g';
	expect_raw(bad, len, key, ANNOUNCE_EFORMAT, "hex");
	memcpy(bad, buf, len);
	/* Upper case hex is not the wire format. */
	bad[67] = (bad[67] >= 'a') ? (char)(bad[67] - 'a' + 'A') : 'A';
	expect_raw(bad, len, key, ANNOUNCE_EFORMAT, "hex");
	memcpy(bad, buf, len);
	bad[68] = '\t';
	expect_raw(bad, len, key, ANNOUNCE_EFORMAT, "space");
	/* A 63-digit mac shifts the space. */
	memcpy(bad, buf, 67);
	memcpy(bad + 67, buf + 68, len - 68);
	expect_raw(bad, len - 1, key, ANNOUNCE_EFORMAT, NULL);
}
END_TEST

START_TEST(test_mac)
{
	char buf[ANNOUNCE_MAX + 1], bad[ANNOUNCE_MAX + 1];
	size_t len = build_valid(buf, sizeof buf), i;

	expect_raw(buf, len, key, ANNOUNCE_OK, NULL);
	expect_raw(buf, len, other_key, ANNOUNCE_EMAC, "mac");
	/* Any flipped bit of the body or the mac. */
	for (i = 4; i < len; i++) {
		if (i == 68)
			continue;
		memcpy(bad, buf, len);
		if (i < 68)
			bad[i] = bad[i] == '0' ? '1' : '0';
		else
			bad[i] ^= 0x01;
		expect_raw(bad, len, key, ANNOUNCE_EMAC, NULL);
	}
}
END_TEST

START_TEST(test_json)
{
	static const char *const bodies[] = {
		"not json at all", "{", "{\"v\":1", "[1,2,3]", "\"announce\"", "42", "null",
		"{\"v\":1} trailing", "{\"v\":1}{\"v\":1}",
	};
	char buf[ANNOUNCE_MAX + 1];
	size_t i, len;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		len = sign_body(bodies[i], strlen(bodies[i]), key, buf, sizeof buf);
		expect_raw(buf, len, key, ANNOUNCE_EJSON, NULL);
	}
	len = sign_body("[1]", 3, key, buf, sizeof buf);
	expect_raw(buf, len, key, ANNOUNCE_EJSON, "an array");
	len = sign_body("{\"v\":1}\0x", 9, key, buf, sizeof buf);
	expect_raw(buf, len, key, ANNOUNCE_EJSON, "NUL");
	/* Whitespace around the object is allowed JSON. */
	{
		cJSON *j = valid_body();
		char *body = cJSON_PrintUnformatted(j), *ws;

		ws = malloc(strlen(body) + 3);
		sprintf(ws, " %s\n", body);
		len = sign_body(ws, strlen(ws), key, buf, sizeof buf);
		expect_raw(buf, len, key, ANNOUNCE_OK, NULL);
		free(ws);
		cJSON_free(body);
		cJSON_Delete(j);
	}
}
END_TEST

START_TEST(test_missing_fields)
{
	static const char *const fields[] = {
		"v", "type", "id", "name", "port", "boot", "seq", "ts", "version", "actions",
		"sensors",
	};
	size_t i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		cJSON *j = valid_body();
		char want[64];

		cJSON_DeleteItemFromObjectCaseSensitive(j, fields[i]);
		snprintf(want, sizeof want, "missing field '%s'", fields[i]);
		expect_json(j, ANNOUNCE_EFIELD, want);
		cJSON_Delete(j);
	}
	/* Keys are case sensitive. */
	{
		cJSON *j = valid_body();

		cJSON_DeleteItemFromObjectCaseSensitive(j, "port");
		cJSON_AddNumberToObject(j, "Port", 80);
		expect_json(j, ANNOUNCE_EFIELD, "missing field 'port'");
		cJSON_Delete(j);
	}
}
END_TEST

static cJSON *str_of(char c, size_t n)
{
	char s[300];
	cJSON *j;

	memset(s, c, n);
	s[n] = '\0';
	j = cJSON_CreateString(s);
	return j;
}

START_TEST(test_bad_fields)
{
	cJSON *o;

	expect_field("v", cJSON_CreateString("1"), ANNOUNCE_EFIELD, "'v' is not a number");
	expect_field("v", cJSON_CreateNumber(1.5), ANNOUNCE_EFIELD, "'v' is not an integer");
	expect_field("type", cJSON_CreateString("status"), ANNOUNCE_EFIELD, "'type'");
	expect_field("type", cJSON_CreateNumber(1), ANNOUNCE_EFIELD, "'type'");
	expect_field("id", cJSON_CreateNumber(5), ANNOUNCE_EFIELD, "'id' is not a string");
	expect_field("id", cJSON_CreateString(""), ANNOUNCE_EFIELD, "'id' length 0");
	expect_field("id", cJSON_CreateString("bad id"), ANNOUNCE_EFIELD, "'id' has a character");
	expect_field("id", cJSON_CreateString("a.b"), ANNOUNCE_EFIELD, "'id'");
	expect_field("id", str_of('a', 63), ANNOUNCE_OK, NULL);
	expect_field("id", str_of('a', 64), ANNOUNCE_EFIELD, "'id' length 64");
	expect_field("name", cJSON_CreateString(""), ANNOUNCE_EFIELD, "'name' length 0");
	expect_field("name", str_of('n', 127), ANNOUNCE_OK, NULL);
	expect_field("name", str_of('n', 128), ANNOUNCE_EFIELD, "'name' length 128");
	expect_field("name", cJSON_CreateNull(), ANNOUNCE_EFIELD, "'name' is not a string");
	expect_field("port", cJSON_CreateNumber(0), ANNOUNCE_EFIELD, "'port' out of range");
	expect_field("port", cJSON_CreateNumber(65536), ANNOUNCE_EFIELD, "'port' out of range");
	expect_field("port", cJSON_CreateNumber(-80), ANNOUNCE_EFIELD, "'port' out of range");
	expect_field("port", cJSON_CreateNumber(80.5), ANNOUNCE_EFIELD, "'port' is not an integer");
	expect_field("port", cJSON_CreateString("80"), ANNOUNCE_EFIELD, "'port' is not a number");
	expect_field("port", cJSON_CreateTrue(), ANNOUNCE_EFIELD, "'port' is not a number");
	expect_field("boot", cJSON_CreateString("0123456789ABCDEF0123456789abcdef"),
		     ANNOUNCE_EFIELD, "'boot'");
	expect_field("boot", str_of('a', 31), ANNOUNCE_EFIELD, "'boot' length 31");
	expect_field("boot", str_of('a', 33), ANNOUNCE_EFIELD, "'boot' length 33");
	expect_field("boot", str_of('g', 32), ANNOUNCE_EFIELD, "'boot' is not 32 lowercase hex");
	expect_field("seq", cJSON_CreateNumber(0), ANNOUNCE_EFIELD, "'seq' out of range");
	expect_field("seq", cJSON_CreateNumber(-1), ANNOUNCE_EFIELD, "'seq' out of range");
	expect_field("seq", cJSON_CreateNumber(2.5), ANNOUNCE_EFIELD, "'seq' is not an integer");
	/* Raw text: cJSON would print 2^53 rounded to 15 digits. */
	expect_field("seq", cJSON_CreateRaw("9007199254740992"), ANNOUNCE_EFIELD,
		     "'seq' out of range");
	expect_field("seq", cJSON_CreateRaw("9007199254740991"), ANNOUNCE_OK, NULL);
	expect_field("seq", cJSON_CreateRaw("1e999"), ANNOUNCE_EFIELD, "'seq' is not an integer");
	expect_field("seq", cJSON_CreateString("7"), ANNOUNCE_EFIELD, "'seq' is not a number");
	expect_field("ts", cJSON_CreateString("now"), ANNOUNCE_EFIELD, "'ts' is not a number");
	expect_field("ts", cJSON_CreateNumber(1e300), ANNOUNCE_EFIELD, "'ts' out of range");
	expect_field("version", cJSON_CreateString(""), ANNOUNCE_EFIELD, "'version' length 0");
	expect_field("version", str_of('1', 31), ANNOUNCE_OK, NULL);
	expect_field("version", str_of('1', 32), ANNOUNCE_EFIELD, "'version' length 32");
	expect_field("version", cJSON_CreateNumber(1), ANNOUNCE_EFIELD, "'version' is not a string");
	expect_field("actions", cJSON_CreateObject(), ANNOUNCE_EFIELD, "'actions' is not an array");
	expect_field("actions", cJSON_CreateString("x"), ANNOUNCE_EFIELD, "'actions' is not an array");
	o = cJSON_CreateArray();
	cJSON_AddItemToArray(o, cJSON_CreateNumber(1));
	expect_field("actions", o, ANNOUNCE_EFIELD, "actions[0] is not an object");
	o = named_list("a", NULL);
	cJSON_AddItemToArray(o, cJSON_CreateObject());
	expect_field("actions", o, ANNOUNCE_EFIELD, "actions[1] has no string 'name'");
	o = cJSON_CreateArray();
	cJSON_AddItemToArray(o, cJSON_CreateObject());
	cJSON_AddNumberToObject(o->child, "name", 3);
	expect_field("sensors", o, ANNOUNCE_EFIELD, "sensors[0] has no string 'name'");
	expect_field("sensors", cJSON_CreateNull(), ANNOUNCE_EFIELD, "'sensors' is not an array");
	expect_field("sensors", cJSON_CreateArray(), ANNOUNCE_OK, NULL);
	/* Unknown fields, and unknown members of actions, are ignored. */
	expect_field("future", cJSON_CreateString("x"), ANNOUNCE_OK, NULL);
	expect_field("extra", cJSON_CreateArray(), ANNOUNCE_OK, NULL);
}
END_TEST

START_TEST(test_duplicate_field)
{
	cJSON *j = valid_body();

	/* cJSON_AddItemToObject appends even if the key exists. */
	cJSON_AddNumberToObject(j, "port", 22);
	expect_json(j, ANNOUNCE_EFIELD, "duplicate field 'port'");
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_version)
{
	cJSON *j;

	expect_field("v", cJSON_CreateNumber(2), ANNOUNCE_EVERSION, "protocol version 2");
	expect_field("v", cJSON_CreateNumber(0), ANNOUNCE_EVERSION, "protocol version 0");
	/* A v2 body may have other fields: the version is reported, not the missing field. */
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "v", 2);
	cJSON_AddStringToObject(j, "type", "hello");
	expect_json(j, ANNOUNCE_EVERSION, NULL);
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_time_window)
{
	struct announce a = { .ts = 1000 };

	ck_assert_int_eq(announce_check_time(&a, 1000, 30), ANNOUNCE_OK);
	ck_assert_int_eq(announce_check_time(&a, 1030, 30), ANNOUNCE_OK);
	ck_assert_int_eq(announce_check_time(&a, 970, 30), ANNOUNCE_OK);
	ck_assert_int_eq(announce_check_time(&a, 1031, 30), ANNOUNCE_ETIME);  /* too old */
	ck_assert_int_eq(announce_check_time(&a, 969, 30), ANNOUNCE_ETIME);   /* from the future */
	ck_assert_int_eq(announce_check_time(&a, 1000, 0), ANNOUNCE_OK);
	ck_assert_int_eq(announce_check_time(&a, 1001, 0), ANNOUNCE_ETIME);
	ck_assert_int_eq(announce_check_time(&a, 1000, -1), ANNOUNCE_ETIME);
	/* No overflow at the extremes. */
	a.ts = -ANNOUNCE_INT_MAX;
	ck_assert_int_eq(announce_check_time(&a, INT64_MAX, 30), ANNOUNCE_ETIME);
	a.ts = ANNOUNCE_INT_MAX;
	ck_assert_int_eq(announce_check_time(&a, INT64_MIN, 30), ANNOUNCE_ETIME);
	ck_assert_int_eq(announce_check_time(&a, ANNOUNCE_INT_MAX - 5, 5), ANNOUNCE_OK);
	ck_assert_str_eq(announce_strerror(ANNOUNCE_ETIME), "timestamp outside window");
}
END_TEST

static void ann(struct announce *a, const char *id, const char *boot, uint64_t seq, int64_t ts)
{
	memset(a, 0, sizeof *a);
	snprintf(a->id, sizeof a->id, "%s", id);
	snprintf(a->boot, sizeof a->boot, "%s", boot);
	a->seq = seq;
	a->ts = ts;
}

#define BOOT_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define BOOT_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define BOOT_C "cccccccccccccccccccccccccccccccc"

START_TEST(test_replay_rules)
{
	struct announce_replay *r = announce_replay_new(8);
	struct announce a;

	ck_assert_ptr_nonnull(r);
	ann(&a, "c1", BOOT_A, 5, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* Same seq, lower seq. */
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	ann(&a, "c1", BOOT_A, 4, 101);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	ann(&a, "c1", BOOT_A, 6, 101);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* Gaps in seq are lost datagrams, not an attack. */
	ann(&a, "c1", BOOT_A, 10, 102);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* Other ids have their own state. */
	ann(&a, "c2", BOOT_A, 1, 50);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* New boot with an older ts: a recorded announce of a previous boot. */
	ann(&a, "c1", BOOT_B, 1, 101);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	/* New boot with the same or a newer ts: the controller restarted; seq starts again. */
	ann(&a, "c1", BOOT_B, 1, 102);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	ann(&a, "c1", BOOT_B, 2, 110);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* The old boot is now stale even with a higher seq. */
	ann(&a, "c1", BOOT_A, 11, 103);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	ann(&a, "c1", BOOT_B, 2, 111);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	ann(&a, "c1", BOOT_C, 1, 200);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	ann(&a, "c1", BOOT_B, 3, 199);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	announce_replay_free(r);
	announce_replay_free(NULL);
}
END_TEST

START_TEST(test_replay_eviction)
{
	struct announce_replay *r = announce_replay_new(2);
	struct announce a;

	ck_assert_ptr_nonnull(r);
	ann(&a, "c1", BOOT_A, 5, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	ann(&a, "c2", BOOT_A, 5, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* c1 is updated, so c2 is the least recently updated. */
	ann(&a, "c1", BOOT_A, 6, 101);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	ann(&a, "c3", BOOT_A, 1, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* c1 is still known... */
	ann(&a, "c1", BOOT_A, 6, 101);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	/* ...c2 was forgotten, so its old seq is accepted again (the bound's price); that
	 * evicts c3, and a rejected check does not count as an update. */
	ann(&a, "c2", BOOT_A, 5, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	ann(&a, "c1", BOOT_A, 7, 102);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	ann(&a, "c3", BOOT_A, 1, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	/* c2 was evicted by c3: the table never holds more than 2. */
	ann(&a, "c1", BOOT_A, 7, 102);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	ann(&a, "c3", BOOT_A, 1, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	ann(&a, "c2", BOOT_A, 5, 100);
	ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	announce_replay_free(r);

	ck_assert_ptr_null(announce_replay_new(0));
}
END_TEST

START_TEST(test_replay_many_ids)
{
	struct announce_replay *r = announce_replay_new(16);
	struct announce a;
	char id[16];
	int i;

	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "c%d", i);
		ann(&a, id, BOOT_A, 1, 100);
		ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_OK);
	}
	/* The last 16 are remembered. */
	for (i = 984; i < 1000; i++) {
		snprintf(id, sizeof id, "c%d", i);
		ann(&a, id, BOOT_A, 1, 100);
		ck_assert_int_eq(announce_replay_check(r, &a), ANNOUNCE_EREPLAY);
	}
	announce_replay_free(r);
}
END_TEST

START_TEST(test_pipeline)
{
	/* What a receiver does: parse -> check_time -> replay_check. */
	struct announce_replay *r = announce_replay_new(4);
	char buf[ANNOUNCE_MAX + 1];
	struct announce a, b;
	size_t len;

	fill_valid(&a);
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_OK);
	ck_assert_int_eq(announce_parse(buf, len, key, &b, NULL, 0), ANNOUNCE_OK);
	ck_assert_int_eq(announce_check_time(&b, a.ts + 3, 30), ANNOUNCE_OK);
	ck_assert_int_eq(announce_replay_check(r, &b), ANNOUNCE_OK);
	announce_clear(&b);
	/* The same datagram again (a captured one replayed). */
	ck_assert_int_eq(announce_parse(buf, len, key, &b, NULL, 0), ANNOUNCE_OK);
	ck_assert_int_eq(announce_replay_check(r, &b), ANNOUNCE_EREPLAY);
	announce_clear(&b);
	a.seq++;
	a.ts++;
	ck_assert_int_eq(announce_build(&a, key, buf, sizeof buf, &len), ANNOUNCE_OK);
	ck_assert_int_eq(announce_parse(buf, len, key, &b, NULL, 0), ANNOUNCE_OK);
	ck_assert_int_eq(announce_replay_check(r, &b), ANNOUNCE_OK);
	announce_clear(&b);
	announce_clear(&a);
	announce_replay_free(r);
}
END_TEST

START_TEST(test_strerror)
{
	int e;

	for (e = ANNOUNCE_ENOMEM; e <= ANNOUNCE_OK; e++) {
		int f;

		ck_assert_ptr_nonnull(announce_strerror(e));
		for (f = ANNOUNCE_ENOMEM; f < e; f++)
			ck_assert_str_ne(announce_strerror(e), announce_strerror(f));
	}
	ck_assert_str_eq(announce_strerror(ANNOUNCE_EMAC), "bad mac");
	ck_assert_ptr_nonnull(announce_strerror(-100));
}
END_TEST

static Suite *announce_suite(void)
{
	Suite *s = suite_create("announce");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, keys_init, NULL);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_build_rejects);
	tcase_add_test(tc, test_too_big);
	tcase_add_test(tc, test_framing);
	tcase_add_test(tc, test_mac);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_missing_fields);
	tcase_add_test(tc, test_bad_fields);
	tcase_add_test(tc, test_duplicate_field);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_time_window);
	tcase_add_test(tc, test_replay_rules);
	tcase_add_test(tc, test_replay_eviction);
	tcase_add_test(tc, test_replay_many_ids);
	tcase_add_test(tc, test_pipeline);
	tcase_add_test(tc, test_strerror);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(announce_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
