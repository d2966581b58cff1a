/* m5stack: the serial status display and its line protocol; see m5stack.h and
 * docs/display-protocol.md. */
#include "m5stack.h"

#include "log.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <libserialport.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define M5_RETRY_MS 1000
#define M5_OUT_MAX 8192        /* bounded output: a frame that does not fit is dropped */
#define M5_IN_MAX 128          /* device lines are short requests; longer ones are skipped */
#define M5_FRAME_LINES 10
#define M5_BYE_MS 500          /* the goodbye's time to leave at exit */

struct m5stack {
	struct loop *loop;
	char *path;
	int baud;
	struct sp_port *sp;     /* NULL when opened as a plain tty (see m5_open) */
	int fd;                 /* -1 while closed */
	int open_err;           /* errno of the last logged open failure, 0 if none since */
	bool need_full;         /* next frame is a full-state frame (hello ...) */
	bool dropping;          /* logged that the device does not read */
	bool started;           /* first opened with a state to show, not an empty one */
	struct display_view want, sent;   /* what it should show, what it was last sent */
	unsigned long long frames, pings;
	char out[M5_OUT_MAX];
	size_t olen;
	char in[M5_IN_MAX];
	size_t ilen;
	bool in_skip;           /* inside an over-long line: drop up to its newline */
	struct loop_timer retry_timer, beat_timer;
};

size_t m5stack_line(char *out, size_t cap, const char *key, const char *value)
{
	size_t limit = (cap < M5STACK_LINE_MAX ? cap : M5STACK_LINE_MAX) - 1;   /* room for \n */
	int n = snprintf(out, cap, "FR1 %s=", key);
	if (n < 0 || (size_t)n >= limit)
		return 0;
	size_t len = (size_t)n, start = len;
	bool cut = false;
	for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
		char u[5];
		size_t ul;
		switch (*s) {
		case '\\': memcpy(u, "\\\\", 2), ul = 2; break;
		case '\n': memcpy(u, "\\n", 2), ul = 2; break;
		case '\r': memcpy(u, "\\r", 2), ul = 2; break;
		case '\t': memcpy(u, "\\t", 2), ul = 2; break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				snprintf(u, sizeof u, "\\x%02x", *s);
				ul = 4;
			} else {
				u[0] = (char)*s;
				ul = 1;
			}
		}
		if (len + ul > limit) {
			cut = true;
			break;
		}
		memcpy(out + len, u, ul);
		len += ul;
	}
	if (cut) {
		/* Never leave half a UTF-8 character at the cut. */
		size_t i = len, k = 0;
		while (i > start && k < 3 && ((unsigned char)out[i - 1] & 0xc0) == 0x80)
			i--, k++;
		if (i > start && (unsigned char)out[i - 1] >= 0xc0) {
			unsigned char lead = (unsigned char)out[i - 1];
			size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
			if (k + 1 < need)
				len = i - 1;
		}
	}
	out[len++] = '\n';
	return len;
}

static speed_t m5_speed(int baud)
{
	switch (baud) {
	case 1200: return B1200;
	case 2400: return B2400;
	case 4800: return B4800;
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 230400: return B230400;
	case 460800: return B460800;
	case 500000: return B500000;
	case 921600: return B921600;
	case 1000000: return B1000000;
	case 1500000: return B1500000;
	case 2000000: return B2000000;
	case 3000000: return B3000000;
	case 4000000: return B4000000;
	default: return B115200;
	}
}

/* A tty that libserialport does not list: raw 8N1, no echo, no modem control. */
static int m5_open_tty(const char *path, int baud)
{
	struct termios t;
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) < 0)
		goto fail;
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	/* VMIN 1: a non-blocking read with nothing waiting fails with EAGAIN (with VMIN 0 it
	 * returns 0, which reads like end of file). */
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (cfsetspeed(&t, m5_speed(baud)) < 0 || tcsetattr(fd, TCSANOW, &t) < 0)
		goto fail;
	return fd;
fail:;
	int err = errno;
	close(fd);
	return -err;
}

