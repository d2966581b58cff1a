/* Unit tests of hamap: which Home Assistant platform each action pattern gets, the payloads HA
 * sends turned into argument values, the states after a run (and the ones HA could not show), ids that never collide, the
 * topics, and the config documents of a controller (docs/topics.md, "Home Assistant"). */
#include "hamap.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct hamap_ctx X = { "fr", "home1", "homeassistant", "0.1.0" };

/* An action with one argument (pattern, default or NULL), classified. */
static enum hamap_kind one(const char *pattern, const char *def, struct hamap_action *a)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", "act");
	cJSON *args = cJSON_AddArrayToObject(o, "args");
	cJSON *arg = cJSON_CreateObject();
	cJSON_AddStringToObject(arg, "name", "v");
	cJSON_AddStringToObject(arg, "pattern", pattern);
	if (def)
		cJSON_AddStringToObject(arg, "default", def);
	cJSON_AddItemToArray(args, arg);
	enum hamap_kind k = hamap_classify(o, a);
	cJSON_Delete(o);
	return k;
}

static enum hamap_kind from_json(const char *json, struct hamap_action *a)
{
	cJSON *o = cJSON_Parse(json);
	ck_assert_ptr_nonnull(o);
	enum hamap_kind k = hamap_classify(o, a);
	cJSON_Delete(o);
	return k;
}

static char *options(const struct hamap_action *a)
{
	static char buf[512];
	char *s = cJSON_PrintUnformatted(a->options);
	snprintf(buf, sizeof buf, "%s", s ? s : "null");
	free(s);
	return buf;
}

