/* clientid: the rule that binds MQTT client ids to fr broker accounts. */
#include "clientid.h"

#include <string.h>

static const char *after_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

bool clientid_allowed(const char *account, const char *id)
{
	const char *rest, *home, *dash;
	size_t n;

	if (!account || !id || !*account)
		return false;
	/* Account names are [A-Za-z0-9_-]{1,63}, so ':' cannot be part of one: "alice:x" is
	 * alice's whatever other accounts exist ("alice-bob" cannot claim it). */
	rest = after_prefix(id, account);
	if (rest && (*rest == '\0' || *rest == ':'))
		return true;
	/* Assigned by the broker to a client that sent an empty id: random, so only its owner
	 * knows it. */
	if (after_prefix(id, "auto-"))
		return true;
	/* The ids fr's own programs send by default. */
	home = after_prefix(account, "home-");
	rest = after_prefix(id, "frMhs-");
	if (home && rest && strcmp(rest, home) == 0)
		return true;
	if (strcmp(account, "fr-web") == 0 && after_prefix(id, "frAroundWeb-"))
		return true;
	rest = after_prefix(id, "web-");
	if (rest) {
		/* web-<user>-<page>: the page id has no '-', so the user is everything up to the
		 * last '-' even when user names contain '-'. */
		dash = strrchr(rest, '-');
		n = strlen(account);
		if (dash && dash[1] && (size_t)(dash - rest) == n && strncmp(rest, account, n) == 0)
			return true;
	}
	return false;
}
