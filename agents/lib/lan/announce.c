/* announce: build, authenticate, parse and replay-check the UDP announce of LAN protocol v1. */
#include "announce.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "name.h"

#define ANNOUNCE_PREFIX "fr1 "
#define ANNOUNCE_PREFIX_LEN 4
#define ANNOUNCE_BOOT_LEN 32

/* Every field of BODY; a repeated one is rejected so that no two JSON parsers can disagree on
 * which copy counts. */
static const char *const announce_fields[] = {
	"v", "type", "id", "name", "port", "boot", "seq", "ts", "version", "actions", "sensors",
};

struct replay_entry {
	char id[64];
	char boot[33];
	uint64_t seq;
	int64_t ts;
	uint64_t stamp;   /* replay->clock when last updated; smallest is evicted first */
};

struct announce_replay {
	size_t max;
	size_t n;
	uint64_t clock;
	struct replay_entry e[];
};

const char *announce_strerror(int err)
{
	switch (err) {
	case ANNOUNCE_OK:
		return "ok";
	case ANNOUNCE_ETOOBIG:
		return "datagram too big";
	case ANNOUNCE_EFORMAT:
		return "bad framing";
	case ANNOUNCE_EMAC:
		return "bad mac";
	case ANNOUNCE_EJSON:
		return "body is not a JSON object";
	case ANNOUNCE_EFIELD:
		return "missing or bad field";
	case ANNOUNCE_EVERSION:
		return "unsupported protocol version";
	case ANNOUNCE_ETIME:
		return "timestamp outside window";
	case ANNOUNCE_EREPLAY:
		return "replayed announce (old seq, or old boot)";
	case ANNOUNCE_ENOMEM:
		return "out of memory";
	default:
		return "unknown announce error";
	}
}

#define set_why(...) ((void)log_why(__VA_ARGS__))

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;   /* upper case is not the wire format */
}

static bool is_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}

static bool valid_boot(const char *s)
{
	return strnlen(s, ANNOUNCE_BOOT_LEN + 1) == ANNOUNCE_BOOT_LEN &&
	       is_lower_hex(s, ANNOUNCE_BOOT_LEN);
}

/* actions and sensors: an array of objects, each with at least a string "name". */
static int check_list(const cJSON *list, const char *field, char *why, size_t whylen)
{
	const cJSON *el;
	size_t i = 0;

	if (!cJSON_IsArray(list)) {
		set_why(why, whylen, "field '%s' is not an array", field);
		return ANNOUNCE_EFIELD;
	}
	cJSON_ArrayForEach(el, list) {
		const cJSON *name;

		if (!cJSON_IsObject(el)) {
			set_why(why, whylen, "%s[%zu] is not an object", field, i);
			return ANNOUNCE_EFIELD;
		}
		name = cJSON_GetObjectItemCaseSensitive(el, "name");
		if (!cJSON_IsString(name) || name->valuestring == NULL) {
			set_why(why, whylen, "%s[%zu] has no string 'name'", field, i);
			return ANNOUNCE_EFIELD;
		}
		i++;
	}
	return ANNOUNCE_OK;
}

static int check_fields(const struct announce *a, char *why, size_t whylen)
{
	size_t name_n = strnlen(a->name, sizeof a->name);
	size_t version_n = strnlen(a->version, sizeof a->version);
	/* Every field's rule and its reason, checked in order (ntpd's table style). */
	const struct {
		bool bad;
		const char *why;
	} rules[] = {
		{ !name_valid(a->id, NAME_LEN_MAX), "field 'id' is not 1..63 of [A-Za-z0-9_-]" },
		{ name_n < 1 || name_n >= sizeof a->name, "field 'name' is not 1..127 bytes" },
		{ a->port == 0, "field 'port' out of range 1..65535" },
		{ !valid_boot(a->boot), "field 'boot' is not 32 lowercase hex digits" },
		{ a->seq < 1 || a->seq > (uint64_t)ANNOUNCE_INT_MAX,
		  "field 'seq' out of range 1..9007199254740991" },
		{ a->ts < -ANNOUNCE_INT_MAX || a->ts > ANNOUNCE_INT_MAX, "field 'ts' out of range" },
		{ version_n < 1 || version_n >= sizeof a->version,
		  "field 'version' is not 1..31 bytes" },
	};

	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
		if (rules[i].bad) {
			set_why(why, whylen, "%s", rules[i].why);
			return ANNOUNCE_EFIELD;
		}
	return ANNOUNCE_OK;
}

