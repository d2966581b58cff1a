/* fuzz_history: frAroundWeb's sensor history on arbitrary bytes: the state payload parser, the
 * number formatter (every double must come out as a JSON number within 15 significant digits),
 * and a payload that parses recorded into an in-memory history and read back, whose answer must
 * be JSON again. */
#include "history.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct history *h;

static void check_number(const uint8_t *data, size_t size)
{
	double v;
	char buf[32];
	if (size < sizeof v)
		return;
	memcpy(&v, data, sizeof v);
	size_t n = history_fmt_num(buf, v);
	if (n > 25 || strlen(buf) != n)
		abort();
	if (!isfinite(v))
		return;
	cJSON *j = cJSON_Parse(buf);
	if (!cJSON_IsNumber(j))
		abort();
	double back = j->valuedouble;
	cJSON_Delete(j);
	if (back != v && !(fabs(back - v) <= 1e-14 * fabs(v)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!h) {
		log_init("fuzz_history", true, -1);
		struct history_opts o;
		history_defaults(&o);
		o.path = ":memory:";
		if (!(h = history_open(NULL, &o)))
			abort();
	}
	check_number(data, size);
	struct history_point p;
	void *root;
	char why[128];
	if (history_parse_state(data, size, &p, &root, why, sizeof why) < 0) {
		if (root || strlen(why) == 0 || strlen(why) >= sizeof why)
			abort();
		return 0;
	}
	cJSON_Delete(root);
	uint64_t now = (uint64_t)p.ts;
	if (history_on_message(h, "fr/h/ctl/c/state/s", data, size, now) != 1 || history_flush(h) < 0)
		abort();
	struct history_query q = { "h", "c", "s", p.ts - 1000, p.ts, 10 };
	struct history_cursor *c = history_query(h, &q, now);
	if (!c)
		abort();
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (int i = 0; !history_cursor_done(c); i++)
		if (history_cursor_next(c, 4, 64, &buf, &len, &cap) < 0 || i > 100000)
			abort();
	char *text = malloc(len + 3);
	snprintf(text, len + 3, "[%.*s]", (int)len, buf);
	cJSON *a = cJSON_Parse(text);
	if (!cJSON_IsArray(a))
		abort();
	cJSON_Delete(a);
	free(text);
	free(buf);
	history_cursor_free(c);
	return 0;
}
