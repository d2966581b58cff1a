/* agent: what every fr daemon's main() shares -- the common options (-c FILE, -f, -v,
 * --check-config, -h, -V), logging set-up, seeding and daemon mode -- so the three agents
 * behave alike on the command line. */
#ifndef FR_AGENT_H
#define FR_AGENT_H

#include <stdbool.h>
#include <stdio.h>

struct agent_args {
	const char *config;   /* borrowed from argv */
	bool foreground, check;
	int verbose;
};

/* Parses the options; -h prints usage(stdout) and -V "<name> <version><version_extra>" and
 * both exit 0; a usage error prints why and exits 1. Then starts logging (stderr when in the
 * foreground or checking, else syslog). name is kept by pointer. */
void agent_parse_args(int argc, char **argv, const char *name, void (*usage)(FILE *),
		      const char *version_extra, struct agent_args *a);
/* Seeds random() and detaches unless in the foreground (fatal on failure). */
void agent_start(const struct agent_args *a);

#endif
