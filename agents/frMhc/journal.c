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
 * the results written among them in that iteration stay.
 *
 * In memory each id is a hash and where its newest record is (struct jentry); the id itself,
 * and its result, are read back from the file when needed: to confirm a matching hash, to
 * answer a repeat. The file is the journal's one copy of both. */
#include "journal_int.h"

#include "lanmsg.h"
#include "log.h"
#include "loop.h"
#include "strhash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int (*journal_fdatasync)(int fd) = fdatasync;
ssize_t (*journal_pread)(int fd, void *buf, size_t n, off_t off) = pread;

static struct jentry *journal_find(struct journal *j, const char *id)
{
	size_t h = strhash(id);
	for (uint32_t i = j->buckets[h % j->nbuckets]; i; i = j->ents[i - 1].next) {
		struct jentry *e = &j->ents[i - 1];
		/* The id is in the file only: a matching hash is confirmed there. One that cannot
		 * be read back counts as a match: an id is never taken for new, and run twice,
		 * because of a failed read. */
		if (e->hash == h && e->state != JE_DEAD && journal_split(j, e, id, NULL, NULL) != 0)
			return e;
	}
	return NULL;
}

static void journal_link(struct journal *j, uint32_t i)
{
	struct jentry *e = &j->ents[i];
	size_t b = e->hash % j->nbuckets;
	e->next = j->buckets[b];
	j->buckets[b] = i + 1;
}

/* id's entry, now pointing at the record at off: found or added (NULL without memory). */
static struct jentry *journal_put(struct journal *j, const char *id, off_t off, uint32_t len,
				  enum jstate state)
{
	struct jentry *e = journal_find(j, id);
	if (!e) {
		if (j->nents == j->cap) {
			size_t cap = j->cap ? j->cap * 2 : 256;
			struct jentry *n = cap < UINT32_MAX ? realloc(j->ents, cap * sizeof *n) : NULL;
			if (!n)
				return NULL;
			j->ents = n;
			j->cap = cap;
		}
		e = &j->ents[j->nents];
		*e = (struct jentry){ .hash = strhash(id) };
		journal_link(j, (uint32_t)j->nents++);
		j->count++;
	}
	e->off = off;
	e->len = len;
	e->state = (uint8_t)state;
	return e;
}

/* Out of its chain; its slot stays (dead) until the next compaction. */
static void journal_drop(struct journal *j, struct jentry *victim)
{
	uint32_t *pp = &j->buckets[victim->hash % j->nbuckets];
	uint32_t vi = (uint32_t)(victim - j->ents) + 1;
	while (*pp != vi)
		pp = &j->ents[*pp - 1].next;
	*pp = victim->next;
	victim->state = JE_DEAD;
	j->count--;
}

static int journal_cmp_off(const void *a, const void *b, void *arg)
{
	const struct jentry *ents = arg;
	off_t x = ents[*(const uint32_t *)a].off, y = ents[*(const uint32_t *)b].off;
	return x < y ? -1 : x > y;
}

/* Keeps the newest max_ids entries (the newest record last), copying their records as they
 * are into a new file. */
