/* mqttreq: an MQTT request client for the tests and benches, built on fr's own mqtt module
 * (libmosquitto underneath). One request: publish a command and print every reply until the final
 * result. A stream: N commands with QoS 1 from a persistent session, surviving broker
 * restarts, then a summary that says whether every id got exactly one final outcome. */
#include "keys.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

struct st {
	struct loop *loop;
	struct mqtt *m;
	const char *topic, *cmd, *response_topic, *corr, *sub, *prefix, *action, *args;
	int qos, n, sent, exit_code;
	double rate;
	bool started, stream;
	cJSON *finals;     /* id -> status of the first final result (stream mode) */
	int final_msgs, conflicts;
	struct loop_timer wait_timer, send_timer, retry_timer;
	double retry;      /* seconds: re-send ids still without a final result (same id) */
	int resent;
	FILE *out;
};

static void mr_print(struct st *s, const struct mqtt_msg *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "topic", m->topic);
	cJSON *p = cJSON_ParseWithLength(m->payload, m->len);
	if (!p) {
		char *t = strndup(m->payload, m->len);
		p = cJSON_CreateString(t ? t : "");
		free(t);
	}
	cJSON_AddItemToObject(o, "payload", p);
	if (m->correlation) {
		char *c = strndup(m->correlation, m->correlation_len);
		cJSON_AddStringToObject(o, "corr", c ? c : "");
		free(c);
	}
	cJSON_AddBoolToObject(o, "retained", m->retained);
	char *txt = cJSON_PrintUnformatted(o);
	fprintf(s->out, "%s\n", txt);
	fflush(s->out);
	free(txt);
	cJSON_Delete(o);
}

static bool mr_all_done(struct st *s)
{
	return s->sent == s->n && cJSON_GetArraySize(s->finals) >= s->n;
}

static void mr_on_message(void *arg, const struct mqtt_msg *m)
{
	struct st *s = arg;
	cJSON *p = cJSON_ParseWithLength(m->payload, m->len);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
	bool final = cJSON_IsString(type) && strcmp(type->valuestring, "result") == 0;
	if (!s->stream) {
		mr_print(s, m);
		if (final) {
			const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "status");
			s->exit_code = cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0 ? 0 : 1;
			loop_stop(s->loop);
		}
		cJSON_Delete(p);
		return;
	}
	if (final) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "status");
		if (cJSON_IsString(id) && cJSON_IsString(st)) {
			s->final_msgs++;
			mr_print(s, m);
			const cJSON *prev = cJSON_GetObjectItemCaseSensitive(s->finals, id->valuestring);
			/* "lost" and "offline" (marked "retry") are not outcomes: a later answer to
			 * the same id may tell the real one. Two different outcomes are a conflict. */
			bool provisional = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "retry")) ||
					   strcmp(st->valuestring, "lost") == 0 ||
					   strcmp(st->valuestring, "offline") == 0;
			bool prev_prov = prev && (strcmp(prev->valuestring, "lost") == 0 ||
						  strcmp(prev->valuestring, "offline") == 0);
			if (!prev)
				cJSON_AddStringToObject(s->finals, id->valuestring, st->valuestring);
			else if (prev_prov && !provisional)
				cJSON_ReplaceItemInObjectCaseSensitive(s->finals, id->valuestring,
								       cJSON_CreateString(st->valuestring));
			else if (!provisional && strcmp(prev->valuestring, st->valuestring) != 0)
				s->conflicts++;
		}
		if (mr_all_done(s))
			loop_stop(s->loop);
	}
	cJSON_Delete(p);
}

