/*
 * nestpid: nested PID namespaces. Started by `unshare --fork --pid`, it is PID 1 of level 1 and
 * builds, below itself:
 *   A  (level 1, PID 2)  unshare(CLONE_NEWPID), then forks
 *   B  (level 2 init)    the first child after the unshare: PID 1 of a namespace A is not in;
 *   C  (level 2, PID 2)  B's child, with a second thread (TID 3 there: its TID at every level too);
 *   D  (level 3 init, PID 4 of level 2) made by B with clone(CLONE_NEWPID) (B's pid_for_children stays its own);
 *   Z  (level 3, PID 2)  D's child that exited: a zombie D reaps after go.
 * Every process keeps the NSpid line of its /proc/self/status (and C its thread's) from before
 * READY and, after go, checks it again, with getpid(), getppid() and, for A and B, where their
 * children go (/proc/self/ns/pid_for_children against their own and their child's pid link).
 * A then forks one more child, which must land in B's namespace (not its init); B forks
 * one, which must land in its own (level 2, not in D's, not a new one). Only the init says PASS; a
 * descendant's failure is its own FAIL line and its exit status, collected up the tree.
 */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Shared with every process: how many are set up. */
static volatile int *ready_count;
static volatile int *c_up; /* C's thread exists */
static volatile int *a_forked; /* A's later child is forked (into B's namespace) */
static volatile char *b_own; /* B's /proc/self/ns/pid, for A; byte 127: rewritten after go */
#define NREADY 6 /* A, B, C, C's thread, D, Z */

static void nspid_of(const char *status_path, const char *field, char *out, size_t size)
{
	char buf[4096];
	out[0] = 0;
	if (read_file(status_path, buf, sizeof buf) < 0)
		return;
	char *p = strstr(buf, field);
	if (!p)
		return;
	p += strlen(field);
	while (*p == '\t' || *p == ' ')
		p++;
	size_t n = 0;
	while (p[n] && p[n] != '\n' && n + 1 < size)
		n++;
	memcpy(out, p, n);
	out[n] = 0;
}

static void link_of(const char *path, char *out, size_t size)
{
	ssize_t n = readlink(path, out, size - 1);
	out[n < 0 ? 0 : n] = 0;
}

