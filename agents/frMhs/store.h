/* store: frMhs's state directory (setting state_dir, default /var/lib/fr/frmhs), what the home
 * server needs to answer for its requests across its own restart (docs/topics.md, "Across
 * restarts"). One frMhs per directory: it is locked (flock on `lock`) while frMhs runs.
 *
 * Files, format 1 (a later version must read these or migrate them):
 *   home            the home id, one line; a directory of another home is refused.
 *   registry.json   {"format":1,"home":"<home>","saved":<unix ms>,"controllers":[C...]}, C
 *                   being the controller's retained info document (docs/topics.md) plus
 *                   "static": bool and "announce": {"boot":hex32,"seq":n,"ts":unix s} (the
 *                   last announce accepted, which seeds the replay guard). Replaced whole:
 *                   written to registry.json.tmp, fsync, rename, fsync of the directory.
 *   requests.log    JSON lines, one record each, replayed in order at start-up:
 *                   {"op":"open","ctl":..,"id":..,"action":..,"cmd":{link command},
 *                    "state":"waiting"|"sent"|"accepted"|"started","until":<unix ms>,
 *                    "sends":n,"routes":[{"topic":..,"corr":"<hex>"|null,"progress":bool}]}
 *                   {"op":"route","ctl":..,"id":..,"route":{...}}   a requester joined
 *                   {"op":"state","ctl":..,"id":..,"state":..,"until":ms,"sends":n}
 *                   {"op":"close","ctl":..,"id":..}                 the request was answered
 *                   A last line cut by a crash is skipped. At start-up and whenever the file
 *                   holds many more records than open requests it is rewritten with one "open"
 *                   record per open request (temp file, fsync, rename).
 * Records are appended with write() as the request moves (so they survive a crash of frMhs
 * at any point) and flushed to disk (fdatasync) within STORE_SYNC_MS (a power cut may lose
 * that last second). Write errors (a full disk) are logged, counted and never stop a request:
 * the state is then only as complete as the disk allowed. */
#ifndef MHS_STORE_H
#define MHS_STORE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SYNC_MS 1000

struct loop;
struct store;

/* Creates dir (and its parents) if missing, locks it, checks it belongs to home. NULL on
 * failure, with the reason logged. Caller owns; store_close. */
struct store *store_open(struct loop *loop, const char *dir, const char *home);
/* Flushes and unlocks. NULL is fine. */
void store_close(struct store *s);

/* The saved registry document, or NULL (none, or unreadable: logged). Caller owns. */
cJSON *store_registry_load(struct store *s);
/* Replaces registry.json with doc (borrowed). 0 or -errno (logged). */
int store_registry_save(struct store *s, const cJSON *doc);

/* Calls cb for every record of requests.log in order (rec borrowed for the call). */
void store_log_load(struct store *s, void (*cb)(void *arg, const cJSON *rec), void *arg);
/* Appends one record (borrowed). 0 or -errno (counted, logged at most once a minute). */
int store_log_append(struct store *s, const cJSON *rec);
/* The same for a record already serialised: line[0..n) is one JSON object and line[n] must be
 * writable (the newline goes there for the write; it is put back). */
int store_log_append_text(struct store *s, char *line, size_t n);
/* Replaces requests.log with the records of the array recs (borrowed). 0 or -errno. */
int store_log_rewrite(struct store *s, const cJSON *recs);
/* Records in requests.log now. */
size_t store_log_lines(const struct store *s);
/* A JSON number read back (from a file or a peer) as an integer in [min, max]: def when v is not
 * a finite number; clamped otherwise (a double beyond the range must never be cast). */
int64_t store_json_int(const cJSON *v, double scale, int64_t min, int64_t max, int64_t def);
/* Failed writes since start. */
unsigned long long store_errors(const struct store *s);
const char *store_dir(const struct store *s);

#endif
