/* journal: append-only JSON-lines file of command ids and results; see journal.h.
 *
 * The file is kept ahead of its data with zero bytes (JOURNAL_CHUNK at a time): a record is
 * written into space that already exists, so the fdatasync of a start record flushes data
 * only, without the inode size update that an appending write would make ext4 commit (about
 * half the cost of a command's round trip on this project's machines, bench/: rtt). Records
 * never contain a NUL byte, so the data ends at the first line that starts with one.
 *
 * Group commit: journal_started writes its record at once (so a later record of the same
 * iteration lands after it) and queues one loop_defer; the deferred flush covers every record
 * written since the previous one. Until it succeeds the ids of those start records are on the
 * pending list: known (a repeat in the same iteration is not run twice), not yet promised.
 * A failed flush blanks each of their records in place with spaces (a line load skips), so
 * the results written among them in that iteration stay. */
#include "journal.h"

#include "lanmsg.h"
#include "log.h"
#include "loop.h"
#include "strhash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct jentry {
	char *id;
	char *result;    /* the result as compact JSON text; NULL while running. Text, not a
			  * cJSON tree: ten thousand remembered results must stay small. */
	unsigned long long order;
	struct jentry *next;  /* hash chain */
	struct jentry *pending_next;  /* on the pending list: start record not yet flushed */
	bool pending;
	off_t rec_off;   /* while pending: where its start record is, and its length without */
	size_t rec_len;  /* the newline */
};

#define JOURNAL_CHUNK (256 * 1024)

struct journal {
	char *path, *tmp;
	int fd;
	off_t end;       /* where the next record goes: the data ends here */
	off_t alloc;     /* file size: [end, alloc) are zeros */
	size_t max_ids;
	size_t records;  /* lines in the file */
	size_t count;    /* live entries */
	unsigned long long order;
	struct jentry **buckets;
	size_t nbuckets;
	/* the group commit */
	struct loop *loop;
	struct loop_defer commit;
	journal_durable_cb on_durable;
	void *arg;
	struct jentry *pending;   /* start records not flushed yet */
	unsigned long syncs;
};

int (*journal_fdatasync)(int fd) = fdatasync;

