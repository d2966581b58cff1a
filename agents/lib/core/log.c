/* log: stderr or syslog sink shared by all agents. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *log_name = "fr";
static bool log_foreground = true;
static int log_verbose;

void log_init(const char *name, bool foreground, int verbose)
{
	log_name = name;
	log_foreground = foreground;
	log_verbose = verbose;
	if (!foreground)
		openlog(name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_verbose(int verbose) { log_verbose = verbose; }
int log_get_verbose(void) { return log_verbose; }

static void log_vwrite(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char msg[2048];

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (!log_foreground) {
		if (suffix)
			syslog(pri, "%s: %s", msg, suffix);
		else
			syslog(pri, "%s", msg);
		return;
	}
	/* Wall-clock millisecond stamps let test logs from several daemons be merged by time. */
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
	const char *lvl = pri == LOG_DEBUG ? "debug" : pri == LOG_INFO ? "info" :
			  pri == LOG_CRIT ? "fatal" : "warn";
	if (suffix)
		fprintf(stderr, "%s.%03ld %s[%s] %s: %s\n", stamp, ts.tv_nsec / 1000000, log_name,
			lvl, msg, suffix);
	else
		fprintf(stderr, "%s.%03ld %s[%s] %s\n", stamp, ts.tv_nsec / 1000000, log_name, lvl,
			msg);
	fflush(stderr);
}

void log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, fmt, ap, NULL);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	if (log_verbose < 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

int log_why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && n)
		vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}
