/* fuzz_mhsstate: frMhs's state dir readers on arbitrary file contents -- the request log
 * replayed into the request table (then rewritten), and the registry snapshot restored into a
 * registry (that dials nothing: it is shutting down) and saved again. The first input byte picks
 * the file. The directory is a temp dir on /dev/shm, made once. */
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "registry.h"
#include "req.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

static struct loop *loop;
static struct store *store;
static char dir[64];

static int f_send(void *a, const char *c, const char *f, size_t n) { (void)a; (void)c; (void)f; (void)n; return -1; }
static bool f_linked(void *a, const char *c) { (void)a; (void)c; return false; }
static uint64_t f_timeout(void *a, const char *c, const char *x) { (void)a; (void)c; (void)x; return 0; }
static void f_why(void *a, const char *c, char *b, size_t n) { (void)a; (void)c; snprintf(b, n, "-"); }
static void f_reply(void *a, const struct req_route *r, const char *m, size_t n) { (void)a; (void)r; (void)m; (void)n; }
static const struct reqs_ops ops = { f_send, f_linked, f_timeout, f_why, f_reply, NULL, NULL };
static const struct registry_ops rops = { NULL, NULL, NULL, NULL };

/* The directory goes when the fuzzer exits. */
static void cleanup(void)
{
	static const char *const files[] = { "lock", "home", "registry.json", "registry.json.tmp",
					     "requests.log", "requests.log.tmp" };
	char path[128];
	store_close(store);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void init(void)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (__sanitizer_set_report_fd)
		__sanitizer_set_report_fd((void *)(intptr_t)dup(2));
	dup2(null, 2);   /* the readers log every bad record */
	close(null);
	log_init("fuzz", true, 0);
	strcpy(dir, "/dev/shm/fr-fuzz-mhs-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	loop = loop_new();
	store = store_open(loop, dir, "home1");
	if (!loop || !store)
		abort();
	atexit(cleanup);
}

static void put(const char *name, const uint8_t *data, size_t size)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loop)
		init();
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		put("registry.json", data + 1, size - 1);
		cJSON *doc = store_registry_load(store);
		struct registry_opts o = { .announce_interval_ms = 1000, .offline_after = 3 };
		struct registry *r = registry_new(loop, NULL, &o, &rops, NULL);
		registry_shutdown(r);   /* nothing is dialled */
		if (doc)
			registry_restore(r, doc);
		cJSON *again = registry_snapshot(r);
		char *text = cJSON_PrintUnformatted(again);
		free(text);
		cJSON_Delete(again);
		cJSON_Delete(doc);
		registry_free(r);
	} else {
		put("requests.log", data + 1, size - 1);
		struct reqs_opts o = { .dedup_max = 64, .open_max = 64, .result_grace_ms = 1000 };
		struct reqs *q = reqs_new(loop, &o, &ops, NULL, store);
		reqs_restore(q);
		reqs_free(q);
	}
	return 0;
}
