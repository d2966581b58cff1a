/* journal_int.h: what the journal's two files share (journal.c: the ids in memory, loading,
 * compaction, the group commit; journalrec.c: records in the file). Nothing outside them
 * includes it; see journal.h. */
#ifndef MHC_JOURNAL_INT_H
#define MHC_JOURNAL_INT_H

#include "journal.h"

#include "loop.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* One id in memory: where its newest record is, not the record. A remembered result is read
 * back from the file when a repeat of its id asks (rare), so ten thousand of them cost 32
 * bytes each instead of their text (bench/: footprint). */
enum jstate { JE_RUNNING, JE_DONE, JE_LOST, JE_DEAD };

struct jentry {
	size_t hash;      /* strhash of the id */
	off_t off;        /* its newest record: the start record (running, lost) or the result */
	uint32_t len;     /* that record's length without the newline */
	uint32_t next;    /* hash chain: index + 1 of the next entry, 0 at the end */
	uint8_t state;    /* enum jstate */
	bool pending;     /* its start record waits for the group commit */
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
	struct jentry *ents;   /* in the order they were added; JE_DEAD ones until a compaction */
	size_t nents, cap;
	uint32_t *buckets;     /* index + 1 of a chain's first entry */
	size_t nbuckets;
	char *rec;             /* the last record read back, and ... */
	size_t rec_cap;
	char *text;            /* ... the result text journal_lookup lent out last */
	/* the group commit */
	struct loop *loop;
	struct loop_defer commit;
	journal_durable_cb on_durable;
	void *arg;
	uint32_t *pend;        /* indices of the start records not flushed yet */
	size_t npend, pend_cap;
	unsigned long syncs;
};

/* journalrec.c */
/* {"id":"<id>"} or {"id":"<id>","result":<result>}, with room for a newline: caller frees. */
char *journal_line(const char *id, const char *result);
int journal_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* Extends the file with zero bytes so that it has room for need bytes at end. */
int journal_grow(int fd, off_t *alloc, off_t end, size_t need);
/* Appends a record; *at and *len: where it starts and its length without the newline. */
int journal_append(struct journal *j, const char *id, const char *result, off_t *at,
		   uint32_t *len);
/* The record of e, read back into j->rec (NUL-terminated; lives until the next read); NULL if
 * it cannot be read (logged). */
const char *journal_read(struct journal *j, const struct jentry *e);
/* Whether e's record is id's: 1 yes, 0 no, -1 cannot tell (unreadable, no memory). With res
 * given, its result: *res points into j->rec, *res_len bytes, or is NULL for a start record. */
int journal_split(struct journal *j, const struct jentry *e, const char *id,
		  const char **res, size_t *res_len);

#endif
