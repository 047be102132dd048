/*
 * cgns: a process in a cgroup namespace of its own, started by `unshare --cgroup --fork` in a
 * cgroup of its own: argv[1] is the host path of a cgroup v2 directory below it, argv[2] that
 * cgroup's path inside the namespace ("/sub"). Its child moves itself there (cgroup.procs, from
 * inside the namespace) and checks /proc/self/cgroup shows argv[2]. Before READY both read
 * /proc/self/cgroup (the root's v2 line must be "0::/") and the root reads the cgroup2 mount's
 * root in /proc/self/mountinfo (shown relative to the namespace's root). After go each checks
 * that its /proc/self/cgroup and the mount's root read the same as before.
 */
#include "common.h"

#include <sys/wait.h>

static char cg_before[4096], mnt_before[1024];

/* The root field of the cgroup2 mount's line in /proc/self/mountinfo. */
static int cgroup2_root(char *out, size_t size)
{
	static char info[1 << 16];
	if (read_file("/proc/self/mountinfo", info, sizeof info) < 0)
		return -1;
	for (char *line = strtok(info, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strstr(line, " - cgroup2 "))
			continue;
		char root[1024];
		if (sscanf(line, "%*s %*s %*s %1023s", root) != 1)
			return -1;
		snprintf(out, size, "%s", root);
		return 0;
	}
	errno = ENOENT;
	return -1;
}

static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == 0))
			return 1;
	return 0;
}

static void check_same(const char *who)
{
	char now[4096];
	CHECK(read_file("/proc/self/cgroup", now, sizeof now) > 0, "%s: /proc/self/cgroup: %s", who, strerror(errno));
	CHECK(strcmp(now, cg_before) == 0, "%s: /proc/self/cgroup was\n%s now\n%s", who, cg_before, now);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		DIE("usage: cgns SUBDIR INSIDE-PATH");
	/* unshare leads the session it was started in; the tree leads its own (as a container's init). */
	if (setsid() < 0)
		DIE("setsid");
	if (read_file("/proc/self/cgroup", cg_before, sizeof cg_before) <= 0)
		DIE("/proc/self/cgroup");
	if (!has_line(cg_before, "0::/"))
		DIE("not at the root of a cgroup namespace of its own: %s", cg_before);
	if (cgroup2_root(mnt_before, sizeof mnt_before) < 0)
		DIE("no cgroup2 mount in /proc/self/mountinfo");
	int p[2];
	if (pipe(p) < 0)
		DIE("pipe");
	pid_t kid = fork();
	if (kid < 0)
		DIE("fork");
	if (kid == 0) {
		char procs[4096], want[512];
		snprintf(procs, sizeof procs, "%s/cgroup.procs", argv[1]);
		if (write_file(procs, "0", 1) < 0)
			DIE("child: into %s", procs);
		if (read_file("/proc/self/cgroup", cg_before, sizeof cg_before) <= 0)
			DIE("child: /proc/self/cgroup");
		snprintf(want, sizeof want, "0::%s", argv[2]);
		if (!has_line(cg_before, want))
			DIE("child: no line %s in %s", want, cg_before);
		close(p[0]);
		if (write(p[1], "x", 1) != 1)
			DIE("child: pipe");
		close(p[1]);
		wait_go();
		check_same("child");
		if (fail_count_)
			say("child: %s", fail_buf_);
		_exit(fail_count_ ? 1 : 0);
	}
	close(p[1]);
	char c;
	if (read(p[0], &c, 1) != 1)
		DIE("the child did not move into %s", argv[1]);
	close(p[0]);
	ready();
	wait_go();
	check_same("parent");
	char mnt[1024];
	CHECK(cgroup2_root(mnt, sizeof mnt) == 0 && strcmp(mnt, mnt_before) == 0, "cgroup2 mount root was %s, now %s", mnt_before, mnt);
	int st = 0;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %#x", st);
	return finish();
}
