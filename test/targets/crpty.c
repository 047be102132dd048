/*
 * crpty: a pty pair checkpointed and restored with its processes (test/c-r-pty.test.ts).
 *
 * This process P holds the master (packet mode) and the slave twice (two descriptions, one
 * O_NONBLOCK), with odd termios (canonical, no echo, no ONLCR, erase ^H, kill ^U, IXANY,
 * 9600 baud) and a window of 37x101 (5x7 pixels). Its child C leads a session whose controlling
 * terminal is the slave (TIOCSCTTY) and holds /dev/tty open; C's child G is in a group of its own,
 * the foreground group. Queued before READY, both ways: G wrote "queued-out\n" (waiting on the
 * master) and P wrote "queued-in\n" to the master (waiting on the slave, unread).
 *
 * On ./go each checks its own state: P the index, termios, window, packet mode and its fd
 * table; C that it leads its session, the slave is its controlling tty (TIOCGSID on it and on
 * its /dev/tty fd) with G's group in front; G that it reads "queued-in" then "ping" on its
 * terminal (without SIGTTIN: it is in front) and answers "pong <pid>". P reads "queued-out"
 * and then that answer from the master (packet-mode data bytes), and checks how C and G exited.
 */
#include "common.h"
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>

#define ODD_IFLAG (IXANY | ICRNL)
#define ODD_OFLAG (OPOST)
#define ODD_LFLAG (ICANON | ISIG)
#define ROWS 37
#define COLS 101

static int grandchild(int s1)
{
	wait_go();
	if (tcgetpgrp(s1) != getpgrp())
		return 10;
	char buf[64];
	ssize_t n = read(s1, buf, sizeof(buf) - 1);
	if (n != 10 || memcmp(buf, "queued-in\n", 10) != 0)
		return 11;
	n = read(s1, buf, sizeof(buf) - 1);
	if (n != 5 || memcmp(buf, "ping\n", 5) != 0)
		return 12;
	char out[64];
	int len = snprintf(out, sizeof(out), "pong %d\n", getpid());
	if (write(s1, out, (size_t)len) != len)
		return 13;
	return 0;
}

static int child(int s1)
{
	if (setsid() < 0 || ioctl(s1, TIOCSCTTY, 0) < 0)
		return 20;
	int tty = open("/dev/tty", O_RDWR);
	if (tty < 0)
		return 21;
	pid_t g = fork();
	if (g < 0)
		return 22;
	if (g == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		if (write(s1, "queued-out\n", 11) != 11)
			_exit(14);
		_exit(grandchild(s1));
	}
	setpgid(g, g);
	if (tcsetpgrp(s1, g) < 0)
		return 23;
	wait_go();
	pid_t sid = -1, sid2 = -1;
	if (ioctl(s1, TIOCGSID, &sid) < 0 || sid != getpid())
		return 24;
	if (ioctl(tty, TIOCGSID, &sid2) < 0 || sid2 != getpid())
		return 25;
	if (getsid(0) != getpid())
		return 26;
	int st = 0;
	if (waitpid(g, &st, 0) != g)
		return 27;
	if (!WIFEXITED(st))
		return 28;
	return WEXITSTATUS(st);
}

/* Reads from the packet-mode master until `want` bytes of data have come (or 5 s). */
static ssize_t read_data(int m, char *buf, size_t want)
{
	size_t got = 0;
	int64_t until = mono_ns() + 5000000000LL;
	char pkt[256];
	while (got < want && mono_ns() < until) {
		ssize_t n = read(m, pkt, sizeof(pkt));
		if (n < 0 && errno == EAGAIN) {
			sleep_ms(5);
			continue;
		}
		if (n <= 0)
			return -1;
		if (pkt[0] != TIOCPKT_DATA)
			continue; /* a status notice */
		size_t d = (size_t)n - 1;
		if (got + d > want)
			d = want - got;
		memcpy(buf + got, pkt + 1, d);
		got += d;
	}
	return (ssize_t)got;
}

