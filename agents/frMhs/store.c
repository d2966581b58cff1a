/* store: frMhs's state directory; see store.h for the files and their format. */
#include "store.h"

#include "log.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_FORMAT 1

struct store {
	struct loop *loop;
	char *dir;
	int dirfd, lockfd, logfd;
	off_t logsize;
	size_t lines;
	struct loop_timer sync;
	unsigned long long errors;
	uint64_t err_logged;   /* monotonic ms of the last logged write error */
};

static void store_write_failed(struct store *s, const char *what, int err)
{
	s->errors++;
	uint64_t now = loop_now(s->loop);
	if (s->err_logged && now - s->err_logged < 60000)
		return;
	s->err_logged = now;
	log_warnx("state dir %s: %s: %s (%llu failed writes so far; requests go on, but a restart of "
		  "frMhs may not know them)", s->dir, what, strerror(err), s->errors);
}

/* mkdir -p with 0700 for the last level (it holds reply routes). */
static int store_mkdirs(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	int rc = 0;
	for (char *q = p + 1; *q && rc == 0; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		*q = '/';
	}
	if (rc == 0 && mkdir(p, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	free(p);
	return rc;
}

static int store_write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* name.tmp written, fsync'd and renamed over name, then the directory fsync'd: after a crash
 * the file is either the old one or the new one, never a mix. */
static int store_replace(struct store *s, const char *name, const char *data, size_t len)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = store_write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(s->dirfd, tmp, s->dirfd, name) < 0)
		rc = -errno;
	if (rc == 0 && fsync(s->dirfd) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(s->dirfd, tmp, 0);
	return rc;
}

/* The whole of a small file, NUL-terminated; NULL with errno set. */
static char *store_read(struct store *s, const char *name, size_t *len)
{
	int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				errno = ENOMEM;
				break;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0) {
			buf[n] = '\0';
			*len = n;
			break;
		}
		n += (size_t)r;
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return buf;
}

static int store_check_home(struct store *s, const char *home)
{
	size_t len;
	char *have = store_read(s, "home", &len);
	if (!have) {
		if (errno != ENOENT)
			return -errno;
		char line[80];
		int n = snprintf(line, sizeof line, "%s\n", home);
		return store_replace(s, "home", line, (size_t)n);
	}
	have[strcspn(have, "\n")] = '\0';
	int rc = strcmp(have, home) == 0 ? 0 : -EEXIST;
	if (rc)
		log_warnx("state dir %s belongs to home '%s', not '%s': give each home its own state_dir",
			  s->dir, have, home);
	free(have);
	return rc;
}

static void store_sync(void *arg)
{
	struct store *s = arg;
	if (s->logfd >= 0 && fdatasync(s->logfd) < 0)
		store_write_failed(s, "requests.log: fdatasync", errno);
}

struct store *store_open(struct loop *loop, const char *dir, const char *home)
{
	struct store *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->loop = loop;
	s->dirfd = s->lockfd = s->logfd = -1;
	loop_timer_init(&s->sync, store_sync, s);
	int rc;
	if (!(s->dir = strdup(dir)))
		goto fail;
	if ((rc = store_mkdirs(dir)) < 0) {
		errno = -rc;
		log_warn("state dir %s (setting state_dir)", dir);
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		log_warn("state dir %s (setting state_dir)", dir);
		goto fail;
	}
	s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		log_warn("state dir %s: lock", dir);
		goto fail;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			log_warnx("state dir %s is in use by another frMhs (each needs its own state_dir)",
				  dir);
		else
			log_warn("state dir %s: lock", dir);
		goto fail;
	}
	if ((rc = store_check_home(s, home)) < 0) {
		if (rc != -EEXIST) {
			errno = -rc;
			log_warn("state dir %s: home", dir);
		}
		goto fail;
	}
	s->logfd = openat(s->dirfd, "requests.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (s->logfd < 0) {
		log_warn("state dir %s: requests.log", dir);
		goto fail;
	}
	struct stat st;
	s->logsize = fstat(s->logfd, &st) == 0 ? st.st_size : 0;
	return s;
