/*
 * pipes: data in flight and pipes shared between a parent and its child.
 *   a: parent -> child, 2 writes (100 KiB then "tail") buffered and not yet read; pipe grown to
 *      256 KiB with F_SETPIPE_SZ.
 *   b: child -> parent, read end O_NONBLOCK in the parent; the child writes after go.
 *   c: half-closed: "last words" written, then every write end closed; the child must read the
 *      words and then EOF.
 * After go the child checks a and c, writes to b and exits with its verdict; the parent checks
 * b, the child's status, that its read end of b kept O_NONBLOCK and that a's size stayed.
 */
#include "common.h"

#include <sys/wait.h>

#define BIG (100 * 1024)

static int child(int a_r, int b_w, int c_r)
{
	wait_go();
	static char buf[BIG + 16];
	size_t got = 0;
	while (got < BIG + 4) {
		ssize_t n = read(a_r, buf + got, sizeof(buf) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int ok = got == BIG + 4 && pattern_check(buf, BIG, 7) < 0 && memcmp(buf + BIG, "tail", 4) == 0;
	char words[32] = { 0 };
	ssize_t n = read(c_r, words, sizeof(words));
	ok &= n == 10 && memcmp(words, "last words", 10) == 0;
	ok &= read(c_r, words, sizeof(words)) == 0; /* EOF: no writer left */
	ok &= write(b_w, "from-child", 10) == 10;
	return ok ? 0 : 1;
}

int main(void)
{
	int a[2], b[2], c[2];
	if (pipe(a) || pipe(b) || pipe(c))
		return 2;
	fcntl(a[1], F_SETPIPE_SZ, 256 * 1024);
	static char big[BIG];
	pattern_fill(big, BIG, 7);
	CHECK(write(a[1], big, BIG) == BIG, "setup: write a");
	CHECK(write(a[1], "tail", 4) == 4, "setup: write a tail");
	CHECK(write(c[1], "last words", 10) == 10, "setup: write c");
	fcntl(b[0], F_SETFL, O_NONBLOCK);
	pid_t kid = fork();
	if (kid == 0) {
		close(a[1]);
		close(b[0]);
		close(c[1]);
		_exit(child(a[0], b[1], c[0]));
	}
	close(a[0]);
	close(b[1]);
	close(c[0]);
	close(c[1]);
	int size_before = fcntl(a[1], F_GETPIPE_SZ);
	ready();
	wait_go();
	int st;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw wrong pipe contents (0x%x)", st);
	char got[16] = { 0 };
	CHECK(read(b[0], got, sizeof(got)) == 10 && memcmp(got, "from-child", 10) == 0, "parent: no data from the child on b");
	CHECK(fcntl(b[0], F_GETFL) & O_NONBLOCK, "b's read end lost O_NONBLOCK");
	CHECK(fcntl(a[1], F_GETPIPE_SZ) == size_before, "a's size changed (%d, was %d)", fcntl(a[1], F_GETPIPE_SZ), size_before);
	return finish();
}
