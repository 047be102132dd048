/*
 * tcpsynsent FAMILY(4|6) PORT: a connect in progress (SYN_SENT) to loopback:PORT, whose answers
 * the test drops, for c-r-tcp-states.test.ts. Prints READY state=2 port=LOCALPORT once the
 * socket is in SYN_SENT; after go (the test lets the answers through) waits for the connect to
 * complete (SO_ERROR 0, the same local port as before), writes 100000 bytes of direction 0,
 * shuts down its side and reads the server's stream (direction 1) to EOF, checking every byte.
 * PASS when the connection came up and nothing was lost, duplicated or reordered.
 */
#include "common.h"
#include "loopback.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#define OUT 100000

static unsigned char pattern(uint32_t i, uint32_t dir)
{
	uint32_t x = i * 2654435761u;
	return (unsigned char)(((x >> 24) ^ (i >> 8) ^ (dir * 0x5a)) & 0xff);
}

static int state_of(int fd)
{
	struct tcp_info ti = { 0 };
	socklen_t tl = sizeof(ti);
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) ? -1 : ti.tcpi_state;
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &l))
		return -1;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		DIE("usage: tcpsynsent 4|6 PORT");
	int v6 = strcmp(argv[1], "6") == 0;
	int port = atoi(argv[2]);
	struct sockaddr_storage ss;
	socklen_t slen = loopback(v6, &ss, port);
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		DIE("socket");
	if (connect(fd, (struct sockaddr *)&ss, slen) == 0 || errno != EINPROGRESS)
		DIE("connect did not stay in progress");
	sleep_ms(100);
	int st = state_of(fd), lport = local_port(fd);
	if (st != TCP_SYN_SENT)
		DIE("state %d, not SYN_SENT (are the answers dropped?)", st);
	say("READY state=%d port=%d", st, lport);

	wait_go();
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int n = poll(&p, 1, 60000);
	int err = -1;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	CHECK(n == 1 && err == 0, "connect did not complete after the restore: poll %d, SO_ERROR %d (%s), state %d", n, err, strerror(err), state_of(fd));
	if (fail_count_)
		return finish();
	CHECK(local_port(fd) == lport, "local port %d after the restore, not %d", local_port(fd), lport);
	static unsigned char buf[16384];
	uint32_t out = 0, in = 0;
	int eof = 0;
	int64_t deadline = mono_ns() + 60LL * 1000000000LL;
	while (!eof && !fail_count_ && mono_ns() < deadline) {
		if (out < OUT) {
			uint32_t k = OUT - out < sizeof(buf) ? OUT - out : (uint32_t)sizeof(buf);
			for (uint32_t i = 0; i < k; i++)
				buf[i] = pattern(out + i, 0);
			ssize_t w = send(fd, buf, k, MSG_NOSIGNAL);
			if (w > 0)
				out += (uint32_t)w;
			else if (errno != EAGAIN)
				fail("send at byte %u: %s", out, strerror(errno));
			if (out == OUT && shutdown(fd, SHUT_WR))
				fail("shutdown: %s", strerror(errno));
		}
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0)
			eof = 1;
		else if (r < 0 && errno != EAGAIN)
			fail("recv at byte %u: %s", in, strerror(errno));
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pattern(in + (uint32_t)i, 1)) {
				fail("byte %u is 0x%02x, not 0x%02x", in + (uint32_t)i, buf[i], pattern(in + (uint32_t)i, 1));
				break;
			}
		if (r > 0)
			in += (uint32_t)r;
		if (r < 0)
			sleep_ms(1);
	}
	CHECK(eof, "no EOF from the server (read %u bytes)", in);
	say("sent %u bytes, read %u", out, in);
	close(fd);
	return finish();
}
