/*
 * tcpconn FAMILY(4|6): a TCP client and server of ours connected over loopback, with data in
 * flight both ways, for test/tcp-repair.test.ts (the test takes the client's socket over).
 *
 *   setup      client options set before any data: TCP_NODELAY, SO_REUSEADDR, SO_KEEPALIVE with idle 77,
 *              intvl 11, cnt 5, a small SO_RCVBUF (set before connect);
 *              server -> client: written until the server's send buffer is full (the client
 *              reads nothing: its receive queue is full, the rest waits in the server);
 *              client -> server: 20000 bytes, acknowledged, unread by the server.
 *              READY client=FD s2c=N
 *   SIGUSR1    (the test drops what reaches the server) the client writes 30000 bytes: sent,
 *              never acknowledged.  SENT
 *   SIGUSR1    (the test has locked the network: nothing leaves) the client corks and writes
 *              700 bytes: never sent.  WROTE c2s=N
 *   SIGUSR2    the client's fd is closed (the test holds a copy in repair mode).  CLOSED
 *   go         the server reads the whole client stream, c2s + EXTRA bytes (the test writes
 *              EXTRA more once it owns the connection), checking every byte's position, and
 *              writes EXTRA more bytes after its first s2c; then it expects EOF (the test
 *              shuts down its side) and closes. PASS when nothing was lost, duplicated,
 *              reordered or reset.
 * With a second argument "both" the server's fd is closed too on SIGUSR2 (the test took both
 * ends over) and the target ends there.
 * With "half" the client shuts down its sending side after its 20000 bytes and waits (in
 * FIN_WAIT2) for SIGUSR2 at once, printing WROTE; after go the server expects no more client bytes.
 * With "peerclosed" the server writes 5000 bytes and shuts down its side at once: the client,
 * reading nothing, is in CLOSE_WAIT with the 5000 bytes queued; after go the server writes nothing.
 * "fin1", "lastack" and "closing" are variants in which the test shuts ends down itself, on its
 * copies of the target's sockets, with packets dropped (see the comments at their flags).
 * Stream byte i of direction d is pattern(i, d) (the test computes the same).
 */
#include "common.h"
#include "loopback.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#define EXTRA 100000

static unsigned char pattern(uint32_t i, uint32_t dir)
{
	uint32_t x = i * 2654435761u;
	return (unsigned char)(((x >> 24) ^ (i >> 8) ^ (dir * 0x5a)) & 0xff);
}

static volatile sig_atomic_t usr1, usr2;
static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_usr2(int s) { (void)s; usr2 = 1; }

static void setint(int fd, int level, int opt, int v, const char *what)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)))
		DIE("setsockopt %s", what);
}

static void nonblock(int fd)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		DIE("O_NONBLOCK");
}

/* Writes the stream from *pos on until `limit` or a full buffer; returns bytes written. */
static long pump(int fd, uint32_t dir, uint32_t *pos, uint32_t limit)
{
	static unsigned char buf[16384];
	long total = 0;
	while (*pos < limit) {
		uint32_t n = limit - *pos < sizeof(buf) ? limit - *pos : (uint32_t)sizeof(buf);
		for (uint32_t k = 0; k < n; k++)
			buf[k] = pattern(*pos + k, dir);
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			fail("send on fd %d at byte %u: %s", fd, *pos, strerror(errno));
			return -1;
		}
		*pos += (uint32_t)w;
		total += w;
	}
	return total;
}

/* Waits for the socket to reach a TCP state (the handshake of a shutdown is asynchronous). */
static void await_state(int fd, int want)
{
	struct tcp_info ti = { 0 };
	socklen_t tl = sizeof(ti);
	for (int i = 0; i < 500 && (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) || ti.tcpi_state != want); i++)
		sleep_ms(10);
	if (ti.tcpi_state != want)
		DIE("socket in state %d, not %d", ti.tcpi_state, want);
}