static void to_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 0x0f];
	}
}

/* Integers go out as raw decimal text: cJSON would print large doubles in exponent form. */
static bool add_int(cJSON *obj, const char *field, long long v)
{
	char num[32];

	snprintf(num, sizeof num, "%lld", v);
	return cJSON_AddRawToObject(obj, field, num) != NULL;
}

int announce_build(const struct announce *a, const uint8_t key[32], char *buf, size_t cap,
		   size_t *len)
{
	char why[128];
	cJSON *root = NULL;
	char *body = NULL;
	size_t blen, total;
	uint8_t mac[32];
	int ret;

	ret = check_fields(a, why, sizeof why);
	if (ret == ANNOUNCE_OK && a->actions != NULL)
		ret = check_list(a->actions, "actions", why, sizeof why);
	if (ret == ANNOUNCE_OK && a->sensors != NULL)
		ret = check_list(a->sensors, "sensors", why, sizeof why);
	if (ret != ANNOUNCE_OK) {
		log_debug("announce_build: %s", why);
		return ret;
	}

	ret = ANNOUNCE_ENOMEM;
	root = cJSON_CreateObject();
	if (root == NULL ||
	    !add_int(root, "v", ANNOUNCE_PROTO_VERSION) ||
	    cJSON_AddStringToObject(root, "type", "announce") == NULL ||
	    cJSON_AddStringToObject(root, "id", a->id) == NULL ||
	    cJSON_AddStringToObject(root, "name", a->name) == NULL ||
	    !add_int(root, "port", a->port) ||
	    cJSON_AddStringToObject(root, "boot", a->boot) == NULL ||
	    !add_int(root, "seq", (long long)a->seq) ||
	    !add_int(root, "ts", (long long)a->ts) ||
	    cJSON_AddStringToObject(root, "version", a->version) == NULL)
		goto fail;
	/* References: the caller keeps ownership of its arrays. */
	if (a->actions != NULL ? !cJSON_AddItemReferenceToObject(root, "actions", a->actions)
			       : cJSON_AddArrayToObject(root, "actions") == NULL)
		goto fail;
	if (a->sensors != NULL ? !cJSON_AddItemReferenceToObject(root, "sensors", a->sensors)
			       : cJSON_AddArrayToObject(root, "sensors") == NULL)
		goto fail;
	body = cJSON_PrintUnformatted(root);
	if (body == NULL)
		goto fail;

	blen = strlen(body);
	total = ANNOUNCE_HEADER_LEN + blen;
	if (total > ANNOUNCE_MAX || total >= cap) {
		ret = ANNOUNCE_ETOOBIG;
		goto fail;
	}
	ret = keys_hmac(key, body, blen, mac);
	if (ret != 0)
		goto fail;
	memcpy(buf, ANNOUNCE_PREFIX, ANNOUNCE_PREFIX_LEN);
	to_hex(mac, sizeof mac, buf + ANNOUNCE_PREFIX_LEN);
	buf[ANNOUNCE_PREFIX_LEN + ANNOUNCE_MAC_HEX] = ' ';
	memcpy(buf + ANNOUNCE_HEADER_LEN, body, blen);
	buf[total] = '\0';
	*len = total;
	ret = ANNOUNCE_OK;
fail:
	cJSON_free(body);
	cJSON_Delete(root);
	return ret;
}

static const cJSON *get_field(const cJSON *root, const char *field, char *why, size_t whylen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);

	if (it == NULL)
		set_why(why, whylen, "missing field '%s'", field);
	return it;
}

