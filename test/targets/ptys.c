/*
 * ptys: holds pty pairs in known states for test/pty.test.ts, which reads them from outside
 * (pidfd_getfd) and recreates them. Prints each pair's fds and the settings as the kernel
 * reports them to this process (tcgetattr, TIOCGWINSZ, TIOCGPKT, ...), then READY, then waits
 * to be killed (the test kills this process, the session child and its group child by PID).
 *
 *  A: the controlling terminal of a child session (child C: setsid, opens the slave without
 *     O_NOCTTY; grandchild G in a group of its own is the foreground group); canonical mode
 *     with odd erase/kill characters and a window size; the slave opened twice more here (one
 *     O_NONBLOCK); C also opens /dev/tty. Queued: the line "typed line\n" plus "partial"
 *     written to the master (input for the slave; echoed back to the master too).
 *  B: raw mode, VMIN 3 VTIME 7, 9600 baud, odd iflag/oflag bits, window 25x80, packet mode on
 *     the master, exclusive slave. Queued: output "out-B\x01\x02\xff" (slave -> master) and input
 *     "in-B" (master -> slave).
 *  C: a master whose slave was opened, written to ("bye") and closed.
 *  D: a master still locked (no unlockpt), exclusive.
 *  E: a slave whose master was closed (hung up by the kernel).
 */
#include "common.h"
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>

static void print_pair(const char *name, int m, int s)
{
	int index = -1, pkt = -1, lck = -1, excl = -1;
	ioctl(m, TIOCGPTN, &index);
	ioctl(m, TIOCGPKT, &pkt);
	ioctl(m, TIOCGPTLCK, &lck);
	ioctl(m, TIOCGEXCL, &excl);
	int sexcl = -1;
	if (s >= 0)
		ioctl(s, TIOCGEXCL, &sexcl);
	struct termios t;
	struct winsize w;
	memset(&t, 0, sizeof(t));
	memset(&w, 0, sizeof(w));
	tcgetattr(m, &t);
	ioctl(m, TIOCGWINSZ, &w);
	say("PAIR %s index=%d master=%d slave=%d pkt=%d locked=%d mexcl=%d sexcl=%d iflag=%u oflag=%u cflag=%u lflag=%u "
	    "vmin=%u vtime=%u verase=%u vkill=%u ospeed=%u rows=%u cols=%u xpix=%u ypix=%u",
	    name, index, m, s, pkt, lck, excl, sexcl, t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc[VMIN],
	    t.c_cc[VTIME], t.c_cc[VERASE], t.c_cc[VKILL], (unsigned)cfgetospeed(&t), w.ws_row, w.ws_col, w.ws_xpixel,
	    w.ws_ypixel);
}

static int open_master(int unlock)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0)
		DIE("posix_openpt");
	if (unlock && unlockpt(m) < 0)
		DIE("unlockpt");
	return m;
}

static void write_str(int fd, const char *s, size_t n)
{
	if (write(fd, s, n) != (ssize_t)n)
		DIE("write %d", fd);
}

/* The session child: setsid, the slave as controlling tty, a foreground group child. */
static void session_child(const char *slave)
{
	if (setsid() < 0)
		DIE("setsid");
	int s = open(slave, O_RDWR); /* no O_NOCTTY: a session leader without a tty acquires it */
	if (s < 0)
		DIE("open %s", slave);
	int tty = open("/dev/tty", O_RDWR);
	if (tty < 0)
		DIE("open /dev/tty");
	pid_t g = fork();
	if (g < 0)
		DIE("fork");
	if (g == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(g, g);
	if (tcsetpgrp(s, g) < 0)
		DIE("tcsetpgrp");
	say("SESSION child=%d grandchild=%d slavefd=%d ttyfd=%d", getpid(), g, s, tty);
	for (;;)
		pause();
}

int main(void)
{
	/* A */
	int ma = open_master(1);
	char slave_a[64];
	if (ptsname_r(ma, slave_a, sizeof(slave_a)))
		DIE("ptsname");
	pid_t c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		session_child(slave_a);
	}
	/* Wait until the child session's foreground group is set (visible through the master). */
	for (int i = 0;; i++) {
		pid_t fg = 0, sid = 0;
		if (ioctl(ma, TIOCGPGRP, &fg) == 0 && ioctl(ma, TIOCGSID, &sid) == 0 && sid == c && fg != c && fg > 0)
			break;
		if (i > 3000)
			DIE("session child did not set up its terminal");
		sleep_ms(5);
	}
	int sa1 = open(slave_a, O_RDWR | O_NOCTTY);
	int sa2 = open(slave_a, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (sa1 < 0 || sa2 < 0)
		DIE("open slave A");
	struct termios t;
	tcgetattr(sa1, &t);
	t.c_cc[VERASE] = 0x08;
	t.c_cc[VKILL] = 0x0b;
	if (tcsetattr(sa1, TCSANOW, &t) < 0)
		DIE("tcsetattr A");
	struct winsize w = { 40, 132, 1056, 640 };
	if (ioctl(sa1, TIOCSWINSZ, &w) < 0)
		DIE("winsize A");
	write_str(ma, "typed line\npartial", 18);

	/* B */
	int mb = open_master(1);
	char slave_b[64];
	ptsname_r(mb, slave_b, sizeof(slave_b));
	int sb = open(slave_b, O_RDWR | O_NOCTTY);
	if (sb < 0)
		DIE("open slave B");
	tcgetattr(sb, &t);
	cfmakeraw(&t);
	t.c_cc[VMIN] = 3;
	t.c_cc[VTIME] = 7;
	t.c_iflag |= IXANY | IUTF8;
	t.c_oflag |= OFILL;
	cfsetspeed(&t, B9600);
	if (tcsetattr(sb, TCSANOW, &t) < 0)
		DIE("tcsetattr B");
	struct winsize wb = { 25, 80, 7, 13 };
	ioctl(sb, TIOCSWINSZ, &wb);
	int one = 1;
	if (ioctl(mb, TIOCPKT, &one) < 0 || ioctl(sb, TIOCEXCL) < 0)
		DIE("packet/exclusive B");
	write_str(sb, "out-B\x01\x02\xff", 8);
	write_str(mb, "in-B", 4);

	/* C */
	int mc = open_master(1);
	char slave_c[64];
	ptsname_r(mc, slave_c, sizeof(slave_c));
	int sc = open(slave_c, O_RDWR | O_NOCTTY);
	if (sc < 0)
		DIE("open slave C");
	write_str(sc, "bye", 3);
	close(sc);

	/* D */
	int md = open_master(0);
	if (ioctl(md, TIOCEXCL) < 0)
		DIE("exclusive D");

	/* E */
	int me = open_master(1);
	char slave_e[64];
	ptsname_r(me, slave_e, sizeof(slave_e));
	int se = open(slave_e, O_RDWR | O_NOCTTY);
	if (se < 0)
		DIE("open slave E");
	int index_e = -1;
	ioctl(me, TIOCGPTN, &index_e);
	close(me);

	print_pair("A", ma, sa1);
	say("SLAVES A %d %d", sa1, sa2);
	print_pair("B", mb, sb);
	print_pair("C", mc, -1);
	print_pair("D", md, -1);
	say("HUNG E index=%d slave=%d", index_e, se);
	ready();
	for (;;)
		pause();
}