int main(int argc, char **argv)
{
	int v6 = argc > 1 && strcmp(argv[1], "6") == 0;
	int both = argc > 2 && strcmp(argv[2], "both") == 0;
	/* fin1: as half, but the test shuts the client down itself (with the FIN's ACK lost). */
	int fin1 = argc > 2 && strcmp(argv[2], "fin1") == 0;
	int half = fin1 || (argc > 2 && strcmp(argv[2], "half") == 0);
	/* lastack: as peerclosed, but the test closes the client's side too: no more client bytes. */
	int last_ack = argc > 2 && strcmp(argv[2], "lastack") == 0;
	int peer_closed = last_ack || (argc > 2 && strcmp(argv[2], "peerclosed") == 0);
	/* closing: 5000 bytes each way as peerclosed, nobody shuts down (the test does, on its
	 * copies of both ends), both fds closed on SIGUSR2 as with "both". */
	int closing = argc > 2 && strcmp(argv[2], "closing") == 0;
	both |= closing;
	int fam = v6 ? AF_INET6 : AF_INET;
	struct sockaddr_storage ss;
	socklen_t slen = loopback(v6, &ss, 0);
	int lsk = socket(fam, SOCK_STREAM, 0);
	if (lsk < 0 || bind(lsk, (struct sockaddr *)&ss, slen) || listen(lsk, 1))
		DIE("listener");
	if (getsockname(lsk, (struct sockaddr *)&ss, &slen))
		DIE("getsockname");

	int cli = socket(fam, SOCK_STREAM, 0);
	if (cli < 0)
		DIE("client socket");
	setint(cli, SOL_SOCKET, SO_RCVBUF, 16384, "SO_RCVBUF");
	setint(cli, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	setint(cli, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	setint(cli, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	setint(cli, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
	setint(cli, IPPROTO_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
	setint(cli, IPPROTO_TCP, TCP_KEEPCNT, 5, "TCP_KEEPCNT");
	if (connect(cli, (struct sockaddr *)&ss, slen))
		DIE("connect");
	int srv = accept(lsk, NULL, NULL);
	if (srv < 0)
		DIE("accept");
	close(lsk);
	nonblock(srv);
	nonblock(cli);

	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);

	uint32_t s2c = 0, c2s = 0;
	/* Several rounds: the server's send buffer grows a little as the client acknowledges. */
	for (int round = 0; round < 20; round++) {
		pump(srv, 1, &s2c, peer_closed || closing ? 5000 : 64u << 20);
		sleep_ms(10);
	}
	if (peer_closed && shutdown(srv, SHUT_WR))
		DIE("server shutdown");
	if (pump(cli, 0, &c2s, 20000) != 20000)
		DIE("client could not queue 20000 bytes");
	/* half: the client is done writing, its FIN acknowledged (FIN_WAIT2, the server CLOSE_WAIT). */
	if (half && !fin1 && shutdown(cli, SHUT_WR))
		DIE("shutdown");
	if ((half && !fin1) || peer_closed)
		await_state(cli, half ? TCP_FIN_WAIT2 : TCP_CLOSE_WAIT);
	say("READY client=%d server=%d s2c=%u", cli, srv, s2c);

	while (!half && !peer_closed && !closing && !usr1)
		sleep_ms(10);
	if (half || peer_closed || closing) {
		say("WROTE c2s=%u", c2s);
		goto handover;
	}
	if (pump(cli, 0, &c2s, 50000) != 30000)
		DIE("client could not write 30000 bytes");
	say("SENT");
	usr1 = 0;
	while (!usr1)
		sleep_ms(10);
	setint(cli, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
	if (pump(cli, 0, &c2s, 50700) != 700)
		DIE("client could not queue 700 corked bytes");
	say("WROTE c2s=%u", c2s);

handover:
	while (!usr2)
		sleep_ms(10);
	close(cli);
	if (both) {
		/* The test took both ends: it recreates and drives them itself. */
		close(srv);
		say("CLOSED");
		return finish();
	}
	say("CLOSED");

	wait_go();
	uint32_t want_in = c2s + (half || last_ack ? 0 : EXTRA), want_out = s2c + (peer_closed ? 0 : EXTRA), got = 0;
	int eof = 0;
	static unsigned char in[65536];
	/* The client may finish (FIN) before we do: a half-closed connection still takes our bytes. */
	while ((!eof || s2c < want_out) && fail_count_ == 0) {
		struct pollfd p = { srv, (eof ? 0 : POLLIN) | (s2c < want_out ? POLLOUT : 0), 0 };
		if (poll(&p, 1, 60000) <= 0) {
			fail("no progress for 60 s: read %u of %u, wrote %u of %u", got, want_in, s2c, want_out);
			break;
		}
		if (p.revents & POLLOUT)
			pump(srv, 1, &s2c, want_out);
		if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = recv(srv, in, sizeof(in), 0);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				fail("recv after %u bytes: %s", got, strerror(errno));
			if (n == 0)
				eof = 1;
			for (ssize_t k = 0; k < n && fail_count_ == 0; k++, got++)
				CHECK(in[k] == pattern(got, 0), "client byte %u is %u, expected %u", got, in[k], pattern(got, 0));
		}
	}
	CHECK(got == want_in, "the server read %u bytes of the client's stream, expected %u", got, want_in);
	CHECK(s2c == want_out, "the server wrote %u bytes, expected %u", s2c, want_out);
	close(srv);
	return finish();
}