/* The platform of every kind of pattern, and what the config needs of it. */
START_TEST(test_patterns)
{
	static const struct {
		const char *pattern;
		enum hamap_kind kind;
		const char *detail;   /* switch: "on/off/toggle"; select: options; number: "min..max/step" */
	} cases[] = {
		{ "on|off", HAMAP_SWITCH, "on/off/" },
		{ "on|off|toggle", HAMAP_SWITCH, "on/off/toggle" },
		{ "ON|OFF", HAMAP_SWITCH, "ON/OFF/" },
		{ "(off|on)", HAMAP_SWITCH, "on/off/" },
		{ "true|false", HAMAP_SWITCH, "true/false/" },
		{ "1|0", HAMAP_SWITCH, "1/0/" },
		{ "on|off|auto", HAMAP_SELECT, "[\"on\",\"off\",\"auto\"]" },
		{ "eco|comfort|away|eco", HAMAP_SELECT, "[\"eco\",\"comfort\",\"away\"]" },
		{ "low", HAMAP_SELECT, "[\"low\"]" },
		{ "0|50|100", HAMAP_SELECT, "[\"0\",\"50\",\"100\"]" },
		{ "[5]", HAMAP_SELECT, "[\"5\"]" },
		{ "[1-9]|1[0-9]|20", HAMAP_NUMBER, "1..20/1" },
		{ "[0-9]+", HAMAP_NUMBER, "0..9999/1" },
		{ "[0-9]*", HAMAP_NUMBER, "0..9999/1" },
		{ "-?[0-9]{1,3}", HAMAP_NUMBER, "-999..999/1" },
		{ "[0-9]{1,2}(\\.[0-9])?", HAMAP_NUMBER, "0..99/0.1" },
		{ "[0-9]|[1-9][0-9]|100", HAMAP_NUMBER, "0..100/1" },
		{ "[0-9]+\\.[0-9]{2}", HAMAP_TEXT, NULL },
		{ "[a-z ]{1,20}", HAMAP_TEXT, NULL },
		{ ".*", HAMAP_TEXT, NULL },
		{ "[0-9a-f]+", HAMAP_TEXT, NULL },
		{ "on|of f", HAMAP_TEXT, NULL },
		{ "a|", HAMAP_TEXT, NULL },
		{ "(", HAMAP_NONE, NULL },
		{ "[a-", HAMAP_NONE, NULL },
		{ "a{2,1}", HAMAP_NONE, NULL },
		{ "*a", HAMAP_NONE, NULL },
		/* What would make glibc's regcomp allocate without bound is not compiled at all. */
		{ "a+++++++++++++++++++++++++++++++++++++++++", HAMAP_NONE, NULL },
		{ "a{1,300}", HAMAP_NONE, NULL },
		{ "((a{1,100}){1,100})", HAMAP_NONE, NULL },
		{ "(([0-9]{1,60}){1,60}){1,60}", HAMAP_NONE, NULL },
		{ "([[:digit:]]{1,4}|x)", HAMAP_NUMBER, "0..9999/1" },
		{ "[]a]|b", HAMAP_TEXT, NULL },
		{ "(on|off)+", HAMAP_TEXT, NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct hamap_action a;
		enum hamap_kind k = one(cases[i].pattern, NULL, &a);
		char got[512] = "";
		if (k == HAMAP_SWITCH)
			snprintf(got, sizeof got, "%s/%s/%s", a.on, a.off, a.toggle);
		else if (k == HAMAP_SELECT)
			snprintf(got, sizeof got, "%s", options(&a));
		else if (k == HAMAP_NUMBER)
			snprintf(got, sizeof got, "%g..%g/%g", a.min, a.max, a.step);
		ck_assert_msg(k == cases[i].kind && (!cases[i].detail || strcmp(got, cases[i].detail) == 0),
			      "'%s': %s %s, want %s %s", cases[i].pattern, hamap_kind_name(k), got,
			      hamap_kind_name(cases[i].kind), cases[i].detail ? cases[i].detail : "");
		if (k != HAMAP_NONE)
			ck_assert_str_eq(a.arg, "v");
		hamap_action_clear(&a);
	}
}
END_TEST

/* Which argument HA sets: none (a button), the only one, the only one without a default. */
START_TEST(test_arguments)
{
	struct hamap_action a;
	ck_assert_int_eq(from_json("{\"name\":\"ping\"}", &a), HAMAP_BUTTON);
	hamap_action_clear(&a);
	ck_assert_int_eq(from_json("{\"name\":\"ping\",\"args\":[]}", &a), HAMAP_BUTTON);
	ck_assert_str_eq(a.arg, "");
	hamap_action_clear(&a);
	/* Every argument has a default: PRESS runs it with them. */
	ck_assert_int_eq(from_json("{\"name\":\"go\",\"args\":[{\"name\":\"a\",\"pattern\":\"x\",\"default\":\"x\"},"
				   "{\"name\":\"b\",\"pattern\":\"[0-9]\",\"default\":\"1\"}]}", &a), HAMAP_BUTTON);
	hamap_action_clear(&a);
	ck_assert_int_eq(from_json("{\"name\":\"dim\",\"args\":[{\"name\":\"ramp\",\"pattern\":\"[0-9]\",\"default\":\"0\"},"
				   "{\"name\":\"level\",\"pattern\":\"[0-9]|[1-9][0-9]|100\"}]}", &a), HAMAP_NUMBER);
	ck_assert_str_eq(a.arg, "level");
	ck_assert_ptr_null(a.def);
	hamap_action_clear(&a);
	ck_assert_int_eq(one("on|off|toggle", "toggle", &a), HAMAP_SWITCH);
	ck_assert_str_eq(a.def, "toggle");
	hamap_action_clear(&a);
	/* Not exposed, with the reason. */
	static const char *const none[] = {
		"{\"name\":\"pair\",\"args\":[{\"name\":\"a\",\"pattern\":\"x\"},{\"name\":\"b\",\"pattern\":\"y\"}]}",
		"{\"name\":\"p\",\"args\":[{\"name\":\"a\"}]}",
		"{\"name\":\"p\",\"args\":[{\"name\":\"a b\",\"pattern\":\"x\"}]}",
		"{\"name\":\"p\",\"args\":[{\"name\":\"a\",\"pattern\":\"x\",\"default\":1}]}",
		"{\"name\":\"p\",\"args\":{}}",
		"{\"name\":\"bad name\"}",
		"{\"args\":[]}",
	};
	for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
		ck_assert_msg(from_json(none[i], &a) == HAMAP_NONE, "%s", none[i]);
		ck_assert(a.why[0]);
		hamap_action_clear(&a);
	}
	from_json(none[0], &a);
	ck_assert_str_eq(a.why, "2 of its arguments have no default; Home Assistant sets one");
	hamap_action_clear(&a);
}
END_TEST

