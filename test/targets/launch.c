/*
 * launch: exec a target with a clean fd table.
 *
 * usage: launch PROGRAM [ARGS...]
 * Closes every fd above 2 and execs PROGRAM (PATH lookup). The harness starts every target
 * through this so that descriptors inherited from the test runner's own environment (a
 * non-CLOEXEC pipe of whatever started node, for instance) never reach the target: the engine
 * does not support pipes yet, and a target's fd table must be what the target itself set up.
 * After the exec the process is the target itself (same PID, its own cmdline).
 * CRYO_LAUNCH_CGROUP=DIR[:DIR...] (taken out of the environment): the process first moves itself
 * into the cgroup at each DIR (its cgroup.procs; one per hierarchy), so the target starts there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: launch PROGRAM [ARGS...]\n");
		return 126;
	}
	/* CRYO_LAUNCH_CGROUP=DIR[:DIR...]: one cgroup per hierarchy. */
	const char *cgs = getenv("CRYO_LAUNCH_CGROUP");
	if (cgs) {
		char list[8192], path[4200], pid[32];
		snprintf(list, sizeof list, "%s", cgs);
		int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
		for (char *save = NULL, *cg = strtok_r(list, ":", &save); cg; cg = strtok_r(NULL, ":", &save)) {
			snprintf(path, sizeof path, "%s/cgroup.procs", cg);
			int fd = open(path, O_WRONLY);
			if (fd < 0 || write(fd, pid, (size_t)n) != n) {
				fprintf(stderr, "launch: cannot move into %s: %s\n", cg, strerror(errno));
				return 126;
			}
			close(fd);
		}
		unsetenv("CRYO_LAUNCH_CGROUP");
	}
	if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
			close((int)fd);
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "launch: cannot exec %s: %s\n", argv[1], strerror(errno));
	return 127;
}
