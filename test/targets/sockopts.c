/*
 * sockopts: socket options beyond the ones CRIU's images name, as programs set them.
 *   udp4 server   IP_TOS, IP_TTL, IP_RECVERR, IP_PKTINFO, IP_MULTICAST_TTL/LOOP, SO_TIMESTAMP,
 *                 UDP_SEGMENT; a client connected to it
 *   udp6          IPV6_UNICAST_HOPS, IPV6_TCLASS, IPV6_RECVPKTINFO, IPV6_MULTICAST_HOPS
 *   tcp listener  IP_FREEBIND, TCP_DEFER_ACCEPT, TCP_FASTOPEN, TCP_USER_TIMEOUT, TCP_CONGESTION
 *                 "reno"
 *   tcp unbound   TCP_NOTSENT_LOWAT, TCP_SYNCNT, TCP_LINGER2
 *   unix dgram    SO_TIMESTAMPNS, SO_PEEK_OFF 0
 *   multicast     a udp4 socket on the wildcard address that joined 239.1.2.3 on lo (any
 *                 source) and 239.1.2.4 from 127.0.0.1 only (a source-specific join)
 * After go: every option reads back as it did before the checkpoint, and they still work: a
 * datagram to the udp4 server arrives with its IP_PKTINFO and SO_TIMESTAMP control messages, a
 * client of the listener is accepted once it has sent (TCP_DEFER_ACCEPT), the unix pair hands
 * out a datagram with SCM_TIMESTAMPNS, and datagrams sent to both groups reach the member.
 */
#include "common.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <net/if.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

struct opt {
	int *fd;
	int level, name;
	int value;
	const char *label;
	int got;
};

static int u4, u4c, u6, tl, tu, ux[2], um;

static struct opt opts[] = {
	{ &u4, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS", 0 },
	{ &u4, IPPROTO_IP, IP_TTL, 33, "IP_TTL", 0 },
	{ &u4, IPPROTO_IP, IP_RECVERR, 1, "IP_RECVERR", 0 },
	{ &u4, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO", 0 },
	{ &u4, IPPROTO_IP, IP_MULTICAST_TTL, 5, "IP_MULTICAST_TTL", 0 },
	{ &u4, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP", 0 },
	{ &u4, SOL_SOCKET, SO_TIMESTAMP, 1, "SO_TIMESTAMP", 0 },
	{ &u4, IPPROTO_UDP, UDP_SEGMENT, 1000, "UDP_SEGMENT", 0 },
	{ &u6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7, "IPV6_UNICAST_HOPS", 0 },
	{ &u6, IPPROTO_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS", 0 },
	{ &u6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO", 0 },
	{ &u6, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 3, "IPV6_MULTICAST_HOPS", 0 },
	{ &tl, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND", 0 },
	{ &tl, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5, "TCP_DEFER_ACCEPT", 0 },
	{ &tl, IPPROTO_TCP, TCP_FASTOPEN, 16, "TCP_FASTOPEN", 0 },
	{ &tl, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT", 0 },
	{ &tu, IPPROTO_TCP, TCP_NOTSENT_LOWAT, 4096, "TCP_NOTSENT_LOWAT", 0 },
	{ &tu, IPPROTO_TCP, TCP_SYNCNT, 3, "TCP_SYNCNT", 0 },
	{ &tu, IPPROTO_TCP, TCP_LINGER2, 7, "TCP_LINGER2", 0 },
	{ &ux[0], SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS", 0 },
	{ &ux[0], SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF", 0 },
};
#define NOPTS (int)(sizeof(opts) / sizeof(opts[0]))

static int get(int fd, int level, int name)
{
	int v = -12345;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, level, name, &v, &l))
		return -12345;
	return v;
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin_port);
}

static void congestion(int fd, char *out, size_t n)
{
	socklen_t l = (socklen_t)n;
	memset(out, 0, n);
	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, out, &l))
		snprintf(out, n, "?");
}

static void group_addr(struct sockaddr_storage *ss, const char *addr)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	a->sin_family = AF_INET;
	inet_pton(AF_INET, addr, &a->sin_addr);
}

/* The socket's filter for a group on lo: mode, source count; -1 when not a member. */
static int msfilter(int fd, const char *group, int *nsrc)
{
	char buf[sizeof(struct group_filter) + 4 * sizeof(struct sockaddr_storage)];
	struct group_filter *f = (struct group_filter *)buf;
	memset(buf, 0, sizeof(buf));
	f->gf_interface = if_nametoindex("lo");
	group_addr(&f->gf_group, group);
	f->gf_numsrc = 4;
	socklen_t l = sizeof(buf);
	if (getsockopt(fd, IPPROTO_IP, MCAST_MSFILTER, f, &l))
		return -1;
	*nsrc = (int)f->gf_numsrc;
	return (int)f->gf_fmode;
}

static int mcast_send(const char *group, int port)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct in_addr lo = { htonl(INADDR_LOOPBACK) };
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, group, &d.sin_addr);
	int ok = setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof(lo)) == 0 && sendto(s, group, strlen(group), 0, (struct sockaddr *)&d, sizeof(d)) > 0;
	close(s);
	return ok;
}

