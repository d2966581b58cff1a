/* agent: what every fr daemon's main() shares -- the common options (-c FILE, -f, -v,
 * --check-config, -h, -V), logging set-up, seeding, daemon mode and giving up root -- so the
 * three agents behave alike. */
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

/* Privileges (config "user" and "group", read by cfg_user_group). Called once everything that
 * needs root is bound or opened (listening sockets, devices): switches to user -- group, else
 * the user's primary group -- with the user's supplementary groups from the group database
 * (initgroups), so device groups such as dialout, i2c or gpio keep working. Not started as
 * root, it succeeds only if the process already runs as that user and group. Returns 0, or -1
 * (logged) when any step failed: the daemon must then stop, never run with root it was told
 * to give up. user NULL: nothing to do. */
int agent_drop_privileges(const char *user, const char *group);
/* Creates dir (mode 0700) if it does not exist; started as root with a user configured, the
 * new directory is handed to that user and group, so state kept there stays writable after
 * agent_drop_privileges. An existing directory is left as it is. 0 or -1 (logged). */
int agent_make_dir(const char *dir, const char *user, const char *group);

#endif
