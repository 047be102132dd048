/*
 * fuzzstate items: children that check themselves (in our process group, in one of their own,
 * in a session of their own, with a grandchild), zombies, a stopped child. A live child waits
 * on a command pipe; on 'c' it checks its own state and answers on a reply pipe.
 */
#include "fuzz.h"

#include <poll.h>
#include <sys/wait.h>

#define MAX_KIDS 16

static pid_t kids[MAX_KIDS * 2];
static int n_kids;

static void track_kid(pid_t pid)
{
	if (pid > 0 && n_kids < MAX_KIDS * 2)
		kids[n_kids++] = pid;
}

void finish_tasks(void)
{
}

void kill_children(void)
{
	remove_shm_segments();
	for (int i = 0; i < n_kids; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < n_kids; i++)
		waitpid(kids[i], NULL, __WALL); /* grandchildren are not ours: ECHILD, fine */
}

/* /proc/PID/stat: state and process group */
static int proc_state(pid_t pid, char *state, pid_t *pgrp, pid_t *ppid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	char *p = strrchr(buf, ')');
	int pg = 0, pp = 0;
	if (!p || sscanf(p + 2, "%c %d %d", state, &pp, &pg) != 3)
		return -1;
	if (pgrp)
		*pgrp = pg;
	if (ppid)
		*ppid = pp;
	return 0;
}

struct child_st {
	pid_t pid, grandchild, parent;
	int mode; /* 0 our group, 1 own group, 2 own session, 3 own session + grandchild */
	int cmd, reply;
	uint64_t mask, seed;
};

struct child_reply {
	char ok;
	char why[127];
};

static char child_page[4096] __attribute__((aligned(4096)));

