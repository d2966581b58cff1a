/* history_int.h: what the two files of the history module share (history.c: the file and the
 * recording; historyq.c: the queries and their cursors). Nothing outside them includes it;
 * see history.h. */
#ifndef WEB_HISTORY_INT_H
#define WEB_HISTORY_INT_H

#include "history.h"

#include "loop.h"
#include "topic.h"

#include <sqlite3.h>

struct qpoint {
	char home[TOPIC_NAME_MAX + 1], ctl[TOPIC_NAME_MAX + 1], sensor[TOPIC_NAME_MAX + 1];
	int64_t ts;
	bool is_num;
	double num;
	char *text;   /* owned; !is_num */
};

enum stmt {
	S_SERIES_GET, S_SERIES_ADD, S_RAW_ADD, S_AGG_ADD, S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_SERIES_ALL, S_RAW_PURGE, S_AGG_PURGE, S_COUNT
};

struct history {
	struct history_opts o;
	char *path, *prefix;
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	struct loop *loop;
	struct loop_timer flush_timer, purge_timer;
	struct qpoint *q;
	size_t qlen, qcap;
	bool full_logged;
	uint64_t written, dropped, bad, slowest_us;
	uint64_t bad_logged_at, bad_quiet;
};

/* The id of the series of e's sensor: 0 when there is none and !create, -1 on error. */
int64_t history_series_id(struct history *h, const struct qpoint *e, bool create);
/* The start of the stored bucket holding ts. */
int64_t history_bucket_of(const struct history *h, int64_t ts);

#endif