static struct jentry *journal_find(struct journal *j, const char *id)
{
	for (struct jentry *e = j->buckets[strhash(id) % j->nbuckets]; e; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static struct jentry *journal_put(struct journal *j, const char *id)
{
	struct jentry *e = journal_find(j, id);
	if (e) {
		e->order = ++j->order;
		return e;
	}
	e = calloc(1, sizeof *e);
	if (!e || !(e->id = strdup(id))) {
		free(e);
		return NULL;
	}
	size_t b = strhash(id) % j->nbuckets;
	e->next = j->buckets[b];
	e->order = ++j->order;
	j->buckets[b] = e;
	j->count++;
	return e;
}

static void journal_drop(struct journal *j, struct jentry *victim)
{
	struct jentry **pp = &j->buckets[strhash(victim->id) % j->nbuckets];
	while (*pp != victim)
		pp = &(*pp)->next;
	*pp = victim->next;
	free(victim->id);
	free(victim->result);
	free(victim);
	j->count--;
}

static int journal_cmp_order(const void *a, const void *b)
{
	const struct jentry *x = *(struct jentry *const *)a, *y = *(struct jentry *const *)b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* {"id":"<id>"} or {"id":"<id>","result":<result>}, with room for a newline: malloc'd. */
static char *journal_line(const char *id, const char *result)
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

static int journal_pwrite_all(int fd, const void *buf, size_t n, off_t off)
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
static int journal_grow(int fd, off_t *alloc, off_t end, size_t need)
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

/* *len (if given): the record's length without its newline; it starts at j->end as was. */
static int journal_append(struct journal *j, const char *id, const char *result, size_t *len)
{
	char *s = journal_line(id, result);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	s[n] = '\n';  /* cJSON's buffer has the NUL slot; we write n+1 bytes without it */
	int rc = journal_grow(j->fd, &j->alloc, j->end, n + 1);
	if (rc == 0)
		rc = journal_pwrite_all(j->fd, s, n + 1, j->end);
	free(s);
	if (len)
		*len = n;
	if (rc == 0)
		j->end += (off_t)(n + 1);
	if (rc < 0) {
		errno = -rc;
		log_warn("journal %s: append", j->path);
		return rc;
	}
	j->records++;
	return 0;
}

/* Keeps the newest max_ids entries, rewrites the file with them. */
static int journal_compact(struct journal *j)
{
	struct jentry **all = malloc(j->count * sizeof *all);
	if (!all)
		return -ENOMEM;
	size_t n = 0;
	for (size_t b = 0; b < j->nbuckets; b++)
		for (struct jentry *e = j->buckets[b]; e; e = e->next)
			all[n++] = e;
	qsort(all, n, sizeof *all, journal_cmp_order);
	size_t drop = n > j->max_ids ? n - j->max_ids : 0;
	for (size_t i = 0; i < drop; i++)
		journal_drop(j, all[i]);
	int rc = 0;
	off_t end = 0, alloc = 0;
	int fd = open(j->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	for (size_t i = drop; i < n && rc == 0; i++) {
		char *s = journal_line(all[i]->id, all[i]->result);
		if (!s) {
			rc = -ENOMEM;
			break;
		}
		size_t l = strlen(s);
		s[l] = '\n';
		rc = journal_grow(fd, &alloc, end, l + 1);
		if (rc == 0)
			rc = journal_pwrite_all(fd, s, l + 1, end);
		end += (off_t)(l + 1);
		free(s);
	}
	if (rc == 0)
		rc = journal_grow(fd, &alloc, end, 1);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc < 0) {
		close(fd);
		goto fail;
	}
	if (rename(j->tmp, j->path) < 0) {
		rc = -errno;
		close(fd);
		goto fail;
	}
	close(j->fd);
	j->fd = fd;
	j->end = end;
	j->alloc = alloc;
	j->records = n - drop;
	free(all);
	return 0;
fail:
	errno = -rc;
	log_warn("journal %s: compaction", j->path);
	free(all);
	return rc;
}

/* A last line without its newline (a crash mid-append) must be repaired before anything is
 * appended, or the next record would be glued onto it and lost with it: *torn_at is where an
 * unreadable tail starts (-1: none), *needs_nl says a readable tail lacks only its newline. */
static int journal_load(struct journal *j, off_t *torn_at, bool *needs_nl, off_t *data_end)
{
	*torn_at = -1;
	*needs_nl = false;
	*data_end = 0;
	FILE *f = fopen(j->path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	off_t off = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		/* A NUL starts the zero padding: the data, and whatever a crash left inside the
		 * padding's first line, end there. */
		size_t data = strnlen(line, (size_t)n);
		bool padding = data < (size_t)n;
		if (padding) {
			if (data == 0)
				break;
			n = (ssize_t)data;
		}
		bool complete = n > 0 && line[n - 1] == '\n';
		off += n;
		if (complete && n > 1 && strspn(line, " ") == (size_t)n - 1) {
			/* A start record blanked when its flush failed: that id never ran. */
			*data_end = off;
			j->records++;
			continue;
		}
		cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
		if (!cJSON_IsString(id)) {
			/* A torn last line from a crash mid-append: the start it described was never
			 * acknowledged as durable, so the action did not start. */
			log_warnx("journal %s:%u: unreadable record skipped", j->path, lineno);
			cJSON_Delete(o);
			if (!complete)
				*torn_at = off - n;
			else
				*data_end = off;
			if (padding)
				break;
			continue;
		}
		if (!complete)
			*needs_nl = true;
		*data_end = off;
		struct jentry *e = journal_put(j, id->valuestring);
		if (e) {
			const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "result");
			free(e->result);
			e->result = r ? cJSON_PrintUnformatted(r) : NULL;
		}
		j->records++;
		cJSON_Delete(o);
		if (padding)
			break;
	}
	free(line);
	fclose(f);
	/* Runs that were in flight when the controller stopped: their outcome is unknown. */
	size_t lost = 0;
	for (size_t b = 0; b < j->nbuckets; b++)
		for (struct jentry *e = j->buckets[b]; e; e = e->next)
			if (!e->result) {
				struct lanmsg_result lost_r = {
					.id = e->id, .status = "lost",
					.reason = "the controller restarted while the action ran" };
				cJSON *r = lanmsg_result_new(&lost_r);
				e->result = r ? cJSON_PrintUnformatted(r) : NULL;
				cJSON_Delete(r);
				lost++;
			}
	if (lost)
		log_warnx("journal %s: %zu command(s) were running at the last stop; reported as lost",
			  j->path, lost);
	return 0;
}

static void journal_commit(void *arg);

struct journal *journal_open(const char *dir, size_t max_ids, struct loop *loop,
			     journal_durable_cb on_durable, void *arg)
{
	struct journal *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->fd = -1;
	j->loop = loop;
	j->on_durable = on_durable;
	j->arg = arg;
	loop_defer_init(&j->commit, journal_commit, j);
	j->max_ids = max_ids;
	j->nbuckets = max_ids * 2 + 1;
	j->buckets = calloc(j->nbuckets, sizeof *j->buckets);
	if (!j->buckets || asprintf(&j->path, "%s/journal", dir) < 0 ||
	    asprintf(&j->tmp, "%s/journal.tmp", dir) < 0)
		goto fail;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_warn("state directory %s", dir);
		goto fail;
	}
	off_t torn_at, data_end;
	bool needs_nl;
	int rc = journal_load(j, &torn_at, &needs_nl, &data_end);
	if (rc < 0) {
		errno = -rc;
		log_warn("journal %s", j->path);
		goto fail;
	}
	j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		log_warn("journal %s", j->path);
		goto fail;
	}
	/* Normalise to data + zeros: cut a torn record (its start was never acknowledged as
	 * durable, so its action never ran), end a complete last record that lacks only its
	 * newline, and drop anything a crash left beyond the data. */
	j->end = torn_at >= 0 ? torn_at : data_end;
	rc = ftruncate(j->fd, j->end) < 0 ? -errno : 0;
	j->alloc = j->end;
	if (rc == 0 && needs_nl && torn_at < 0) {
		rc = journal_pwrite_all(j->fd, "\n", 1, j->end);
		j->end++;
		j->alloc++;
	}
	if (rc == 0)
		rc = journal_grow(j->fd, &j->alloc, j->end, 1);
	if (rc == 0 && fdatasync(j->fd) < 0)
		rc = -errno;
	if (rc < 0) {
		errno = -rc;
		log_warn("journal %s: preparing the file", j->path);
		goto fail;
	}
	if ((j->records > j->max_ids * 2 || j->count > j->max_ids) && journal_compact(j) < 0)
		goto fail;
	return j;
fail:
	journal_close(j);
	return NULL;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->loop)
		loop_defer_cancel(j->loop, &j->commit);
	for (size_t b = 0; j->buckets && b < j->nbuckets; b++)
		while (j->buckets[b])
			journal_drop(j, j->buckets[b]);
	if (j->fd >= 0)
		close(j->fd);
	free(j->buckets);
	free(j->path);
	free(j->tmp);
	free(j);
}