int main(void)
{
	struct fdset fds;
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	u4 = socket(AF_INET, SOCK_DGRAM, 0);
	u4c = socket(AF_INET, SOCK_DGRAM, 0);
	u6 = socket(AF_INET6, SOCK_DGRAM, 0);
	tl = socket(AF_INET, SOCK_STREAM, 0);
	tu = socket(AF_INET, SOCK_STREAM, 0);
	if (u4 < 0 || u4c < 0 || u6 < 0 || tl < 0 || tu < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, ux))
		DIE("sockets");
	for (int i = 0; i < NOPTS; i++) {
		if (setsockopt(*opts[i].fd, opts[i].level, opts[i].name, &opts[i].value, sizeof(int)))
			DIE("setsockopt %s", opts[i].label);
	}
	if (setsockopt(tl, IPPROTO_TCP, TCP_CONGESTION, "reno", 4))
		DIE("TCP_CONGESTION reno");
	if (bind(u4, (struct sockaddr *)&lo, sizeof(lo)) || bind(tl, (struct sockaddr *)&lo, sizeof(lo)) || listen(tl, 4))
		DIE("bind");
	struct sockaddr_in srv = lo;
	srv.sin_port = htons((uint16_t)port_of(u4));
	if (connect(u4c, (struct sockaddr *)&srv, sizeof(srv)))
		DIE("connect udp");
	um = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in any = { .sin_family = AF_INET };
	struct group_req gr = { .gr_interface = if_nametoindex("lo") };
	group_addr(&gr.gr_group, "239.1.2.3");
	struct group_source_req gs = { .gsr_interface = if_nametoindex("lo") };
	group_addr(&gs.gsr_group, "239.1.2.4");
	group_addr(&gs.gsr_source, "127.0.0.1");
	if (um < 0 || bind(um, (struct sockaddr *)&any, sizeof(any)) || setsockopt(um, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof(gr)) ||
	    setsockopt(um, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &gs, sizeof(gs)))
		DIE("multicast joins");
	for (int i = 0; i < NOPTS; i++)
		opts[i].got = get(*opts[i].fd, opts[i].level, opts[i].name);
	char cc0[16];
	congestion(tl, cc0, sizeof(cc0));
	fdset_take(&fds);
	ready();
	wait_go();

	for (int i = 0; i < NOPTS; i++) {
		int v = get(*opts[i].fd, opts[i].level, opts[i].name);
		CHECK(v == opts[i].got, "%s: %d before, %d after", opts[i].label, opts[i].got, v);
	}
	char cc[16];
	congestion(tl, cc, sizeof(cc));
	CHECK(strcmp(cc, cc0) == 0, "TCP_CONGESTION: %s before, %s after", cc0, cc);

	/* udp4: a datagram arrives with IP_PKTINFO and SO_TIMESTAMP */
	if (send(u4c, "ping", 4, 0) != 4)
		fail("udp send: %s", strerror(errno));
	char buf[64], cbuf[256];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	int pkt = 0, ts = 0;
	if (recvmsg(u4, &m, 0) != 4)
		fail("udp recvmsg: %s", strerror(errno));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		pkt |= c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO;
		ts |= c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMP;
	}
	CHECK(pkt && ts, "udp datagram without %s%s", pkt ? "" : "IP_PKTINFO ", ts ? "" : "SO_TIMESTAMP");

	/* tcp listener with TCP_DEFER_ACCEPT: accepted once the client has sent */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in la = lo;
	la.sin_port = htons((uint16_t)port_of(tl));
	if (connect(c, (struct sockaddr *)&la, sizeof(la)) || send(c, "hi", 2, 0) != 2)
		fail("tcp connect to the listener: %s", strerror(errno));
	int a = accept(tl, NULL, NULL);
	CHECK(a >= 0, "accept: %s", strerror(errno));
	if (a >= 0) {
		CHECK(recv(a, buf, 2, 0) == 2, "accepted connection without its data");
		congestion(a, cc, sizeof(cc));
		CHECK(strcmp(cc, "reno") == 0, "accepted connection's congestion control %s, not the listener's reno", cc);
		close(a);
	}
	close(c);

	/* unix dgram with SO_TIMESTAMPNS */
	if (send(ux[1], "x", 1, 0) != 1)
		fail("unix send");
	m.msg_controllen = sizeof(cbuf);
	ts = 0;
	if (recvmsg(ux[0], &m, 0) != 1)
		fail("unix recvmsg");
	for (struct cmsghdr *k = CMSG_FIRSTHDR(&m); k; k = CMSG_NXTHDR(&m, k))
		ts |= k->cmsg_level == SOL_SOCKET && k->cmsg_type == SCM_TIMESTAMPNS;
	CHECK(ts, "unix datagram without SCM_TIMESTAMPNS");

	/* multicast: both groups still joined, with their filters, and datagrams arrive */
	int n1 = -1, n2 = -1;
	int m1 = msfilter(um, "239.1.2.3", &n1), m2 = msfilter(um, "239.1.2.4", &n2);
	CHECK(m1 == MCAST_EXCLUDE && n1 == 0, "239.1.2.3: mode %d with %d sources, not joined from any source", m1, n1);
	CHECK(m2 == MCAST_INCLUDE && n2 == 1, "239.1.2.4: mode %d with %d sources, not the source-specific join", m2, n2);
	int mport = port_of(um);
	CHECK(mcast_send("239.1.2.3", mport) && mcast_send("239.1.2.4", mport), "cannot send to the groups");
	struct timeval tv = { 2, 0 };
	setsockopt(um, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int got = 0;
	for (int k = 0; k < 2; k++)
		got += recv(um, buf, sizeof(buf), 0) > 0;
	CHECK(got == 2, "%d of the 2 multicast datagrams arrived", got);
	fdset_compare(&fds);
	return finish();
}