fail:
	store_close(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	loop_timer_stop(s->loop, &s->sync);
	if (s->logfd >= 0) {
		if (fdatasync(s->logfd) < 0)
			log_warn("state dir %s: requests.log: fdatasync", s->dir);
		close(s->logfd);
	}
	if (s->lockfd >= 0)
		close(s->lockfd);   /* releases the lock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->dir);
	free(s);
}

cJSON *store_registry_load(struct store *s)
{
	size_t len;
	char *text = store_read(s, "registry.json", &len);
	if (!text) {
		if (errno != ENOENT)
			log_warn("state dir %s: registry.json", s->dir);
		return NULL;
	}
	cJSON *doc = cJSON_ParseWithLength(text, len);
	free(text);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(doc, "format");
	if (!cJSON_IsObject(doc) || !cJSON_IsNumber(f) || f->valueint != STORE_FORMAT ||
	    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "controllers"))) {
		log_warnx("state dir %s: registry.json is not a format %d registry; ignored", s->dir,
			  STORE_FORMAT);
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

int store_registry_save(struct store *s, const cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);
	if (!text)
		return -ENOMEM;
	int rc = store_replace(s, "registry.json", text, strlen(text));
	free(text);
	if (rc < 0)
		store_write_failed(s, "registry.json", -rc);
	return rc;
}

void store_log_load(struct store *s, void (*cb)(void *arg, const cJSON *rec), void *arg)
{
	size_t len;
	char *text = store_read(s, "requests.log", &len);
	if (!text) {
		if (errno != ENOENT)
			log_warn("state dir %s: requests.log", s->dir);
		return;
	}
	size_t bad = 0;
	for (char *line = text, *nl; line < text + len; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(text + len - line));
		if (!nl) {
			/* No newline: the append a crash cut short. Its request is handled as if
			 * this record had not been written (the record before it still holds). */
			log_info("state dir %s: requests.log ends in a cut record; ignored", s->dir);
			break;
		}
		cJSON *rec = cJSON_ParseWithLength(line, (size_t)(nl - line));
		if (cJSON_IsObject(rec))
			cb(arg, rec);
		else if (nl > line)
			bad++;
		cJSON_Delete(rec);
	}
	if (bad)
		log_warnx("state dir %s: requests.log: %zu unreadable record(s) skipped", s->dir, bad);
	free(text);
}

int store_log_append(struct store *s, const cJSON *rec)
{
	char *text = cJSON_PrintUnformatted(rec);
	if (!text) {
		store_write_failed(s, "requests.log", ENOMEM);
		return -ENOMEM;
	}
	int rc = store_log_append_text(s, text, strlen(text));
	free(text);
	return rc;
}

int store_log_append_text(struct store *s, char *line, size_t n)
{
	char saved = line[n];
	line[n] = '\n';   /* written as n + 1 bytes, then put back */
	int rc = store_write_all(s->logfd, line, n + 1);
	line[n] = saved;
	if (rc < 0) {
		/* Cut a partial record off, or the next one would be glued to it and both lost. */
		if (ftruncate(s->logfd, s->logsize) < 0)
			log_warn("state dir %s: requests.log: truncate", s->dir);
		store_write_failed(s, "requests.log", -rc);
		return rc;
	}
	s->logsize += (off_t)(n + 1);
	s->lines++;
	if (!loop_timer_armed(&s->sync))
		loop_timer_start(s->loop, &s->sync, STORE_SYNC_MS);
	return 0;
}

int store_log_rewrite(struct store *s, const cJSON *recs)
{
	size_t cap = 4096, len = 0, lines = 0;
	char *buf = malloc(cap);
	const cJSON *rec;
	int rc = 0;
	cJSON_ArrayForEach(rec, recs) {
		char *t = buf ? cJSON_PrintUnformatted(rec) : NULL;
		if (!t) {
			rc = -ENOMEM;
			break;
		}
		size_t n = strlen(t);
		if (len + n + 1 > cap) {
			while (len + n + 1 > cap)
				cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(t);
				rc = -ENOMEM;
				break;
			}
			buf = nb;
		}
		memcpy(buf + len, t, n);
		buf[len + n] = '\n';
		len += n + 1;
		lines++;
		free(t);
	}
	if (!buf)
		rc = -ENOMEM;
	if (rc == 0)
		rc = store_replace(s, "requests.log", buf, len);
	free(buf);
	if (rc < 0) {
		store_write_failed(s, "requests.log: rewrite", -rc);
		return rc;
	}
	/* The old descriptor points at the replaced file. */
	int fd = openat(s->dirfd, "requests.log", O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		store_write_failed(s, "requests.log: reopen", errno);
		return rc;
	}
	close(s->logfd);
	s->logfd = fd;
	s->logsize = (off_t)len;
	s->lines = lines;
	return 0;
}

size_t store_log_lines(const struct store *s) { return s->lines; }

int64_t store_json_int(const cJSON *v, double scale, int64_t min, int64_t max, int64_t def)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return def;
	double x = v->valuedouble * scale;
	if (!(x > (double)min))
		return min;
	if (x >= (double)max)
		return max;
	return (int64_t)x;
}
unsigned long long store_errors(const struct store *s) { return s->errors; }
const char *store_dir(const struct store *s) { return s->dir; }