enum journal_state journal_lookup(struct journal *j, const char *id, const char **result)
{
	struct jentry *e = journal_find(j, id);
	if (!e)
		return JOURNAL_NONE;
	if (!e->result)
		return JOURNAL_RUNNING;
	if (result)
		*result = e->result;
	return JOURNAL_DONE;
}

static int journal_maybe_compact(struct journal *j)
{
	/* Not while start records wait for their flush: the commit's offsets are in this file. */
	if (j->records >= j->max_ids * 2 && !j->pending)
		return journal_compact(j);
	return 0;
}

int journal_started(struct journal *j, const char *id)
{
	off_t at = j->end;
	size_t len;
	if (journal_append(j, id, NULL, &len) < 0)
		return -1;
	struct jentry *e = journal_put(j, id);
	if (!e)
		return -1;   /* written but not remembered: its flush will not report it either */
	e->rec_off = at;
	e->rec_len = len;
	if (!e->pending) {
		e->pending = true;
		e->pending_next = j->pending;
		j->pending = e;
	}
	loop_defer(j->loop, &j->commit);
	return 0;
}

/* The group commit, at the end of the iteration: one flush for every record written since the
 * last one, then one on_durable for all the start records among them. */
static void journal_commit(void *arg)
{
	struct journal *j = arg;
	int rc = 0;

	j->syncs++;
	if (journal_fdatasync(j->fd) < 0) {
		rc = -errno;
		log_warn("journal %s: flush", j->path);
	}
	while (j->pending) {
		struct jentry *e = j->pending;
		j->pending = e->pending_next;
		e->pending = false;
		e->pending_next = NULL;
		if (rc < 0 && !e->result) {
			/* The start is refused, so the id never runs; a record that reached the disk
			 * anyway would read back as "lost" after a restart and keep the id from ever
			 * running. Blanked (best effort) to spaces, a line that load skips. */
			char *sp = malloc(e->rec_len);
			if (sp) {
				memset(sp, ' ', e->rec_len);
				journal_pwrite_all(j->fd, sp, e->rec_len, e->rec_off);
				free(sp);
			}
			journal_drop(j, e);
		}
	}
	if (j->on_durable)
		j->on_durable(j->arg, rc < 0 ? -1 : 0);
	journal_maybe_compact(j);
}

int journal_finished(struct journal *j, const char *id, const char *result)
{
	struct jentry *e = journal_put(j, id);
	if (!e)
		return -1;
	char *text = strdup(result);
	if (!text)
		return -1;
	free(e->result);
	e->result = text;
	/* No flush of its own: exactly-once rests on the start record. A result lost in a crash
	 * reads back as "lost" (the run's outcome unknown), never as a reason to run again; the
	 * next group commit flushes it anyway. This halves the flushes on the command path. */
	int rc = journal_append(j, id, text, NULL);
	journal_maybe_compact(j);
	return rc < 0 ? -1 : 0;
}

size_t journal_count(const struct journal *j) { return j->count; }

unsigned long journal_syncs(const struct journal *j) { return j->syncs; }
