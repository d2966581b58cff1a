/* hamap: which HA platform fits an action, and HA's command payloads turned into argument
 * values; see hamap.h (the ids, topics and configs are hamapcfg.c). */
#include "hamap.h"
#include "hamap_int.h"

#include "frame.h"
#include "topic.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const hamap_kinds[] = { "none", "button", "switch", "select", "number", "text" };

const char *hamap_kind_name(enum hamap_kind k)
{
	return (unsigned)k < sizeof hamap_kinds / sizeof *hamap_kinds ? hamap_kinds[k] : "?";
}

const char *hamap_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void hamap_action_clear(struct hamap_action *a)
{
	cJSON_Delete(a->options);
	free(a->def);
	memset(a, 0, sizeof *a);
}

static enum hamap_kind hamap_none(struct hamap_action *a, const char *why)
{
	cJSON_Delete(a->options);
	a->options = NULL;
	a->kind = HAMAP_NONE;
	snprintf(a->why, sizeof a->why, "%s", why);
	return HAMAP_NONE;
}

/* --- classification --- */

static bool hamap_match(const regex_t *re, const char *s) { return regexec(re, s, 0, NULL, 0) == 0; }

/* "w1|w2|..." (or the same in one pair of parentheses) of literal words, each matching the
 * pattern: a select, or a switch when an on/off pair is among them and the only other word
 * is "toggle". */
static enum hamap_kind hamap_words(struct hamap_action *a, const char *pattern, const regex_t *re)
{
	static const char *const pairs[][2] = { { "on", "off" }, { "true", "false" }, { "1", "0" } };
	char buf[HAMAP_OPTIONS_MAX * (COMMAND_NAME_MAX + 1)];
	size_t len = strlen(pattern);
	const char *p = pattern;
	if (len >= 2 && p[0] == '(' && p[len - 1] == ')') {
		p++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof buf)
		return HAMAP_NONE;
	memcpy(buf, p, len);
	buf[len] = '\0';
	cJSON *words = cJSON_CreateArray();
	int n = 0;
	for (char *w = buf, *bar;; w = bar + 1) {
		bar = strchr(w, '|');
		if (bar)
			*bar = '\0';
		if (!name_valid(w, COMMAND_NAME_MAX) || !hamap_match(re, w) ||
		    n >= HAMAP_OPTIONS_MAX) {
			cJSON_Delete(words);
			return HAMAP_NONE;
		}
		bool dup = false;
		const cJSON *e;
		cJSON_ArrayForEach(e, words)
			dup = dup || strcmp(e->valuestring, w) == 0;
		if (!dup) {
			cJSON_AddItemToArray(words, cJSON_CreateString(w));
			n++;
		}
		if (!bar)
			break;
	}
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		const char *on = NULL, *off = NULL, *toggle = NULL;
		int others = 0;
		const cJSON *e;
		cJSON_ArrayForEach(e, words) {
			const char *w = e->valuestring;
			if (!on && strcasecmp(w, pairs[i][0]) == 0)
				on = w;
			else if (!off && strcasecmp(w, pairs[i][1]) == 0)
				off = w;
			else if (!toggle && strcasecmp(w, "toggle") == 0)
				toggle = w;
			else
				others++;
		}
		if (on && off && !others) {
			snprintf(a->on, sizeof a->on, "%s", on);
			snprintf(a->off, sizeof a->off, "%s", off);
			snprintf(a->toggle, sizeof a->toggle, "%s", toggle ? toggle : "");
			cJSON_Delete(words);
			return a->kind = HAMAP_SWITCH;
		}
	}
	a->options = words;
	return a->kind = HAMAP_SELECT;
}

/* A pattern that matches integers and none of a few non-numeric probes: a number whose range
 * is the smallest and the largest integer it matches within +-HAMAP_NUMBER_LIMIT, with the
 * step of the decimals it accepts after its smallest value (".5" 0.1, ".25" 0.01, ".125"
 * 0.001; none: 1). Holes inside the range are the controller's to refuse. */
