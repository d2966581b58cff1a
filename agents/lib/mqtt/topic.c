/* topic: split fr topic names; see topic.h. */
#include "topic.h"

#include "name.h"

#include <string.h>

const char *topic_level(const char *s, char out[TOPIC_NAME_MAX + 1])
{
	const char *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);
	if (n == 0 || n > TOPIC_NAME_MAX)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	if (!name_valid(out, TOPIC_NAME_MAX))
		return NULL;
	return s + n;
}

enum topic_kind topic_parse(const char *prefix, const char *topic, struct topic *t)
{
	memset(t, 0, sizeof *t);
	size_t pl = strlen(prefix);
	if (strncmp(topic, prefix, pl) != 0 || topic[pl] != '/')
		return TOPIC_OTHER;
	const char *p = topic_level(topic + pl + 1, t->home);
	if (!p || *p != '/')
		return TOPIC_OTHER;
	p++;
	if (strcmp(p, "status") == 0)
		return t->kind = TOPIC_HOME_STATUS;
	if (strcmp(p, "display") == 0)
		return t->kind = TOPIC_DISPLAY;
	if (strncmp(p, "reply/", 6) == 0 && p[6]) {
		t->leaf = p + 6;
		return t->kind = TOPIC_REPLY;
	}
	if (strncmp(p, "ctl/", 4) != 0)
		return TOPIC_OTHER;
	p = topic_level(p + 4, t->ctl);
	if (!p || *p != '/' || !p[1])
		return TOPIC_OTHER;
	t->leaf = p + 1;
	return t->kind = TOPIC_CTL;
}
