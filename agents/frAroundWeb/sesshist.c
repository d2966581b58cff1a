/* sesshist: the session module's history answers, sent part by part as the client reads
 * (docs/shim.md "history"); see session_int.h. */
#include "session.h"
#include "session_int.h"

#include "conf.h"
#include "history.h"
#include "loop.h"
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A history answer goes out in lines of at most this many points (about 150 KiB; fewer when
 * max_outq is small), at most SESSION_HISTORY_BURST of them per turn of the loop: other
 * clients are served in between. */
#define SESSION_HISTORY_CHUNK 4096
#define SESSION_HISTORY_BURST 8

/* A "history" answer being sent, part by part as the client reads. */
struct hist {
	struct session *s;
	cJSON *id;                        /* owned */
	cJSON *head;                      /* the final line's fields but points; owned */
	struct history_cursor *cur;       /* owned */
	char *buf;                        /* points text; owned */
	size_t len, cap;
	char home[SHIM_NAME_MAX + 1];
	struct hist *next;
};

static void hist_free(struct hist *q)
{
	history_cursor_free(q->cur);
	cJSON_Delete(q->id);
	cJSON_Delete(q->head);
	free(q->buf);
	free(q);
}

static void hist_end(struct session *s, struct hist *q, cJSON *line)
{
	struct hist **pp = &s->hists;
	while (*pp != q)
		pp = &(*pp)->next;
	*pp = q->next;
	session_send(s, line);
	s->inflight--;
	hist_free(q);
}

/* The points made so far as a raw JSON array, moved into line as "points". */
static bool hist_points(struct hist *q, cJSON *line)
{
	size_t need = q->len + 3;
	char *text = malloc(need);
	if (!text)
		return false;
	text[0] = '[';
	if (q->len)   /* no point yet: no buffer either */
		memcpy(text + 1, q->buf, q->len);
	text[q->len + 1] = ']';
	text[q->len + 2] = '\0';
	q->len = 0;
	cJSON *raw = cJSON_CreateRaw(text);
	free(text);
	return raw && cJSON_AddItemToObject(line, "points", raw);
}

/* Sends the next parts of q while the client's queue has room; the rest when it drains. */
static void hist_pump(struct hist *q)
{
	struct session *s = q->s;
	/* A part is at most a quarter of max_outq (and one point more): with the queue drained
	 * to half of it before the next, no client is ever cut off for its own answer. */
	size_t room = s->d->conf->max_outq / 2, part = s->d->conf->max_outq / 4;
	for (int burst = 0; burst < SESSION_HISTORY_BURST; burst++) {
		if (shim_client_queued(s->c) > room)
			break;
		long n = history_cursor_next(q->cur, SESSION_HISTORY_CHUNK, part, &q->buf, &q->len,
					     &q->cap);
		if (n < 0) {
			hist_end(s, q, shimproto_error(q->id, SHIM_E_INTERNAL, "history unreadable"));
			return;
		}
		if (!history_cursor_done(q->cur)) {
			/* More may follow: this part goes as an event. */
			cJSON *ev = shimproto_event(q->id, "points");
			if (!ev || !hist_points(q, ev)) {
				cJSON_Delete(ev);
				hist_end(s, q, shimproto_error(q->id, SHIM_E_INTERNAL, "out of memory"));
				return;
			}
			session_send(s, ev);
			continue;
		}
		cJSON *o = q->head;
		q->head = NULL;
		cJSON_AddNumberToObject(o, "count", (double)history_cursor_count(q->cur));
		if (!hist_points(q, o)) {
			cJSON_Delete(o);
			o = shimproto_error(q->id, SHIM_E_INTERNAL, "out of memory");
		}
		hist_end(s, q, o);
		return;
	}
	shim_client_want_drain(s->c);
}

void session_history(struct session *s, const struct shim_req *r)
{
	if (!session_home_ok(s, r->home)) {
		session_error(s, r->id, SHIM_E_FORBIDDEN, "home not granted");
		return;
	}
	if (!s->d->history) {
		session_error(s, r->id, SHIM_E_NOT_FOUND, "no sensor history is recorded here");
		return;
	}
	if (!session_admit(s, r->id))
		return;
	int64_t now = (int64_t)loop_wall_ms();
	int64_t to = r->to_ms >= 0 ? r->to_ms : now;
	int64_t from = r->from_ms >= 0 ? r->from_ms : to - SHIM_HISTORY_RANGE_DEFAULT_MS;
	if (from < 0)
		from = 0;
	if (from > to) {
		session_error(s, r->id, SHIM_E_BAD_REQUEST, "'from' is after 'to'");
		return;
	}
	struct history_query hq = { r->home, r->ctl, r->sensor, from, to, (size_t)r->max_points };
	struct hist *q = calloc(1, sizeof *q);
	if (!q || !(q->id = cJSON_Duplicate(r->id, true)) || !(q->head = shimproto_ok(r->id)) ||
	    !(q->cur = history_query(s->d->history, &hq, (uint64_t)now))) {
		if (q)
			hist_free(q);
		session_error(s, r->id, SHIM_E_INTERNAL, "history unreadable");
		return;
	}
	cJSON *o = q->head;
	cJSON_AddStringToObject(o, "home", r->home);
	cJSON_AddStringToObject(o, "ctl", r->ctl);
	cJSON_AddStringToObject(o, "sensor", r->sensor);
	cJSON_AddNumberToObject(o, "from", (double)from);
	cJSON_AddNumberToObject(o, "to", (double)to);
	if (history_cursor_res(q->cur) == HISTORY_RAW)
		cJSON_AddStringToObject(o, "resolution", "raw");
	else
		cJSON_AddNumberToObject(o, "resolution", (double)history_cursor_step(q->cur));
	q->s = s;
	snprintf(q->home, sizeof q->home, "%s", r->home);
	q->next = s->hists;
	s->hists = q;
	s->inflight++;
	hist_pump(q);
}

void session_drained(struct session *s)
{
	/* Each waiting answer gets its turn; one that ends unlinks itself. */
	for (struct hist *q = s->hists, *next; q && !s->detached; q = next) {
		next = q->next;
		hist_pump(q);
	}
}

void session_history_drop(struct session *s)
{
	while (s->hists) {
		struct hist *q = s->hists;
		s->hists = q->next;
		hist_free(q);
	}
}

void session_history_end_ungranted(struct session *s)
{
	for (struct hist *q = s->hists, *next; q; q = next) {
		next = q->next;
		if (!session_home_ok(s, q->home))
			hist_end(s, q, shimproto_error(q->id, SHIM_E_FORBIDDEN, "home no longer granted"));
	}
}