/* libserialport's error as an errno (its argument/support errors have none). */
static int m5_sp_errno(enum sp_return r)
{
	int e = r == SP_ERR_FAIL ? sp_last_error_code() : 0;
	return e > 0 ? e : r == SP_ERR_MEM ? ENOMEM : r == SP_ERR_SUPP ? ENOTSUP : EINVAL;
}

static int m5_open_sp(struct m5stack *m)
{
	struct sp_port_config *cfg = NULL;
	enum sp_return r;
	int fd = -1;
	if ((r = sp_open(m->sp, SP_MODE_READ_WRITE)) != SP_OK)
		goto fail;
	if ((r = sp_new_config(&cfg)) != SP_OK ||
	    (r = sp_set_config_baudrate(cfg, m->baud)) != SP_OK ||
	    (r = sp_set_config_bits(cfg, 8)) != SP_OK ||
	    (r = sp_set_config_parity(cfg, SP_PARITY_NONE)) != SP_OK ||
	    (r = sp_set_config_stopbits(cfg, 1)) != SP_OK ||
	    (r = sp_set_config_flowcontrol(cfg, SP_FLOWCONTROL_NONE)) != SP_OK ||
	    (r = sp_set_config(m->sp, cfg)) != SP_OK ||
	    (r = sp_get_port_handle(m->sp, &fd)) != SP_OK)
		goto fail_close;
	sp_free_config(cfg);
	return fd;
fail_close:;
	int err = m5_sp_errno(r);
	sp_free_config(cfg);
	sp_close(m->sp);
	return -err;
fail:
	return -m5_sp_errno(r);
}

static void m5_close(struct m5stack *m)
{
	if (m->fd < 0)
		return;
	loop_io_del(m->loop, m->fd);
	if (m->sp) {
		sp_close(m->sp);
		sp_free_port(m->sp);
		m->sp = NULL;
	} else {
		close(m->fd);
	}
	m->fd = -1;
	m->olen = m->ilen = 0;
	m->in_skip = false;
	loop_timer_stop(m->loop, &m->beat_timer);
}

static void m5_lost(struct m5stack *m, const char *why, int err)
{
	errno = err;
	if (err)
		log_warn("m5stack %s: %s, closed (reopening every %d s)", m->path, why, M5_RETRY_MS / 1000);
	else
		log_warnx("m5stack %s: %s, closed (reopening every %d s)", m->path, why, M5_RETRY_MS / 1000);
	m5_close(m);
	m->open_err = 0;
	loop_timer_start(m->loop, &m->retry_timer, M5_RETRY_MS);
}

static void m5_sync(struct m5stack *m);

static void m5_flush(struct m5stack *m)
{
	while (m->olen > 0) {
		ssize_t w;
		if (m->sp) {
			enum sp_return r = sp_nonblocking_write(m->sp, m->out, m->olen);
			if (r < 0) {
				m5_lost(m, "write", m5_sp_errno(r));
				return;
			}
			w = r;
		} else {
			w = write(m->fd, m->out, m->olen);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN)
				w = 0;
			if (w < 0) {
				m5_lost(m, "write", errno);
				return;
			}
		}
		if (w == 0)
			break;
		memmove(m->out, m->out + w, m->olen - (size_t)w);
		m->olen -= (size_t)w;
	}
	if (m->olen == 0) {
		m->dropping = false;
		if (m->need_full) {   /* frames were dropped: catch the device up now */
			m5_sync(m);
			return;
		}
	}
	loop_io_mod(m->loop, m->fd, EPOLLIN | (m->olen ? EPOLLOUT : 0));
}

/* Appends n bytes whole or not at all, so the device never sees half a line. */
static bool m5_append(struct m5stack *m, const char *buf, size_t n)
{
	if (n > sizeof m->out - m->olen) {
		if (!m->dropping)
			log_warnx("m5stack %s: device does not read, output dropped until it does",
				  m->path);
		m->dropping = true;
		return false;
	}
	memcpy(m->out + m->olen, buf, n);
	m->olen += n;
	return true;
}

