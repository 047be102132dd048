/*
 * tcpmany N: N TCP connections over 127.0.0.1 held by one process (for bench/tcp-repair.ts).
 * Pair i is fds first+2i (client) and first+2i+1 (server); each end has written 1000 bytes of
 * pattern(i, side) that its peer has not read. READY n=N first=FD, then waits for SIGUSR2,
 * closes every fd (the bench holds copies) and exits.
 * tcpmany N PORT: N clients of a server outside (127.0.0.1:PORT), fds first+i, each having
 * written 1000 bytes; the same READY and SIGUSR2 (bench/tcp-connections.ts).
 */
#include "common.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

static volatile sig_atomic_t usr2;
static void on_usr2(int s) { (void)s; usr2 = 1; }

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	char buf[1000];
	if (argc > 2) {
		a.sin_port = htons(atoi(argv[2]));
		int first = -1;
		for (int i = 0; i < n; i++) {
			int c = socket(AF_INET, SOCK_STREAM, 0);
			if (c < 0 || connect(c, (struct sockaddr *)&a, alen))
				DIE("connect %d", i);
			if (first < 0)
				first = c;
			if (c != first + i)
				DIE("client %d got fd %d", i, c);
			memset(buf, i & 0xff, sizeof(buf));
			if (write(c, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				DIE("write %d", i);
		}
		signal(SIGUSR2, on_usr2);
		say("READY n=%d first=%d", n, first);
		while (!usr2)
			sleep_ms(10);
		for (int i = 0; i < n; i++)
			close(first + i);
		say("CLOSED");
		return 0;
	}
	int lsk = socket(AF_INET, SOCK_STREAM, 0);
	if (lsk < 0 || bind(lsk, (struct sockaddr *)&a, alen) || listen(lsk, 128) || getsockname(lsk, (struct sockaddr *)&a, &alen))
		DIE("listener");
	/* Park the listener high so the pairs get contiguous fds from 4 on. */
	if (dup2(lsk, 1000 + 3 * n) < 0)
		DIE("dup2");
	close(lsk);
	lsk = 1000 + 3 * n;
	int first = -1;
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, alen))
			DIE("connect %d", i);
		int s = accept(lsk, NULL, NULL);
		if (s != c + 1)
			DIE("accept %d gave fd %d after client fd %d", i, s, c);
		if (first < 0)
			first = c;
		for (int side = 0; side < 2; side++) {
			memset(buf, (i * 2 + side) & 0xff, sizeof(buf));
			if (write(side ? s : c, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				DIE("write %d", i);
		}
	}
	close(lsk);
	signal(SIGUSR2, on_usr2);
	say("READY n=%d first=%d", n, first);
	while (!usr2)
		sleep_ms(10);
	for (int i = 0; i < 2 * n; i++)
		close(first + i);
	say("CLOSED");
	return 0;
}
