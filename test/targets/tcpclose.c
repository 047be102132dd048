/*
 * tcpclose FAMILY(4|6) MODE: one process holding both ends of a TCP connection over loopback
 * (a = the client, b = the accepted end), brought by the program itself into a closing state,
 * for c-r-tcp-states.test.ts to checkpoint and restore through the CLI (--tcp-established).
 * Small receive buffers and unread data make each state hold still: a FIN queued behind bytes
 * the peer has no room for is not sent.
 *
 *   half     a writes 20000 bytes and shuts down its sending side; b reads them and the EOF.
 *            Then b writes until its buffers are full: a FIN_WAIT2, b CLOSE_WAIT (a half-closed
 *            connection with data still flowing the other way).
 *   fin1     b writes 3000 bytes a does not read; a writes until its buffers are full, then
 *            shuts down: a FIN_WAIT1 (its FIN queued behind unsent bytes), b ESTABLISHED.
 *   lastack  as half, then b shuts down too: a FIN_WAIT2, b LAST_ACK (its FIN behind unsent bytes).
 *   closing  b writes until full and shuts down (FIN_WAIT1, FIN unsent); a writes 2000 bytes and
 *            shuts down: b gets a's FIN before sending its own: b CLOSING, a FIN_WAIT2.
 *
 * Prints READY a=STATE b=STATE; after go: both states are again what they were (FIN_WAIT2 may
 * come back through FIN_WAIT1 until the peer acknowledges the FIN again: waited for), b's EOF
 * is still there when a had shut down, then each end reads the other's whole stream to its EOF
 * (each end that had not shut down writes EXTRA more bytes first and then shuts down), every
 * byte checked at its position: PASS when nothing was lost, duplicated, reordered or reset.
 * Stream byte i of direction d (0: a -> b, 1: b -> a) is pattern(i, d).
 */
#include "common.h"
#include "loopback.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#define EXTRA 200000

static unsigned char pattern(uint32_t i, uint32_t dir)
{
	uint32_t x = i * 2654435761u;
	return (unsigned char)(((x >> 24) ^ (i >> 8) ^ (dir * 0x5a)) & 0xff);
}

static void setint(int fd, int level, int opt, int v, const char *what)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)))
		DIE("setsockopt %s", what);
}

static int state_of(int fd)
{
	struct tcp_info ti = { 0 };
	socklen_t tl = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl))
		return -1;
	return ti.tcpi_state;
}

/* Waits up to `ms` for the socket to reach `want`; returns the state it is in. */
static int await_state(int fd, int want, int ms)
{
	int s = state_of(fd);
	for (int i = 0; i < ms / 10 && s != want; i++) {
		sleep_ms(10);
		s = state_of(fd);
	}
	return s;
}

/* Writes the stream from *pos until `limit` or a full buffer; -1 on an error. */
static long pump(int fd, uint32_t dir, uint32_t *pos, uint32_t limit)
{
	static unsigned char buf[16384];
	long total = 0;
	while (*pos < limit) {
		uint32_t n = limit - *pos < sizeof(buf) ? limit - *pos : (uint32_t)sizeof(buf);
		for (uint32_t k = 0; k < n; k++)
			buf[k] = pattern(*pos + k, dir);
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			fail("send (direction %u) at byte %u: %s", dir, *pos, strerror(errno));
			return -1;
		}
		*pos += (uint32_t)w;
		total += w;
	}
	return total;
}

/* Writes until the buffers are full (a few rounds: the window opens as the peer acknowledges). */
static void fill(int fd, uint32_t dir, uint32_t *pos)
{
	for (int round = 0; round < 20; round++) {
		pump(fd, dir, pos, 64u << 20);
		sleep_ms(10);
	}
}

