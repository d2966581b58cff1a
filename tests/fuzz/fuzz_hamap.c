/* Fuzz target: what frMhs's Home Assistant module reads from outside -- a topic (an HA command
 * topic, a discovery config topic and its object id) and a payload (split at the first NUL of
 * the input) through hamap_topic_parse, hamap_config_topic_parse, hamap_object_parse and
 * hamap_value for every kind of entity; and the same input as a controller's info document
 * through hamap_classify and hamap_ctl_configs. A longer run:
 *   build-fuzz/bin/fuzz_hamap -max_total_time=600 tests/fuzz/corpus/fuzz_hamap */
#include "frame.h"
#include "hamap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct hamap_ctx X = { "fr", "home1", "homeassistant", "0.1.0" };

/* One action of every kind, classified once. */
static const char *const ACTIONS[] = {
	"{\"name\":\"ping\"}",
	"{\"name\":\"lamp\",\"args\":[{\"name\":\"state\",\"pattern\":\"on|off|toggle\",\"default\":\"toggle\"}]}",
	"{\"name\":\"mode\",\"args\":[{\"name\":\"m\",\"pattern\":\"eco|comfort|away\"}]}",
	"{\"name\":\"set\",\"args\":[{\"name\":\"t\",\"pattern\":\"-?[0-9]{1,2}(\\\\.[0-9])?\"}]}",
	"{\"name\":\"say\",\"args\":[{\"name\":\"t\",\"pattern\":\"[a-z ]{1,40}\"}]}",
};
#define NACTIONS (sizeof ACTIONS / sizeof *ACTIONS)
static struct hamap_action acts[NACTIONS];

static void check_value(const struct hamap_action *a, const char *p, size_t n)
{
	char v[HAMAP_PAYLOAD_MAX + 1], why[256];
	why[0] = '\0';
	if (hamap_value(a, p, n, v, sizeof v, why, sizeof why) < 0) {
		if (!why[0])
			abort();   /* every refusal has a reason */
		return;
	}
	size_t vl = strlen(v);
	if (vl > HAMAP_PAYLOAD_MAX || !frame_utf8_valid(v, vl))
		abort();
	if (a->kind == HAMAP_NUMBER) {
		double d = strtod(v, NULL);
		if (d < a->min || d > a->max)
			abort();
	}
	if (a->kind == HAMAP_SELECT) {
		const cJSON *o;
		bool found = false;
		cJSON_ArrayForEach(o, a->options)
			found = found || strcmp(o->valuestring, v) == 0;
		if (!found)
			abort();
	}
	if (hamap_state(a, v, "ON") && a->kind == HAMAP_BUTTON)
		abort();
}

static void check_topic(const char *topic)
{
	char ctl[COMMAND_NAME_MAX + 1], action[COMMAND_NAME_MAX + 1], obj[HAMAP_ID_MAX];
	const char *leaf;
	if (hamap_topic_parse(&X, topic, ctl, action, &leaf) == 0 &&
	    (!name_valid(ctl, COMMAND_NAME_MAX) || !name_valid(action, COMMAND_NAME_MAX) ||
	     !*leaf || strchr(leaf, '/') || leaf < topic || leaf >= topic + strlen(topic)))
		abort();
	if (hamap_config_topic_parse(&X, topic, obj) && hamap_object_parse(obj, ctl, action) == 0) {
		/* What parses is what the names give back. */
		char c[2 * COMMAND_NAME_MAX + 2], n[2 * COMMAND_NAME_MAX + 2], again[HAMAP_ID_MAX];
		hamap_escape(ctl, c, sizeof c);
		hamap_escape(action, n, sizeof n);
		snprintf(again, sizeof again, "%s__%s", c, n);
		if (strcmp(again, obj) != 0)
			abort();
	}
}

/* The input as an info document: every action classified, the configs printed and read back. */
static void check_info(const char *text)
{
	cJSON *info = cJSON_Parse(text);
	const cJSON *e;
	struct hamap_action as[8];
	int n = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(info, "actions")) {
		if (n == 8)
			break;
		hamap_classify(e, &as[n]);
		if (as[n].kind == HAMAP_NONE && !as[n].why[0])
			abort();
		n++;
	}
	cJSON *c = hamap_ctl_configs(&X, "kitchen", info, as, n, cJSON_GetObjectItemCaseSensitive(info, "numeric"));
	cJSON_ArrayForEach(e, c) {
		char *s = cJSON_PrintUnformatted(e);
		cJSON *back = s ? cJSON_Parse(s) : NULL;
		if (!s || !back)
			abort();
		cJSON_Delete(back);
		free(s);
	}
	cJSON_Delete(c);
	for (int i = 0; i < n; i++)
		hamap_action_clear(&as[i]);
	cJSON_Delete(info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		for (size_t i = 0; i < NACTIONS; i++) {
			cJSON *o = cJSON_Parse(ACTIONS[i]);
			if (hamap_classify(o, &acts[i]) == HAMAP_NONE)
				abort();
			cJSON_Delete(o);
		}
		ready = true;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t tl = nul ? (size_t)(nul - data) : size;
	char *head = malloc(tl + 1);
	if (!head)
		return 0;
	memcpy(head, data, tl);
	head[tl] = '\0';
	check_topic(head);
	if (tl <= 4096)
		check_info(head);
	const char *payload = nul ? (const char *)nul + 1 : head;
	size_t pl = nul ? size - tl - 1 : tl;
	for (size_t i = 0; i < NACTIONS; i++)
		check_value(&acts[i], payload, pl);
	free(head);
	return 0;
}