static size_t m5_frame(const struct m5stack *m, char *out, size_t cap)
{
	const struct display_view *w = &m->want, *s = &m->sent;
	bool full = m->need_full;
	char num[32];
	size_t n = 0;
	if (full) {
		n += m5stack_line(out + n, cap - n, "hello", "1");
		n += m5stack_line(out + n, cap - n, "server", "frMhs " FR_VERSION);
	}
	if (full || strcmp(w->home, s->home))
		n += m5stack_line(out + n, cap - n, "home", w->home);
	if (full || w->broker_up != s->broker_up)
		n += m5stack_line(out + n, cap - n, "broker", w->broker_up ? "up" : "down");
	if (full || w->online != s->online) {
		snprintf(num, sizeof num, "%d", w->online);
		n += m5stack_line(out + n, cap - n, "online", num);
	}
	if (full || w->total != s->total) {
		snprintf(num, sizeof num, "%d", w->total);
		n += m5stack_line(out + n, cap - n, "total", num);
	}
	if (full || strcmp(w->cmd, s->cmd))
		n += m5stack_line(out + n, cap - n, "cmd", w->cmd);
	if (full || w->seq != s->seq || strcmp(w->text, s->text))
		n += m5stack_line(out + n, cap - n, "text", w->text);
	if (n == 0)
		return 0;
	snprintf(num, sizeof num, "%llu", m->frames + 1);
	return n + m5stack_line(out + n, cap - n, "end", num);
}

/* Sends what the device lacks, if the output has room for the whole frame. */
static void m5_sync(struct m5stack *m)
{
	char frame[M5_FRAME_LINES * M5STACK_LINE_MAX];
	if (m->fd < 0)
		return;
	size_t n = m5_frame(m, frame, sizeof frame);
	if (n == 0)
		return;
	if (!m5_append(m, frame, n)) {
		m->need_full = true;   /* what the device holds is unknown now */
		return;
	}
	m->frames++;
	m->sent = m->want;
	m->need_full = false;
	m5_flush(m);
}

static void m5_on_line(struct m5stack *m, const char *line)
{
	if (strcmp(line, "FR1 sync") == 0) {
		log_debug("m5stack %s: device asks for the full state", m->path);
		m->need_full = true;   /* several requests before the flush make one frame */
		m5_sync(m);
	} else {
		/* Boot messages and the device's own debug output share the line. */
		log_debug("m5stack %s: ignored a line from the device", m->path);
	}
}

static void m5_read(struct m5stack *m)
{
	for (;;) {
		char buf[256];
		ssize_t r = read(m->fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		/* A non-blocking tty read with VMIN = VTIME = 0 (libserialport's setting) returns 0,
		 * not EAGAIN, when no byte is waiting: 0 is "nothing more", never an unplug. A real
		 * hang-up shows as EPOLLHUP or EIO (the other side of the line is gone). */
		if (r == 0 || (r < 0 && errno == EAGAIN))
			return;
		if (r < 0) {
			m5_lost(m, "read", errno);
			return;
		}
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];
			if (c == '\n') {
				if (!m->in_skip) {
					if (m->ilen && m->in[m->ilen - 1] == '\r')
						m->ilen--;
					m->in[m->ilen] = '\0';
					m5_on_line(m, m->in);
					if (m->fd < 0)
						return;
				}
				m->ilen = 0;
				m->in_skip = false;
			} else if (!m->in_skip) {
				if (m->ilen + 1 >= sizeof m->in)
					m->in_skip = true;
				else
					m->in[m->ilen++] = c;
			}
		}
	}
}

static void m5_on_io(void *arg, int fd, uint32_t events)
{
	struct m5stack *m = arg;
	(void)fd;
	if (events & EPOLLIN) {
		m5_read(m);
		if (m->fd < 0)
			return;
	}
	if (events & (EPOLLHUP | EPOLLERR)) {
		m5_lost(m, "hung up", 0);
		return;
	}
	if (events & EPOLLOUT)
		m5_flush(m);
}

