/* agent: shared command line and start-up of the daemons; see agent.h. */
#include "agent.h"

#include "log.h"
#include "loop.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* The ids of user and group (NULL: the user's primary group). -1 (logged) if either is unknown. */
static int agent_ids(const char *user, const char *group, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_warnx("user '%s': no such user", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group) {
		struct group *gr = getgrnam(group);
		if (!gr) {
			log_warnx("group '%s': no such group", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

int agent_drop_privileges(const char *user, const char *group)
{
	uid_t uid;
	gid_t gid;
	if (!user)
		return 0;
	if (agent_ids(user, group, &uid, &gid) < 0)
		return -1;
	if (geteuid() != 0) {
		if (geteuid() == uid && getuid() == uid && getegid() == gid)
			return 0;
		log_warnx("cannot run as user %s (uid %u, gid %u): not started as root (uid %u)", user,
			  (unsigned)uid, (unsigned)gid, (unsigned)geteuid());
		return -1;
	}
	/* Groups first: once the uid is dropped, changing them is no longer allowed. */
	if (initgroups(user, gid) < 0) {
		log_warn("supplementary groups of user %s", user);
		return -1;
	}
	if (setresgid(gid, gid, gid) < 0) {
		log_warn("setresgid(%u)", (unsigned)gid);
		return -1;
	}
	if (setresuid(uid, uid, uid) < 0) {
		log_warn("setresuid(%u) (user %s)", (unsigned)uid, user);
		return -1;
	}
	/* Trust but verify: a drop that can be undone is no drop. */
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))) {
		log_warnx("privileges of user %s not dropped completely", user);
		return -1;
	}
	int n = getgroups(0, NULL);
	log_info("running as user %s (uid %u, gid %u, %d supplementary group%s)", user,
		 (unsigned)uid, (unsigned)gid, n, n == 1 ? "" : "s");
	return 0;
}

int agent_make_dir(const char *dir, const char *user, const char *group)
{
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return 0;
		log_warn("directory %s", dir);
		return -1;
	}
	uid_t uid;
	gid_t gid;
	if (!user || geteuid() != 0)
		return 0;
	if (agent_ids(user, group, &uid, &gid) < 0)
		return -1;
	if (chown(dir, uid, gid) < 0) {
		log_warn("directory %s: handing it to user %s", dir, user);
		return -1;
	}
	return 0;
}
