/* fuzz_command: command_parse on the raw input; whatever it accepts must survive
 * command_to_json and parse back to the same command, and can hold no NUL that cJSON would
 * have cut a string at. What it rejects goes through command_peek, whose id and reply_to are
 * those of the accepted command when there is one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_abort(const struct command *a, const struct command *b)
{
	if (strcmp(a->id, b->id) != 0 || strcmp(a->action, b->action) != 0 ||
	    !cJSON_Compare(a->args, b->args, 1) || a->timeout_ms != b->timeout_ms ||
	    a->deadline_ms != b->deadline_ms || strcmp(a->reply_to, b->reply_to) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct command a, b;
	char why[128];
	cJSON *j;

	if (command_parse((const char *)data, size, &a, why, sizeof why) != 0) {
		/* Rejected: cleared, with a reason. */
		if (a.args || a.id[0] || why[0] == '\0')
			abort();
		/* And the same without a why buffer. */
		if (command_parse((const char *)data, size, &b, NULL, 0) == 0)
			abort();
		char id[COMMAND_ID_MAX + 1], rt[COMMAND_TOPIC_MAX + 1];
		command_peek((const char *)data, size, id, rt);
		if (strlen(id) > COMMAND_ID_MAX || strlen(rt) > COMMAND_TOPIC_MAX)
			abort();
		return 0;
	}
	char id[COMMAND_ID_MAX + 1], rt[COMMAND_TOPIC_MAX + 1];
	command_peek((const char *)data, size, id, rt);
	if (strcmp(id, a.id) != 0 || strcmp(rt, a.reply_to) != 0)
		abort();
	if (command_json_nul((const char *)data, size) >= 0)
		abort();
	j = command_to_json(&a, true);
	if (!j)
		abort();
	if (command_from_json(j, &b, why, sizeof why) != 0)
		abort();
	same_or_abort(&a, &b);
	cJSON_Delete(j);
	command_clear(&a);
	command_clear(&b);
	return 0;
}
