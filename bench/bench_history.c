/* bench_history: the shim's "history" op answering a year of 5-minute buckets of one sensor
 * (issue 18: under 50 ms), and how long history writes take per transaction (the batching
 * decision in docs/frAroundWeb.conf.example).
 *
 *   bench_history -b BIN_DIR [-n RUNS] [-k]
 *
 * 1. Writes a year of one sensor into a fresh history file through frAroundWeb's own history
 *    module, one reading a minute (525600 points; each 5-minute bucket holds 5), as the points
 *    would have come, then purges as of now (raw points older than 7 days go); times its
 *    transactions of 1000 points and of 1 point.
 * 2. Starts BIN_DIR/frAroundWeb on that file (unix socket shim, no broker needed) and asks
 *    RUNS times for the whole year (max_points 200000): the time from sending the request to
 *    reading its final line, on one authenticated connection; one answer (not timed) is parsed
 *    and must hold every 5-minute bucket the file has in the range (about 105120). Then the
 *    same with max_points 1000 (a chart).
 * Prints a human summary and a line "RESULT {json}". Bounded: 20 s per answer. */
#include "history.h"
#include "keys.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DAY_MS (24LL * 3600 * 1000)
#define MIN_MS 60000LL

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void put(struct history *h, int64_t ts, double v)
{
	char payload[96];
	snprintf(payload, sizeof payload, "{\"value\":%.1f,\"ts\":%lld}", v, (long long)ts);
	history_on_message(h, "fr/b/ctl/kitchen/state/temp", payload, strlen(payload), (uint64_t)ts);
}

struct fill {
	double tx1000_ms_mean, tx1000_ms_max, tx1_ms_mean, tx1_ms_max, seconds;
	long points;
};

/* Writes what is queued in one transaction, adding its time to *sum and *max (ms). */
static int timed_flush(struct history *h, double *sum, double *max)
{
	double a = now_s();
	if (history_flush(h) < 0)
		return -1;
	double d = (now_s() - a) * 1000;
	*sum += d;
	*max = d > *max ? d : *max;
	return 0;
}

static int fill(const char *path, int64_t now, struct fill *f)
{
	struct history_opts o;
	history_defaults(&o);
	o.path = path;
	struct history *h = history_open(NULL, &o);
	if (!h)
		return -1;
	int64_t start = now - 365 * DAY_MS;
	double t0 = now_s(), sum = 0, mx = 0;
	long batches = 0, n = 0;
	for (int64_t ts = start; ts <= now - 10 * MIN_MS; ts += MIN_MS) {
		/* A day's swing and a slow seasonal one, to 0.1 degree like a real thermometer. */
		double day = (double)(ts % DAY_MS) / (double)DAY_MS, year = (double)(ts - start) / (365.0 * DAY_MS);
		put(h, ts + (ts / MIN_MS) % 977, round((15 + 5 * sin(2 * M_PI * day) + 8 * sin(2 * M_PI * year)) * 10) / 10);
		if (++n % 1000 == 0) {
			if (timed_flush(h, &sum, &mx) < 0)
				goto fail;
			batches++;
		}
	}
	if (history_flush(h) < 0)
		goto fail;
	f->points = n;
	f->tx1000_ms_mean = sum / (double)batches;
	f->tx1000_ms_max = mx;
	/* One point per transaction, as an unbatched writer would do. */
	sum = mx = 0;
	for (int i = 0; i < 200; i++) {
		put(h, now - 9 * MIN_MS + i, 20);
		if (timed_flush(h, &sum, &mx) < 0)
			goto fail;
	}
	f->tx1_ms_mean = sum / 200;
	f->tx1_ms_max = mx;
	if (history_purge(h, (uint64_t)now) < 0)
		goto fail;
	history_close(h);
	f->seconds = now_s() - t0;
	return 0;
fail:
	history_close(h);
	return -1;
}

/* Reads lines from fd until one with "ok" (the final one); counts the points in every line
 * when check is set. Returns the points counted (0 unchecked) or -1. */
struct reader {
	int fd;
	char *buf;
	size_t len, cap;
	size_t bytes;
};