/* How many fields an NSpid line has (levels the reader's /proc sees). */
static int levels_of(const char *nspid)
{
	int n = 0;
	for (const char *p = nspid; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		n++;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	return n;
}

/* The last field of an NSpid line: the PID in the task's own namespace. */
static long innermost(const char *nspid)
{
	const char *last = strrchr(nspid, '\t');
	if (!last)
		last = strrchr(nspid, ' ');
	return strtol(last ? last + 1 : nspid, NULL, 10);
}

static void check_self(const char *who, const char *was, pid_t me, pid_t parent)
{
	char now[256];
	nspid_of("/proc/self/status", "NSpid:", now, sizeof now);
	CHECK(strcmp(now, was) == 0, "%s: NSpid '%s', was '%s'", who, now, was);
	CHECK(getpid() == me, "%s: getpid() %d, was %d", who, getpid(), me);
	CHECK(getppid() == parent, "%s: getppid() %d, not %d", who, getppid(), parent);
}

/* Reaps `kid` and counts its failure as ours. */
static void reap(const char *who, pid_t kid)
{
	int st = 0;
	pid_t got = waitpid(kid, &st, __WALL);
	CHECK(got == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child %d: waitpid %d status 0x%x", who, kid, got, st);
}

/*
 * A child forked after the restore: where did it land? It must be in `want_ns`, `want_levels`
 * deep, and not a new namespace's init (PID 1). Which free PID it gets is the kernel's: a
 * restored namespace's next PID is not kept (ns_last_pid), so it may reuse a reaped one.
 */
static void later_child(const char *who, const char *want_ns, int want_levels)
{
	pid_t k = fork();
	if (k < 0) {
		fail("%s: fork after restore: %s", who, strerror(errno));
		return;
	}
	if (k == 0) {
		char ns[128], nspid[256];
		link_of("/proc/self/ns/pid", ns, sizeof ns);
		nspid_of("/proc/self/status", "NSpid:", nspid, sizeof nspid);
		int ok = strcmp(ns, want_ns) == 0 && innermost(nspid) == getpid() && getpid() > 1 && levels_of(nspid) == want_levels;
		if (!ok)
			say("FAIL: %s's new child: ns %s (want %s), NSpid '%s' (want %d levels, PID above 1), getpid %d", who, ns, want_ns, nspid,
			    want_levels, getpid());
		_exit(ok ? 0 : 1);
	}
	reap(who, k);
}

static void done(const char *who)
{
	if (fail_count_)
		say("FAIL: %s: %s", who, fail_buf_);
	_exit(fail_count_ ? 1 : 0);
}

static volatile int thread_go;
static char thread_was[256];
static char thread_now[256];
static pid_t c_thread_tid;

static void *c_thread(void *arg)
{
	(void)arg;
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
	nspid_of(path, "NSpid:", thread_was, sizeof thread_was);
	c_thread_tid = (pid_t)syscall(SYS_gettid);
	__sync_fetch_and_add(ready_count, 1);
	c_up[0] = 1;
	while (!thread_go)
		sleep_ms(10);
	snprintf(path, sizeof path, "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
	nspid_of(path, "NSpid:", thread_now, sizeof thread_now);
	return NULL;
}

static void run_c(void)
{
	char was[256];
	nspid_of("/proc/self/status", "NSpid:", was, sizeof was);
	pid_t me = getpid();
	pthread_t th;
	if (pthread_create(&th, NULL, c_thread, NULL) != 0)
		DIE("pthread_create");
	__sync_fetch_and_add(ready_count, 1);
	wait_go();
	check_self("C", was, me, 1);
	pid_t tid = c_thread_tid;
	thread_go = 1;
	pthread_join(th, NULL);
	CHECK(strcmp(thread_now, thread_was) == 0, "C's thread %d: NSpid '%s', was '%s'", tid, thread_now, thread_was);
	done("C");
}

static void run_d(void)
{
	char was[256];
	nspid_of("/proc/self/status", "NSpid:", was, sizeof was);
	pid_t me = getpid();
	pid_t z = fork();
	if (z == 0)
		_exit(7);
	if (z < 0)
		DIE("fork Z");
	/* Z is a zombie from here on: D waits for it only after go. */
	__sync_fetch_and_add(ready_count, 2);
	wait_go();
	check_self("D", was, me, 0);
	CHECK(me == 1, "D: PID %d in its namespace, not 1", me);
	CHECK(z == 2, "D: Z was PID %d, not 2", z);
	siginfo_t si = { 0 };
	CHECK(waitid(P_PID, z, &si, WEXITED | WNOHANG) == 0 && si.si_pid == z && si.si_code == CLD_EXITED && si.si_status == 7,
	      "D: zombie %d: waitid pid %d code %d status %d (%s)", z, si.si_pid, si.si_code, si.si_status, strerror(errno));
	done("D");
}

static void run_b(void)
{
	char was[256], own[128] = { 0 };
	nspid_of("/proc/self/status", "NSpid:", was, sizeof was);
	link_of("/proc/self/ns/pid", own, sizeof own);
	memcpy((char *)b_own, own, sizeof own - 1);
	pid_t me = getpid();
	pid_t c = fork();
	if (c < 0)
		DIE("fork C");
	if (c == 0)
		run_c();
	/* C's thread takes PID 3 here: D comes after it, so PIDs are known (1 B, 2 C, 3 its thread, 4 D). */
	while (!c_up[0])
		sleep_ms(5);
	pid_t d = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
	if (d < 0)
		DIE("clone(CLONE_NEWPID) D");
	if (d == 0)
		run_d();
	__sync_fetch_and_add(ready_count, 1);
	wait_go();
	/* A namespace made again is another one, with its own inode: read it afresh, tell A. */
	link_of("/proc/self/ns/pid", own, sizeof own);
	memcpy((char *)b_own, own, sizeof own - 1);
	__sync_synchronize();
	b_own[127] = 1;
	check_self("B", was, me, 0);
	CHECK(me == 1 && c == 2 && d == 4, "B: PID %d, C %d, D %d (want 1, 2, 4)", me, c, d);
	char kids_ns[128];
	link_of("/proc/self/ns/pid_for_children", kids_ns, sizeof kids_ns);
	CHECK(strcmp(kids_ns, own) == 0, "B: pid_for_children %s, not its own %s (D was made with clone, not unshare)", kids_ns, own);
	reap("B", c);
	reap("B", d);
	later_child("B", own, levels_of(was));
	/* B is its namespace's init: A's later child is forked into it, so B outlives that fork (up to 10 s). */
	for (int i = 0; i < 2000 && !a_forked[0]; i++)
		sleep_ms(5);
	done("B");
}

static void run_a(void)
{
	char was[256];
	nspid_of("/proc/self/status", "NSpid:", was, sizeof was);
	pid_t me = getpid();
	if (unshare(CLONE_NEWPID) < 0)
		DIE("unshare(CLONE_NEWPID)");
	pid_t b = fork();
	if (b < 0)
		DIE("fork B");
	if (b == 0)
		run_b();
	/* /proc is the host's here: B's namespace is what B itself wrote, and A's children's. */
	char b_ns[128];
	link_of("/proc/self/ns/pid_for_children", b_ns, sizeof b_ns);
	while (!b_own[0])
		sleep_ms(5);
	if (strcmp(b_ns, (const char *)b_own) != 0)
		DIE("pid_for_children %s after the unshare, B in %s", b_ns, (const char *)b_own);
	__sync_fetch_and_add(ready_count, 1);
	wait_go();
	check_self("A", was, me, 1);
	while (!b_own[127])
		sleep_ms(5);
	memcpy(b_ns, (const char *)b_own, 127);
	b_ns[127] = 0;
	char kids_ns[128];
	link_of("/proc/self/ns/pid_for_children", kids_ns, sizeof kids_ns);
	CHECK(strcmp(kids_ns, b_ns) == 0, "A: pid_for_children %s, not B's namespace %s (A unshared it)", kids_ns, b_ns);
	later_child("A", b_ns, levels_of(was) + 1);
	a_forked[0] = 1;
	reap("A", b);
	done("A");
}

int main(void)
{
	if (getpid() != 1)
		DIE("not PID 1 in its namespace: %d", getpid());
	if (setsid() < 0)
		DIE("setsid");
	ready_count = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ready_count == MAP_FAILED)
		DIE("mmap");
	b_own = (volatile char *)ready_count + 64;
	c_up = (volatile int *)((volatile char *)ready_count + 256);
	a_forked = (volatile int *)((volatile char *)ready_count + 512);
	char was[256];
	nspid_of("/proc/self/status", "NSpid:", was, sizeof was);
	pid_t a = fork();
	if (a < 0)
		DIE("fork A");
	if (a == 0)
		run_a();
	while (*ready_count < NREADY)
		sleep_ms(5);
	static struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset_take");
	ready();
	wait_go();
	check_self("init", was, 1, 0);
	reap("init", a);
	fdset_compare(&fds);
	return finish();
}
