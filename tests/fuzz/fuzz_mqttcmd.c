/* Fuzz target: the MQTT command path of frMhs without the network -- a topic name and a payload
 * (split at the first NUL of the input) through topic_parse and command_parse, as
 * bridge_on_message and bridge_on_cmd do. A longer run:
 *   build-fuzz/bin/fuzz_mqttcmd -max_total_time=600 tests/fuzz/corpus/fuzz_mqttcmd */
#include "command.h"
#include "topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t tl = nul ? (size_t)(nul - data) : size;
	char *topic = malloc(tl + 1);
	if (!topic)
		return 0;
	memcpy(topic, data, tl);
	topic[tl] = '\0';
	struct topic t;
	enum topic_kind k = topic_parse("fr", topic, &t);
	if (k == TOPIC_CTL) {
		/* What the parser hands out must be valid names and a leaf inside the topic. */
		if (!name_valid(t.home, TOPIC_NAME_MAX) || !name_valid(t.ctl, TOPIC_NAME_MAX) ||
		    t.leaf < topic || t.leaf >= topic + tl || !*t.leaf)
			abort();
	}
	const char *payload = nul ? (const char *)nul + 1 : "";
	size_t pl = nul ? size - tl - 1 : 0;
	struct command c;
	char why[256];
	if (command_parse(payload, pl, &c, why, sizeof why) == 0) {
		if (!c.id[0] || !c.action[0] || !c.args)
			abort();
		cJSON *j = command_to_json(&c, true);
		cJSON_Delete(j);
		command_clear(&c);
	} else if (!why[0]) {
		abort();  /* every rejection has a reason */
	}
	free(topic);
	return 0;
}
