/* pwfile: the first line of a password file, for the bench programs' -F options. */
#ifndef FR_BENCH_PWFILE_H
#define FR_BENCH_PWFILE_H

#include <stddef.h>

/* Reads the first line of file (without its line end) into out (size bytes, caller's). 0, or
 * -1 with the reason printed to stderr under prog's name. */
int pwfile_read(const char *prog, const char *file, char *out, size_t size);

#endif
