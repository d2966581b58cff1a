/* agent: shared command line and start-up of the daemons; see agent.h. */
#include "agent.h"

#include "log.h"
#include "loop.h"

#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

void agent_parse_args(int argc, char **argv, const char *name, void (*usage)(FILE *),
		      const char *version_extra, struct agent_args *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },      { "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;
	*a = (struct agent_args){ 0 };
	while ((ch = getopt_long(argc, argv, "c:fvhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->config = optarg; break;
		case 'f': a->foreground = true; break;
		case 'v': a->verbose++; break;
		case 'C': a->check = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("%s %s%s\n", name, FR_VERSION, version_extra ? version_extra : ""); exit(0);
		default: usage(stderr); exit(1);
		}
	}
	if (!a->config || optind != argc) {
		fprintf(stderr, "%s: %s\nTry '%s --help'.\n", name,
			a->config ? "unexpected argument" : "-c FILE is required", name);
		exit(1);
	}
	log_init(name, a->foreground || a->check, a->verbose);
}

void agent_start(const struct agent_args *a)
{
	srandom((unsigned)(loop_wall_ms() ^ (uint64_t)getpid()));
	if (!a->foreground && daemon(0, 0) < 0)
		fatal("daemon");
}