/* JSON has only doubles: accept integral values within [min, max] (both within 2^53). */
static int get_int(const cJSON *root, const char *field, long long min, long long max,
		   long long *val, char *why, size_t whylen)
{
	const cJSON *it = get_field(root, field, why, whylen);
	double d;

	if (it == NULL)
		return ANNOUNCE_EFIELD;
	if (!cJSON_IsNumber(it)) {
		set_why(why, whylen, "field '%s' is not a number", field);
		return ANNOUNCE_EFIELD;
	}
	d = it->valuedouble;
	if (!isfinite(d)) {
		set_why(why, whylen, "field '%s' is not an integer", field);
		return ANNOUNCE_EFIELD;
	}
	if (d < (double)min || d > (double)max) {
		set_why(why, whylen, "field '%s' out of range %lld..%lld", field, min, max);
		return ANNOUNCE_EFIELD;
	}
	/* In range, so the conversion is defined; a fraction does not survive it. */
	if ((double)(long long)d != d) {
		set_why(why, whylen, "field '%s' is not an integer", field);
		return ANNOUNCE_EFIELD;
	}
	*val = (long long)d;
	return ANNOUNCE_OK;
}

/* Copies a string field of minlen..maxlen bytes (maxlen < dstlen) into dst. */
static int get_str(const cJSON *root, const char *field, size_t minlen, size_t maxlen, char *dst,
		   char *why, size_t whylen)
{
	const cJSON *it = get_field(root, field, why, whylen);
	size_t n;

	if (it == NULL)
		return ANNOUNCE_EFIELD;
	if (!cJSON_IsString(it) || it->valuestring == NULL) {
		set_why(why, whylen, "field '%s' is not a string", field);
		return ANNOUNCE_EFIELD;
	}
	n = strlen(it->valuestring);
	if (n < minlen || n > maxlen) {
		set_why(why, whylen, "field '%s' length %zu outside %zu..%zu", field, n, minlen,
			maxlen);
		return ANNOUNCE_EFIELD;
	}
	memcpy(dst, it->valuestring, n + 1);
	return ANNOUNCE_OK;
}

static int check_duplicates(const cJSON *root, char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < sizeof announce_fields / sizeof announce_fields[0]; i++) {
		const cJSON *c;
		int seen = 0;

		cJSON_ArrayForEach(c, root) {
			if (c->string != NULL && strcmp(c->string, announce_fields[i]) == 0)
				seen++;
		}
		if (seen > 1) {
			set_why(why, whylen, "duplicate field '%s'", announce_fields[i]);
			return ANNOUNCE_EFIELD;
		}
	}
	return ANNOUNCE_OK;
}

static const char *json_kind(const cJSON *j)
{
	if (cJSON_IsArray(j))
		return "an array";
	if (cJSON_IsString(j))
		return "a string";
	if (cJSON_IsNumber(j))
		return "a number";
	if (cJSON_IsBool(j))
		return "a boolean";
	if (cJSON_IsNull(j))
		return "null";
	return "not an object";
}

