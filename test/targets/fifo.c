/*
 * fifo: a named pipe shared by a parent (read end, O_NONBLOCK) and its child (write end), with
 * 10 KiB written and not yet read. After go the child writes "from child" and exits; the parent
 * reads the 10 KiB, then the child's words, then EOF (no writer left), and checks that its fd is
 * still the FIFO at ./f1.
 */
#include "common.h"

#include <sys/stat.h>
#include <sys/wait.h>

#define LEN (10 * 1024)

int main(void)
{
	if (mkfifo("f1", 0640))
		DIE("mkfifo");
	int rd = open("f1", O_RDONLY | O_NONBLOCK);
	int wr = open("f1", O_WRONLY);
	if (rd < 0 || wr < 0)
		DIE("open f1");
	static char buf[LEN + 64];
	pattern_fill(buf, LEN, 31);
	CHECK(write(wr, buf, LEN) == LEN, "setup: write");
	pid_t kid = fork();
	if (kid == 0) {
		close(rd);
		wait_go();
		_exit(write(wr, "from child", 10) == 10 ? 0 : 1);
	}
	close(wr);
	ready();
	wait_go();
	int st = 0;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	CHECK(fcntl(rd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
	memset(buf, 0, sizeof(buf));
	ssize_t got = 0, n;
	while ((n = read(rd, buf + got, sizeof(buf) - (size_t)got)) > 0)
		got += n;
	CHECK(got == LEN + 10, "read %zd bytes, expected %d", got, LEN + 10);
	CHECK(pattern_check(buf, LEN, 31) < 0 && memcmp(buf + LEN, "from child", 10) == 0, "data differs");
	CHECK(n == 0, "no EOF after the last writer left (read returned %zd, errno %d)", n, errno);
	struct stat a, b;
	CHECK(fstat(rd, &a) == 0 && stat("f1", &b) == 0 && S_ISFIFO(a.st_mode) && a.st_ino == b.st_ino, "fd is not ./f1");
	return finish();
}