static void child_answer(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_answer(int fd, const char *fmt, ...)
{
	struct child_reply rep = { 1, "" };
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rep.why, sizeof(rep.why), fmt, ap);
		va_end(ap);
		rep.ok = 0;
	}
	if (write(fd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(3);
}

static void child_loop(struct child_st *s)
{
	pid_t me = getpid();
	for (;;) {
		char c;
		ssize_t n = read(s->cmd, &c, 1);
		if (n == 0)
			_exit(0); /* the parent is gone */
		if (n < 0)
			continue;
		sigset_t m;
		sigprocmask(SIG_BLOCK, NULL, &m);
		int bad_sig = 0;
		for (int sig = 1; sig <= 64; sig++)
			if (sig != SIGKILL && sig != SIGSTOP && sig != 32 && sig != 33 &&
			    !!sigismember(&m, sig) != !!(s->mask & (1ULL << (sig - 1))))
				bad_sig = sig;
		pid_t want_pg = s->mode == 0 ? getpgid(s->parent) : me;
		char st;
		pid_t gpp = 0;
		if (getpid() != me || getpid() != s->pid)
			child_answer(s->reply, "pid %d, expected %d", getpid(), s->pid);
		else if (getppid() != s->parent)
			child_answer(s->reply, "parent %d, expected %d", getppid(), s->parent);
		else if (getpgrp() != want_pg)
			child_answer(s->reply, "pgrp %d, expected %d", getpgrp(), want_pg);
		else if (getsid(0) != (s->mode >= 2 ? me : getsid(s->parent)))
			child_answer(s->reply, "sid %d", getsid(0));
		else if (bad_sig)
			child_answer(s->reply, "signal %d mask bit differs", bad_sig);
		else if (pattern_check(child_page, sizeof(child_page), s->seed) != -1)
			child_answer(s->reply, "its private page differs");
		else if (s->grandchild && (proc_state(s->grandchild, &st, NULL, &gpp) != 0 || gpp != me || st == 'Z'))
			child_answer(s->reply, "grandchild %d is not alive under it", s->grandchild);
		else
			child_answer(s->reply, NULL);
	}
}

static int child_build(struct inst *in, struct rng *r)
{
	struct child_st *s = ST_OF(in, struct child_st);
	if (n_kids + 2 > MAX_KIDS * 2)
		return 1;
	int c[2], p[2];
	if (pipe2(c, O_CLOEXEC) != 0 || pipe2(p, O_CLOEXEC) != 0)
		DIE("pipe2");
	s->mode = (int)rng_below(r, 4);
	s->parent = getpid();
	s->mask = 0;
	for (int k = (int)rng_below(r, 5); k > 0; k--) {
		int sig = (int)rng_range(r, 1, 64);
		if (sig != SIGKILL && sig != SIGSTOP && sig != 32 && sig != 33)
			s->mask |= 1ULL << (sig - 1);
	}
	s->seed = rng_next(r);
	pid_t pid = fork();
	if (pid < 0)
		DIE("fork");
	if (pid == 0) {
		close(c[1]);
		close(p[0]);
		s->cmd = c[0];
		s->reply = p[1];
		s->pid = getpid();
		if (s->mode == 1)
			setpgid(0, 0);
		if (s->mode >= 2)
			setsid();
		sigset_t m;
		sigemptyset(&m);
		for (int sig = 1; sig <= 64; sig++)
			if (s->mask & (1ULL << (sig - 1)))
				sigaddset(&m, sig);
		sigprocmask(SIG_SETMASK, &m, NULL);
		pattern_fill(child_page, sizeof(child_page), s->seed);
		s->grandchild = 0;
		if (s->mode == 3) {
			s->grandchild = fork();
			if (s->grandchild == 0)
				for (;;)
					pause();
		}
		if (write(s->reply, &s->grandchild, sizeof(s->grandchild)) != sizeof(s->grandchild))
			_exit(3);
		child_loop(s);
	}
	close(c[0]);
	close(p[1]);
	s->pid = pid;
	if (s->mode == 1)
		setpgid(pid, pid); /* both sides, so it holds whoever runs first */
	track_kid(pid);
	if (read(p[0], &s->grandchild, sizeof(s->grandchild)) != sizeof(s->grandchild))
		DIE("child %d did not start", pid);
	track_kid(s->grandchild);
	s->cmd = place_fd(r, c[1]);
	s->reply = place_fd(r, p[0]);
	describe(in, "pid=%d mode=%s grandchild=%d mask=0x%llx", pid,
		 (const char *[]){ "our-group", "own-group", "own-session", "session+grandchild" }[s->mode],
		 s->grandchild, (unsigned long long)s->mask);
	return 0;
}

static void child_check(struct inst *in, int final)
{
	(void)final;
	struct child_st *s = ST_OF(in, struct child_st);
	if (write(s->cmd, "c", 1) != 1) {
		IFAIL(in, "cannot ask child %d: %s", s->pid, strerror(errno));
		return;
	}
	struct pollfd pfd = { s->reply, POLLIN, 0 };
	struct child_reply rep;
	if (poll(&pfd, 1, 5000) != 1 || read(s->reply, &rep, sizeof(rep)) != sizeof(rep)) {
		IFAIL(in, "child %d did not answer", s->pid);
		return;
	}
	ICHECK(in, rep.ok, "child %d: %s", s->pid, rep.why);
}

/* ---- zombie (in our group or its own), stopped child ------------------------------------- */

struct zombie_st {
	pid_t pid;
	int status, own_group, stopped;
};

static int zombie_common(struct inst *in, struct rng *r, int own_group, int stopped)
{
	struct zombie_st *s = ST_OF(in, struct zombie_st);
	if (n_kids >= MAX_KIDS * 2)
		return 1;
	s->status = (int)rng_below(r, 256);
	s->own_group = own_group;
	s->stopped = stopped;
	pid_t pid = fork();
	if (pid < 0)
		DIE("fork");
	if (pid == 0) {
		if (own_group)
			setpgid(0, 0);
		if (stopped)
			for (;;)
				raise(SIGSTOP);
		_exit(s->status);
	}
	if (own_group)
		setpgid(pid, pid);
	s->pid = pid;
	track_kid(pid);
	siginfo_t si;
	if (waitid(P_PID, (id_t)pid, &si, (stopped ? WSTOPPED : WEXITED) | WNOWAIT) != 0)
		DIE("waitid");
	describe(in, "pid=%d %s group=%s", pid, stopped ? "stopped" : "exit", own_group ? "own" : "ours");
	if (!stopped)
		describe(in, "status=%d", s->status);
	return 0;
}

static int zombie_build(struct inst *in, struct rng *r)
{
	return zombie_common(in, r, 0, 0);
}

static int zombie_pgrp_build(struct inst *in, struct rng *r)
{
	return zombie_common(in, r, 1, 0);
}

static int stopped_build(struct inst *in, struct rng *r)
{
	return zombie_common(in, r, rng_one_in(r, 2), 1);
}

static void zombie_check(struct inst *in, int final)
{
	struct zombie_st *s = ST_OF(in, struct zombie_st);
	char st = '?';
	pid_t pg = 0, pp = 0;
	if (proc_state(s->pid, &st, &pg, &pp) != 0) {
		IFAIL(in, "child %d is gone", s->pid);
		return;
	}
	ICHECK(in, st == (s->stopped ? 'T' : 'Z'), "child %d state %c, expected %c", s->pid, st, s->stopped ? 'T' : 'Z');
	ICHECK(in, pp == getpid(), "child %d has parent %d", s->pid, pp);
	pid_t want = s->own_group ? s->pid : getpgrp();
	ICHECK(in, pg == want, "child %d pgrp %d, expected %d", s->pid, pg, want);
	if (!final || s->stopped)
		return;
	int status = 0;
	pid_t got = waitpid(s->pid, &status, WNOHANG);
	ICHECK(in, got == s->pid && WIFEXITED(status) && WEXITSTATUS(status) == s->status,
	       "waitpid(%d) = %d status 0x%x, expected exit %d", s->pid, got, status, s->status);
}

const struct item items_children[] = {
	{ "child", 4, child_build, child_check, NULL },
	{ "zombie", 3, zombie_build, zombie_check, NULL },
	{ "zombie-own-pgrp", 2, zombie_pgrp_build, zombie_check, NULL },
	{ "stopped-child", 2, stopped_build, zombie_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