static enum hamap_kind hamap_number(struct hamap_action *a, const regex_t *re)
{
	static const char *const probes[] = { " ", "a", "Z", "_", "-", "+", ".", "e", "x1", "1x",
					      "on" };
	char b[40];
	for (size_t i = 0; i < sizeof probes / sizeof *probes; i++)
		if (hamap_match(re, probes[i]))
			return HAMAP_NONE;
	long lo = 0, hi = 0, v;
	for (v = -HAMAP_NUMBER_LIMIT; v <= HAMAP_NUMBER_LIMIT; v++) {
		snprintf(b, sizeof b, "%ld", v);
		if (hamap_match(re, b))
			break;
	}
	if (v > HAMAP_NUMBER_LIMIT)
		return HAMAP_NONE;
	lo = v;
	for (v = HAMAP_NUMBER_LIMIT; v > lo; v--) {
		snprintf(b, sizeof b, "%ld", v);
		if (hamap_match(re, b))
			break;
	}
	hi = v;
	if (lo == hi) {   /* HA's number needs max > min: one value is a one-option select */
		snprintf(b, sizeof b, "%ld", lo);
		a->options = cJSON_CreateArray();
		cJSON_AddItemToArray(a->options, cJSON_CreateString(b));
		return a->kind = HAMAP_SELECT;
	}
	a->step = 1;
	static const struct { const char *frac; double step; } steps[] = {
		{ "125", 0.001 }, { "25", 0.01 }, { "5", 0.1 } };
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		snprintf(b, sizeof b, "%ld.%s", lo, steps[i].frac);
		if (hamap_match(re, b)) {
			a->step = steps[i].step;
			break;
		}
	}
	a->min = (double)lo;
	a->max = (double)hi;
	return a->kind = HAMAP_NUMBER;
}

/* glibc's regcomp copies a repeated subexpression once per repetition (a{1,200} is 200 copies,
 * a repetition of it multiplies that, and "a++++..." doubles with every "+"), so a pattern from
 * a controller is compiled here only when its expanded size is small: a mistaken or hostile
 * pattern cannot make frMhs allocate without bound. The estimate: every atom 1, a group the sum
 * of its contents, a repetition {m,n} times max(m, n) ({m,} m + 1, * + ? twice); a repetition
 * of a repetition, an interval above 255 or anything malformed is refused. */
#define HAMAP_PATTERN_LEN 1024
#define HAMAP_PATTERN_COST 4096
#define HAMAP_PATTERN_DEPTH 16

/* The end of the bracket expression that starts at p ('['), or NULL. */
static const char *hamap_bracket_end(const char *p)
{
	const char *q = p + 1;
	if (*q == '^')
		q++;
	if (*q == ']')
		q++;
	while (*q && *q != ']') {
		if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
			char c = q[1];
			for (q += 2; *q && !(q[0] == c && q[1] == ']'); q++)
				;
			if (!*q)
				return NULL;
			q += 2;
		} else {
			q++;
		}
	}
	return *q ? q : NULL;
}

/* The repetitions an interval at p ('{') allows, its end in *end; -1 if malformed. */
static long hamap_interval(const char *p, const char **end)
{
	char *e;
	long m = strtol(p + 1, &e, 10), n = m;
	if (e == p + 1 || m < 0 || m > 255)
		return -1;
	if (*e == ',') {
		if (e[1] == '}') {
			n = m + 1;
			e++;
		} else {
			const char *f = e + 1;
			n = strtol(f, &e, 10);
			if (e == f || n < m || n > 255)
				return -1;
		}
	}
	if (*e != '}')
		return -1;
	*end = e;
	return n > 1 ? n : 1;
}

