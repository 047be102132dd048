/*
 * shelljob: a job run from a terminal, as a shell runs one (test/c-r-shelljob.test.ts): in a
 * process group of its own, the foreground group of the terminal on its stdin/stdout/stderr,
 * in the session of the "shell" that started it. It sets odd terminal settings itself (no echo,
 * erase ^H, a 41x97 window), writes its pid into ./job.pid, prints "JOB READY", then serves
 * lines read from the terminal:
 *   check  -> "CHECK ok" when it is still in the foreground of a terminal that is its controlling
 *             tty, with the settings it made, in a session it does not lead, alone in its group;
 *             else "CHECK FAIL: <what>"
 *   conts  -> "CONTS n": how many SIGCONTs it got (job control: stopped by ^Z, then fg)
 *   quit   -> exits 0
 *   other  -> "ECHO <line>"
 */
#include "common.h"
#include <sys/ioctl.h>
#include <termios.h>

#define ROWS 41
#define COLS 97

static volatile sig_atomic_t conts;

static void on_cont(int sig)
{
	(void)sig;
	conts++;
}

static void check(void)
{
	struct termios t;
	struct winsize w;
	memset(&t, 0, sizeof(t));
	memset(&w, 0, sizeof(w));
	CHECK(isatty(0) && isatty(1), "stdin/stdout are not a terminal");
	CHECK(tcgetpgrp(0) == getpgrp(), "foreground group %d, mine %d", tcgetpgrp(0), getpgrp());
	CHECK(getpgrp() == getpid(), "group %d, expected my own %d", getpgrp(), getpid());
	CHECK(getsid(0) != getpid(), "I lead my session %d", getsid(0));
	pid_t sid = -1;
	CHECK(ioctl(0, TIOCGSID, &sid) == 0 && sid == getsid(0), "the terminal's session %d, mine %d (not my controlling tty?)", sid,
	      getsid(0));
	int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
	CHECK(tty >= 0, "no controlling terminal: %s", strerror(errno));
	if (tty >= 0)
		close(tty);
	CHECK(tcgetattr(0, &t) == 0 && !(t.c_lflag & ECHO) && (t.c_lflag & ICANON) && (t.c_lflag & ISIG) && t.c_cc[VERASE] == 0x08,
	      "termios lflag 0%o erase %d", t.c_lflag, t.c_cc[VERASE]);
	CHECK(ioctl(0, TIOCGWINSZ, &w) == 0 && w.ws_row == ROWS && w.ws_col == COLS, "window %ux%u", w.ws_row, w.ws_col);
	if (fail_count_ == 0)
		say("CHECK ok");
	else
		say("CHECK FAIL: %s", fail_buf_);
	fail_count_ = 0;
	fail_len_ = 0;
	fail_buf_[0] = 0;
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cont;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCONT, &sa, NULL);
	struct termios t;
	if (tcgetattr(0, &t) < 0)
		DIE("tcgetattr");
	t.c_lflag = (t.c_lflag & ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL)) | ICANON | ISIG;
	t.c_cc[VERASE] = 0x08;
	struct winsize w = { ROWS, COLS, 0, 0 };
	if (tcsetattr(0, TCSANOW, &t) < 0 || ioctl(0, TIOCSWINSZ, &w) < 0)
		DIE("terminal settings");
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (write_file("job.pid", pid, (size_t)n) < 0)
		DIE("job.pid");
	say("JOB READY");
	char line[256];
	for (;;) {
		ssize_t got = read(0, line, sizeof(line) - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 3;
		line[got] = 0;
		if (line[got - 1] == '\n')
			line[--got] = 0;
		if (strcmp(line, "check") == 0)
			check();
		else if (strcmp(line, "conts") == 0)
			say("CONTS %d", (int)conts);
		else if (strcmp(line, "quit") == 0)
			return 0;
		else
			say("ECHO %s", line);
	}
}
