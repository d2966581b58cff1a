/* log: one place where every agent writes its log lines (stderr in the foreground, syslog
 * as a daemon), in the OpenBSD ntpd style: warn adds strerror(errno), warnx does not. */
#ifndef FR_LOG_H
#define FR_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* name is kept by pointer (a string literal or argv[0]). */
void log_init(const char *name, bool foreground, int verbose);
void log_set_verbose(int verbose);
int log_get_verbose(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Startup only: log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A parser's reason for its caller to log once, where the error is handled: written into why
 * (n bytes; why may be NULL). Returns -EINVAL, so a check reads `return log_why(...)`. */
int log_why(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
