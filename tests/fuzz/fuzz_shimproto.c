/* fuzz_shimproto: the shim protocol line parser and its topic checks on arbitrary bytes. */
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
	shimproto_free(&r);
	return 0;
}
