/* fixture: reads a test fixture under tests/unit/fixtures (FR_FIXTURES, set by CMake) into
 * memory for the Check suites that replay recorded byte streams. */
#ifndef FR_TEST_FIXTURE_H
#define FR_TEST_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

struct fixture {
	char *b;     /* the bytes, NUL-terminated; the caller frees */
	size_t n;
};

static inline struct fixture fixture_read(const char *name)
{
	char path[4096];
	struct fixture f = { 0 };
	snprintf(path, sizeof path, "%s/%s", FR_FIXTURES, name);
	FILE *fp = fopen(path, "rb");
	ck_assert_msg(fp != NULL, "fixture %s missing", path);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	f.n = (size_t)ftell(fp);
	rewind(fp);
	f.b = malloc(f.n + 1);
	ck_assert(f.b != NULL);
	ck_assert_uint_eq(fread(f.b, 1, f.n, fp), f.n);
	f.b[f.n] = '\0';
	fclose(fp);
	return f;
}

#endif
