/* Fuzz target: frMhs's fr/<home>/sync request parser (syncmsg_parse) on any payload, then the
 * answer document built with what it kept. What it keeps must fit its buffers, and an id it
 * echoes must come back in the document verbatim. A longer run:
 *   build-fuzz/bin/fuzz_syncmsg -max_total_time=600 tests/fuzz/corpus/fuzz_syncmsg */
#include "syncmsg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cJSON *no_states(void *arg, const char *ctl)
{
	(void)arg;
	(void)ctl;
	return cJSON_CreateObject();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct syncmsg_req r;
	syncmsg_parse(data, size, &r);
	if (strlen(r.id) >= sizeof r.id || strlen(r.reply_to) >= sizeof r.reply_to)
		abort();
	cJSON *ctls = cJSON_CreateArray();
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "id", "c1");
	cJSON_AddItemToArray(ctls, c);
	size_t len = 0;
	char *doc = syncmsg_doc("home1", r.id[0] ? r.id : NULL, 30, 1, ctls, no_states, NULL, 4096,
				&len);
	if (doc) {
		cJSON *o = cJSON_Parse(doc);
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
		if (!o || strlen(doc) != len || (r.id[0] && (!id || strcmp(id, r.id) != 0)))
			abort();
		cJSON_Delete(o);
	}
	free(doc);
	return 0;
}