static int journal_compact(struct journal *j)
{
	uint32_t *live = malloc((j->count ? j->count : 1) * sizeof *live);
	struct jentry *kept = malloc((j->count ? j->count : 1) * sizeof *kept);
	int rc = 0, fd = -1;
	if (!live || !kept) {
		rc = -ENOMEM;
		goto fail;
	}
	size_t n = 0;
	for (size_t i = 0; i < j->nents; i++)
		if (j->ents[i].state != JE_DEAD)
			live[n++] = (uint32_t)i;
	qsort_r(live, n, sizeof *live, journal_cmp_off, j->ents);
	size_t drop = n > j->max_ids ? n - j->max_ids : 0;
	off_t end = 0, alloc = 0;
	fd = open(j->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	for (size_t i = drop; i < n && rc == 0; i++) {
		struct jentry *e = &j->ents[live[i]];
		const char *rec = journal_read(j, e);
		if (!rec) {
			rc = -EIO;
			break;
		}
		j->rec[e->len] = '\n';
		rc = journal_grow(fd, &alloc, end, e->len + 1);
		if (rc == 0)
			rc = journal_pwrite_all(fd, rec, e->len + 1, end);
		kept[i - drop] = *e;
		kept[i - drop].off = end;
		kept[i - drop].pending = false;
		end += (off_t)(e->len + 1);
	}
	if (rc == 0)
		rc = journal_grow(fd, &alloc, end, 1);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && rename(j->tmp, j->path) < 0)
		rc = -errno;
	if (rc < 0)
		goto fail;
	close(j->fd);
	j->fd = fd;
	j->end = end;
	j->alloc = alloc;
	j->records = n - drop;
	free(j->ents);
	j->ents = kept;
	j->nents = j->cap = j->count = n - drop;
	memset(j->buckets, 0, j->nbuckets * sizeof *j->buckets);
	for (size_t i = 0; i < j->nents; i++)
		journal_link(j, (uint32_t)i);
	free(live);
	return 0;
fail:
	errno = -rc;
	log_warn("journal %s: compaction", j->path);
	if (fd >= 0)
		close(fd);
	free(live);
	free(kept);
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
	int rc = 0;
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
		off_t at = off;
		off += n;
		if (complete && n > 1 && strspn(line, " ") == (size_t)n - 1) {
			/* A start record blanked when its flush failed: that id never ran. */
			*data_end = off;
			j->records++;
			continue;
		}
		cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
		if (!cJSON_IsString(id) || n - complete >= UINT32_MAX) {
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
		bool done = cJSON_GetObjectItemCaseSensitive(o, "result") != NULL;
		if (!journal_put(j, id->valuestring, at, (uint32_t)(n - complete),
				 done ? JE_DONE : JE_RUNNING))
			rc = -ENOMEM;
		j->records++;
		cJSON_Delete(o);
		if (padding || rc < 0)
			break;
	}
	free(line);
	fclose(f);
	if (rc < 0)
		return rc;
	/* Runs that were in flight when the controller stopped: their outcome is unknown. */
	size_t lost = 0;
	for (size_t i = 0; i < j->nents; i++)
		if (j->ents[i].state == JE_RUNNING) {
			j->ents[i].state = JE_LOST;
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
	/* Open first: loading reads records back to tell ids with the same hash apart. */
	j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		log_warn("journal %s", j->path);
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
	if (j->fd >= 0)
		close(j->fd);
	free(j->ents);
	free(j->buckets);
	free(j->pend);
	free(j->rec);
	free(j->text);
	free(j->path);
	free(j->tmp);
	free(j);
}

enum journal_state journal_lookup(struct journal *j, const char *id, const char **result)
{
	struct jentry *e = journal_find(j, id);
	if (!e)
		return JOURNAL_NONE;
	if (e->state == JE_RUNNING)
		return JOURNAL_RUNNING;
	free(j->text);
	j->text = NULL;
	if (e->state == JE_LOST) {
		struct lanmsg_result lost = { .id = id, .status = "lost",
			.reason = "the controller restarted while the action ran" };
		cJSON *r = lanmsg_result_new(&lost);
		j->text = r ? cJSON_PrintUnformatted(r) : NULL;
		cJSON_Delete(r);
	} else {
		const char *res = NULL;
		size_t len = 0;
		if (journal_split(j, e, id, &res, &len) == 1 && res)
			j->text = strndup(res, len);
	}
	if (!j->text) {
		/* Still never run again: the caller answers what a repeat of a running id gets. */
		log_warnx("journal %s: the result of %s could not be read back", j->path, id);
		return JOURNAL_RUNNING;
	}
	if (result)
		*result = j->text;
	return JOURNAL_DONE;
}

static int journal_maybe_compact(struct journal *j)
{
	/* Not while start records wait for their flush: the commit's offsets are in this file. */
	if (j->records >= j->max_ids * 2 && !j->npend)
		return journal_compact(j);
	return 0;
}

int journal_started(struct journal *j, const char *id)
{
	off_t at;
	uint32_t len;
	if (j->npend == j->pend_cap) {
		size_t cap = j->pend_cap ? j->pend_cap * 2 : 64;
		uint32_t *p = realloc(j->pend, cap * sizeof *p);
		if (!p)
			return -1;
		j->pend = p;
		j->pend_cap = cap;
	}
	if (journal_append(j, id, NULL, &at, &len) < 0)
		return -1;
	struct jentry *e = journal_put(j, id, at, len, JE_RUNNING);
	if (!e)
		return -1;   /* written but not remembered: its flush will not report it either */
	if (!e->pending) {
		e->pending = true;
		j->pend[j->npend++] = (uint32_t)(e - j->ents);
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
	for (size_t i = 0; i < j->npend; i++) {
		struct jentry *e = &j->ents[j->pend[i]];
		e->pending = false;
		if (rc < 0 && e->state == JE_RUNNING) {
			/* The start is refused, so the id never runs; a record that reached the disk
			 * anyway would read back as "lost" after a restart and keep the id from ever
			 * running. Blanked (best effort) to spaces, a line that load skips. */
			char *sp = malloc(e->len);
			if (sp) {
				memset(sp, ' ', e->len);
				journal_pwrite_all(j->fd, sp, e->len, e->off);
				free(sp);
			}
			journal_drop(j, e);
		}
	}
	j->npend = 0;
	if (j->on_durable)
		j->on_durable(j->arg, rc < 0 ? -1 : 0);
	journal_maybe_compact(j);
}

int journal_finished(struct journal *j, const char *id, const char *result)
{
	off_t at;
	uint32_t len;
	/* No flush of its own: exactly-once rests on the start record. A result lost in a crash
	 * reads back as "lost" (the run's outcome unknown), never as a reason to run again; the
	 * next group commit flushes it anyway. This halves the flushes on the command path. */
	if (journal_append(j, id, result, &at, &len) < 0)
		return -1;   /* the id stays running here: a repeat is answered started, not run */
	if (!journal_put(j, id, at, len, JE_DONE))
		return -1;
	journal_maybe_compact(j);
	return 0;
}

size_t journal_count(const struct journal *j) { return j->count; }

unsigned long journal_syncs(const struct journal *j) { return j->syncs; }