static void mr_publish(struct st *s, int i)
{
	char *body;
	if (s->stream) {
		cJSON *c = cJSON_CreateObject();
		char id[96];
		snprintf(id, sizeof id, "%s-%d", s->prefix, i);
		cJSON_AddStringToObject(c, "id", id);
		cJSON_AddStringToObject(c, "action", s->action);
		cJSON *a = s->args ? cJSON_Parse(s->args) : cJSON_CreateObject();
		/* "%n" in an argument value becomes the request's sequence number. */
		cJSON *v;
		cJSON_ArrayForEach(v, a) {
			if (cJSON_IsString(v) && strcmp(v->valuestring, "%n") == 0) {
				char num[32];
				snprintf(num, sizeof num, "n%d", i);
				cJSON_SetValuestring(v, num);
			}
		}
		cJSON_AddItemToObject(c, "args", a);
		if (!s->response_topic)
			cJSON_AddStringToObject(c, "reply_to", s->sub);
		body = cJSON_PrintUnformatted(c);
		cJSON_Delete(c);
	} else {
		body = strdup(s->cmd);
	}
	mqtt_publish(s->m, s->topic, body, strlen(body), s->qos, false, s->response_topic, s->corr,
		     s->corr ? strlen(s->corr) : 0);
	free(body);
}

static void mr_send_one(struct st *s)
{
	mr_publish(s, s->sent);
	s->sent++;
}

/* What an at-least-once client does: ask again, with the same id, until it has an answer. The
 * id makes the repeat harmless (answered from the first run, never run twice). */
static void mr_retry_tick(void *arg)
{
	struct st *s = arg;
	int n = 0;
	for (int i = 0; i < s->sent; i++) {
		char id[96];
		snprintf(id, sizeof id, "%s-%d", s->prefix, i);
		if (!cJSON_GetObjectItemCaseSensitive(s->finals, id)) {
			mr_publish(s, i);
			n++;
		}
	}
	s->resent += n;
	if (n)
		fprintf(stderr, "mqttreq: re-sent %d request(s) without a final result\n", n);
	loop_timer_start(s->loop, &s->retry_timer, (uint64_t)(s->retry * 1000));
}

static void mr_send_tick(void *arg)
{
	struct st *s = arg;
	if (s->sent < s->n) {
		mr_send_one(s);
		loop_timer_start(s->loop, &s->send_timer, s->rate > 0 ? (uint64_t)(1000.0 / s->rate) : 0);
	}
}

static void mr_on_connected(void *arg, bool session_present)
{
	struct st *s = arg;
	(void)session_present;
	if (s->started)
		return;
	s->started = true;
	if (s->stream) {
		loop_timer_start(s->loop, &s->send_timer, 0);
		if (s->retry > 0)
			loop_timer_start(s->loop, &s->retry_timer, (uint64_t)(s->retry * 1000));
	}
	else
		mr_send_one(s);
}

static void mr_wait_over(void *arg)
{
	struct st *s = arg;
	fprintf(stderr, "mqttreq: wait time over (%d sent, %d final ids)\n", s->sent,
		cJSON_GetArraySize(s->finals));
	s->exit_code = 2;
	loop_stop(s->loop);
}