/* value_ok KIND-ACTION PAYLOAD -> VALUE, or refused. */
static const char *value(const struct hamap_action *a, const char *payload, size_t len)
{
	static char v[HAMAP_PAYLOAD_MAX + 1];
	char why[200];
	if (hamap_value(a, payload, len, v, sizeof v, why, sizeof why) < 0) {
		ck_assert(why[0]);
		return NULL;
	}
	return v;
}
#define V(a, p) value(a, p, strlen(p))

START_TEST(test_payloads)
{
	struct hamap_action a;
	from_json("{\"name\":\"ping\"}", &a);
	ck_assert_str_eq(V(&a, "PRESS"), "");
	ck_assert_ptr_null(V(&a, "press"));
	ck_assert_ptr_null(V(&a, ""));
	hamap_action_clear(&a);

	one("on|off|toggle", "toggle", &a);
	ck_assert_str_eq(V(&a, "ON"), "on");
	ck_assert_str_eq(V(&a, "off"), "off");
	ck_assert_ptr_null(V(&a, "toggle"));   /* HA's switch sends ON and OFF only */
	ck_assert_ptr_null(V(&a, "maybe"));
	hamap_action_clear(&a);

	one("eco|comfort", NULL, &a);
	ck_assert_str_eq(V(&a, "comfort"), "comfort");
	ck_assert_ptr_null(V(&a, "Comfort"));
	hamap_action_clear(&a);

	one("-?[0-9]{1,2}(\\.[0-9])?", NULL, &a);
	ck_assert(a.min == -99 && a.max == 99 && a.step == 0.1);
	ck_assert_str_eq(V(&a, "5"), "5");
	ck_assert_str_eq(V(&a, "05"), "5");
	ck_assert_str_eq(V(&a, "2.50"), "2.5");
	ck_assert_str_eq(V(&a, "3.0"), "3");
	ck_assert_str_eq(V(&a, "-0"), "0");
	ck_assert_str_eq(V(&a, "-12.5"), "-12.5");
	static const char *const bad[] = { "2.55", "100", "-100", "1e1", "", ".5", "5.", " 5", "5 ",
					   "+5", "0x10", "nan", "inf", "--1", "1.2.3" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(V(&a, bad[i]) == NULL, "accepted '%s'", bad[i]);
	hamap_action_clear(&a);

	one("[a-z ]{1,20}", NULL, &a);
	ck_assert_str_eq(V(&a, "hello world"), "hello world");
	ck_assert_str_eq(V(&a, "grüße"), "grüße");    /* the controller's pattern decides */
	ck_assert_ptr_null(value(&a, "a\0b", 3));
	ck_assert_ptr_null(V(&a, "\xc3\x28"));       /* not UTF-8 */
	char big[HAMAP_PAYLOAD_MAX + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_ptr_null(V(&a, big));
	big[HAMAP_PAYLOAD_MAX] = '\0';
	ck_assert_ptr_nonnull(V(&a, big));
	hamap_action_clear(&a);

	one("(", NULL, &a);
	ck_assert_ptr_null(V(&a, "x"));
	hamap_action_clear(&a);
}
END_TEST

START_TEST(test_states)
{
	struct hamap_action a;
	one("on|off|toggle", "toggle", &a);
	ck_assert_str_eq(hamap_state(&a, "on", NULL), "ON");
	ck_assert_str_eq(hamap_state(&a, "off", "ON"), "OFF");
	ck_assert_str_eq(hamap_state(&a, "toggle", "ON"), "OFF");
	ck_assert_str_eq(hamap_state(&a, "toggle", "OFF"), "ON");
	ck_assert_ptr_null(hamap_state(&a, "toggle", NULL));   /* flipping the unknown says nothing */
	ck_assert_ptr_null(hamap_state(&a, "bogus", "ON"));
	ck_assert_ptr_null(hamap_state(&a, NULL, "ON"));
	hamap_action_clear(&a);
	one("[0-9]+", NULL, &a);
	ck_assert_str_eq(hamap_state(&a, "42", NULL), "42");
	hamap_action_clear(&a);
	one("[a-z]+", NULL, &a);
	char long_text[HAMAP_PAYLOAD_MAX + 2];
	memset(long_text, 'a', sizeof long_text - 1);
	long_text[sizeof long_text - 1] = '\0';
	ck_assert_ptr_null(hamap_state(&a, long_text, NULL));   /* more than HA's text shows */
	long_text[HAMAP_PAYLOAD_MAX] = '\0';
	ck_assert_str_eq(hamap_state(&a, long_text, NULL), long_text);
	hamap_action_clear(&a);
	from_json("{\"name\":\"ping\"}", &a);
	ck_assert_ptr_null(hamap_state(&a, "", NULL));
	hamap_action_clear(&a);
}
END_TEST

/* Object ids: names escaped so that no two pairs give the same id, and read back. */
START_TEST(test_ids)
{
	static const char *const pairs[][2] = { { "kitchen", "lamp" }, { "a_", "b" }, { "a", "_b" },
						{ "a__b", "c" }, { "a", "_-b" }, { "-", "_" }, { "x_-", "y" } };
	char ids[sizeof pairs / sizeof *pairs][HAMAP_ID_MAX];
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		char c[128], n[128], ctl[COMMAND_NAME_MAX + 1], name[COMMAND_NAME_MAX + 1];
		hamap_escape(pairs[i][0], c, sizeof c);
		hamap_escape(pairs[i][1], n, sizeof n);
		snprintf(ids[i], sizeof ids[i], "%s__%s", c, n);
		ck_assert_msg(hamap_object_parse(ids[i], ctl, name) == 0, "%s", ids[i]);
		ck_assert_str_eq(ctl, pairs[i][0]);
		ck_assert_str_eq(name, pairs[i][1]);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(ids[i], ids[j]);
	}
	ck_assert_str_eq(ids[0], "kitchen__lamp");
	char ctl[COMMAND_NAME_MAX + 1], name[COMMAND_NAME_MAX + 1];
	static const char *const bad[] = { "", "kitchen", "__x", "x__", "a__b__c", "a_b__c", "a b__c",
					   "home-controllers-online" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(hamap_object_parse(bad[i], ctl, name) < 0, "parsed '%s'", bad[i]);
}
END_TEST

START_TEST(test_topics)
{
	char ctl[COMMAND_NAME_MAX + 1], action[COMMAND_NAME_MAX + 1], t[HAMAP_TOPIC_MAX], obj[HAMAP_ID_MAX];
	const char *leaf;
	hamap_action_topic(&X, "kitchen", "lamp", "set", t, sizeof t);
	ck_assert_str_eq(t, "fr/home1/ha/kitchen/lamp/set");
	ck_assert_int_eq(hamap_topic_parse(&X, t, ctl, action, &leaf), 0);
	ck_assert_str_eq(ctl, "kitchen");
	ck_assert_str_eq(action, "lamp");
	ck_assert_str_eq(leaf, "set");
	static const char *const bad[] = { "fr/home2/ha/k/l/set", "fr/home1/ha/k/l", "fr/home1/ha/k/l/",
					   "fr/home1/ha/k/l/set/x", "fr/home1/ha/k l/l/set", "fr/home1/ha//l/set",
					   "fr/home1/ctl/k/cmd", "x/home1/ha/k/l/set" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(hamap_topic_parse(&X, bad[i], ctl, action, &leaf) < 0, "parsed '%s'", bad[i]);
	hamap_config_filter(&X, t, sizeof t);
	ck_assert_str_eq(t, "homeassistant/+/fr_home1/+/config");
	ck_assert(hamap_config_topic_parse(&X, "homeassistant/switch/fr_home1/kitchen__lamp/config", obj));
	ck_assert_str_eq(obj, "kitchen__lamp");
	static const char *const badc[] = { "homeassistant/switch/fr_home2/k__l/config",
					    "homeassistant/switch/fr_home1/k__l/config/x",
					    "homeassistant/switch/fr_home1/k__l",
					    "homeassistant/Switch/fr_home1/k__l/config",
					    "homeassistant//fr_home1/k__l/config",
					    "homeassistant/switch/fr_home1//config",
					    "homeassistant/switch/fr_home1/k.l/config",
					    "homeassistant/switch/fr_home10/k__l/config",
					    "other/switch/fr_home1/k__l/config" };
	for (size_t i = 0; i < sizeof badc / sizeof *badc; i++)
		ck_assert_msg(!hamap_config_topic_parse(&X, badc[i], obj), "parsed '%s'", badc[i]);
}
END_TEST

static const char *INFO =
	"{\"id\":\"kitchen\",\"name\":\"Kitchen Pi\",\"version\":\"0.1.0\",\"actions\":["
	"{\"name\":\"lamp\",\"timeout\":5,\"args\":[{\"name\":\"state\",\"pattern\":\"on|off|toggle\",\"default\":\"toggle\"}]},"
	"{\"name\":\"slow\",\"timeout\":30,\"args\":[{\"name\":\"seconds\",\"pattern\":\"[1-9]|1[0-9]|20\",\"default\":\"5\"}]},"
	"{\"name\":\"pair\",\"args\":[{\"name\":\"a\",\"pattern\":\"x\"},{\"name\":\"b\",\"pattern\":\"y\"}]}],"
	"\"sensors\":[{\"name\":\"temp\",\"interval\":5,\"unit\":\"\xc2\xb0""C\",\"device_class\":\"temperature\"},"
	"{\"name\":\"lamp\",\"interval\":1},{\"name\":\"hum\",\"interval\":1},"
	"{\"name\":\"raw\",\"unit\":\"\\u0001\",\"device_class\":\"Bad Class\"},"
	"{\"name\":\"when\",\"device_class\":\"timestamp\"}]}";

static const cJSON *get(const cJSON *o, const char *path)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(k)) : cJSON_GetObjectItemCaseSensitive(o, k);
	return o;
}
static const char *str(const cJSON *o, const char *path)
{
	const cJSON *v = get(o, path);
	return cJSON_IsString(v) ? v->valuestring : "(none)";
}

START_TEST(test_configs)
{
	cJSON *info = cJSON_Parse(INFO);
	ck_assert_ptr_nonnull(info);
	struct hamap_action acts[3];
	int n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(info, "actions"))
		hamap_classify(e, &acts[n++]);
	cJSON *numeric = cJSON_Parse("{\"lamp\":false,\"raw\":true}");
	cJSON *c = hamap_ctl_configs(&X, "kitchen", info, acts, n, numeric);
	/* lamp, slow; 5 sensors (hum not decided yet: null); pair has no entity. */
	ck_assert_int_eq(cJSON_GetArraySize(c), 7);
	const cJSON *sw = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/switch/fr_home1/kitchen__lamp/config");
	ck_assert_str_eq(str(sw, "name"), "lamp");
	ck_assert_str_eq(str(sw, "unique_id"), "fr__home1__kitchen__action__lamp");
	ck_assert_str_eq(str(sw, "command_topic"), "fr/home1/ha/kitchen/lamp/set");
	ck_assert_str_eq(str(sw, "state_topic"), "fr/home1/ha/kitchen/lamp/state");
	ck_assert_str_eq(str(sw, "json_attributes_topic"), "fr/home1/ha/kitchen/lamp/attributes");
	ck_assert_str_eq(str(sw, "payload_on"), "ON");
	ck_assert_str_eq(str(sw, "availability_mode"), "all");
	ck_assert_str_eq(str(sw, "availability.0.topic"), "fr/home1/status");
	ck_assert_str_eq(str(sw, "availability.1.topic"), "fr/home1/ctl/kitchen/status");
	ck_assert_str_eq(str(sw, "availability.1.payload_not_available"), "offline");
	ck_assert_str_eq(str(sw, "device.identifiers.0"), "fr__home1__kitchen");
	ck_assert_str_eq(str(sw, "device.name"), "Kitchen Pi");
	ck_assert_str_eq(str(sw, "device.sw_version"), "0.1.0");
	ck_assert_str_eq(str(sw, "device.via_device"), "fr__home1");
	ck_assert_str_eq(str(sw, "origin.name"), "fr");
	ck_assert(cJSON_IsFalse(get(sw, "retain")));
	const cJSON *num = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/number/fr_home1/kitchen__slow/config");
	ck_assert(get(num, "min")->valuedouble == 1 && get(num, "max")->valuedouble == 20 &&
		  get(num, "step")->valuedouble == 1);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(c, "homeassistant/button/fr_home1/kitchen__pair/config"));
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/sensor/fr_home1/kitchen__temp/config");
	ck_assert_str_eq(str(t, "state_topic"), "fr/home1/ctl/kitchen/state/temp");
	ck_assert_str_eq(str(t, "state_class"), "measurement");
	ck_assert_str_eq(str(t, "unit_of_measurement"), "\xc2\xb0""C");
	ck_assert_str_eq(str(t, "device_class"), "temperature");
	ck_assert_str_eq(str(t, "unique_id"), "fr__home1__kitchen__sensor__temp");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/sensor/fr_home1/kitchen__lamp/config");
	ck_assert_str_eq(str(l, "state_class"), "(none)");
	ck_assert_str_eq(str(l, "value_template"), "{{ (value_json.value | string)[:255] }}");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c, "homeassistant/sensor/fr_home1/kitchen__hum/config")));
	/* A bad unit and device class are left out; a number seen makes it numeric. */
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/sensor/fr_home1/kitchen__raw/config");
	ck_assert_str_eq(str(r, "state_class"), "measurement");
	ck_assert_ptr_null(get(r, "unit_of_measurement"));
	ck_assert_ptr_null(get(r, "device_class"));
	/* A timestamp is not measured. */
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/sensor/fr_home1/kitchen__when/config");
	ck_assert_str_eq(str(w, "device_class"), "timestamp");
	ck_assert_ptr_null(get(w, "state_class"));
	cJSON_Delete(c);
	/* Two homes never share a topic or an id. */
	const struct hamap_ctx x2 = { "fr", "home2", "homeassistant", "0.1.0" };
	c = hamap_ctl_configs(&x2, "kitchen", info, acts, n, numeric);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(c, "homeassistant/switch/fr_home2/kitchen__lamp/config"));
	ck_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(c, "homeassistant/switch/fr_home2/kitchen__lamp/config"),
			     "unique_id"), "fr__home2__kitchen__action__lamp");
	cJSON_Delete(c);
	for (int i = 0; i < n; i++)
		hamap_action_clear(&acts[i]);
	cJSON_Delete(numeric);
	cJSON_Delete(info);
}
END_TEST

START_TEST(test_home_configs)
{
	cJSON *c = hamap_home_configs(&X);
	ck_assert_int_eq(cJSON_GetArraySize(c), 3);
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, "homeassistant/sensor/fr_home1/home-controllers-online/config");
	ck_assert_str_eq(str(o, "state_topic"), "fr/home1/stats");
	ck_assert_str_eq(str(o, "value_template"), "{{ value_json.controllers.online }}");
	ck_assert_str_eq(str(o, "entity_category"), "diagnostic");
	ck_assert_str_eq(str(o, "device.identifiers.0"), "fr__home1");
	ck_assert_ptr_null(get(o, "device.via_device"));
	ck_assert_int_eq(cJSON_GetArraySize(get(o, "availability")), 1);
	cJSON_Delete(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hamap");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_patterns);
	tcase_add_test(tc, test_arguments);
	tcase_add_test(tc, test_payloads);
	tcase_add_test(tc, test_states);
	tcase_add_test(tc, test_ids);
	tcase_add_test(tc, test_topics);
	tcase_add_test(tc, test_configs);
	tcase_add_test(tc, test_home_configs);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
