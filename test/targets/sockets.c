/*
 * sockets: unix and inet sockets of every kind cryo supports, with data in flight.
 *   unix stream pair      60 KiB + "tail" queued A->B, "pong" queued B->A
 *   unix dgram pair       three datagrams queued (1, 1000 and 5000 bytes), boundaries kept
 *   unix seqpacket pair   two records queued
 *   listener              stream socket bound to $cwd/listen.sock (mode 0640), backlog 7,
 *                         with one connection (from a client of ours) not accepted yet
 *   accepted connection   client connected to the listener, accepted; data queued both ways
 *   abstract dgram        bound to "\0cryo-sockets-PID", one datagram queued by a closed sender
 *   dgram server/client   server bound to $cwd/dgram.sock, client connect()ed to it
 *   half-closed           stream pair: "bye" written, then that end closed -> "bye" then EOF
 *   shutdown              stream pair: one end shut down for writing -> peer sees EOF, can reply
 *   options               SO_RCVBUF, SO_PASSCRED, SO_SNDTIMEO, O_NONBLOCK kept
 *   tcp4 listener         127.0.0.1:ephemeral, SO_REUSEADDR, backlog 5
 *   tcp6 listener         [::]:ephemeral, dual stack (v6only 0), reached over IPv4 after restore
 *   tcp unbound           a TCP socket never bound, TCP_NODELAY set
 *   udp                   server bound to 127.0.0.1:ephemeral, client connected to it
 *   fds in flight         a stream message carrying a file (offset 3), a pipe's read end and a
 *                         socket whose peer the target keeps, all closed by the sender; a
 *                         datagram carrying an eventfd (count 7)
 * After go every one is checked: the data, then that the socket still works.
 */
#include "common.h"

#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/eventfd.h>

#define BIG (60 * 1024)

static struct sockaddr_un path_addr(const char *dir, const char *name, socklen_t *len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1);
	return a;
}

static void send_fds(int sk, const char *text, const int *fds, int n)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)] = { 0 };
	struct iovec iov = { (void *)text, strlen(text) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	if (sendmsg(sk, &m, 0) != (ssize_t)strlen(text))
		DIE("sendmsg with fds");
}

/* Receives a message and the fds it carries; returns how many fds. */
static int recv_fds(int sk, char *text, size_t len, int *fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { text, len - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(sk, &m, MSG_DONTWAIT);
	if (n < 0)
		return -1;
	text[n] = 0;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return 0;
	int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	memcpy(fds, CMSG_DATA(c), sizeof(int) * k);
	return k;
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	getsockopt(fd, level, name, &v, &l);
	return v;
}

static int port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin6_port); /* sin_port and sin6_port sit at the same offset */
}

