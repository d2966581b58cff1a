/* pwfile: see pwfile.h. */
#include "pwfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int pwfile_read(const char *prog, const char *file, char *out, size_t size)
{
	FILE *f = fopen(file, "re");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
		return -1;
	}
	if (!fgets(out, (int)size, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}
