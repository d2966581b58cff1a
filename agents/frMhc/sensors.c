/* sensors.c: frMhc's sensors -- each a program run every interval; its trimmed output is the
 * value, and a change is an event to every peer (docs/lan-protocol.md, event). */
#include "mhc_int.h"

#include "lanmsg.h"
#include "link.h"
#include "log.h"
#include "runner.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void sensors_tick(void *arg);

/* The sensor's state event into buf; its length, or <0 (logged). */
static int sensors_event(const struct sensor *s, char *buf, size_t n)
{
	int len = lanmsg_event_state(buf, n, s->def->name, s->value, s->ts_ms);
	if (len < 0)
		log_warnx("sensor %s: event not sent: %s", s->def->name, strerror(-len));
	return len;
}

/* Trimmed output; a number stays a JSON number, anything else becomes a JSON string. */
static char *sensors_json(const char *out, size_t len)
{
	while (len && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' ' ||
		       out[len - 1] == '\t'))
		len--;
	while (len && (*out == ' ' || *out == '\t' || *out == '\n' || *out == '\r')) {
		out++;
		len--;
	}
	if (len > MHC_SENSOR_VALUE_MAX)
		len = MHC_SENSOR_VALUE_MAX;
	char tmp[MHC_SENSOR_VALUE_MAX + 1];
	memcpy(tmp, out, len);
	tmp[len] = '\0';
	char *end;
	double d = strtod(tmp, &end);
	cJSON *v = (len && *end == '\0' && isfinite(d) && tmp[0] != ' ') ? cJSON_CreateNumber(d)
									  : cJSON_CreateString(tmp);
	char *s = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return s;
}

static void sensors_done(void *arg, const struct runner_result *res)
{
	struct sensor *s = arg;
	struct mhc *m = s->m;
	s->job = NULL;
	if (res->status != RUNNER_EXITED || res->exit_code != 0) {
		if (!s->failing)
			log_warnx("sensor %s: reading failed (%s, exit %d, signal %d); keeping the last value",
				  s->def->name, res->status == RUNNER_TIMEOUT ? "timeout" : "error",
				  res->exit_code, res->signal);
		s->failing = true;
	} else {
		s->failing = false;
		char *v = sensors_json(res->out, res->out_len);
		if (v && (!s->value || strcmp(v, s->value) != 0)) {
			free(s->value);
			s->value = v;
			s->ts_ms = (int64_t)loop_wall_ms();
			log_debug("sensor %s = %s", s->def->name, v);
			char ev[MHC_EVENT_MAX];
			int n = sensors_event(s, ev, sizeof ev);
			if (n > 0)
				mhc_broadcast(m, ev, (size_t)n);
		} else {
			free(v);
		}
	}
	if (!m->stopping)
		loop_timer_start(m->loop, &s->timer, s->def->interval_ms);
	mhc_maybe_exit(m);
}

static void sensors_tick(void *arg)
{
	struct sensor *s = arg;
	struct runner_spec spec = { .argv = (char *const *)s->def->argv,
				    .timeout_ms = s->def->timeout_ms, .grace_ms = 500,
				    .tail_max = MHC_SENSOR_VALUE_MAX * 4 };
	int err;
	s->job = runner_start(s->m->runner, &spec, sensors_done, s, &err);
	if (!s->job) {
		log_warnx("sensor %s: cannot start: %s", s->def->name, strerror(-err));
		loop_timer_start(s->m->loop, &s->timer, s->def->interval_ms);
	}
}

void sensors_start(struct mhc *m)
{
	for (int i = 0; i < m->conf.nsensors; i++) {
		struct sensor *s = &m->sensors[i];
		s->m = m;
		s->def = &m->conf.sensors[i];
		loop_timer_init(&s->timer, sensors_tick, s);
		loop_timer_start(m->loop, &s->timer, (uint64_t)(random() % 200));
	}
}

void sensors_stop(struct mhc *m)
{
	for (int i = 0; i < m->conf.nsensors; i++)
		loop_timer_stop(m->loop, &m->sensors[i].timer);
}

void sensors_send_current(struct mhc *m, struct link *l)
{
	for (int i = 0; i < m->conf.nsensors; i++) {
		char ev[MHC_EVENT_MAX];
		int n;
		if (m->sensors[i].value && (n = sensors_event(&m->sensors[i], ev, sizeof ev)) > 0)
			link_send_raw(l, ev, (size_t)n);
	}
}

void sensors_free(struct mhc *m)
{
	for (int i = 0; m->sensors && i < m->conf.nsensors; i++)
		free(m->sensors[i].value);
}