int main(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		DIE("posix_openpt");
	int index = -1;
	ioctl(m, TIOCGPTN, &index);
	const char *name = ptsname(m);
	int s1 = open(name, O_RDWR | O_NOCTTY);
	int s2 = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (s1 < 0 || s2 < 0)
		DIE("open %s", name);
	struct termios t;
	tcgetattr(s1, &t);
	t.c_iflag = ODD_IFLAG;
	t.c_oflag = ODD_OFLAG;
	t.c_lflag = ODD_LFLAG;
	t.c_cc[VERASE] = 0x08;
	t.c_cc[VKILL] = 0x15;
	cfsetispeed(&t, B9600);
	cfsetospeed(&t, B9600);
	if (tcsetattr(s1, TCSANOW, &t) < 0)
		DIE("tcsetattr");
	struct winsize w = { ROWS, COLS, 5, 7 };
	int one = 1;
	if (ioctl(m, TIOCSWINSZ, &w) < 0 || ioctl(m, TIOCPKT, &one) < 0)
		DIE("winsize/pkt");
	int fl = fcntl(m, F_GETFL);
	fcntl(m, F_SETFL, fl | O_NONBLOCK);
	pid_t c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(child(s1));
	}
	/* Both queues filled: G's output, and a line of input nobody reads before go. */
	int64_t until = mono_ns() + 5000000000LL;
	int avail = 0;
	while (mono_ns() < until && (ioctl(m, FIONREAD, &avail) < 0 || avail < 11))
		sleep_ms(5);
	if (write(m, "queued-in\n", 10) != 10)
		DIE("write queued-in");
	pid_t g = -1;
	until = mono_ns() + 5000000000LL;
	while (mono_ns() < until && ((g = tcgetpgrp(m)) <= 0 || g == c))
		sleep_ms(5);
	say("KIDS c=%d g=%d index=%d", c, g, index);
	struct fdset fds;
	fdset_take(&fds);
	ready();
	wait_go();

	int idx = -1, pkt = -1;
	CHECK(ioctl(m, TIOCGPTN, &idx) == 0 && idx == index, "index %d, expected %d", idx, index);
	CHECK(ioctl(m, TIOCGPKT, &pkt) == 0 && pkt == 1, "packet mode %d", pkt);
	CHECK(strcmp(ptsname(m), name) == 0, "ptsname %s", ptsname(m));
	for (int i = 0; i < 2; i++) {
		int s = i ? s2 : s1;
		struct termios n;
		memset(&n, 0, sizeof(n));
		CHECK(tcgetattr(s, &n) == 0, "tcgetattr slave %d", s);
		CHECK(n.c_iflag == ODD_IFLAG && n.c_oflag == ODD_OFLAG && n.c_lflag == ODD_LFLAG, "slave %d flags i=%o o=%o l=%o", s,
		      n.c_iflag, n.c_oflag, n.c_lflag);
		CHECK(n.c_cc[VERASE] == 0x08 && n.c_cc[VKILL] == 0x15, "slave %d erase %d kill %d", s, n.c_cc[VERASE], n.c_cc[VKILL]);
		CHECK(cfgetospeed(&n) == B9600, "slave %d speed %u", s, (unsigned)cfgetospeed(&n));
		struct winsize nw;
		memset(&nw, 0, sizeof(nw));
		CHECK(ioctl(s, TIOCGWINSZ, &nw) == 0 && nw.ws_row == ROWS && nw.ws_col == COLS && nw.ws_xpixel == 5 && nw.ws_ypixel == 7,
		      "slave %d window %ux%u %ux%u", s, nw.ws_row, nw.ws_col, nw.ws_xpixel, nw.ws_ypixel);
	}
	CHECK(tcgetpgrp(m) == g, "foreground group %d (from the master), expected %d", tcgetpgrp(m), g);
	pid_t sid = -1;
	CHECK(ioctl(m, TIOCGSID, &sid) == 0 && sid == c, "session of the pty %d, expected %d", sid, c);
	char buf[64];
	memset(buf, 0, sizeof(buf));
	CHECK(read_data(m, buf, 11) == 11 && memcmp(buf, "queued-out\n", 11) == 0, "queued output: '%.11s'", buf);
	CHECK(write(m, "ping\n", 5) == 5, "write ping");
	char want[64];
	int wl = snprintf(want, sizeof(want), "pong %d\n", g);
	memset(buf, 0, sizeof(buf));
	CHECK(read_data(m, buf, (size_t)wl) == wl && memcmp(buf, want, (size_t)wl) == 0, "answer '%s', expected '%s'", buf, want);
	int st = 0;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "session child: status 0x%x (exit %d)", st,
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	fdset_compare(&fds);
	return finish();
}
