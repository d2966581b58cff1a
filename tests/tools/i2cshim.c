/* i2cshim: LD_PRELOAD library that puts the HD44780 + PCF8574 model (hd44780.c) behind a
 * fake i2c-dev node, so a real, unmodified frMhs drives a display that reports what it shows.
 *   FR_I2C_MODEL_DEV   the device path to intercept (need not exist), e.g. /dev/i2c-fr
 *   FR_I2C_MODEL_DIR   where reports go: screen (the current screen, "|...|" rows, replaced
 *                      atomically), screens.log (each new screen, timestamped), violations
 *                      (one line each), stats (timing summary). Control files the test
 *                      creates: dip (a power dip now), glitch (a stray E pulse now).
 *   FR_I2C_MODEL_ADDR  the backpack's address (default 0x27: other addresses NACK, ENXIO)
 *   FR_I2C_MODEL_FOSC  the controller's oscillator in kHz (default 190, the slowest)
 *   FR_I2C_MODEL_WIDTH columns reported (default 16)
 * A write is one bus transaction at the PCF8574's 100 kHz: each byte takes 90 us (start and
 * address first), and write() returns when the transaction would end, like i2c-dev. */
#include "hd44780.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BYTE_NS 90000ull

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct hd44780 *model;
static int model_fd = -1, cur_addr = -1, addr = 0x27, width = 16;
static char *dev, *dir;
static char last_screen[1024];
static unsigned last_violations;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((constructor)) static void shim_init(void)
{
	dev = getenv("FR_I2C_MODEL_DEV");
	dir = getenv("FR_I2C_MODEL_DIR");
	if (!dev || !dir)
		return;
	if (getenv("FR_I2C_MODEL_ADDR"))
		addr = (int)strtol(getenv("FR_I2C_MODEL_ADDR"), NULL, 0);
	if (getenv("FR_I2C_MODEL_WIDTH"))
		width = atoi(getenv("FR_I2C_MODEL_WIDTH"));
	unsigned fosc = getenv("FR_I2C_MODEL_FOSC") ? (unsigned)atoi(getenv("FR_I2C_MODEL_FOSC")) : 190;
	model = hd44780_new(fosc, now_ns());   /* the display powers up with the process */
}

static void report(const char *name, const char *text, bool append)
{
	char p[4096], tmp[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	FILE *f = fopen(append ? p : tmp, append ? "a" : "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	if (!append)
		rename(tmp, p);
}

static bool take(const char *name)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return unlink(p) == 0;
}

static int intercept_open(const char *path)
{
	int fd = memfd_create("fr-i2c-model", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&mu);
	model_fd = fd;
	cur_addr = -1;
	pthread_mutex_unlock(&mu);
	(void)path;
	return fd;
}

#define REAL(name) static __typeof__(name) *real_##name; \
	if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* open and open64 (glibc has both; a program built with 64-bit offsets calls the latter):
 * the model's path is intercepted, anything else goes to the real one with its mode. */
static int shim_open(int (*real)(const char *, int, ...), const char *path, int flags, va_list ap)
{
	mode_t mode = flags & (O_CREAT | O_TMPFILE) ? va_arg(ap, mode_t) : 0;
	if (model && strcmp(path, dev) == 0)
		return intercept_open(path);
	return real(path, flags, mode);
}

#define SHIM_OPEN(name) \
	int name(const char *path, int flags, ...) \
	{ \
		REAL(name); \
		va_list ap; \
		va_start(ap, flags); \
		int fd = shim_open(real_##name, path, flags, ap); \
		va_end(ap); \
		return fd; \
	}
SHIM_OPEN(open)
SHIM_OPEN(open64)

int ioctl(int fd, unsigned long req, ...);   /* glibc declares it with an int-sized request */
int ioctl(int fd, unsigned long req, ...)
{
	REAL(ioctl);
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (model && fd == model_fd) {
		if (req == I2C_SLAVE || req == I2C_SLAVE_FORCE) {
			cur_addr = (int)(unsigned long)arg;
			return 0;
		}
		errno = ENOTTY;
		return -1;
	}
	return real_ioctl(fd, req, arg);
}

int close(int fd)
{
	REAL(close);
	if (model && fd == model_fd)
		model_fd = -1;
	return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(write);
	if (!model || fd != model_fd || fd < 0)
		return real_write(fd, buf, n);
	if (cur_addr != addr) {   /* nobody acknowledges this address */
		errno = cur_addr < 0 ? EREMOTEIO : ENXIO;
		return -1;
	}
	pthread_mutex_lock(&mu);
	uint64_t t0 = now_ns();
	if (take("dip")) {
		hd44780_power_cycle(model, t0);
		report("screens.log", "--- power dip ---\n", true);
	}
	if (take("glitch")) {
		hd44780_glitch(model, t0);
		report("screens.log", "--- glitch ---\n", true);
	}
	const uint8_t *b = buf;
	for (size_t i = 0; i < n; i++)
		hd44780_bus(model, b[i], t0 + (i + 2) * BYTE_NS);
	char screen[1024], line[1100], stats[512];
	hd44780_screen(model, width, screen, sizeof screen);
	if (strcmp(screen, last_screen) != 0) {
		memcpy(last_screen, screen, sizeof screen);
		report("screen", screen, false);
		snprintf(line, sizeof line, "%.3f\n%s", (double)t0 / 1e9, screen);
		report("screens.log", line, true);
	}
	unsigned v = hd44780_violations(model);
	if (v != last_violations) {
		last_violations = v;
		snprintf(line, sizeof line, "%s\n", hd44780_last_violation(model));
		report("violations", line, true);
	}
	hd44780_stats(model, stats, sizeof stats - 1);
	strcat(stats, "\n");
	report("stats", stats, false);
	pthread_mutex_unlock(&mu);
	/* The transaction lasts as long as the bus needs; i2c-dev's write blocks that long. */
	uint64_t end = t0 + (n + 1) * BYTE_NS;
	struct timespec ts = { .tv_sec = (time_t)(end / 1000000000ull), .tv_nsec = (long)(end % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return (ssize_t)n;
}
