/*
 * ctty: a session leader (the harness starts it with setsid) without a controlling terminal.
 * The test hands it a pty slave (it writes "<pid> <fd>" into ./fds; this process takes the fd
 * with pidfd_getfd into fd 20), prints LEADER, and the test makes fd 20 its controlling terminal
 * by injecting TIOCSCTTY into this (stopped) process, then creates ./ctty-set. Only then is the
 * member M forked (a process inherits its controlling tty at fork), in a group of its own
 * (MEMBER line); the test injects TIOCSPGRP to put M's group in front and creates ./go. Checked
 * here, as the kernel tells it: TIOCGSID and getsid say this session, tcgetpgrp says M's group,
 * /dev/tty opens and is the same terminal; then M (the foreground group, so no SIGTTIN) reads a
 * line from /dev/tty, expects "ping", and answers "pong <pid>" on it. The test also opens
 * /dev/tty into fd 21 of this process by injection, checked here too. PASS/FAIL as usual.
 */
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "common.h"
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>

#define TTYFD 20

static int member(void)
{
	while (access("tty-ready", F_OK) != 0)
		sleep_ms(10);
	int tty = open("/dev/tty", O_RDWR);
	if (tty < 0)
		return 10;
	if (tcgetpgrp(tty) != getpgrp())
		return 11;
	char buf[64];
	ssize_t n = read(tty, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 12;
	buf[n] = 0;
	if (strcmp(buf, "ping\n") != 0)
		return 13;
	char out[64];
	int len = snprintf(out, sizeof(out), "pong %d\n", getpid());
	if (write(tty, out, (size_t)len) != len)
		return 14;
	return 0;
}

int main(void)
{
	char line[64];
	while (read_file("fds", line, sizeof(line)) <= 0 || !strchr(line, '\n'))
		sleep_ms(10);
	int from = 0, fd = -1;
	if (sscanf(line, "%d %d", &from, &fd) != 2)
		DIE("bad fds file: %s", line);
	int pidfd = (int)syscall(SYS_pidfd_open, from, 0);
	int got = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (got < 0 || dup2(got, TTYFD) != TTYFD)
		DIE("pidfd_getfd %d %d", from, fd);
	close(got);
	close(pidfd);
	int before = 0;
	CHECK(ioctl(TTYFD, TIOCGSID, &before) < 0 && errno == ENOTTY, "fd %d is already a controlling tty before the helper ran", TTYFD);
	say("LEADER pid=%d fd=%d", getpid(), TTYFD);
	while (access("ctty-set", F_OK) != 0)
		sleep_ms(10);
	pid_t m = fork();
	if (m < 0)
		DIE("fork");
	if (m == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		_exit(member());
	}
	setpgid(m, m);
	say("MEMBER %d", m);
	ready();
	wait_go();

	pid_t sid = -1;
	CHECK(ioctl(TTYFD, TIOCGSID, &sid) == 0 && sid == getpid(), "TIOCGSID %d (%s), expected %d", sid, strerror(errno), getpid());
	CHECK(getsid(0) == getpid(), "getsid %d", getsid(0));
	pid_t fg = tcgetpgrp(TTYFD);
	CHECK(fg == m, "foreground group %d, expected the member's %d", fg, m);
	int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
	CHECK(tty >= 0, "open /dev/tty: %s", strerror(errno));
	if (tty >= 0) {
		pid_t tsid = -1;
		CHECK(ioctl(tty, TIOCGSID, &tsid) == 0 && tsid == getpid(), "/dev/tty TIOCGSID %d", tsid);
		close(tty);
	}
	struct stat sb;
	CHECK(fstat(21, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(5, 0), "fd 21 is not /dev/tty");
	CHECK((fcntl(21, F_GETFL) & O_ACCMODE) == O_RDWR && fcntl(21, F_GETFD) == FD_CLOEXEC, "fd 21 flags 0%o fd flags %d",
	      fcntl(21, F_GETFL), fcntl(21, F_GETFD));
	pid_t sid21 = -1;
	CHECK(ioctl(21, TIOCGSID, &sid21) == 0 && sid21 == getpid(), "fd 21 (/dev/tty) TIOCGSID %d", sid21);
	if (write_file("tty-ready", "", 0) < 0)
		DIE("tty-ready");
	int st = 0;
	if (waitpid(m, &st, 0) != m)
		DIE("waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "member: status 0x%x (exit %d)", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return finish();
}