/* Reads what is there, checking each byte; 1 at EOF, -1 on an error or a wrong byte. */
static int drain(int fd, uint32_t dir, uint32_t *pos)
{
	static unsigned char buf[16384];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0)
			return 1;
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			fail("recv (direction %u) at byte %u: %s", dir, *pos, strerror(errno));
			return -1;
		}
		for (ssize_t k = 0; k < r; k++) {
			if (buf[k] != pattern(*pos + (uint32_t)k, dir)) {
				fail("direction %u: byte %u is 0x%02x, not 0x%02x", dir, *pos + (uint32_t)k, buf[k], pattern(*pos + (uint32_t)k, dir));
				return -1;
			}
		}
		*pos += (uint32_t)r;
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		DIE("usage: tcpclose 4|6 half|fin1|lastack|closing");
	int v6 = strcmp(argv[1], "6") == 0;
	const char *mode = argv[2];
	int half = !strcmp(mode, "half"), fin1 = !strcmp(mode, "fin1"), lastack = !strcmp(mode, "lastack"), closing = !strcmp(mode, "closing");
	if (!half && !fin1 && !lastack && !closing)
		DIE("unknown mode %s", mode);
	int fam = v6 ? AF_INET6 : AF_INET;
	struct sockaddr_storage ss;
	socklen_t slen = loopback(v6, &ss, 0);
	int lsk = socket(fam, SOCK_STREAM, 0);
	if (lsk < 0)
		DIE("listener socket");
	setint(lsk, SOL_SOCKET, SO_RCVBUF, 8192, "SO_RCVBUF (listener)");
	if (bind(lsk, (struct sockaddr *)&ss, slen) || listen(lsk, 1) || getsockname(lsk, (struct sockaddr *)&ss, &slen))
		DIE("listener");
	int a = socket(fam, SOCK_STREAM, 0);
	if (a < 0)
		DIE("client socket");
	setint(a, SOL_SOCKET, SO_RCVBUF, 8192, "SO_RCVBUF");
	setint(a, SOL_SOCKET, SO_SNDBUF, 16384, "SO_SNDBUF");
	if (connect(a, (struct sockaddr *)&ss, slen))
		DIE("connect");
	int b = accept(lsk, NULL, NULL);
	if (b < 0)
		DIE("accept");
	close(lsk);
	setint(b, SOL_SOCKET, SO_SNDBUF, 16384, "SO_SNDBUF");

	uint32_t ab = 0, ba = 0, ab_read = 0, ba_read = 0; /* written / read, per direction */
	int a_shut = 0, b_shut = 0, want_a, want_b;
	if (half || lastack) {
		while (ab < 20000) {
			if (pump(a, 0, &ab, 20000) < 0)
				DIE("a's 20000 bytes");
			if (drain(b, 0, &ab_read) < 0)
				DIE("b reading");
		}
		if (shutdown(a, SHUT_WR))
			DIE("shutdown a");
		a_shut = 1;
		int eof = 0;
		for (int i = 0; i < 500 && eof == 0; i++) {
			eof = drain(b, 0, &ab_read);
			if (!eof)
				sleep_ms(10);
		}
		if (eof != 1 || ab_read != 20000)
			DIE("b read %u bytes of 20000 and %s", ab_read, eof == 1 ? "EOF" : "no EOF");
		fill(b, 1, &ba);
		if (lastack) {
			if (shutdown(b, SHUT_WR))
				DIE("shutdown b");
			b_shut = 1;
		}
		want_a = TCP_FIN_WAIT2;
		want_b = lastack ? TCP_LAST_ACK : TCP_CLOSE_WAIT;
	} else if (fin1) {
		if (pump(b, 1, &ba, 3000) != 3000)
			DIE("b's 3000 bytes");
		fill(a, 0, &ab);
		if (shutdown(a, SHUT_WR))
			DIE("shutdown a");
		a_shut = 1;
		want_a = TCP_FIN_WAIT1;
		want_b = TCP_ESTABLISHED;
	} else {
		fill(b, 1, &ba);
		if (shutdown(b, SHUT_WR))
			DIE("shutdown b");
		b_shut = 1;
		if (pump(a, 0, &ab, 2000) != 2000)
			DIE("a's 2000 bytes");
		if (shutdown(a, SHUT_WR))
			DIE("shutdown a");
		a_shut = 1;
		want_a = TCP_FIN_WAIT2;
		want_b = TCP_CLOSING;
	}
	int sa = await_state(a, want_a, 5000), sb = await_state(b, want_b, 5000);
	if (sa != want_a || sb != want_b)
		DIE("states a=%d b=%d, not %d and %d", sa, sb, want_a, want_b);
	say("READY a=%d b=%d ab=%u ba=%u", sa, sb, ab, ba);

	wait_go();
	/* The states again (FIN_WAIT2 passes through FIN_WAIT1 while the peer acknowledges again). */
	sa = await_state(a, want_a, 5000);
	sb = await_state(b, want_b, 5000);
	CHECK(sa == want_a, "a in state %d after the restore, not %d", sa, want_a);
	CHECK(sb == want_b, "b in state %d after the restore, not %d", sb, want_b);
	if (a_shut && ab_read == ab) {
		/* b had read everything and the EOF: it is still there. */
		int eof = drain(b, 0, &ab_read);
		CHECK(eof == 1, "b lost a's EOF (read %u more bytes)", ab_read - ab);
	}
	uint32_t ab_want = ab + (a_shut ? 0 : EXTRA), ba_want = ba + (b_shut ? 0 : EXTRA);
	int a_eof = 0, b_eof = 0;
	int64_t deadline = mono_ns() + 60LL * 1000000000LL;
	while ((!a_eof || !b_eof) && !fail_count_) {
		if (mono_ns() > deadline) {
			fail("timed out: a read %u of %u bytes, b read %u of %u", ba_read, ba_want, ab_read, ab_want);
			break;
		}
		if (!a_shut && pump(a, 0, &ab, ab_want) >= 0 && ab == ab_want) {
			if (shutdown(a, SHUT_WR))
				fail("shutdown a after the restore: %s", strerror(errno));
			a_shut = 1;
		}
		if (!b_shut && pump(b, 1, &ba, ba_want) >= 0 && ba == ba_want) {
			if (shutdown(b, SHUT_WR))
				fail("shutdown b after the restore: %s", strerror(errno));
			b_shut = 1;
		}
		int r;
		if (!b_eof && (r = drain(b, 0, &ab_read)) != 0)
			b_eof = r;
		if (!a_eof && (r = drain(a, 1, &ba_read)) != 0)
			a_eof = r;
		if (a_eof < 0 || b_eof < 0)
			break;
		sleep_ms(1);
	}
	CHECK(ab_read == ab_want, "b read %u bytes of a's %u", ab_read, ab_want);
	CHECK(ba_read == ba_want, "a read %u bytes of b's %u", ba_read, ba_want);
	say("a read %u bytes, b read %u", ba_read, ab_read);
	close(a);
	close(b);
	return finish();
}
