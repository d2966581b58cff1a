/* journal: the controller's durable memory of command ids, so a command is never run twice,
 * not even across a restart. A "started" record is appended and fsync'd BEFORE the action's
 * process is spawned; the final result is appended after. On load, an id started but never
 * finished is reported as "lost" (the controller died while it ran). The file is bounded:
 * when it holds twice journal_max records it is compacted to the newest journal_max ids
 * (write to a temp file, fsync, rename). */
#ifndef MHC_JOURNAL_H
#define MHC_JOURNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct journal;

enum journal_state { JOURNAL_NONE, JOURNAL_RUNNING, JOURNAL_DONE };

/* Opens (creating) dir/journal and loads it. Returns NULL on error (logged). */
struct journal *journal_open(const char *dir, size_t max_ids);
void journal_close(struct journal *j);
/* State of id; for JOURNAL_DONE *result is the stored result, the JSON text it was sent as
 * (borrowed, lives until the next journal call). */
enum journal_state journal_lookup(struct journal *j, const char *id, const char **result);
/* Durably records that id starts now. 0, or -1 if it could not be made durable (then the
 * action must not run, and the id is not remembered: once the disk works again the same id
 * may run). */
int journal_started(struct journal *j, const char *id);
/* Records the final result, the JSON text sent (a copy is kept); appended without fsync: after
 * a crash before the next sync it reads back as "lost", which never causes a second run. */
int journal_finished(struct journal *j, const char *id, const char *result);
size_t journal_count(const struct journal *j);

#endif
