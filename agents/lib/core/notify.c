/* notify: sd_notify's datagram protocol without libsystemd; see notify.h and sd_notify(3). */
#include "notify.h"

#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd = -1, rc;
	if (!path || !*path)
		return 0;
	len = strlen(path);
	/* Only absolute paths and abstract names, as sd_notify accepts. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) {
		rc = -EINVAL;
		goto fail;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ssize_t n;
	do
		n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		rc = -errno;
		goto fail;
	}
	close(fd);
	return 1;
fail:
	errno = -rc;
	log_warn("notify %s: cannot tell the service manager '%s'", path, state);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The unit runs the daemon in the foreground (-f): the pid that sends this is the one systemd
 * started, as NotifyAccess=main requires. */
int notify_ready(void) { return notify_send("READY=1"); }
int notify_stopping(void) { return notify_send("STOPPING=1"); }