static long hamap_pattern_cost(const char *p)
{
	long sum[HAMAP_PATTERN_DEPTH] = { 0 }, last = 0, item;
	int depth = 0;
	bool repeated = false;
	if (strlen(p) > HAMAP_PATTERN_LEN)
		return -1;
	for (; *p; p++) {
		switch (*p) {
		case '\\':
			if (!*++p)
				return -1;
			item = 1;
			break;
		case '[':
			if (!(p = hamap_bracket_end(p)))
				return -1;
			item = 1;
			break;
		case '(':
			if (++depth >= HAMAP_PATTERN_DEPTH)
				return -1;
			sum[depth] = 0;
			last = 0;
			continue;
		case ')':
			if (!depth)
				return -1;
			item = sum[depth--];
			item = item ? item : 1;
			break;
		case '|':
			last = 0;
			continue;
		case '*':
		case '+':
		case '?':
		case '{': {
			long times = 2;
			if (*p == '{' && (times = hamap_interval(p, &p)) < 0)
				return -1;
			if (!last || repeated)
				return -1;   /* nothing to repeat, or a repetition repeated */
			sum[depth] += last * (times - 1);
			last *= times;
			repeated = true;
			if (sum[depth] > HAMAP_PATTERN_COST)
				return -1;
			continue;
		}
		default:
			item = 1;
			break;
		}
		sum[depth] += item;
		last = item;
		repeated = false;
		if (sum[depth] > HAMAP_PATTERN_COST)
			return -1;
	}
	return depth ? -1 : sum[0];
}

static enum hamap_kind hamap_by_pattern(struct hamap_action *a, const char *pattern)
{
	/* Anchored as frMhc anchors it (agents/frMhc/conf.c): a value matches as a whole. */
	char anchored[HAMAP_PATTERN_LEN + 8];
	regex_t re;
	if (hamap_pattern_cost(pattern) < 0)
		return hamap_none(a, "its argument's pattern is too long, too complex or malformed for frMhs to check");
	snprintf(anchored, sizeof anchored, "^(%s)$", pattern);
	if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB) != 0)
		return hamap_none(a, "its argument's pattern is not a valid regular expression");
	enum hamap_kind k = hamap_words(a, pattern, &re);
	if (k == HAMAP_NONE)
		k = hamap_number(a, &re);
	if (k == HAMAP_NONE)
		k = a->kind = HAMAP_TEXT;
	regfree(&re);
	return k;
}

enum hamap_kind hamap_classify(const cJSON *action, struct hamap_action *a)
{
	memset(a, 0, sizeof *a);
	const char *name = hamap_str(action, "name");
	if (!name || !name_valid(name, COMMAND_NAME_MAX))
		return hamap_none(a, "it has no valid name");
	snprintf(a->name, sizeof a->name, "%s", name);
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(action, "args");
	if (args && !cJSON_IsArray(args))
		return hamap_none(a, "its 'args' is not a list");
	const cJSON *e, *ctrl = NULL;
	int n = 0, required = 0;
	cJSON_ArrayForEach(e, args) {
		const cJSON *def = cJSON_GetObjectItemCaseSensitive(e, "default");
		const char *an = hamap_str(e, "name");
		if (!an || !name_valid(an, COMMAND_NAME_MAX) || !hamap_str(e, "pattern") ||
		    (def && !cJSON_IsString(def)))
			return hamap_none(a, "an argument has no valid name, pattern or default");
		if (n++ == 0 || !def)
			ctrl = e;   /* the only one, or the (only) one without a default */
		required += !def;
	}
	if (n == 0 || (n > 1 && required == 0))
		return a->kind = HAMAP_BUTTON;   /* nothing to set: PRESS runs it (with the defaults) */
	if (required > 1) {
		char why[120];
		snprintf(why, sizeof why, "%d of its arguments have no default; Home Assistant sets one",
			 required);
		return hamap_none(a, why);
	}
	snprintf(a->arg, sizeof a->arg, "%s", hamap_str(ctrl, "name"));
	const char *def = hamap_str(ctrl, "default");
	if (def && !(a->def = strdup(def)))
		return hamap_none(a, "out of memory");
	return hamap_by_pattern(a, hamap_str(ctrl, "pattern"));
}

/* --- HA's payloads --- */

/* A decimal number as HA's number entity sends it ("5", "-2", "2.5"), in canonical form
 * (no leading zeros, no trailing fractional zeros) into out. Returns its decimals, or -1. */
