/* historyq: the history module's queries: which series and bucket width answer a range, and
 * cursors that write the points as JSON in chunks; see history.h. */
#include "history.h"
#include "history_int.h"

#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct history_cursor {
	struct history *h;
	enum history_res res;
	int64_t series;          /* 0: no such sensor (an empty answer) */
	int64_t step;            /* bucket width; 0 raw */
	bool from_raw;           /* buckets computed from the raw points */
	int64_t next, to;        /* the next ts / bucket start to read, the end */
	int64_t base;            /* bucket grid origin */
	size_t left, count;
	sqlite3_stmt *st;
};

/* Rows in ts order; buckets are summed up here while reading (a GROUP BY on a computed bucket
 * would sort every row first: measured 1.5x slower for a year of 5-minute buckets). */
static const char *const cursor_sql[3] = {
	[0] = "SELECT ts, value FROM raw WHERE series = ?1 AND ts >= ?2 AND ts <= ?3 "
	      "ORDER BY ts LIMIT ?4",
	[1] = "SELECT ts, 1, value, value, value FROM raw WHERE series = ?1 AND ts >= ?2 "
	      "AND ts <= ?3 AND typeof(value) = 'real' ORDER BY ts",
	[2] = "SELECT ts, n, sum, min, max FROM agg WHERE series = ?1 AND ts >= ?2 AND ts <= ?3 "
	      "ORDER BY ts",
};

