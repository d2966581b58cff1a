/* name: fr's names and command ids; see name.h. */
#include "name.h"

#include <string.h>

static bool name_char(char c, bool id)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || (id && (c == '.' || c == ':'));
}

static bool name_check(const char *s, size_t n, size_t max, bool id)
{
	if (!s || n < 1 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i], id))
			return false;
	return true;
}

bool name_valid_n(const char *s, size_t n, size_t max) { return name_check(s, n, max, false); }

bool name_valid(const char *s, size_t max)
{
	return s && name_check(s, strnlen(s, max + 1), max, false);
}

bool name_valid_id(const char *s, size_t max)
{
	return s && name_check(s, strnlen(s, max + 1), max, true);
}