static long read_answer(struct reader *r, bool check, int64_t *resolution)
{
	long points = 0;
	r->bytes = 0;
	for (;;) {
		char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
		if (!nl) {
			if (r->cap - r->len < 65536) {
				r->cap = r->cap ? r->cap * 2 : 1 << 20;
				r->buf = realloc(r->buf, r->cap);
				if (!r->buf)
					return -1;
			}
			ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
			if (n <= 0) {
				fprintf(stderr, "bench_history: shim connection: %s\n", n ? strerror(errno) : "EOF");
				return -1;
			}
			r->len += (size_t)n;
			r->bytes += (size_t)n;
			continue;
		}
		size_t ll = (size_t)(nl - r->buf);
		/* The final line has "ok"; a part is an event ("event":"points"). */
		bool final = memmem(r->buf, ll, "\"ok\":", 5) != NULL;
		if (check) {
			cJSON *o = cJSON_ParseWithLength(r->buf, ll);
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "points");
			if (!o || (final && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok")))) {
				fprintf(stderr, "bench_history: bad answer: %.300s\n", r->buf);
				cJSON_Delete(o);
				return -1;
			}
			points += cJSON_GetArraySize(p);
			const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "resolution");
			if (final && resolution)
				*resolution = cJSON_IsNumber(res) ? (int64_t)res->valuedouble : 0;
			cJSON_Delete(o);
		}
		memmove(r->buf, nl + 1, r->len - ll - 1);
		r->len -= ll + 1;
		if (final)
			return points;
	}
}

/* The buckets the file holds in [from, to] (the first one from the one from is in). */
static long buckets_in(const char *path, int64_t from, int64_t to)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM agg WHERE ts >= ?1 AND ts <= ?2", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, from - from % 300000);
		sqlite3_bind_int64(st, 2, to);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = (long)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