static int64_t ceil_div(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/* How many raw points [from, to] holds, counting no further than limit. */
static long raw_count(struct history *h, int64_t series, int64_t from, int64_t to, size_t limit)
{
	sqlite3_stmt *st;
	long n = -1;
	if (sqlite3_prepare_v2(h->db, "SELECT count(*) FROM (SELECT 1 FROM raw WHERE series = ?1 "
			       "AND ts >= ?2 AND ts <= ?3 LIMIT ?4)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, series);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	sqlite3_bind_int64(st, 4, (int64_t)limit);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

struct history_cursor *history_query(struct history *h, const struct history_query *q,
				     uint64_t now)
{
	struct history_cursor *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->h = h;
	c->res = HISTORY_RAW;
	c->to = q->to;
	c->next = q->from;
	c->left = q->max_points;
	struct qpoint key = { 0 };
	snprintf(key.home, sizeof key.home, "%s", q->home);
	snprintf(key.ctl, sizeof key.ctl, "%s", q->ctl);
	snprintf(key.sensor, sizeof key.sensor, "%s", q->sensor);
	c->series = history_series_id(h, &key, false);
	if (c->series < 0)
		goto fail;
	if (c->series == 0 || q->to < q->from || q->max_points == 0)
		return c;   /* nothing recorded: an empty answer */
	int64_t span = q->to - q->from + 1, step = (int64_t)h->o.step_ms;
	int64_t width = ceil_div(span, (int64_t)q->max_points);
	bool raw_covers = q->from >= (int64_t)now - (int64_t)h->o.raw_keep_ms;
	if (raw_covers) {
		long n = raw_count(h, c->series, q->from, q->to, q->max_points + 1);
		if (n < 0)
			goto fail;
		if ((size_t)n <= q->max_points)
			return c;   /* every point fits */
		if (width < step) {
			/* Finer than the stored buckets: buckets of the raw numbers, made now. */
			c->res = HISTORY_BUCKETS;
			c->from_raw = true;
			c->step = width;
			c->base = q->from;
			return c;
		}
	}
	c->res = HISTORY_BUCKETS;
	c->step = ceil_div(width, step) * step;
	/* Stored buckets start on multiples of step; the answer's grid is aligned on them too. */
	c->base = history_bucket_of(h, q->from);
	c->next = c->base;
	return c;
fail:
	log_warnx("history %s: query: %s", h->path, sqlite3_errmsg(h->db));
	free(c);
	return NULL;
}

enum history_res history_cursor_res(const struct history_cursor *c)
{
	return c->res;
}

int64_t history_cursor_step(const struct history_cursor *c)
{
	return c->step;
}

size_t history_cursor_count(const struct history_cursor *c)
{
	return c->count;
}

void history_cursor_free(struct history_cursor *c)
{
	if (!c)
		return;
	sqlite3_finalize(c->st);
	free(c);
}

static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
			      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

static const char digits2[] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* The digits of m with a '.' before the last point of them (point 0: none; zero-padded to at
 * least point + 1 digits), trailing zeros of the fraction dropped. Returns the length. */
static size_t put_digits(char *out, uint64_t m, int point)
{
	char tmp[24];
	char *e = tmp + sizeof tmp, *p = e;
	while (m >= 100) {
		p -= 2;
		memcpy(p, digits2 + 2 * (m % 100), 2);
		m /= 100;
	}
	if (m >= 10) {
		p -= 2;
		memcpy(p, digits2 + 2 * m, 2);
	} else {
		*--p = (char)('0' + m);
	}
	while (e - p <= point)
		*--p = '0';
	size_t n = (size_t)(e - p);
	if (point <= 0) {
		memcpy(out, p, n);
		return n;
	}
	/* "2.50" -> "2.5", "3.0" -> "3" */
	int frac = point;
	while (frac > 0 && e[-1] == '0') {
		e--;
		frac--;
	}
	size_t ip = n - (size_t)point;
	memcpy(out, p, ip);
	if (!frac)
		return ip;
	out[ip] = '.';
	memcpy(out + ip + 1, p + ip, (size_t)frac);
	return ip + 1 + (size_t)frac;
}

/* v * 10^k, for any k a double's exponent may need (subnormals need more than 10^308). */
static double scale10(double v, int k)
{
	for (; k > 22; k -= 22)
		v *= 1e22;
	for (; k < -22; k += 22)
		v /= 1e22;
	return k >= 0 ? v * p10[k] : v / p10[-k];
}

static size_t fmt_num(char *out, double v)
{
	char *p = out;
	if (!isfinite(v)) {
		memcpy(out, "null", 5);
		return 4;
	}
	if (v == 0) {
		memcpy(out, "0", 2);
		return 1;
	}
	if (v < 0) {
		*p++ = '-';
		v = -v;
	}
	/* Exact: v is the double nearest to m / 10^k, which is what reading "m with k decimals"
	 * gives back. v * 10^k is then within a few ulps of m: anything farther is not worth the
	 * division. */
	if (v < 1e15) {
		for (int k = 0; k <= 6; k++) {
			double s = v * p10[k];
			if (s >= 9007199254740991.0)
				break;
			double m = (double)(int64_t)(s + 0.5);
			if (fabs(s - m) <= s * 1e-15 && m / p10[k] == v)
				return (size_t)(p - out) + put_digits(p, (uint64_t)m, k);
		}
	}
	/* 15 significant digits, d.dddde<exp> or plain when the exponent is small. */
	int e = (int)floor(log10(v));
	double s = scale10(v, 14 - e);
	if (s >= 1e15) {
		e++;
		s = scale10(v, 14 - e);
	} else if (s < 1e14) {
		e--;
		s = scale10(v, 14 - e);
	}
	uint64_t m = (uint64_t)llround(s);
	if (m >= 1000000000000000ULL) {   /* 999999999999999.5 rounded up */
		m /= 10;
		e++;
	}
	/* Rounded up past the largest double, it would read back as infinity. */
	if (e == 308 && m > 179769313486231ULL)
		m = 179769313486231ULL;
	if (e >= -5 && e < 15) {
		if (e >= 0)
			return (size_t)(p - out) + put_digits(p, m, 14 - e);
		/* 0.000ddd */
		*p++ = '0';
		*p++ = '.';
		for (int i = -1; i > e; i--)
			*p++ = '0';
		size_t n = put_digits(p, m, 0);
		while (n > 1 && p[n - 1] == '0')
			n--;
		return (size_t)(p - out) + n;
	}
	size_t n = put_digits(p, m, 14);
	p += n;
	return (size_t)(p - out) + (size_t)sprintf(p, "e%d", e);
}

size_t history_fmt_num(char *out, double v)
{
	size_t n = fmt_num(out, v);
	out[n] = '\0';
	return n;
}

static int buf_reserve(char **buf, size_t *len, size_t *cap, size_t more)
{
	if (*len + more <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 4096;
	while (ncap < *len + more)
		ncap *= 2;
	char *b = realloc(*buf, ncap);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = ncap;
	return 0;
}

/* A string value as a JSON string, by cJSON (strings are rare: timelines). */
static int put_text(const char *t, char **buf, size_t *len, size_t *cap)
{
	cJSON *s = cJSON_CreateString(t);
	char *j = s ? cJSON_PrintUnformatted(s) : NULL;
	cJSON_Delete(s);
	if (!j)
		return -ENOMEM;
	size_t n = strlen(j);
	int rc = buf_reserve(buf, len, cap, n + 8);
	if (rc == 0) {
		memcpy(*buf + *len, j, n);
		*len += n;
	}
	free(j);
	return rc;
}

/* Room for one more point: "[ts,v]" or "[ts,mean,min,max]" is at most 1 + 20 + 3 * 26 + 2
 * bytes and a comma; a string is added by put_text. */
#define POINT_MAX 128

static char *point_start(char **buf, size_t *len, int64_t ts)
{
	char *p = *buf + *len;
	if (*len > 0 && p[-1] == ']')
		*p++ = ',';
	*p++ = '[';
	p += put_digits(p, (uint64_t)ts, 0);
	*p++ = ',';
	return p;
}

static long cursor_raw(struct history_cursor *c, sqlite3_stmt *st, size_t n, size_t max_bytes,
		       char **buf, size_t *len, size_t *cap)
{
	long got = 0;
	int rc;
	size_t start = *len;
	sqlite3_bind_int64(st, 4, (int64_t)n);
	while (*len - start < max_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (buf_reserve(buf, len, cap, POINT_MAX) < 0)
			return -ENOMEM;
		int64_t ts = sqlite3_column_int64(st, 0);
		char *p = point_start(buf, len, ts);
		if (sqlite3_column_type(st, 1) == SQLITE_TEXT) {
			*len = (size_t)(p - *buf);
			if (put_text((const char *)sqlite3_column_text(st, 1), buf, len, cap) < 0)
				return -ENOMEM;
			p = *buf + *len;
		} else {
			p += fmt_num(p, sqlite3_column_double(st, 1));
		}
		*p++ = ']';
		*len = (size_t)(p - *buf);
		got++;
		c->next = ts + 1;
	}
	if (*len - start >= max_bytes)
		return got;   /* full: more may follow */
	if (rc != SQLITE_DONE)
		return -EIO;
	if ((size_t)got < n)
		c->left = got;   /* the range is exhausted: this is the last part */
	return got;
}

struct bucket {
	int64_t start, n;
	double sum, min, max;
};

static int bucket_put(const struct bucket *b, char **buf, size_t *len, size_t *cap)
{
	if (buf_reserve(buf, len, cap, POINT_MAX) < 0)
		return -ENOMEM;
	char *p = point_start(buf, len, b->start);
	p += fmt_num(p, b->sum / (double)b->n);
	*p++ = ',';
	p += fmt_num(p, b->min);
	*p++ = ',';
	p += fmt_num(p, b->max);
	*p++ = ']';
	*len = (size_t)(p - *buf);
	return 0;
}

static long cursor_buckets(struct history_cursor *c, sqlite3_stmt *st, size_t n, size_t max_bytes,
			   char **buf, size_t *len, size_t *cap)
{
	struct bucket b = { .n = 0 };
	long got = 0;
	int rc;
	size_t begin = *len;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t ts = sqlite3_column_int64(st, 0);
		int64_t start = c->base + (ts - c->base) / c->step * c->step;
		if (b.n && start != b.start) {
			if (bucket_put(&b, buf, len, cap) < 0)
				return -ENOMEM;
			if ((size_t)++got == n || *len - begin >= max_bytes) {
				c->next = start;   /* this row's bucket comes first next time */
				return got;
			}
			b.n = 0;
		}
		int64_t rn = sqlite3_column_int64(st, 1);
		double sum = sqlite3_column_double(st, 2), mn = sqlite3_column_double(st, 3),
		       mx = sqlite3_column_double(st, 4);
		if (!b.n) {
			b = (struct bucket){ start, rn, sum, mn, mx };
			continue;
		}
		b.n += rn;
		b.sum += sum;
		b.min = mn < b.min ? mn : b.min;
		b.max = mx > b.max ? mx : b.max;
	}
	if (rc != SQLITE_DONE)
		return -EIO;
	if (b.n) {
		if (bucket_put(&b, buf, len, cap) < 0)
			return -ENOMEM;
		got++;
	}
	c->left = got;   /* the range is exhausted: this is the last part */
	return got;
}

bool history_cursor_done(const struct history_cursor *c)
{
	return c->series == 0 || c->left == 0 || c->next > c->to;
}

long history_cursor_next(struct history_cursor *c, size_t n, size_t max_bytes, char **buf,
			 size_t *len, size_t *cap)
{
	struct history *h = c->h;
	if (c->series == 0 || c->left == 0 || c->next > c->to)
		return 0;
	if (n > c->left)
		n = c->left;
	int which = c->res == HISTORY_RAW ? 0 : c->from_raw ? 1 : 2;
	if (!c->st && sqlite3_prepare_v3(h->db, cursor_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
					 &c->st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_stmt *st = c->st;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, c->series);
	sqlite3_bind_int64(st, 2, c->next);
	sqlite3_bind_int64(st, 3, c->to);
	long got = which == 0 ? cursor_raw(c, st, n, max_bytes, buf, len, cap)
			      : cursor_buckets(c, st, n, max_bytes, buf, len, cap);
	sqlite3_reset(st);
	if (got == -EIO)
		goto fail;
	if (got < 0)
		return got;
	c->count += (size_t)got;
	c->left -= (size_t)got;
	return got;
fail:
	log_warnx("history %s: read: %s", h->path, sqlite3_errmsg(h->db));
	return -EIO;
}
