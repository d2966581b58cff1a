/* frproto-read: the device side of the serial display protocol (the reference sketch's
 * fr_proto.c) reading a capture of what frMhs sent (a file, or stdin), in chunks of every size
 * from 1 to 97 bytes in turn as a serial port would deliver them. Prints what the device would
 * show and its counters as one JSON object: home, broker, online, total, cmd, text (unescaped),
 * server, stopped, frames, pings, syncs (requests it would send), rejected (with why), ignored.
 * Used by tests/integration/06-display-serial.sh on each session it records. */
#include "fr_proto.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	static struct fr_proto p;
	FILE *f = argc > 1 ? fopen(argv[1], "rb") : stdin;
	char buf[97];
	size_t chunk = 1, n;
	uint32_t now = 0;
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fr_proto_init(&p);
	while ((n = fread(buf, 1, chunk, f)) > 0) {
		fr_proto_feed(&p, buf, n, now++);
		chunk = chunk % sizeof buf + 1;
	}
	const struct fr_proto_state *s = &p.shown;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "server", s->server);
	cJSON_AddStringToObject(o, "home", s->home);
	cJSON_AddStringToObject(o, "broker", s->broker_up ? "up" : "down");
	cJSON_AddNumberToObject(o, "online", (double)s->online);
	cJSON_AddNumberToObject(o, "total", (double)s->total);
	cJSON_AddStringToObject(o, "cmd", s->cmd);
	cJSON_AddStringToObject(o, "text", s->text);
	cJSON_AddBoolToObject(o, "stopped", s->stopped);
	cJSON_AddNumberToObject(o, "frames", (double)p.frames);
	cJSON_AddNumberToObject(o, "pings", (double)p.pings);
	cJSON_AddNumberToObject(o, "syncs", (double)p.syncs);
	cJSON_AddNumberToObject(o, "rejected", (double)p.rejected);
	cJSON_AddStringToObject(o, "why", p.why);
	cJSON_AddNumberToObject(o, "ignored", (double)p.ignored);
	char *out = cJSON_PrintUnformatted(o);
	if (!out)
		return 2;
	puts(out);
	free(out);
	cJSON_Delete(o);
	return 0;
}