static int m5_open(struct m5stack *m)
{
	const char *how = "libserialport";
	int fd;
	if (sp_get_port_by_name(m->path, &m->sp) == SP_OK) {
		fd = m5_open_sp(m);
		if (fd < 0) {
			sp_free_port(m->sp);
			m->sp = NULL;
		}
	} else {
		/* libserialport only knows ports listed under /sys/class/tty: pseudo-terminals
		 * (socat/ser2net bridges, the tests) are opened as plain ttys. */
		m->sp = NULL;
		how = "tty";
		fd = m5_open_tty(m->path, m->baud);
	}
	if (fd < 0)
		goto fail;
	int fl = fcntl(fd, F_GETFL), rc = 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		rc = -errno;
	else
		rc = loop_io_add(m->loop, fd, EPOLLIN, m5_on_io, m);
	if (rc < 0) {
		int err = -rc;
		if (m->sp) {
			sp_close(m->sp);
			sp_free_port(m->sp);
			m->sp = NULL;
		} else {
			close(fd);
		}
		fd = -err;
		goto fail;
	}
	m->fd = fd;
	m->open_err = 0;
	log_info("m5stack %s: open (%s, %d baud)", m->path, how, m->baud);
	/* A lone newline first ends whatever partial line the device still holds (a write cut
	 * off when the cable was pulled or the last frMhs stopped), so "hello" is read whole. */
	m5_append(m, "\n", 1);
	m->need_full = true;
	m5_sync(m);
	if (m->fd >= 0)
		loop_timer_start(m->loop, &m->beat_timer, M5STACK_HEARTBEAT_MS);
	return 0;
fail:
	if (-fd != m->open_err) {
		errno = -fd;
		log_warn("m5stack %s: cannot open (retrying every %d s)", m->path, M5_RETRY_MS / 1000);
		m->open_err = -fd;
	}
	loop_timer_start(m->loop, &m->retry_timer, M5_RETRY_MS);
	return fd;
}

static void m5_on_retry(void *arg)
{
	struct m5stack *m = arg;
	if (m->fd < 0)
		m5_open(m);
}

static void m5_on_beat(void *arg)
{
	struct m5stack *m = arg;
	char line[64];
	char num[32];
	if (m->fd < 0)
		return;
	snprintf(num, sizeof num, "%llu", ++m->pings);
	size_t n = m5stack_line(line, sizeof line, "ping", num);
	/* A device that does not read gets no ping: it is right to show "no home server". */
	if (m->olen + n <= sizeof m->out) {
		memcpy(m->out + m->olen, line, n);
		m->olen += n;
		m5_flush(m);
	}
	if (m->fd >= 0)
		loop_timer_start(m->loop, &m->beat_timer, M5STACK_HEARTBEAT_MS);
}

struct m5stack *m5stack_new(struct loop *loop, const char *port, int baud)
{
	struct m5stack *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->path = strdup(port);
	if (!m->path) {
		free(m);
		return NULL;
	}
	m->loop = loop;
	m->baud = baud;
	m->fd = -1;
	loop_timer_init(&m->retry_timer, m5_on_retry, m);
	loop_timer_init(&m->beat_timer, m5_on_beat, m);
	return m;
}

/* On a clean exit: "FR1 bye=stopped" after what is still queued, given M5_BYE_MS at most to
 * leave (a device that does not read must not hold up the exit). */
static void m5_bye(struct m5stack *m)
{
	char line[64];
	size_t n = m5stack_line(line, sizeof line, "bye", "stopped");
	if (m->fd < 0 || !m5_append(m, line, n))
		return;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (m->olen > 0) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = M5_BYE_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd pfd = { .fd = m->fd, .events = POLLOUT };
		if (left <= 0)
			break;
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
		/* libserialport's non-blocking write is a write() on this descriptor too. */
		ssize_t w = write(m->fd, m->out, m->olen);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			break;
		memmove(m->out, m->out + w, m->olen - (size_t)w);
		m->olen -= (size_t)w;
	}
	if (m->olen > 0)
		log_warnx("m5stack %s: device does not read, goodbye not sent", m->path);
}

void m5stack_free(struct m5stack *m)
{
	if (!m)
		return;
	m5_bye(m);
	m5_close(m);
	loop_timer_stop(m->loop, &m->retry_timer);
	loop_timer_stop(m->loop, &m->beat_timer);
	free(m->path);
	free(m);
}

void m5stack_show(struct m5stack *m, const struct display_view *v)
{
	m->want = *v;
	if (!m->started) {
		m->started = true;
		m5_open(m);
		return;
	}
	m5_sync(m);
}
