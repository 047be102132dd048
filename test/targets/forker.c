/*
 * forker: a tree that forks all the time, as a fork-heavy job (a build, a shell loop) does.
 * argv: SPAWNERS IDLE. The root forks SPAWNERS children that each keep up to 8 short-lived
 * children of their own (each lives 0-2 ms, a quarter of them fork and reap a grandchild), and
 * IDLE children that only wait (to make the tree large). Each spawner records the PIDs of the
 * children it forked and has not reaped yet.
 * After go: each spawner checks that its children (/proc/self/task/TID/children, zombies too) are
 * exactly the recorded ones — a checkpoint that lost or invented a child fails here — churns
 * 200 ms more (forking at least once), reaps everything and exits 0 (1 on a difference, with detail lines). The root
 * PASSes when every child exited 0.
 */
#include "common.h"

#include <sys/wait.h>

#define MAX_LIVE 8

static pid_t live[MAX_LIVE];
static int nlive;
static long forks, bad;

static void child_body(unsigned *seed)
{
	sleep_ms((long)(rand_r(seed) % 3));
	if (rand_r(seed) % 4 == 0) {
		pid_t g = fork();
		if (g == 0)
			_exit(0);
		int st;
		if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			_exit(3);
	}
	_exit(0);
}

static void reap(int options)
{
	int st;
	pid_t r;
	while ((r = waitpid(-1, &st, options)) > 0) {
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
		for (int i = 0; i < nlive; i++)
			if (live[i] == r) {
				live[i] = live[--nlive];
				break;
			}
	}
}

static void churn_once(unsigned *seed)
{
	if (nlive < MAX_LIVE) {
		pid_t p = fork();
		if (p == 0)
			child_body(seed);
		if (p > 0) {
			live[nlive++] = p;
			forks++;
		}
	}
	reap(WNOHANG);
}

/* Our children as the kernel lists them, compared with the recorded ones. */
static int children_match(void)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
	if (read_file(path, buf, sizeof buf) < 0)
		return 0;
	int seen = 0, ok = 1;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		p = end;
		seen++;
		int known = 0;
		for (int i = 0; i < nlive; i++)
			known |= live[i] == pid;
		if (!known) {
			say("detail: spawner %d: child %ld is not one it forked", (int)getpid(), pid);
			ok = 0;
		}
	}
	if (seen != nlive) {
		say("detail: spawner %d: %d children, %d recorded", (int)getpid(), seen, nlive);
		ok = 0;
	}
	return ok;
}

static void spawner(void)
{
	unsigned seed = (unsigned)getpid();
	while (!go_exists())
		churn_once(&seed);
	int ok = children_match();
	long at_go = forks;
	int64_t t0 = mono_ns();
	while (mono_ns() - t0 < 200 * 1000000LL)
		churn_once(&seed);
	reap(0);
	if (bad)
		say("detail: spawner %d: %ld children did not exit 0", (int)getpid(), bad);
	if (forks == at_go)
		say("detail: spawner %d: no fork after go", (int)getpid());
	_exit(ok && !bad && forks > at_go ? 0 : 1);
}

int main(int argc, char **argv)
{
	int spawners = argc > 1 ? atoi(argv[1]) : 4;
	int idle = argc > 2 ? atoi(argv[2]) : 0;
	for (int i = 0; i < spawners; i++) {
		pid_t p = fork();
		if (p < 0)
			DIE("fork");
		if (p == 0)
			spawner();
	}
	for (int i = 0; i < idle; i++) {
		pid_t p = fork();
		if (p < 0)
			DIE("fork");
		if (p == 0) {
			wait_go();
			_exit(0);
		}
	}
	ready();
	wait_go();
	int st, n = 0;
	pid_t r;
	while ((r = waitpid(-1, &st, 0)) > 0) {
		n++;
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status 0x%x", (int)r, st);
	}
	CHECK(n == spawners + idle, "%d children ended, %d expected", n, spawners + idle);
	return finish();
}
