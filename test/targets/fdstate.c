/*
 * fdstate: per-description state of fds that real programs set up.
 *   pipe        the read end reopened through /proc/self/fd/N with O_NONBLOCK (two descriptions
 *               of one end, flags of their own); "abc" buffered
 *   owners      the pipe's first read end: O_ASYNC, F_SETOWN_EX (process) and F_SETSIG
 *               SIGRTMIN+3; a socketpair end: F_SETOWN to our process group (negative), no signal
 *   linger      a socketpair end without SO_LINGER, one with {on, 7 s}
 *   abstract    a dgram socket bound to the abstract name "\0cryo\0fd\0<pid>" (NULs inside)
 *   self dgram  a dgram socket bound to $cwd/self.sock and connected to itself, with "self"
 *               queued (sent to itself)
 *   O_TMPFILE   an unnamed file in $cwd, "tmpdata" written, reopened through /proc, offset 7
 *   gone dir    $cwd/a/b/c opened, then $cwd/a/b removed with everything under it
 *   epoll       watches the pipe through a dup of its read end that was then closed (cookie 1),
 *               and the socketpair's first end through a dup whose number now holds /dev/null
 *               (cookie 2): registrations whose fd numbers no longer name the watched files
 * After go every one is checked for exactly that, then used: writing to the pipe raises
 * SIGRTMIN+3 with si_fd; the abstract and self sockets receive what is sent to them.
 */
#include "common.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/epoll.h>

static volatile int sigio_fd = -1, sigio_hits;

static void on_io(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	sigio_hits++;
	sigio_fd = si->si_fd;
}

static socklen_t abstract_addr(struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "cryo#fd#%d", (int)getpid());
	for (int i = 1; i <= n; i++)
		if (a->sun_path[i] == '#')
			a->sun_path[i] = 0;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (!getcwd(a->sun_path, sizeof(a->sun_path) - 16))
		DIE("getcwd");
	strcat(a->sun_path, "/");
	strcat(a->sun_path, name);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
}

static int getfl(int fd) { return fcntl(fd, F_GETFL) & ~0100000; /* O_LARGEFILE, 0 in glibc for 64-bit */ }

