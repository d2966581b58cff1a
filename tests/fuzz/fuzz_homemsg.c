/* Fuzz target: frAroundWeb's readers of what a home says about itself -- a heartbeat and a
 * sync answer (homemsg.h) -- on any payload. Every topic a sync answer yields must be one of
 * the cache's shapes under fr/home1/ with valid names, never another home's or a wildcard.
 * A longer run: build-fuzz/bin/fuzz_homemsg -max_total_time=600 tests/fuzz/corpus/fuzz_homemsg */
#include "homemsg.h"
#include "name.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_part(void *arg, const char *topic, const cJSON *value)
{
	int *n = arg;
	(*n)++;
	if (!value || strncmp(topic, "fr/home1/", 9) != 0 || strpbrk(topic, "+#"))
		abort();
	const char *rest = topic + 9;
	if (strcmp(rest, "status") == 0)
		return;
	char ctl[128], leaf[128], sensor[128];
	if (strncmp(rest, "ctl/", 4) != 0)
		abort();
	rest += 4;
	const char *sl = strchr(rest, '/');
	if (!sl || (size_t)(sl - rest) >= sizeof ctl)
		abort();
	memcpy(ctl, rest, (size_t)(sl - rest));
	ctl[sl - rest] = '\0';
	if (!name_valid(ctl, NAME_LEN_MAX))
		abort();
	snprintf(leaf, sizeof leaf, "%s", sl + 1);
	if (strcmp(leaf, "status") == 0 || strcmp(leaf, "info") == 0)
		return;
	if (strncmp(leaf, "state/", 6) != 0)
		abort();
	snprintf(sensor, sizeof sensor, "%s", leaf + 6);
	if (!name_valid(sensor, NAME_LEN_MAX))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t ms = homemsg_heartbeat_ms(data, size);
	if (ms != -1 && (ms < 1000 || ms > 3600000))
		abort();
	int calls = 0, skipped = 0;
	int parts = homemsg_sync("fr", "home1", "s-1", data, size, check_part, &calls, &skipped);
	if ((parts < 0 && calls != 0) || (parts >= 0 && parts != calls) || skipped < 0)
		abort();
	return 0;
}
