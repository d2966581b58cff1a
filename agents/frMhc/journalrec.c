/* journalrec.c: the journal's records in its file -- writing them, reading one back and
 * taking it apart; see journal_int.h. */
#include "journal_int.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* {"id":"<id>"} or {"id":"<id>","result":<result>}, with room for a newline: malloc'd. */
char *journal_line(const char *id, const char *result)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	char *head = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!head || !result)
		return head;
	size_t hl = strlen(head) - 1;  /* without the closing brace */
	size_t rl = strlen(result);
	char *s = malloc(hl + 10 + rl + 2);
	if (s) {
		memcpy(s, head, hl);
		memcpy(s + hl, ",\"result\":", 10);
		memcpy(s + hl + 10, result, rl);
		s[hl + 10 + rl] = '}';
		s[hl + 10 + rl + 1] = '\0';
	}
	free(head);
	return s;
}

int journal_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		off += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Extends the file with real zero bytes (not fallocate: ext4 would still convert unwritten
 * extents, a metadata change, at the first write into them) so it has room for `need`. */
int journal_grow(int fd, off_t *alloc, off_t end, size_t need)
{
	static const char zeros[8192];
	off_t want = end + (off_t)need;
	if (want <= *alloc)
		return 0;
	off_t target = *alloc + JOURNAL_CHUNK;
	if (target < want)
		target = want + JOURNAL_CHUNK;
	for (off_t off = *alloc; off < target;) {
		size_t n = (size_t)(target - off) < sizeof zeros ? (size_t)(target - off) : sizeof zeros;
		int rc = journal_pwrite_all(fd, zeros, n, off);
		if (rc < 0)
			return rc;
		off += (off_t)n;
	}
	*alloc = target;
	return 0;
}

/* Appends a record; *at and *len: where it starts and its length without the newline. */
int journal_append(struct journal *j, const char *id, const char *result, off_t *at,
			  uint32_t *len)
{
	char *s = journal_line(id, result);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	int rc = n < UINT32_MAX ? 0 : -EMSGSIZE;
	s[n] = '\n';  /* cJSON's buffer has the NUL slot; we write n+1 bytes without it */
	if (rc == 0)
		rc = journal_grow(j->fd, &j->alloc, j->end, n + 1);
	if (rc == 0)
		rc = journal_pwrite_all(j->fd, s, n + 1, j->end);
	free(s);
	if (rc < 0) {
		errno = -rc;
		log_warn("journal %s: append", j->path);
		return rc;
	}
	*at = j->end;
	*len = (uint32_t)n;
	j->end += (off_t)(n + 1);
	j->records++;
	return 0;
}

/* The record of e, read back into j->rec (NUL-terminated); NULL if it cannot be read. */
const char *journal_read(struct journal *j, const struct jentry *e)
{
	if (e->len + 1 > j->rec_cap) {
		char *b = realloc(j->rec, e->len + 1);
		if (!b)
			return NULL;
		j->rec = b;
		j->rec_cap = e->len + 1;
	}
	size_t got = 0;
	while (got < e->len) {
		ssize_t r = journal_pread(j->fd, j->rec + got, e->len - got, e->off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_warn("journal %s: reading a record back", j->path);
			return NULL;
		}
		got += (size_t)r;
	}
	j->rec[e->len] = '\0';
	return j->rec;
}

/* The record of e, split: whether it is id's, and (if result is given) where its result is.
 * Records are written as {"id":<id>} and {"id":<id>,"result":<result>} (journal_line), so the
 * result is sliced out as the bytes it was sent as; anything else is parsed. */
int journal_split(struct journal *j, const struct jentry *e, const char *id,
		  const char **res, size_t *res_len)
{
	const char *rec = journal_read(j, e);
	char *head = rec ? journal_line(id, NULL) : NULL;
	bool ok = false;
	if (!head)
		return -1;
	size_t hl = strlen(head) - 1;   /* without the closing brace */
	if (e->len > hl && memcmp(rec, head, hl) == 0 && (rec[hl] == '}' || rec[hl] == ',')) {
		ok = true;
		if (res && rec[hl] == ',' && e->len > hl + 11 &&
		    memcmp(rec + hl, ",\"result\":", 10) == 0 && rec[e->len - 1] == '}') {
			*res = rec + hl + 10;
			*res_len = e->len - hl - 11;
		} else if (res) {
			*res = NULL;
		}
	} else {
		cJSON *o = cJSON_ParseWithLength(rec, e->len);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
		ok = cJSON_IsString(v) && strcmp(v->valuestring, id) == 0;
		if (ok && res) {
			const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "result");
			char *t = r ? cJSON_PrintUnformatted(r) : NULL;
			*res = NULL;
			if (t && strlen(t) <= e->len) {
				/* A reprint is never longer than what it was parsed from. */
				strcpy(j->rec, t);
				*res = j->rec;
				*res_len = strlen(t);
			}
			free(t);
		}
		cJSON_Delete(o);
	}
	free(head);
	return ok ? 1 : 0;
}