static int parse_body(const cJSON *root, struct announce *out, char *why, size_t whylen)
{
	const cJSON *type;
	long long v;
	int ret;

	ret = check_duplicates(root, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	/* The version first: a future version may change every other field. */
	ret = get_int(root, "v", -ANNOUNCE_INT_MAX, ANNOUNCE_INT_MAX, &v, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	if (v != ANNOUNCE_PROTO_VERSION) {
		set_why(why, whylen, "protocol version %lld, this side speaks %d", v,
			ANNOUNCE_PROTO_VERSION);
		return ANNOUNCE_EVERSION;
	}
	out->v = (int)v;
	type = get_field(root, "type", why, whylen);
	if (type == NULL)
		return ANNOUNCE_EFIELD;
	if (!cJSON_IsString(type) || type->valuestring == NULL ||
	    strcmp(type->valuestring, "announce") != 0) {
		set_why(why, whylen, "field 'type' is not \"announce\"");
		return ANNOUNCE_EFIELD;
	}
	ret = get_str(root, "id", 1, sizeof out->id - 1, out->id, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	if (!name_valid(out->id, NAME_LEN_MAX)) {
		set_why(why, whylen, "field 'id' has a character outside [A-Za-z0-9_-]");
		return ANNOUNCE_EFIELD;
	}
	ret = get_str(root, "name", 1, sizeof out->name - 1, out->name, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	ret = get_int(root, "port", 1, 65535, &v, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	out->port = (uint16_t)v;
	ret = get_str(root, "boot", ANNOUNCE_BOOT_LEN, ANNOUNCE_BOOT_LEN, out->boot, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	if (!valid_boot(out->boot)) {
		set_why(why, whylen, "field 'boot' is not 32 lowercase hex digits");
		return ANNOUNCE_EFIELD;
	}
	ret = get_int(root, "seq", 1, ANNOUNCE_INT_MAX, &v, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	out->seq = (uint64_t)v;
	ret = get_int(root, "ts", -ANNOUNCE_INT_MAX, ANNOUNCE_INT_MAX, &v, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	out->ts = v;
	ret = get_str(root, "version", 1, sizeof out->version - 1, out->version, why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	if (get_field(root, "actions", why, whylen) == NULL)
		return ANNOUNCE_EFIELD;
	ret = check_list(cJSON_GetObjectItemCaseSensitive(root, "actions"), "actions", why, whylen);
	if (ret != ANNOUNCE_OK)
		return ret;
	if (get_field(root, "sensors", why, whylen) == NULL)
		return ANNOUNCE_EFIELD;
	return check_list(cJSON_GetObjectItemCaseSensitive(root, "sensors"), "sensors", why, whylen);
}

int announce_parse(const void *buf, size_t len, const uint8_t key[32], struct announce *out,
		   char *why, size_t whylen)
{
	const char *p = buf;
	/* A NUL-terminated copy: cJSON is only ever handed a C string. */
	char body[ANNOUNCE_MAX + 1];
	const char *body_in, *end = NULL;
	size_t blen, i;
	uint8_t mac[32], want[32];
	cJSON *root = NULL;
	int ret;

	memset(out, 0, sizeof *out);
	set_why(why, whylen, "%s", "");
	if (len > ANNOUNCE_MAX) {
		set_why(why, whylen, "%zu bytes, more than %d", len, ANNOUNCE_MAX);
		return ANNOUNCE_ETOOBIG;
	}
	if (p == NULL || len < ANNOUNCE_HEADER_LEN + 1) {
		set_why(why, whylen, "%zu bytes, shorter than the %d-byte header and a body", len,
			ANNOUNCE_HEADER_LEN);
		return ANNOUNCE_EFORMAT;
	}
	if (memcmp(p, ANNOUNCE_PREFIX, ANNOUNCE_PREFIX_LEN) != 0) {
		set_why(why, whylen, "no \"fr1 \" prefix");
		return ANNOUNCE_EFORMAT;
	}
	for (i = 0; i < sizeof mac; i++) {
		int hi = hexval((unsigned char)p[ANNOUNCE_PREFIX_LEN + 2 * i]);
		int lo = hexval((unsigned char)p[ANNOUNCE_PREFIX_LEN + 2 * i + 1]);

		if (hi < 0 || lo < 0) {
			set_why(why, whylen, "mac is not %d lowercase hex digits", ANNOUNCE_MAC_HEX);
			return ANNOUNCE_EFORMAT;
		}
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	if (p[ANNOUNCE_PREFIX_LEN + ANNOUNCE_MAC_HEX] != ' ') {
		set_why(why, whylen, "no space after the mac");
		return ANNOUNCE_EFORMAT;
	}
	body_in = p + ANNOUNCE_HEADER_LEN;
	blen = len - ANNOUNCE_HEADER_LEN;

	if (keys_hmac(key, body_in, blen, want) != 0) {
		set_why(why, whylen, "HMAC computation failed");
		return ANNOUNCE_EMAC;
	}
	if (!keys_mac_equal(mac, want)) {
		set_why(why, whylen, "mac does not match the body (wrong key or altered)");
		return ANNOUNCE_EMAC;
	}

	if (memchr(body_in, '\0', blen) != NULL) {
		set_why(why, whylen, "NUL byte in body");
		return ANNOUNCE_EJSON;
	}
	memcpy(body, body_in, blen);
	body[blen] = '\0';
	/* require_null_terminated: trailing bytes after the object are an error, not ignored. */
	root = cJSON_ParseWithLengthOpts(body, blen + 1, &end, 1);
	if (root == NULL) {
		set_why(why, whylen, "invalid JSON at body offset %td", end ? end - body : (ptrdiff_t)0);
		return ANNOUNCE_EJSON;
	}
	if (!cJSON_IsObject(root)) {
		set_why(why, whylen, "body is %s, not an object", json_kind(root));
		ret = ANNOUNCE_EJSON;
		goto fail;
	}
	ret = parse_body(root, out, why, whylen);
	if (ret != ANNOUNCE_OK)
		goto fail;
	out->actions = cJSON_DetachItemFromObjectCaseSensitive(root, "actions");
	out->sensors = cJSON_DetachItemFromObjectCaseSensitive(root, "sensors");
	cJSON_Delete(root);
	return ANNOUNCE_OK;
fail:
	cJSON_Delete(root);
	announce_clear(out);
	return ret;
}

int announce_check_time(const struct announce *a, int64_t now_s, int window_s)
{
	uint64_t diff;

	if (window_s < 0)
		return ANNOUNCE_ETIME;
	/* Unsigned subtraction of the larger minus the smaller cannot overflow. */
	if (a->ts >= now_s)
		diff = (uint64_t)a->ts - (uint64_t)now_s;
	else
		diff = (uint64_t)now_s - (uint64_t)a->ts;
	return diff <= (uint64_t)window_s ? ANNOUNCE_OK : ANNOUNCE_ETIME;
}

void announce_clear(struct announce *a)
{
	if (a == NULL)
		return;
	cJSON_Delete(a->actions);
	cJSON_Delete(a->sensors);
	memset(a, 0, sizeof *a);
}

struct announce_replay *announce_replay_new(size_t max_ids)
{
	struct announce_replay *r;

	if (max_ids == 0 ||
	    max_ids > (SIZE_MAX - sizeof *r) / sizeof r->e[0]) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof *r + max_ids * sizeof r->e[0]);
	if (r == NULL)
		return NULL;
	r->max = max_ids;
	return r;
}

void announce_replay_free(struct announce_replay *r)
{
	free(r);
}

static void replay_record(struct announce_replay *r, struct replay_entry *e,
			  const struct announce *a)
{
	memcpy(e->boot, a->boot, sizeof e->boot);
	e->boot[sizeof e->boot - 1] = '\0';
	e->seq = a->seq;
	e->ts = a->ts;
	e->stamp = ++r->clock;
}

/* A linear scan: only MAC-checked announces of the home's own controllers get here, so the
 * table is a handful of entries. */
int announce_replay_check(struct announce_replay *r, const struct announce *a)
{
	struct replay_entry *e = NULL;
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (strncmp(r->e[i].id, a->id, sizeof r->e[i].id) == 0) {
			e = &r->e[i];
			break;
		}
	}
	if (e == NULL) {
		if (r->n < r->max) {
			e = &r->e[r->n++];
		} else {
			e = &r->e[0];
			for (i = 1; i < r->n; i++)
				if (r->e[i].stamp < e->stamp)
					e = &r->e[i];
		}
		memcpy(e->id, a->id, sizeof e->id);
		e->id[sizeof e->id - 1] = '\0';
		replay_record(r, e, a);
		return ANNOUNCE_OK;
	}
	if (strncmp(e->boot, a->boot, sizeof e->boot) == 0) {
		if (a->seq <= e->seq)
			return ANNOUNCE_EREPLAY;
	} else if (a->ts < e->ts) {
		/* An older boot replayed after the controller restarted. */
		return ANNOUNCE_EREPLAY;
	}
	replay_record(r, e, a);
	return ANNOUNCE_OK;
}

int announce_receive(const void *buf, size_t len, const uint8_t key[32], int64_t now_s,
		     int window_s, struct announce_replay *r, struct announce *out, char *why,
		     size_t whylen)
{
	int rc = announce_parse(buf, len, key, out, why, whylen);
	if (rc != ANNOUNCE_OK)
		return rc;
	rc = announce_check_time(out, now_s, window_s);
	if (rc == ANNOUNCE_OK)
		rc = announce_replay_check(r, out);
	if (rc != ANNOUNCE_OK)
		announce_clear(out);
	return rc;
}
