/* journal: the controller's durable memory of command ids, so a command is never run twice,
 * not even across a restart. A "started" record is appended and made durable BEFORE the
 * action's process is spawned; the final result is appended after. On load, an id started but
 * never finished is reported as "lost" (the controller died while it ran). The file is bounded:
 * when it holds twice journal_max records it is compacted to the newest journal_max ids
 * (write to a temp file, fsync, rename).
 *
 * Group commit: the start records written during one loop iteration are made durable by one
 * fdatasync at the end of that iteration (a loop_defer), and on_durable then tells the owner
 * once for all of them. With many commands in flight each used to pay its own flush. */
#ifndef MHC_JOURNAL_H
#define MHC_JOURNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct journal;
struct loop;

enum journal_state { JOURNAL_NONE, JOURNAL_RUNNING, JOURNAL_DONE };

/* The group commit's outcome for every start record written since the previous call: rc 0,
 * all are durable (their actions may run now); -1, none is (logged): their ids are forgotten
 * (once the disk works again the same ids may run) and their actions must not run. */
typedef void (*journal_durable_cb)(void *arg, int rc);

/* Opens (creating) dir/journal and loads it. on_durable runs from loop's end of iteration.
 * Returns NULL on error (logged). */
struct journal *journal_open(const char *dir, size_t max_ids, struct loop *loop,
			     journal_durable_cb on_durable, void *arg);
/* Records still waiting for their flush are dropped, on_durable is not called. */
void journal_close(struct journal *j);
/* State of id; for JOURNAL_DONE *result is the stored result, the JSON text it was sent as
 * (borrowed, lives until the next journal call). An id whose start record waits for its flush
 * is JOURNAL_RUNNING. */
enum journal_state journal_lookup(struct journal *j, const char *id, const char **result);
/* Writes the record that id starts, to be made durable at the end of this iteration (then
 * on_durable). 0, or -1 if it could not even be written (logged; the id is not remembered and
 * on_durable will not cover it): the action must not run. */
int journal_started(struct journal *j, const char *id);
/* Records the final result, the JSON text sent (a copy is kept); appended without a flush of
 * its own: after a crash before the next one it reads back as "lost", which never causes a
 * second run. */
int journal_finished(struct journal *j, const char *id, const char *result);
size_t journal_count(const struct journal *j);
/* Flushes made for start records so far (group commits, failed ones included): for tests and
 * the bench, which check that one flush covers a whole iteration. */
unsigned long journal_syncs(const struct journal *j);
/* The flush the group commit uses; fdatasync. Tests replace it to see a failing disk. */
extern int (*journal_fdatasync)(int fd);
/* How a record is read back (an id to confirm, a result to answer); pread. The same for tests. */
extern ssize_t (*journal_pread)(int fd, void *buf, size_t n, off_t off);

#endif
