/* fuzz_config: frMhc's conf_load + conf_free on the input as a config file (kept in a memfd,
 * read through /proc/self/fd), then the announce JSON and an argv for every action. */
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sanitizer reports keep going to the real stderr while conf_load's log lines are muted. */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

/* libconfig 1.5 (Debian 12) leaks the string token its parser discards on some syntax errors
 * (hyperrealm/libconfig#142, fixed upstream by #155 in 1.7.3): a library bug, not conf.c's.
 * The token comes from the scanner's string buffer, or from yylex itself when empty. A
 * config_t that conf.c forgot to destroy would still show up through libconfig's setting
 * allocations, which are not suppressed. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static int memfd = -1;
static int real_stderr = -1;
static int devnull = -1;
static char path[64];

static void fuzz_init(void)
{
	memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
	real_stderr = dup(2);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (memfd < 0 || real_stderr < 0 || devnull < 0)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	if (__sanitizer_set_report_fd)
		__sanitizer_set_report_fd((void *)(intptr_t)real_stderr);
}

static void exercise(const struct conf *c)
{
	char why[128];
	char *s;
	cJSON *j;

	j = conf_actions_json(c);
	s = cJSON_PrintUnformatted(j);
	cJSON_free(s);
	cJSON_Delete(j);
	j = conf_sensors_json(c);
	s = cJSON_PrintUnformatted(j);
	cJSON_free(s);
	cJSON_Delete(j);
	for (int i = 0; i < c->nactions; i++) {
		const struct conf_action *a = &c->actions[i];
		cJSON *args = cJSON_CreateObject();
		char **argv = NULL;

		if (conf_action_find(c, a->name) == NULL)
			abort();
		/* Every default must pass its own pattern; required args get a guess. */
		for (int k = 0; k < a->nargs; k++)
			cJSON_AddStringToObject(args, a->args[k].name,
						a->args[k].def ? a->args[k].def : "x");
		if (conf_action_argv(a, args, &argv, why, sizeof why) == 0) {
			if (!argv || !argv[0] || argv[0][0] != '/')
				abort();
			conf_argv_free(argv);
		} else if (argv) {
			abort();
		}
		/* Nothing given: only the required args are missing. */
		if (conf_action_argv(a, NULL, &argv, why, sizeof why) == 0)
			conf_argv_free(argv);
		cJSON_AddStringToObject(args, "zz-not-declared", "1");
		if (conf_action_argv(a, args, &argv, why, sizeof why) == 0)
			abort();
		cJSON_Delete(args);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	int rc;

	if (memfd < 0)
		fuzz_init();
	/* @include would read other files (even /dev/stdin): not the parser under test. */
	if (memmem(data, size, "@include", 8))
		return 0;
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	fflush(stderr);
	dup2(devnull, 2);
	rc = conf_load(&c, path);
	fflush(stderr);
	dup2(real_stderr, 2);
	if (rc == 0)
		exercise(&c);
	conf_free(&c);
	return 0;
}
