/*
 * tcpstream FAMILY(4|6) MODE: TCP connections that keep flowing both ways through checkpoints,
 * for test/c-r-tcp.test.ts.
 *
 *   pair          the process listens on loopback and forks a child that connects to it: the
 *                 server (parent) and the client (child) are both in the tree.
 *   serve         the server alone (a process the test does not dump): prints READY port=N
 *                 once a client has connected and the exchange is under way.
 *   connect PORT  the client alone, connected to a server outside the tree.
 *
 * Each end streams TOTAL bytes to the other, byte i of direction d being pattern(i, d) (d 0:
 * client to server, 1: server to client), and checks every byte it reads, in order. Until `go`
 * each end reads slowly (4 KiB every 10 ms) and writes whatever fits: both receive queues are
 * full and both send queues hold bytes sent but not acknowledged and bytes never sent. READY
 * once 256 KiB went each way and a send found its queue full. After `go` each end reads at full
 * speed, writes the rest, shuts down its sending side and reads to EOF: PASS when each end got
 * exactly TOTAL bytes, in order (nothing lost, duplicated or reordered), no error or reset, and
 * its fd table as it was. In pair mode the server reports the client's result too.
 */
#include "common.h"
#include "loopback.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define TOTAL (24u << 20)
#define EARLY (256u << 10)

static unsigned char pattern(uint32_t i, uint32_t dir)
{
	uint32_t x = i * 2654435761u;
	return (unsigned char)(((x >> 24) ^ (i >> 8) ^ (dir * 0x5a)) & 0xff);
}

struct end {
	int fd;
	uint32_t out_dir, sent, got;
	int full, shut, eof;
};

/* Writes what fits of the stream (up to TOTAL); notes a full queue. */
static void pump(struct end *e)
{
	static unsigned char buf[65536];
	while (e->sent < TOTAL) {
		uint32_t n = TOTAL - e->sent < sizeof(buf) ? TOTAL - e->sent : (uint32_t)sizeof(buf);
		for (uint32_t k = 0; k < n; k++)
			buf[k] = pattern(e->sent + k, e->out_dir);
		ssize_t w = send(e->fd, buf, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN) {
				e->full = 1;
				return;
			}
			if (errno == EINTR)
				continue;
			fail("send at byte %u: %s", e->sent, strerror(errno));
			return;
		}
		e->sent += (uint32_t)w;
	}
}

/* Reads at most `limit` bytes, checking each one's place in the stream. */
static void drain(struct end *e, size_t limit)
{
	static unsigned char buf[65536];
	uint32_t in_dir = !e->out_dir;
	while (limit > 0 && !e->eof && fail_count_ == 0) {
		size_t want = limit < sizeof(buf) ? limit : sizeof(buf);
		ssize_t n = recv(e->fd, buf, want, 0);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			if (errno == EINTR)
				continue;
			fail("recv after %u bytes: %s", e->got, strerror(errno));
			return;
		}
		if (n == 0) {
			e->eof = 1;
			return;
		}
		for (ssize_t k = 0; k < n; k++, e->got++) {
			if (buf[k] != pattern(e->got, in_dir)) {
				fail("byte %u of the stream is %u, expected %u", e->got, buf[k], pattern(e->got, in_dir));
				return;
			}
		}
		limit -= (size_t)n;
	}
}

/* The exchange of one end; `on_ready` once it is under way (NULL: nothing to say). */
static void exchange(struct end *e, void (*on_ready)(void))
{
	int said = 0;
	while (!go_exists() && fail_count_ == 0) {
		pump(e);
		drain(e, 4096);
		if (!said && e->sent >= EARLY && e->got >= EARLY && e->full) {
			said = 1;
			if (on_ready)
				on_ready();
		}
		/* A wait with a timeout: a checkpoint often lands in it. */
		struct pollfd p = { e->fd, POLLERR, 0 };
		poll(&p, 1, 10);
		if (p.revents & POLLERR)
			fail("socket error while streaming");
	}
	int64_t deadline = mono_ns() + 120 * 1000000000LL;
	while ((!e->eof || !e->shut) && fail_count_ == 0) {
		pump(e);
		if (e->sent == TOTAL && !e->shut) {
			if (shutdown(e->fd, SHUT_WR))
				fail("shutdown: %s", strerror(errno));
			e->shut = 1;
		}
		drain(e, (size_t)-1);
		struct pollfd p = { e->fd, (e->eof ? 0 : POLLIN) | (e->sent < TOTAL ? POLLOUT : 0), 0 };
		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		if (mono_ns() > deadline) {
			fail("no end after go: sent %u, got %u of %u", e->sent, e->got, TOTAL);
			break;
		}
	}
	CHECK(e->got == TOTAL, "read %u bytes before EOF, expected %u", e->got, TOTAL);
}

static void nonblock(int fd)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		DIE("O_NONBLOCK");
}

static int listener(int v6, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(v6, &ss, 0);
	int l = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 1) || getsockname(l, (struct sockaddr *)&ss, &len))
		DIE("listener");
	*port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	return l;
}

static int dial(int v6, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(v6, &ss, port);
	int c = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
		DIE("connect to port %d", port);
	return c;
}

static int port_;
static void say_ready(void) { say("READY"); }
static void say_ready_port(void) { say("READY port=%d", port_); }

int main(int argc, char **argv)
{
	if (argc < 3)
		DIE("usage: tcpstream 4|6 pair|serve|connect PORT");
	int v6 = strcmp(argv[1], "6") == 0;
	const char *mode = argv[2];
	struct fdset fds;
	struct end e = { 0 };

	if (strcmp(mode, "connect") == 0) {
		e.fd = dial(v6, argc > 3 ? atoi(argv[3]) : 0);
		nonblock(e.fd);
		if (fdset_take(&fds) < 0)
			DIE("fdset");
		e.out_dir = 0;
		exchange(&e, say_ready);
		fdset_compare(&fds);
		close(e.fd);
		return finish();
	}
	int l = listener(v6, &port_);
	if (strcmp(mode, "serve") == 0) {
		e.fd = accept(l, NULL, NULL);
		if (e.fd < 0)
			DIE("accept");
		close(l);
		nonblock(e.fd);
		if (fdset_take(&fds) < 0)
			DIE("fdset");
		e.out_dir = 1;
		exchange(&e, say_ready_port);
		fdset_compare(&fds);
		close(e.fd);
		return finish();
	}
	if (strcmp(mode, "pair") != 0)
		DIE("unknown mode %s", mode);
	pid_t kid = fork();
	if (kid < 0)
		DIE("fork");
	if (kid == 0) {
		close(l);
		e.fd = dial(v6, port_);
		nonblock(e.fd);
		if (fdset_take(&fds) < 0)
			_exit(2);
		e.out_dir = 0;
		exchange(&e, NULL);
		fdset_compare(&fds);
		close(e.fd);
		if (fail_count_)
			say("client: FAILED: %s", fail_buf_);
		_exit(fail_count_ ? 1 : 0);
	}
	e.fd = accept(l, NULL, NULL);
	if (e.fd < 0)
		DIE("accept");
	close(l);
	nonblock(e.fd);
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	e.out_dir = 1;
	exchange(&e, say_ready);
	fdset_compare(&fds);
	close(e.fd);
	int st = 0;
	if (waitpid(kid, &st, 0) != kid)
		fail("waitpid %d: %s", kid, strerror(errno));
	else
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the client ended with status 0x%x", st);
	return finish();
}