int main(void)
{
	struct fdset fds;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_io;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 3, &sa, NULL);

	int p[2];
	if (pipe(p) < 0)
		DIE("pipe");
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p[0]);
	int r2 = open(proc, O_RDONLY | O_NONBLOCK);
	if (r2 < 0)
		DIE("reopen pipe");
	if (write(p[1], "abc", 3) != 3)
		DIE("write pipe");
	struct f_owner_ex own = { F_OWNER_PID, getpid() };
	if (fcntl(p[0], F_SETOWN_EX, &own) < 0 || fcntl(p[0], F_SETSIG, SIGRTMIN + 3) < 0 ||
	    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC) < 0)
		DIE("owner of the pipe");

	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
		DIE("socketpair");
	if (fcntl(sp[0], F_SETOWN, -getpgrp()) < 0)
		DIE("F_SETOWN group");
	struct linger lg = { 1, 7 };
	if (setsockopt(sp[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		DIE("SO_LINGER");

	struct sockaddr_un aa, sa_self;
	socklen_t alen = abstract_addr(&aa);
	int abs_sk = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(abs_sk, (struct sockaddr *)&aa, alen) < 0)
		DIE("bind abstract");
	socklen_t slen = path_addr(&sa_self, "self.sock");
	int self_sk = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(self_sk, (struct sockaddr *)&sa_self, slen) < 0 || connect(self_sk, (struct sockaddr *)&sa_self, slen) < 0)
		DIE("self dgram");
	if (send(self_sk, "self", 4, 0) != 4)
		DIE("send to self");

	int tmp0 = open(".", O_TMPFILE | O_RDWR, 0600);
	if (tmp0 < 0)
		DIE("O_TMPFILE");
	if (write(tmp0, "tmpdata", 7) != 7)
		DIE("write tmpfile");
	/* Kept through a second open: the first description's F_GETFL shows __O_TMPFILE, which a
	 * restored file (created at its name, then removed) cannot have. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tmp0);
	int tmp = open(proc, O_RDWR);
	if (tmp < 0 || lseek(tmp, 7, SEEK_SET) != 7)
		DIE("reopen tmpfile");
	close(tmp0);
	if (mkdir("a", 0755) < 0 || mkdir("a/b", 0755) < 0 || mkdir("a/b/c", 0700) < 0)
		DIE("mkdir");
	int gone = open("a/b/c", O_RDONLY | O_DIRECTORY);
	if (gone < 0 || rmdir("a/b/c") < 0 || rmdir("a/b") < 0)
		DIE("removed dirs");
	int ep = epoll_create1(0);
	int d1 = dup(p[0]), d2 = dup(sp[0]);
	struct epoll_event e1 = { EPOLLIN, { .u64 = 1 } }, e2 = { EPOLLOUT, { .u64 = 2 } };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, d1, &e1) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, d2, &e2) < 0)
		DIE("epoll");
	close(d1);
	close(d2);
	int null_fd = open("/dev/null", O_RDONLY); /* takes d1's number */
	if (null_fd != d1)
		DIE("/dev/null did not take fd %d", d1);
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	ready();
	wait_go();

	CHECK(getfl(p[0]) == (O_RDONLY | O_ASYNC), "pipe read end flags %#o, expected O_RDONLY|O_ASYNC", getfl(p[0]));
	CHECK(getfl(r2) == (O_RDONLY | O_NONBLOCK), "reopened read end flags %#o, expected O_RDONLY|O_NONBLOCK", getfl(r2));
	struct f_owner_ex o1 = { -1, -1 }, o2 = { -1, -1 };
	fcntl(p[0], F_GETOWN_EX, &o1);
	CHECK(o1.type == F_OWNER_PID && o1.pid == getpid(), "pipe owner type %d pid %d", o1.type, o1.pid);
	CHECK(fcntl(p[0], F_GETSIG) == SIGRTMIN + 3, "pipe F_GETSIG %d", fcntl(p[0], F_GETSIG));
	fcntl(sp[0], F_GETOWN_EX, &o2);
	CHECK(o2.type == F_OWNER_PGRP && o2.pid == getpgrp(), "socket owner type %d pid %d", o2.type, o2.pid);
	CHECK(fcntl(sp[0], F_GETSIG) == 0, "socket F_GETSIG %d", fcntl(sp[0], F_GETSIG));
	char buf[64] = { 0 };
	CHECK(read(r2, buf, sizeof(buf)) == 3 && !memcmp(buf, "abc", 3), "pipe data through the reopened end: '%s'", buf);
	CHECK(read(r2, buf, 1) < 0 && errno == EAGAIN, "the reopened end does not say EAGAIN on an empty pipe");
	if (write(p[1], "z", 1) != 1)
		fail("write to the pipe");
	for (int i = 0; i < 100 && !sigio_hits; i++)
		sleep_ms(2);
	CHECK(sigio_hits > 0 && sigio_fd == p[0], "SIGRTMIN+3 for the pipe: %d deliveries, si_fd %d", sigio_hits, sigio_fd);

	struct linger l0 = { -1, -1 }, l1 = { -1, -1 };
	socklen_t ll = sizeof(l0);
	getsockopt(sp[0], SOL_SOCKET, SO_LINGER, &l0, &ll);
	ll = sizeof(l1);
	getsockopt(sp[1], SOL_SOCKET, SO_LINGER, &l1, &ll);
	CHECK(l0.l_onoff == 0, "SO_LINGER set on a socket that had none (%d, %d)", l0.l_onoff, l0.l_linger);
	CHECK(l1.l_onoff == 1 && l1.l_linger == 7, "SO_LINGER {%d, %d}, expected {1, 7}", l1.l_onoff, l1.l_linger);

	struct sockaddr_un got;
	socklen_t glen = sizeof(got);
	getsockname(abs_sk, (struct sockaddr *)&got, &glen);
	CHECK(glen == alen && !memcmp(&got, &aa, alen), "abstract socket name lost (length %u, expected %u)", glen, alen);
	int tx = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(sendto(tx, "hi", 2, 0, (struct sockaddr *)&aa, alen) == 2, "send to the abstract name: %s", strerror(errno));
	memset(buf, 0, sizeof(buf));
	CHECK(recv(abs_sk, buf, sizeof(buf), MSG_DONTWAIT) == 2 && !strcmp(buf, "hi"), "abstract socket got '%s'", buf);
	close(tx);

	glen = sizeof(got);
	CHECK(getpeername(self_sk, (struct sockaddr *)&got, &glen) == 0 && glen == slen && !memcmp(&got, &sa_self, slen),
	      "self dgram socket no longer connected to itself");
	memset(buf, 0, sizeof(buf));
	CHECK(recv(self_sk, buf, sizeof(buf), MSG_DONTWAIT) == 4 && !strcmp(buf, "self"), "self dgram queue: '%s'", buf);
	CHECK(send(self_sk, "again", 5, MSG_DONTWAIT) == 5, "send on the self dgram socket: %s", strerror(errno));
	memset(buf, 0, sizeof(buf));
	CHECK(recv(self_sk, buf, sizeof(buf), MSG_DONTWAIT) == 5 && !strcmp(buf, "again"), "self dgram got '%s'", buf);

	struct stat st;
	fstat(tmp, &st);
	CHECK(st.st_nlink == 0 && S_ISREG(st.st_mode), "O_TMPFILE file has %ld links, mode %o", (long)st.st_nlink, st.st_mode);
	CHECK(lseek(tmp, 0, SEEK_CUR) == 7, "O_TMPFILE offset %ld", (long)lseek(tmp, 0, SEEK_CUR));
	memset(buf, 0, sizeof(buf));
	CHECK(pread(tmp, buf, sizeof(buf), 0) == 7 && !strcmp(buf, "tmpdata"), "O_TMPFILE contents '%s'", buf);
	fstat(gone, &st);
	CHECK(S_ISDIR(st.st_mode) && st.st_nlink == 0 && (st.st_mode & 0777) == 0700, "removed dir: mode %o, %ld links",
	      st.st_mode, (long)st.st_nlink);
	CHECK(access("a/b", F_OK) < 0, "a/b exists again");
	struct epoll_event got_ev[4];
	int n = epoll_wait(ep, got_ev, 4, 0);
	int seen1 = 0, seen2 = 0;
	for (int i = 0; i < n; i++) {
		seen1 |= got_ev[i].data.u64 == 1 && (got_ev[i].events & EPOLLIN);
		seen2 |= got_ev[i].data.u64 == 2 && (got_ev[i].events & EPOLLOUT);
	}
	CHECK(n == 2 && seen2, "epoll: %d events, the socket's (cookie 2) %s", n, seen2 ? "seen" : "missing");
	char z;
	if (read(p[0], &z, 1) == 1 && epoll_wait(ep, got_ev, 4, 0) >= 0) {
		if (write(p[1], "y", 1) == 1) {
			n = epoll_wait(ep, got_ev, 4, 0);
			seen1 = 0;
			for (int i = 0; i < n; i++)
				seen1 |= got_ev[i].data.u64 == 1 && (got_ev[i].events & EPOLLIN);
			CHECK(seen1, "epoll: the pipe (cookie 1, registered through a closed fd) does not report input");
		}
	}
	fdset_compare(&fds);
	return finish();
}
