/*
 * pidfd: pidfds to a live child (blocking), to itself (O_NONBLOCK), to itself as a thread
 * (PIDFD_THREAD), and to a child that exited and was reaped (a dead process). After go each must
 * still refer to the same process, or to a dead one: fdinfo's Pid, pidfd_send_signal(fd, 0),
 * poll() (POLLIN once the process is gone), and waitid(P_PIDFD) that reaps the live child
 * through its pidfd after pidfd_send_signal(SIGKILL), and finds nothing to wait for on the dead one.
 */
#include "common.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define PIDFD_THREAD O_EXCL

static int pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_signal(int fd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

/* The Pid: line of the fd's fdinfo (-1: a dead process; -2: no such line). */
static long fdinfo_pid(int fd)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	ssize_t n = read_file(path, buf, sizeof(buf));
	if (n <= 0)
		return -2;
	const char *p = strstr(buf, "\nPid:");
	return p ? strtol(p + 5, NULL, 10) : -2;
}

static short poll_events(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

int main(void)
{
	pid_t child = fork();
	if (child == 0) {
		for (;;)
			sleep_ms(1000);
	}
	pid_t dead = fork();
	if (dead == 0)
		_exit(7);
	if (child < 0 || dead < 0)
		return 2;
	int childfd = pidfd_open(child, 0);
	int deadfd = pidfd_open(dead, 0); /* before the reap: afterwards the PID names no one */
	int status = 0;
	if (waitpid(dead, &status, 0) != dead || !WIFEXITED(status))
		return 2;
	int selffd = pidfd_open(getpid(), O_NONBLOCK);
	int threadfd = pidfd_open(getpid(), PIDFD_THREAD);
	if (childfd < 0 || deadfd < 0 || selffd < 0 || threadfd < 0)
		return 2;
	say("pidfds: child %d fd %d, dead %d fd %d, self fd %d, thread fd %d", child, childfd, dead, deadfd, selffd, threadfd);
	static struct fdset before;
	fdset_take(&before);
	ready();
	wait_go();

	fdset_compare(&before);
	CHECK(fdinfo_pid(selffd) == getpid(), "self pidfd: fdinfo Pid %ld, expected %d", fdinfo_pid(selffd), getpid());
	CHECK(fdinfo_pid(threadfd) == getpid(), "thread pidfd: fdinfo Pid %ld, expected %d", fdinfo_pid(threadfd), getpid());
	CHECK(pidfd_signal(selffd, 0) == 0, "self pidfd: pidfd_send_signal(0): %s", strerror(errno));
	CHECK(poll_events(selffd) == 0, "self pidfd: poll says 0x%x while we live", poll_events(selffd));

	CHECK(fdinfo_pid(childfd) == child, "child pidfd: fdinfo Pid %ld, expected %d", fdinfo_pid(childfd), child);
	CHECK(pidfd_signal(childfd, 0) == 0, "child pidfd: pidfd_send_signal(0): %s", strerror(errno));
	CHECK(poll_events(childfd) == 0, "child pidfd: poll says 0x%x while the child lives", poll_events(childfd));

	CHECK(fdinfo_pid(deadfd) == -1, "dead pidfd: fdinfo Pid %ld, expected -1", fdinfo_pid(deadfd));
	CHECK(pidfd_signal(deadfd, 0) < 0 && errno == ESRCH, "dead pidfd: pidfd_send_signal(0) did not fail with ESRCH");
	CHECK(poll_events(deadfd) & POLLIN, "dead pidfd: poll says 0x%x, expected POLLIN", poll_events(deadfd));
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_PIDFD, deadfd, &si, WEXITED | WNOHANG) < 0 && errno == ECHILD, "dead pidfd: waitid found something to wait for");

	/* Last: the child, killed and reaped through its pidfd, is the child we forked. */
	CHECK(pidfd_signal(childfd, SIGKILL) == 0, "child pidfd: pidfd_send_signal(SIGKILL): %s", strerror(errno));
	memset(&si, 0, sizeof(si));
	int w = waitid(P_PIDFD, childfd, &si, WEXITED);
	CHECK(w == 0 && si.si_pid == child && si.si_code == CLD_KILLED, "child pidfd: waitid gave %d, pid %d code %d (expected pid %d killed)",
	      w, si.si_pid, si.si_code, child);
	CHECK(poll_events(childfd) & POLLIN, "child pidfd: poll says 0x%x after its death", poll_events(childfd));
	return finish();
}