static ssize_t read_full(int fd, char *buf, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Connect to a TCP port on loopback, accept on the listener, send a byte through. */
static int tcp_roundtrip(int lfd, int family, int port)
{
	int c = socket(family, SOCK_STREAM, 0);
	int r;
	if (family == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = connect(c, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		r = connect(c, (struct sockaddr *)&a, sizeof(a));
	}
	if (r) {
		close(c);
		return 0;
	}
	int s = accept(lfd, NULL, NULL);
	int ok = s >= 0 && write(c, "x", 1) == 1;
	char ch = 0;
	ok = ok && read(s, &ch, 1) == 1 && ch == 'x';
	close(s);
	close(c);
	return ok;
}

int main(void)
{
	static char cwd[200], big[BIG + 4], buf[BIG + 64];
	if (!getcwd(cwd, sizeof(cwd)))
		DIE("getcwd");
	pattern_fill(big, BIG, 11);
	memcpy(big + BIG, "tail", 4);

	int sp[2], dg[2], sq[2], hc[2], sh[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) || socketpair(AF_UNIX, SOCK_STREAM, 0, hc) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sh))
		DIE("socketpair");
	CHECK(write(sp[0], big, BIG + 4) == BIG + 4, "setup: stream pair write");
	CHECK(write(sp[1], "pong", 4) == 4, "setup: stream pair reply");
	static char d1[1] = { 'a' }, d2[1000], d3[5000];
	memset(d2, 'b', sizeof(d2));
	pattern_fill(d3, 4992, 5);
	CHECK(write(dg[0], d1, 1) == 1 && write(dg[0], d2, 1000) == 1000 && write(dg[0], d3, 5000) == 5000, "setup: dgram");
	CHECK(write(sq[1], "record-one", 10) == 10 && write(sq[1], "two", 3) == 3, "setup: seqpacket");
	CHECK(write(hc[0], "bye", 3) == 3, "setup: half-closed");
	close(hc[0]);
	CHECK(write(sh[0], "last", 4) == 4 && shutdown(sh[0], SHUT_WR) == 0, "setup: shutdown");

	socklen_t llen;
	struct sockaddr_un la = path_addr(cwd, "listen.sock", &llen);
	int lis = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lis, (struct sockaddr *)&la, llen) || listen(lis, 7))
		DIE("unix listen");
	chmod(la.sun_path, 0640);
	int cli = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(cli, (struct sockaddr *)&la, llen))
		DIE("unix connect");
	int acc = accept(lis, NULL, NULL);
	if (acc < 0)
		DIE("unix accept");
	CHECK(write(cli, "hello server", 12) == 12 && write(acc, "hello client", 12) == 12, "setup: accepted");
	int pend = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(pend, (struct sockaddr *)&la, llen))
		DIE("pending connect");

	struct sockaddr_un ab = { .sun_family = AF_UNIX };
	int ablen = snprintf(ab.sun_path + 1, sizeof(ab.sun_path) - 1, "cryo-sockets-%d", getpid());
	socklen_t ablen_all = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + ablen);
	int abs_sk = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(abs_sk, (struct sockaddr *)&ab, ablen_all))
		DIE("abstract bind");
	int tmp = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(sendto(tmp, "to-abstract", 11, 0, (struct sockaddr *)&ab, ablen_all) == 11, "setup: abstract send");
	close(tmp);

	socklen_t dlen;
	struct sockaddr_un da = path_addr(cwd, "dgram.sock", &dlen);
	int dsrv = socket(AF_UNIX, SOCK_DGRAM, 0), dcli = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(dsrv, (struct sockaddr *)&da, dlen) || connect(dcli, (struct sockaddr *)&da, dlen))
		DIE("dgram server/client");

	int rcvbuf = 100000, one = 1;
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(dsrv, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	struct timeval tv = { 3, 500000 };
	setsockopt(dcli, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	fcntl(sq[0], F_SETFL, O_NONBLOCK);
	int rcvbuf_was = opt(sp[1], SOL_SOCKET, SO_RCVBUF);

	int t4 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(t4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(t4, (struct sockaddr *)&a4, sizeof(a4)) || listen(t4, 5))
		DIE("tcp4 listen");
	int t6 = socket(AF_INET6, SOCK_STREAM, 0);
	int zero = 0;
	setsockopt(t6, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	if (bind(t6, (struct sockaddr *)&a6, sizeof(a6)) || listen(t6, 9))
		DIE("tcp6 listen");
	int tu = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(tu, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int usrv = socket(AF_INET, SOCK_DGRAM, 0), ucli = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(usrv, (struct sockaddr *)&a4, sizeof(a4)))
		DIE("udp bind");
	struct sockaddr_in ua = a4;
	ua.sin_port = htons(port_of(usrv));
	if (connect(ucli, (struct sockaddr *)&ua, sizeof(ua)))
		DIE("udp connect");
	int p4 = port_of(t4), p6 = port_of(t6), pu = port_of(usrv);

	int pass[2], pp[2], sp2[2], dp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pass) || pipe(pp) || socketpair(AF_UNIX, SOCK_STREAM, 0, sp2) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, dp) || write_file("passed.txt", "0123456789", 10))
		DIE("fds in flight: setup");
	int ff = open("passed.txt", O_RDWR);
	lseek(ff, 3, SEEK_SET);
	int three[3] = { ff, pp[0], sp2[1] };
	send_fds(pass[0], "with-fds", three, 3);
	int efd = eventfd(7, 0);
	send_fds(dp[0], "dgram-fd", &efd, 1);
	close(ff);
	close(pp[0]);
	close(sp2[1]);
	close(efd);

	static struct fdset before;
	fdset_take(&before);
	ready();
	wait_go();

	/* stream pair */
	CHECK(read_full(sp[1], buf, BIG + 4) == BIG + 4 && pattern_check(buf, BIG, 11) < 0 && memcmp(buf + BIG, "tail", 4) == 0,
	      "stream pair: queued data differs");
	CHECK(read(sp[0], buf, 16) == 4 && memcmp(buf, "pong", 4) == 0, "stream pair: reply differs");
	CHECK(write(sp[1], "again", 5) == 5 && read(sp[0], buf, 16) == 5, "stream pair: no longer connected");
	CHECK(opt(sp[1], SOL_SOCKET, SO_RCVBUF) == rcvbuf_was, "SO_RCVBUF %d, expected %d", opt(sp[1], SOL_SOCKET, SO_RCVBUF), rcvbuf_was);
	/* dgram pair */
	CHECK(recv(dg[1], buf, sizeof(buf), 0) == 1 && buf[0] == 'a', "dgram 1 differs");
	CHECK(recv(dg[1], buf, sizeof(buf), 0) == 1000 && buf[999] == 'b', "dgram 2 differs");
	CHECK(recv(dg[1], buf, sizeof(buf), 0) == 5000 && pattern_check(buf, 4992, 5) < 0, "dgram 3 differs");
	/* seqpacket */
	ssize_t n = recv(sq[0], buf, sizeof(buf), 0);
	CHECK(n == 10 && memcmp(buf, "record-one", 10) == 0, "seqpacket record 1: %zd bytes", n);
	n = recv(sq[0], buf, sizeof(buf), 0);
	CHECK(n == 3 && memcmp(buf, "two", 3) == 0, "seqpacket record 2: %zd bytes", n);
	CHECK(recv(sq[0], buf, sizeof(buf), 0) < 0 && errno == EAGAIN, "seqpacket: O_NONBLOCK lost or extra record");
	/* accepted connection */
	CHECK(read(acc, buf, 64) == 12 && memcmp(buf, "hello server", 12) == 0, "accepted: server side data differs");
	CHECK(read(cli, buf, 64) == 12 && memcmp(buf, "hello client", 12) == 0, "accepted: client side data differs");
	CHECK(write(cli, "more", 4) == 4 && read(acc, buf, 64) == 4, "accepted: no longer connected");
	/* listener: the connection that was waiting is accepted, then a new client gets through */
	int ap = accept4(lis, NULL, NULL, SOCK_NONBLOCK);
	CHECK(ap >= 0 && write(pend, "p", 1) == 1 && read(ap, buf, 1) == 1 && buf[0] == 'p', "pending connection lost: %s", strerror(errno));
	close(ap);
	struct stat st;
	CHECK(stat(la.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0640, "listener path: %s",
	      strerror(errno));
	int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(connect(c2, (struct sockaddr *)&la, llen) == 0, "listener: connect: %s", strerror(errno));
	int a2 = accept(lis, NULL, NULL);
	CHECK(a2 >= 0 && write(c2, "z", 1) == 1 && read(a2, buf, 1) == 1, "listener: accept/exchange");
	close(a2);
	close(c2);
	/* abstract */
	CHECK(recv(abs_sk, buf, 64, MSG_DONTWAIT) == 11 && memcmp(buf, "to-abstract", 11) == 0, "abstract: queued datagram");
	tmp = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(sendto(tmp, "x", 1, 0, (struct sockaddr *)&ab, ablen_all) == 1 && recv(abs_sk, buf, 64, 0) == 1,
	      "abstract: name not bound");
	close(tmp);
	/* dgram server/client */
	CHECK(send(dcli, "ping", 4, 0) == 4 && recv(dsrv, buf, 64, MSG_DONTWAIT) == 4, "dgram client: not connected to server");
	CHECK(opt(dsrv, SOL_SOCKET, SO_PASSCRED) == 1, "SO_PASSCRED lost");
	struct timeval tv2;
	socklen_t tl = sizeof(tv2);
	getsockopt(dcli, SOL_SOCKET, SO_SNDTIMEO, &tv2, &tl);
	CHECK(tv2.tv_sec == 3 && tv2.tv_usec == 500000, "SO_SNDTIMEO %ld.%06ld", (long)tv2.tv_sec, (long)tv2.tv_usec);
	/* half-closed and shutdown */
	CHECK(read(hc[1], buf, 16) == 3 && memcmp(buf, "bye", 3) == 0, "half-closed: data");
	CHECK(read(hc[1], buf, 16) == 0, "half-closed: no EOF");
	CHECK(read(sh[1], buf, 16) == 4 && read(sh[1], buf, 16) == 0, "shutdown: data then EOF");
	CHECK(write(sh[1], "ack", 3) == 3 && read(sh[0], buf, 16) == 3, "shutdown: reply");
	/* inet */
	CHECK(port_of(t4) == p4 && port_of(t6) == p6 && port_of(usrv) == pu, "ports changed");
	CHECK(opt(t4, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR lost");
	CHECK(opt(t6, IPPROTO_IPV6, IPV6_V6ONLY) == 0, "IPV6_V6ONLY changed");
	CHECK(opt(tu, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY lost");
	CHECK(tcp_roundtrip(t4, AF_INET, p4), "tcp4 listener: no connection");
	CHECK(tcp_roundtrip(t6, AF_INET, p6), "tcp6 dual-stack listener: no IPv4 connection");
	CHECK(tcp_roundtrip(t6, AF_INET6, p6), "tcp6 listener: no IPv6 connection");
	CHECK(send(ucli, "udp!", 4, 0) == 4 && recv(usrv, buf, 64, 0) == 4 && memcmp(buf, "udp!", 4) == 0, "udp: datagram lost");
	/* fds in flight */
	int got[4];
	char text[64];
	int k = recv_fds(pass[1], text, sizeof(text), got);
	CHECK(k == 3 && strcmp(text, "with-fds") == 0, "stream message with fds: %d fds, text '%s'", k, k >= 0 ? text : "");
	if (k == 3) {
		char b[16] = { 0 };
		CHECK(lseek(got[0], 0, SEEK_CUR) == 3 && read(got[0], b, 15) == 7 && strcmp(b, "3456789") == 0, "file in flight: '%s'", b);
		CHECK(write(pp[1], "pipe!", 5) == 5 && read(got[1], b, 15) == 5 && memcmp(b, "pipe!", 5) == 0, "pipe end in flight");
		CHECK(write(sp2[0], "sock!", 5) == 5 && read(got[2], b, 15) == 5 && memcmp(b, "sock!", 5) == 0, "socket in flight");
		for (int i = 0; i < 3; i++)
			close(got[i]);
	}
	k = recv_fds(dp[1], text, sizeof(text), got);
	CHECK(k == 1 && strcmp(text, "dgram-fd") == 0, "datagram with an fd: %d fds", k);
	if (k == 1) {
		uint64_t v = 0;
		CHECK(read(got[0], &v, 8) == 8 && v == 7, "eventfd in flight: count %llu", (unsigned long long)v);
		close(got[0]);
	}
	fdset_compare(&before);
	return finish();
}
