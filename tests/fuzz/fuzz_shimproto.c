/* fuzz_shimproto: the shim protocol line parser, its topic checks and its response builders
 * (an integer id echoed as written, payloads) on arbitrary bytes. */
#include "shimproto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shim_req r;
	char why[160];
	enum shim_err e = shimproto_parse((const char *)data, size, &r, why, sizeof why);
	if (e == SHIM_OK) {
		char home[SHIM_NAME_MAX + 1];
		const char *t = r.topic ? r.topic : r.filter;
		if (t) {
			shimproto_topic_home("fr", t, r.filter != NULL, home);
			shimproto_publish_allowed("fr", t, r.retain);
			shimproto_topic_match(t, "fr/home1/ctl/kitchen/state/temp");
			shimproto_topic_match("fr/+/ctl/#", t);
		}
	}
	if (strlen(why) >= sizeof why)
		abort();
	/* The id goes back verbatim: an integer id's text must print as itself. */
	cJSON *line = shimproto_error(r.id, SHIM_E_BAD_REQUEST, why);
	char *out = line ? cJSON_PrintUnformatted(line) : NULL;
	if (out && r.id && cJSON_IsRaw(r.id) && strncmp(out + 6, r.id->valuestring,
							  strlen(r.id->valuestring)) != 0)
		abort();
	free(out);
	cJSON_Delete(line);
	cJSON_Delete(shimproto_payload(data, size));
	shimproto_free(&r);
	return 0;
}