static int hamap_decimal(const char *s, char *out, size_t n)
{
	const char *p = s, *digits, *frac = NULL;
	size_t nint, nfrac = 0;
	bool neg = *p == '-';
	if (neg)
		p++;
	digits = p;
	while (*p >= '0' && *p <= '9')
		p++;
	nint = (size_t)(p - digits);
	if (*p == '.') {
		frac = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		nfrac = (size_t)(p - frac);
		if (!nfrac)
			return -1;
	}
	if (*p || !nint || nint > 15 || nfrac > 15)
		return -1;
	while (nint > 1 && *digits == '0') {
		digits++;
		nint--;
	}
	while (nfrac && frac[nfrac - 1] == '0')
		nfrac--;
	bool zero = nint == 1 && *digits == '0' && !nfrac;
	snprintf(out, n, "%s%.*s%s%.*s", neg && !zero ? "-" : "", (int)nint, digits, nfrac ? "." : "",
		 (int)nfrac, frac ? frac : "");
	return (int)nfrac;
}

int hamap_value(const struct hamap_action *a, const char *payload, size_t len, char *value,
		size_t n, char *why, size_t whylen)
{
	char p[HAMAP_PAYLOAD_MAX + 1];
	value[0] = '\0';
	if (len > HAMAP_PAYLOAD_MAX) {
		snprintf(why, whylen, "payload longer than %d bytes", HAMAP_PAYLOAD_MAX);
		return -1;
	}
	if (memchr(payload, '\0', len) || !frame_utf8_valid(payload, len)) {
		snprintf(why, whylen, "payload is not UTF-8 text (or holds a NUL byte)");
		return -1;
	}
	memcpy(p, payload, len);
	p[len] = '\0';
	switch (a->kind) {
	case HAMAP_BUTTON:
		if (strcmp(p, HAMAP_PRESS) == 0)
			return 0;
		snprintf(why, whylen, "a button takes '%s', not '%.40s'", HAMAP_PRESS, p);
		return -1;
	case HAMAP_SWITCH:
		if (strcasecmp(p, HAMAP_ON) == 0 || strcasecmp(p, HAMAP_OFF) == 0) {
			snprintf(value, n, "%s", strcasecmp(p, HAMAP_ON) == 0 ? a->on : a->off);
			return 0;
		}
		snprintf(why, whylen, "a switch takes '%s' or '%s', not '%.40s'", HAMAP_ON, HAMAP_OFF, p);
		return -1;
	case HAMAP_SELECT: {
		const cJSON *o;
		cJSON_ArrayForEach(o, a->options)
			if (strcmp(o->valuestring, p) == 0) {
				snprintf(value, n, "%s", p);
				return 0;
			}
		snprintf(why, whylen, "'%.40s' is not one of the options of %s", p, a->name);
		return -1;
	}
	case HAMAP_NUMBER: {
		char canon[40];
		int dec = hamap_decimal(p, canon, sizeof canon);
		int allowed = a->step >= 1 ? 0 : a->step >= 0.1 ? 1 : a->step >= 0.01 ? 2 : 3;
		double v = dec < 0 ? NAN : strtod(canon, NULL);
		if (dec < 0 || dec > allowed) {
			snprintf(why, whylen, "'%.40s' is not a number with at most %d decimals", p, allowed);
			return -1;
		}
		if (v < a->min || v > a->max) {
			snprintf(why, whylen, "%s is out of range %g..%g", canon, a->min, a->max);
			return -1;
		}
		snprintf(value, n, "%s", canon);
		return 0;
	}
	case HAMAP_TEXT:
		snprintf(value, n, "%s", p);
		return 0;
	default:
		snprintf(why, whylen, "%s is not exposed to Home Assistant", a->name);
		return -1;
	}
}

const char *hamap_state(const struct hamap_action *a, const char *value, const char *prev)
{
	if (!value)
		return NULL;
	switch (a->kind) {
	case HAMAP_SWITCH:
		if (strcmp(value, a->on) == 0)
			return HAMAP_ON;
		if (strcmp(value, a->off) == 0)
			return HAMAP_OFF;
		if (a->toggle[0] && strcmp(value, a->toggle) == 0 && prev)
			return strcmp(prev, HAMAP_ON) == 0 ? HAMAP_OFF : strcmp(prev, HAMAP_OFF) == 0 ? HAMAP_ON : NULL;
		return NULL;
	case HAMAP_SELECT:
	case HAMAP_NUMBER:
		return value;
	case HAMAP_TEXT:
		/* Another requester's value may be longer than HA's text entity shows. */
		return strlen(value) <= HAMAP_PAYLOAD_MAX ? value : NULL;
	default:
		return NULL;
	}
}
