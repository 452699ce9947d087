// The bootstrap half of a container process. It runs as a constructor,
// before the Go runtime starts any thread, because setns(2) into mount and
// user namespaces and unshare(CLONE_NEWUSER) refuse multithreaded callers.
//
// It does nothing unless _BERTH_INITPIPE names a socket inherited from the
// runtime. Then it reads one bootstrap message, joins the namespaces it
// names, creates the new ones, and clones the container's first process
// with CLONE_PARENT so that the runtime, not this intermediate, is its
// parent. The intermediate reports that pid and exits; the clone returns
// from the constructor and the Go runtime starts inside the walls.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <grp.h>

#include "nsenter.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

// berth_stage is 1 in the container's first process once bootstrap is done.
int berth_stage = 0;

static int sockfd = -1;

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void send_msg(uint32_t type, const void *data, uint32_t len)
{
	uint32_t hdr[2] = { type, len };
	if (write_all(sockfd, hdr, sizeof(hdr)) < 0 || (len && write_all(sockfd, data, len) < 0))
		_exit(1);
}

// bail reports an error to the runtime, which prints it, and exits.
static void bail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int saved = errno;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (saved)
		n += snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(saved));
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	send_msg(BERTH_MSG_ERROR, buf, n);
	_exit(1);
}

static void expect_msg(uint32_t want)
{
	uint32_t hdr[2];
	if (read_all(sockfd, hdr, sizeof(hdr)) < 0)
		_exit(1); // runtime went away: nothing to report to
	if (hdr[0] != want || hdr[1] != 0) {
		errno = 0;
		bail("nsenter: unexpected message %u (want %u)", hdr[0], want);
	}
}

// become_session_leader puts the container's process in a session and
// process group of its own, as runc does: in its caller's group, a
// "kill 0" from the container (a shell's trap "kill 0" EXIT) would signal
// the caller's whole group, the container's shim included.
static void become_session_leader(void)
{
	if (setsid() < 0)
		bail("nsenter: setsid");
}

struct nsjoin {
	uint32_t type;
	int fd;
	char *path;
};

void berth_nsenter(void)
{
	const char *env = getenv("_BERTH_INITPIPE");
	if (env == NULL || *env == '\0')
		return;
	sockfd = atoi(env);
	if (sockfd < 3 || fcntl(sockfd, F_GETFD) < 0)
		return;

	// Keep the container from reaching this binary through
	// /proc/<pid>/exe while it runs in the container's namespaces.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		bail("nsenter: set non-dumpable");

	uint32_t hdr[2];
	if (read_all(sockfd, hdr, sizeof(hdr)) < 0)
		_exit(1);
	if (hdr[0] != BERTH_MSG_BOOTSTRAP || hdr[1] > (1 << 20)) {
		errno = 0;
		bail("nsenter: bad bootstrap message %u len %u", hdr[0], hdr[1]);
	}
	char *data = malloc(hdr[1] + 1);
	if (data == NULL || read_all(sockfd, data, hdr[1]) < 0)
		bail("nsenter: read bootstrap");
	data[hdr[1]] = '\0';

	uint32_t cloneflags = 0;
	char *timeoffsets = NULL;
	struct nsjoin joins[16];
	int njoins = 0;
	int fork_needed = 0;

	// Attributes: u16 type, u16 pad, u32 len, then len bytes (strings carry their NUL).
	for (uint32_t off = 0; off + 8 <= hdr[1];) {
		uint16_t type;
		uint32_t len;
		memcpy(&type, data + off, 2);
		memcpy(&len, data + off + 4, 4);
		char *val = data + off + 8;
		if (len > hdr[1] - off - 8) {
			errno = 0;
			bail("nsenter: truncated attribute %u", type);
		}
		switch (type) {
		case BERTH_ATTR_CLONEFLAGS:
			memcpy(&cloneflags, val, 4);
			break;
		case BERTH_ATTR_NSJOIN:
			if (njoins == 16) {
				errno = 0;
				bail("nsenter: too many namespaces to join");
			}
			memcpy(&joins[njoins].type, val, 4);
			joins[njoins].path = val + 4;
			njoins++;
			break;
		case BERTH_ATTR_TIMEOFFSETS:
			timeoffsets = val;
			break;
		}
		off += 8 + ((len + 3) & ~3u);
	}

	// Open every namespace first: after joining a mount namespace the
	// host paths would resolve in the container's view.
	for (int i = 0; i < njoins; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			bail("open namespace %s", joins[i].path);
	}
	// The namespaces other than user and mount are tried first, with our
	// own capabilities (as runc does: a network namespace the host's user
	// namespace owns cannot be joined from the container's); then the
	// user namespace, so that the rest are joined with its capabilities;
	// the mount namespace goes last.
	for (int pass = 0; pass < 4; pass++) {
		for (int i = 0; i < njoins; i++) {
			int isuser = joins[i].type == CLONE_NEWUSER;
			int ismnt = joins[i].type == CLONE_NEWNS;
			if (joins[i].fd < 0 || ((pass == 0 || pass == 2) && (isuser || ismnt)) || (pass == 1 && !isuser) || (pass == 3 && !ismnt))
				continue;
			if (setns(joins[i].fd, joins[i].type) < 0) {
				if (pass == 0 && errno == EPERM)
					continue;
				bail("join namespace %s", joins[i].path);
			}
			close(joins[i].fd);
			joins[i].fd = -1;
			if (joins[i].type == CLONE_NEWPID)
				fork_needed = 1;
			if (isuser && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
				bail("become root in user namespace %s", joins[i].path);
		}
	}

	if (cloneflags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail("create user namespace");
		// Only the runtime, outside, may write our id maps.
		send_msg(BERTH_MSG_MAPREQ, NULL, 0);
		expect_msg(BERTH_MSG_MAPACK);
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			bail("become root in the new user namespace (does the mapping include 0?)");
		if (setgroups(0, NULL) < 0 && errno != EPERM)
			bail("clear supplementary groups");
	}
	uint32_t rest = cloneflags & ~CLONE_NEWUSER;
	if (rest && unshare(rest) < 0)
		bail("create namespaces (flags %#x)", rest);
	if (rest & (CLONE_NEWPID | CLONE_NEWTIME))
		fork_needed = 1;
	if (timeoffsets && *timeoffsets) {
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, timeoffsets, strlen(timeoffsets)) < 0)
			bail("write time namespace offsets");
		close(fd);
	}
	free(data);

	if (!fork_needed) {
		become_session_leader();
		int32_t self = getpid();
		send_msg(BERTH_MSG_PID, &self, sizeof(self));
		berth_stage = 1;
		return;
	}
	// CLONE_PARENT: the runtime can wait for the container's process
	// itself; no intermediate stays behind.
	pid_t child = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (child < 0)
		bail("clone container process");
	if (child == 0) {
		become_session_leader();
		berth_stage = 1;
		return;
	}
	int32_t p = child;
	send_msg(BERTH_MSG_PID, &p, sizeof(p));
	_exit(0);
}