static const struct mqtt_ops mr_ops = { mr_on_connected, NULL, mr_on_message };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'u' }, { "version", required_argument, NULL, 'V' },
		{ "client", required_argument, NULL, 'c' }, { "persistent", no_argument, NULL, 'P' },
		{ "topic", required_argument, NULL, 't' }, { "cmd", required_argument, NULL, 'm' },
		{ "response-topic", required_argument, NULL, 'r' }, { "corr", required_argument, NULL, 'C' },
		{ "sub", required_argument, NULL, 's' }, { "wait", required_argument, NULL, 'w' },
		{ "stream", required_argument, NULL, 'n' }, { "prefix", required_argument, NULL, 'p' },
		{ "action", required_argument, NULL, 'a' }, { "args", required_argument, NULL, 'A' },
		{ "rate", required_argument, NULL, 'R' }, { "qos", required_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' }, { "retry", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 }
	};
	struct st s = { .qos = 1, .n = 1, .exit_code = 2, .prefix = "req", .out = stdout };
	const char *uri = NULL, *client = NULL;
	int version = 5, verbose = 0, ch;
	bool persistent = false;
	double wait = 30;
	while ((ch = getopt_long(argc, argv, "u:V:c:Pt:m:r:C:s:w:n:p:a:A:R:q:vT:", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': uri = optarg; break;
		case 'V': version = strcmp(optarg, "auto") == 0 ? 0 : atoi(optarg) == 5 ? 5 : 4; break;
		case 'c': client = optarg; break;
		case 'P': persistent = true; break;
		case 't': s.topic = optarg; break;
		case 'm': s.cmd = optarg; break;
		case 'r': s.response_topic = optarg; break;
		case 'C': s.corr = optarg; break;
		case 's': s.sub = optarg; break;
		case 'w': wait = atof(optarg); break;
		case 'n': s.n = atoi(optarg); s.stream = true; break;
		case 'p': s.prefix = optarg; break;
		case 'a': s.action = optarg; break;
		case 'A': s.args = optarg; break;
		case 'R': s.rate = atof(optarg); break;
		case 'q': s.qos = atoi(optarg); break;
		case 'v': verbose++; break;
		case 'T': s.retry = atof(optarg); break;
		default:
			fprintf(stderr, "usage: mqttreq -u URI -t TOPIC (-m JSON | -n N -a ACTION [-A ARGS] [-p PREFIX] [-R RATE]) [-s SUB] [-r RESPONSE_TOPIC [-C CORR]] [-V 4|5|auto] [-P] [-c ID] [-w SECS]\n");
			return 2;
		}
	}
	if (!uri || !s.topic || (!s.cmd && !s.stream) || (s.stream && !s.action) ||
	    (s.stream && !s.sub && !s.response_topic)) {
		fprintf(stderr, "mqttreq: missing arguments\n");
		return 2;
	}
	log_init("mqttreq", true, verbose);
	char cid[40];
	if (!client) {
		snprintf(cid, sizeof cid, "mqttreq-");
		keys_random_hex(cid + 8, 8);
		client = cid;
	}
	s.finals = cJSON_CreateObject();
	s.loop = loop_new();
	struct mqtt_opts o = { .uri = uri, .client_id = client, .version = version,
			       .clean = !persistent, .backoff_min_ms = 100, .backoff_max_ms = 1000,
			       .max_buffered = 100000 };
	s.m = mqtt_new(s.loop, &o, &mr_ops, &s);
	if (!s.m)
		return 2;
	if (s.sub)
		mqtt_subscribe(s.m, s.sub, 1);
	else if (s.response_topic)
		mqtt_subscribe(s.m, s.response_topic, 1);
	loop_timer_init(&s.wait_timer, mr_wait_over, &s);
	loop_timer_init(&s.send_timer, mr_send_tick, &s);
	loop_timer_init(&s.retry_timer, mr_retry_tick, &s);
	loop_timer_start(s.loop, &s.wait_timer, (uint64_t)(wait * 1000));
	mqtt_start(s.m);
	loop_run(s.loop);
	if (s.stream) {
		int nfinal = cJSON_GetArraySize(s.finals);
		cJSON *sum = cJSON_CreateObject();
		cJSON_AddNumberToObject(sum, "sent", s.sent);
		cJSON_AddNumberToObject(sum, "final_ids", nfinal);
		cJSON_AddNumberToObject(sum, "final_msgs", s.final_msgs);
		cJSON_AddNumberToObject(sum, "conflicts", s.conflicts);
		cJSON_AddNumberToObject(sum, "resent", s.resent);
		cJSON *by = cJSON_AddObjectToObject(sum, "statuses");
		const cJSON *v;
		cJSON_ArrayForEach(v, s.finals) {
			cJSON *c = cJSON_GetObjectItemCaseSensitive(by, v->valuestring);
			if (c)
				cJSON_SetNumberValue(c, c->valuedouble + 1);
			else
				cJSON_AddNumberToObject(by, v->valuestring, 1);
		}
		char *t = cJSON_PrintUnformatted(sum);
		fprintf(stderr, "%s\n", t);
		printf("SUMMARY %s\n", t);
		free(t);
		cJSON_Delete(sum);
		s.exit_code = (nfinal == s.n && s.conflicts == 0) ? 0 : 1;
	}
	mqtt_free(s.m);
	loop_free(s.loop);
	cJSON_Delete(s.finals);
	return s.exit_code;
}
