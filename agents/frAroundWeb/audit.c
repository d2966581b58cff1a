/* audit: append records and read the tail of the audit file; see audit.h. */
#include "audit.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct audit {
	char *path;
	int fd;
};

static int audit_open_fd(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		log_warn("audit file %s", path);
	return fd;
}

struct audit *audit_open(const char *path)
{
	struct audit *a = calloc(1, sizeof *a);
	if (!a || !(a->path = strdup(path)))
		goto fail;
	a->fd = audit_open_fd(path);
	if (a->fd < 0)
		goto fail;
	return a;
fail:
	if (a)
		free(a->path);
	free(a);
	return NULL;
}

int audit_reopen(struct audit *a)
{
	int fd = audit_open_fd(a->path);
	if (fd < 0)
		return -1;
	close(a->fd);
	a->fd = fd;
	return 0;
}

void audit_free(struct audit *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a);
}

int audit_append(struct audit *a, const cJSON *rec)
{
	char *s = cJSON_PrintUnformatted(rec);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return -ENOMEM;
	}
	line[n] = '\n';
	ssize_t w;
	do
		w = write(a->fd, line, n + 1);
	while (w < 0 && errno == EINTR);
	int rc = 0;
	if (w != (ssize_t)(n + 1)) {
		rc = w < 0 ? -errno : -EIO;
		log_warn("audit file %s: record not written", a->path);
	}
	free(line);
	return rc;
}

cJSON *audit_tail(struct audit *a, const char *user, int limit)
{
	cJSON *out = NULL;
	char *buf = NULL;
	int fd = open(a->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_warn("audit file %s", a->path);
		goto fail;
	}
	off_t from = st.st_size > AUDIT_TAIL_BYTES ? st.st_size - AUDIT_TAIL_BYTES : 0;
	size_t want = (size_t)(st.st_size - from);
	buf = malloc(want + 1);
	if (!buf)
		goto fail;
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, from + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	out = cJSON_CreateArray();
	if (!out)
		goto fail;
	/* Newest first: walk the lines backwards. A first line cut by the window is skipped by
	 * failing to parse as an object of this user. */
	size_t end = got, count = 0;
	while (end > 0 && (int)count < limit) {
		size_t start = end;
		while (start > 0 && buf[start - 1] != '\n')
			start--;
		if (end > start) {
			cJSON *rec = cJSON_ParseWithLength(buf + start, end - start);
			const cJSON *u = cJSON_GetObjectItemCaseSensitive(rec, "user");
			if (cJSON_IsObject(rec) && cJSON_IsString(u) && strcmp(u->valuestring, user) == 0) {
				cJSON_AddItemToArray(out, rec);
				count++;
			} else {
				cJSON_Delete(rec);
			}
		}
		end = start > 0 ? start - 1 : 0;
	}
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return out;
}
