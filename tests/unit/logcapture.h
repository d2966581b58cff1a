/* logcapture: what the unit suites of logging modules share -- log.c writes to stderr, so a
 * test points fd 2 at a temp file around the call under test and reads back what was logged.
 * Header-only (static) because each suite is its own executable. */
#ifndef FR_TEST_LOGCAPTURE_H
#define FR_TEST_LOGCAPTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char logbuf[8192];
static int saved_stderr = -1;
static int capfd = -1;

static void capture_start(void)
{
	char tmpl[] = "/tmp/fr-tst-log-XXXXXX";

	fflush(stderr);
	capfd = mkstemp(tmpl);
	ck_assert_int_ge(capfd, 0);
	unlink(tmpl);
	saved_stderr = dup(2);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_ge(dup2(capfd, 2), 0);
}

/* The text logged since capture_start (valid until the next capture), echoed to the real
 * stderr so a failing test shows what was logged. */
static const char *capture_end(void)
{
	ssize_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	n = pread(capfd, logbuf, sizeof logbuf - 1, 0);
	close(capfd);
	logbuf[n > 0 ? n : 0] = '\0';
	fputs(logbuf, stderr);
	return logbuf;
}

#endif
