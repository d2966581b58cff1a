/* fields: a JSON object's members checked against a table, and passed on; see fields.h. */
#include "fields.h"

#include "log.h"
#include "name.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHY(...) log_why(why, n, __VA_ARGS__)

static const char *const fields_kind_str[] = {
	[FIELD_STR] = "a string",
	[FIELD_NAME] = "a name ([A-Za-z0-9_-]{1,63})",
	[FIELD_ID] = "a command id ([A-Za-z0-9_.:-]{1,64})",
	[FIELD_ID_NULL] = "a command id or null",
	[FIELD_INT] = "an integer",
	[FIELD_INT_NULL] = "an integer or null",
	[FIELD_NUM] = "a number",
	[FIELD_BOOL] = "true or false",
	[FIELD_ARRAY] = "an array",
	[FIELD_ANY] = "a value",
};

/* Integers are exact in a double up to 2^53 - 1 (as the announce's are). */
bool fields_is_int(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
	       floor(v->valuedouble) == v->valuedouble && fabs(v->valuedouble) <= 9007199254740991.0;
}

static bool fields_kind_ok(const cJSON *v, enum field_kind k)
{
	switch (k) {
	case FIELD_STR: return cJSON_IsString(v) && v->valuestring;
	case FIELD_NAME: return cJSON_IsString(v) && name_valid(v->valuestring, NAME_LEN_MAX);
	case FIELD_ID: return cJSON_IsString(v) && name_valid_id(v->valuestring, NAME_ID_LEN_MAX);
	case FIELD_ID_NULL: return cJSON_IsNull(v) || fields_kind_ok(v, FIELD_ID);
	case FIELD_INT: return fields_is_int(v);
	case FIELD_INT_NULL: return cJSON_IsNull(v) || fields_is_int(v);
	case FIELD_NUM: return cJSON_IsNumber(v) && isfinite(v->valuedouble);
	case FIELD_BOOL: return cJSON_IsBool(v);
	case FIELD_ARRAY: return cJSON_IsArray(v);
	case FIELD_ANY: return true;
	}
	return false;
}

/* Every member of o that the table names: once, of its kind; then the required ones present. */
int fields_check(const cJSON *o, const char *what, const struct field *f, const cJSON **found,
		 char *why, size_t n)
{
	size_t nf = 0;
	while (f[nf].name)
		nf++;
	memset(found, 0, nf * sizeof *found);
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		for (size_t i = 0; i < nf; i++) {
			if (!it->string || strcmp(it->string, f[i].name) != 0)
				continue;
			if (found[i])
				return WHY("%s: field '%s' given twice", what, f[i].name);
			if (!fields_kind_ok(it, f[i].kind))
				return WHY("%s: field '%s' is not %s", what, f[i].name,
					   fields_kind_str[f[i].kind]);
			found[i] = it;
			break;
		}
	}
	for (size_t i = 0; i < nf; i++)
		if (f[i].required && !found[i])
			return WHY("%s: field '%s' missing", what, f[i].name);
	return 0;
}

static bool fields_listed(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Where o's bytes can be kept: the offset after which its members start (past a leading
 * member that is dropped), or -1 when something of o itself would change. */
static long fields_keep_from(const cJSON *o, const char *text, size_t len,
			     const char *const *drop, const cJSON *set)
{
	if (!text || len < 2 || text[0] != '{')
		return -1;
	long from = 1;
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		if (!it->string)
			return -1;
		if (cJSON_GetObjectItemCaseSensitive(set, it->string))
			return -1;
		if (!fields_listed(drop, it->string))
			continue;
		if (it != o->child || !cJSON_IsString(it))
			return -1;
		/* Written first and plainly, then a comma: cut off as it stands. */
		char head[160];
		int hl = snprintf(head, sizeof head, "{\"%s\":\"%s\",", it->string, it->valuestring);
		if (hl < 0 || (size_t)hl >= sizeof head || (size_t)hl >= len ||
		    memcmp(text, head, (size_t)hl) != 0)
			return -1;
		from = hl;
	}
	return from;
}

char *fields_forward(const cJSON *o, const char *text, size_t tlen, const char *const *drop,
		     const cJSON *set, size_t *len)
{
	char *out = NULL, *members = NULL;
	size_t ol = 0;
	long from = fields_keep_from(o, text, tlen, drop, set);

	if (from >= 0) {
		size_t end = tlen;
		while (end > 0 && text[end - 1] != '}')
			end--;   /* white space after the object */
		size_t ml = 0;
		if (set && set->child) {
			if (!(members = cJSON_PrintUnformatted(set)))
				return NULL;
			ml = strlen(members) - 2;   /* without the braces */
		}
		size_t kl = end - 1 - (size_t)from;   /* o's members, without the closing brace */
		if (!(out = malloc(1 + kl + 1 + ml + 2)))
			goto out;
		out[ol++] = '{';
		memcpy(out + ol, text + from, kl);
		ol += kl;
		if (kl && ml)
			out[ol++] = ',';
		if (ml) {
			memcpy(out + ol, members + 1, ml);
			ol += ml;
		}
		out[ol++] = '}';
		out[ol] = '\0';
	} else {
		cJSON *c = cJSON_Duplicate(o, 1);
		if (!c)
			return NULL;
		/* Every copy: a member given twice must not survive as its second copy. */
		for (const char *const *d = drop; d && *d; d++)
			while (cJSON_GetObjectItemCaseSensitive(c, *d))
				cJSON_DeleteItemFromObjectCaseSensitive(c, *d);
		const cJSON *it;
		cJSON_ArrayForEach(it, set) {
			while (cJSON_GetObjectItemCaseSensitive(c, it->string))
				cJSON_DeleteItemFromObjectCaseSensitive(c, it->string);
			cJSON_AddItemToObject(c, it->string, cJSON_Duplicate(it, 1));
		}
		out = cJSON_PrintUnformatted(c);
		cJSON_Delete(c);
		ol = out ? strlen(out) : 0;
	}
out:
	free(members);
	if (out && len)
		*len = ol;
	return out;
}