/* CPU time (user + system) of process pid so far, in ms. */
static double cpu_ms(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* after ") ": state is field 3; utime and stime are fields 14 and 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static int send_line(int fd, const char *s)
{
	size_t n = strlen(s);
	return send(fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

struct timing {
	double median, p90, min, max;
	long points;
	size_t bytes;
	int64_t resolution;
};

static int time_query(struct reader *r, int runs, int64_t from, int64_t to, long max,
		      struct timing *t)
{
	char req[256];
	double *d = calloc((size_t)runs, sizeof *d);
	if (!d)
		return -1;
	for (int i = -1; i < runs; i++) {
		snprintf(req, sizeof req, "{\"id\":%d,\"op\":\"history\",\"home\":\"b\",\"ctl\":\"kitchen\","
			 "\"sensor\":\"temp\",\"from\":%lld,\"to\":%lld,\"max_points\":%ld}\n", i + 10,
			 (long long)from, (long long)to, max);
		double a = now_s();
		if (send_line(r->fd, req) < 0)
			goto fail;
		/* Run -1 (not timed) checks the answer; the timed ones only find its end. */
		long n = read_answer(r, i < 0, &t->resolution);
		if (n < 0)
			goto fail;
		if (i < 0) {
			t->points = n;
			continue;
		}
		d[i] = (now_s() - a) * 1000;
		t->bytes = r->bytes;
	}
	qsort(d, (size_t)runs, sizeof *d, cmp_d);
	t->median = d[runs / 2];
	t->p90 = d[(runs * 9) / 10 < runs ? (runs * 9) / 10 : runs - 1];
	t->min = d[0];
	t->max = d[runs - 1];
	free(d);
	return 0;
fail:
	free(d);
	return -1;
}

int main(int argc, char **argv)
{
	const char *bin = NULL;
	int runs = 30, opt;
	bool keep = false;
	while ((opt = getopt(argc, argv, "b:n:k")) != -1) {
		switch (opt) {
		case 'b': bin = optarg; break;
		case 'n': runs = atoi(optarg); break;
		case 'k': keep = true; break;
		default: goto usage;
		}
	}
	if (!bin || runs < 1)
		goto usage;
	log_init("bench_history", true, 0);
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/fr-bench-history-XXXXXX", path[256], conf[256], users[256], sock[256];
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/history.db", dir);
	snprintf(conf, sizeof conf, "%s/web.conf", dir);
	snprintf(users, sizeof users, "%s/users.conf", dir);
	snprintf(sock, sizeof sock, "%s/shim.sock", dir);
	int64_t now = wall_ms();
	struct fill f;
	fprintf(stderr, "bench_history: writing a year of one reading a minute into %s\n", path);
	if (fill(path, now, &f) < 0) {
		fprintf(stderr, "bench_history: filling the history failed\n");
		return 1;
	}
	char token[33], hex[65];
	uint8_t hash[32];
	if (keys_random_hex(token, 16) < 0)
		return 1;
	SHA256((const unsigned char *)token, strlen(token), hash);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", hash[i]);
	FILE *fp = fopen(users, "w");
	if (!fp)
		return 1;
	fprintf(fp, "users = ( { name = \"bench\"; token_sha256 = \"%s\"; homes = [\"b\"]; } );\n", hex);
	fclose(fp);
	if (!(fp = fopen(conf, "w")))
		return 1;
	fprintf(fp, "users_file = \"%s\";\naudit_file = \"%s/audit.log\";\nshim = { unix = \"%s\"; };\n"
		"http = { address = \"127.0.0.1\"; port = 0; };\nhistory = { file = \"%s\"; };\n"
		"mqtt = { uri = \"mqtt://127.0.0.1:1\"; backoff_min = 1; backoff_max = 30; };\n",
		users, dir, sock, path);
	fclose(fp);
	char prog[512], logf[300];
	snprintf(prog, sizeof prog, "%s/frAroundWeb", bin);
	snprintf(logf, sizeof logf, "%s/frAroundWeb.log", dir);
	pid_t pid = fork();
	if (pid == 0) {
		FILE *lf = freopen(logf, "w", stderr);
		(void)lf;
		execl(prog, prog, "-f", "-c", conf, (char *)NULL);
		_exit(127);
	}
	int fd = -1, rc = 1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(sock) >= sizeof sa.sun_path)
		goto out;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	for (int i = 0; i < 200 && fd < 0; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			close(fd);
			fd = -1;
			usleep(50000);
		}
	}
	if (fd < 0) {
		fprintf(stderr, "bench_history: frAroundWeb did not listen (log: %s)\n", logf);
		keep = true;
		goto out;
	}
	struct timeval tv = { 20, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct reader r = { .fd = fd };
	char auth[128];
	snprintf(auth, sizeof auth, "{\"id\":1,\"op\":\"auth\",\"token\":\"%s\"}\n", token);
	if (send_line(fd, auth) < 0 || read_answer(&r, true, NULL) < 0)
		goto out;
	struct timing year = { 0 }, chart = { 0 };
	int64_t qnow = wall_ms();
	fprintf(stderr, "bench_history: %d answers of a year of 5-minute buckets\n", runs);
	double cpu0 = cpu_ms(pid);
	if (time_query(&r, runs, qnow - 365 * DAY_MS, qnow, 200000, &year) < 0)
		goto out;
	/* runs + 1 answers (the checked one too): frAroundWeb's own CPU per answer, which the
	 * other processes of a busy machine do not change. */
	double year_cpu = (cpu_ms(pid) - cpu0) / (runs + 1);
	long want = buckets_in(path, qnow - 365 * DAY_MS, qnow);
	if (year.points != want || want < 105000 || year.resolution != 300000) {
		fprintf(stderr, "bench_history: the year came as %ld points of %lld ms; the file holds "
			"%ld buckets of 5 minutes\n", year.points, (long long)year.resolution, want);
		goto out;
	}
	if (time_query(&r, runs, qnow - 365 * DAY_MS, qnow, 1000, &chart) < 0)
		goto out;
	printf("history fill: %ld readings (a year, 1/min) in %.1f s; transaction of 1000 points: "
	       "mean %.2f ms, max %.2f ms; of 1 point: mean %.3f ms, max %.3f ms\n", f.points,
	       f.seconds, f.tx1000_ms_mean, f.tx1000_ms_max, f.tx1_ms_mean, f.tx1_ms_max);
	printf("history answer, a year of 5-minute buckets (%ld points, %zu bytes): median %.1f ms, "
	       "p90 %.1f ms, min %.1f ms, max %.1f ms (%d runs)\n", year.points, year.bytes,
	       year.median, year.p90, year.min, year.max, runs);
	printf("history answer, a year: frAroundWeb CPU %.1f ms per answer\n", year_cpu);
	printf("history answer, a year in %ld points (%lld s buckets): median %.1f ms, p90 %.1f ms\n",
	       chart.points, (long long)(chart.resolution / 1000), chart.median, chart.p90);
	printf("RESULT {\"year_points\":%ld,\"year_bytes\":%zu,\"year_median_ms\":%.2f,"
	       "\"year_p90_ms\":%.2f,\"year_max_ms\":%.2f,\"year_cpu_ms\":%.2f,\"chart_points\":%ld,\"chart_median_ms\":%.2f,"
	       "\"chart_p90_ms\":%.2f,\"runs\":%d,\"fill_points\":%ld,\"tx1000_mean_ms\":%.3f,"
	       "\"tx1000_max_ms\":%.3f,\"tx1_mean_ms\":%.4f,\"tx1_max_ms\":%.4f}\n", year.points,
	       year.bytes, year.median, year.p90, year.max, year_cpu, chart.points, chart.median, chart.p90, runs,
	       f.points, f.tx1000_ms_mean, f.tx1000_ms_max, f.tx1_ms_mean, f.tx1_ms_max);
	rc = 0;
	free(r.buf);
out:
	if (fd >= 0)
		close(fd);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	if (!keep) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_history: could not remove %s\n", dir);
	} else {
		fprintf(stderr, "bench_history: files kept in %s\n", dir);
	}
	return rc;
usage:
	fprintf(stderr, "usage: bench_history -b BIN_DIR [-n RUNS] [-k]\n");
	return 2;
}
