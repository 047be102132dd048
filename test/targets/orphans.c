/*
 * orphans: a session and a process group whose leaders are gone. The root (a session leader and
 * child subreaper) forks C, which makes its own process group and forks D into it, then exits;
 * and E, which makes its own session and forks F into it, then exits. D and F are now the root's
 * children (it is their subreaper), in a group and a session led by nobody. After go each checks
 * it is still where it was (getpgrp, getsid, getppid) and the root collects their verdicts.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

struct verdict {
	volatile pid_t pgid, sid, ppid;
	volatile int ok;
};

static int member(struct verdict *v, pid_t root)
{
	/* Wait until our parent exited and the root (subreaper) took us. */
	for (int i = 0; i < 1000 && getppid() != root; i++)
		sleep_ms(2);
	v->pgid = getpgrp();
	v->sid = getsid(0);
	v->ppid = getppid();
	wait_go();
	v->ok = getpgrp() == v->pgid && getsid(0) == v->sid && getppid() == v->ppid ? 1 : -1;
	return v->ok == 1 ? 0 : 1;
}

int main(void)
{
	struct verdict *v = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return 2;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t root = getpid();
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0);
		if (fork() == 0)
			_exit(member(&v[0], root));
		_exit(0);
	}
	pid_t e = fork();
	if (e == 0) {
		setsid();
		if (fork() == 0)
			_exit(member(&v[1], root));
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	waitpid(e, &st, 0);
	/* D and F are ours now; wait until both noted where they are. */
	for (int i = 0; i < 500 && !(v[0].ppid == getpid() && v[1].ppid == getpid()); i++)
		sleep_ms(10);
	CHECK(v[0].pgid == c && v[1].sid == e, "setup: group %d (want %d), session %d (want %d)", v[0].pgid, c, v[1].sid, e);
	ready();
	wait_go();
	int n = 0;
	while (waitpid(-1, &st, 0) > 0) {
		n++;
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a member failed (0x%x)", st);
	}
	CHECK(n == 2, "reaped %d members, expected 2", n);
	CHECK(v[0].ok == 1, "member of the leaderless group lost its place");
	CHECK(v[1].ok == 1, "member of the leaderless session lost its place");
	return finish();
}
