/* fuzzstate items: socket states real programs use that sockets.c does not build: credentials
 * queued on a unix socket (SCM_CREDENTIALS, as journald and D-Bus read them), a TCP socket's
 * MSS clamp (TCP_MAXSEG) on a listener or an unbound socket, an AF_PACKET socket, a classic BPF
 * filter on a socket (SO_ATTACH_FILTER, maybe locked). */
#include "fuzz.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>
#include <sys/wait.h>

/* ---- scm-creds: messages with their senders' credentials waiting on a SO_PASSCRED socket --
 * Each message is sent by this process, by a child that lives on, or by a child that exited
 * since (a zombie); scm-creds-gone: also by a child that exited and was reaped (refused: no task
 * of the tree has its pid any more). */

#define CREDS_MSGS 4

struct creds_st {
	int fd[2], type, n;
	int len[CREDS_MSGS];
	uint64_t seed[CREDS_MSGS];
	struct ucred cred[CREDS_MSGS]; /* what each message carries: its sender's */
};

static void creds_send(int fd, const unsigned char *buf, int len, const struct ucred *c, int explicit_creds)
{
	struct iovec iov = { (void *)buf, (size_t)len };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (explicit_creds) { /* else the kernel attaches them */
		m.msg_control = cm.b, m.msg_controllen = sizeof(cm.b);
		cm.h.cmsg_level = SOL_SOCKET, cm.h.cmsg_type = SCM_CREDENTIALS;
		cm.h.cmsg_len = CMSG_LEN(sizeof(struct ucred));
		memcpy(CMSG_DATA(&cm.h), c, sizeof(*c));
	}
	if (sendmsg(fd, &m, MSG_DONTWAIT) != len)
		DIE("sendmsg creds");
}

/* sender: 0 us, 1 a child that stays, 2 a child that exits (a zombie), 3 one reaped too */
static void creds_from(struct creds_st *s, int i, int sender, const unsigned char *buf, int explicit_creds)
{
	if (sender == 0) {
		s->cred[i] = (struct ucred){ getpid(), getuid(), getgid() };
		creds_send(s->fd[0], buf, s->len[i], &s->cred[i], explicit_creds);
		return;
	}
	int done[2];
	if (pipe2(done, O_CLOEXEC) != 0)
		DIE("pipe");
	pid_t c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0) {
		/* it keeps only what it sends on (an end it held would keep other items' files open) */
		unsigned lo = (unsigned)(s->fd[0] < done[1] ? s->fd[0] : done[1]), hi = (unsigned)(s->fd[0] < done[1] ? done[1] : s->fd[0]);
		syscall(SYS_close_range, 3, lo - 1, 0);
		syscall(SYS_close_range, lo + 1, hi - 1, 0);
		syscall(SYS_close_range, hi + 1, ~0U, 0);
		struct ucred me = { getpid(), getuid(), getgid() };
		creds_send(s->fd[0], buf, s->len[i], &me, explicit_creds);
		if (sender != 1)
			_exit(0);
		if (write(done[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(done[1]);
	s->cred[i] = (struct ucred){ c, getuid(), getgid() };
	if (sender == 1) {
		char x;
		if (read(done[0], &x, 1) != 1)
			DIE("creds sender");
		track_kid(c);
	} else {
		siginfo_t si;
		if (waitid(P_PID, (id_t)c, &si, WEXITED | (sender == 2 ? WNOWAIT : 0)) != 0)
			DIE("waitid");
	}
	close(done[0]);
}

static int creds_common(struct inst *in, struct rng *r, int gone)
{
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
	struct creds_st *s = ST_OF(in, struct creds_st);
	s->type = types[rng_below(r, 3)];
	if (socketpair(AF_UNIX, s->type | SOCK_CLOEXEC, 0, s->fd) != 0)
		DIE("socketpair");
	int one = 1;
	if (setsockopt(s->fd[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
		DIE("SO_PASSCRED");
	s->n = (int)rng_range(r, 1, CREDS_MSGS);
	static unsigned char buf[2048];
	for (int i = 0; i < s->n; i++) {
		s->len[i] = (int)rng_range(r, 1, sizeof(buf));
		s->seed[i] = rng_next(r);
		fill_bytes(buf, (size_t)s->len[i], s->seed[i]);
		int sender = gone && i == 0 ? 3 : (int)rng_below(r, 3);
		creds_from(s, i, sender, buf, rng_one_in(r, 2));
		describe(in, "%s%d:%d", i ? "," : "msgs=", s->len[i], sender);
	}
	for (int i = 0; i < 2; i++)
		s->fd[i] = place_fd(r, s->fd[i]);
	describe(in, " fds=%d,%d type=%d", s->fd[0], s->fd[1], s->type);
	return 0;
}

static int creds_build(struct inst *in, struct rng *r)
{
	return creds_common(in, r, 0);
}

static int creds_gone_build(struct inst *in, struct rng *r)
{
	return creds_common(in, r, 1);
}

static void creds_check(struct inst *in, int final)
{
	struct creds_st *s = ST_OF(in, struct creds_st);
	static unsigned char buf[2048];
	for (int i = 0; i < (final ? s->n : 1); i++) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred)) + 64];
		} c;
		struct iovec iov = { buf, (size_t)s->len[i] };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b) };
		ssize_t n = recvmsg(s->fd[1], &m, MSG_DONTWAIT | (final ? 0 : MSG_PEEK));
		if (n != s->len[i] || check_bytes(buf, (size_t)n, s->seed[i]) != -1) {
			IFAIL(in, "fd %d message %d: %zd bytes, expected %d (or contents differ)", s->fd[1], i, n, s->len[i]);
			return;
		}
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		struct ucred got = { 0, 0, 0 };
		if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS)
			memcpy(&got, CMSG_DATA(h), sizeof(got));
		ICHECK(in, h && got.pid == s->cred[i].pid && got.uid == s->cred[i].uid && got.gid == s->cred[i].gid,
		       "fd %d message %d: credentials pid %d uid %d gid %d, expected %d %d %d", s->fd[1], i, got.pid,
		       got.uid, got.gid, s->cred[i].pid, s->cred[i].uid, s->cred[i].gid);
	}
	int v = 0;
	socklen_t l = sizeof(v);
	getsockopt(s->fd[1], SOL_SOCKET, SO_PASSCRED, &v, &l);
	ICHECK(in, v == 1, "fd %d SO_PASSCRED %d", s->fd[1], v);
}

/* ---- tcp-maxseg: TCP_MAXSEG set on a listener or on a socket not yet connected ------------ */

struct maxseg_st {
	int fd, listening, mss;
	struct sockaddr_in6 name;
	socklen_t nlen;
};

static int maxseg_build(struct inst *in, struct rng *r)
{
	struct maxseg_st *s = ST_OF(in, struct maxseg_st);
	int fam = rng_one_in(r, 2) ? AF_INET : AF_INET6;
	s->fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		DIE("socket");
	int mss = (int)rng_range(r, 536, 1400);
	if (setsockopt(s->fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)) != 0)
		DIE("TCP_MAXSEG");
	s->listening = !rng_one_in(r, 3);
	if (s->listening) {
		struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		if (bind(s->fd, fam == AF_INET ? (void *)&a4 : (void *)&a6, fam == AF_INET ? sizeof(a4) : sizeof(a6)) != 0 ||
		    listen(s->fd, 8) != 0)
			DIE("listen");
	}
	s->nlen = sizeof(s->name);
	getsockname(s->fd, (struct sockaddr *)&s->name, &s->nlen);
	socklen_t l = sizeof(s->mss);
	getsockopt(s->fd, IPPROTO_TCP, TCP_MAXSEG, &s->mss, &l);
	s->fd = place_fd(r, s->fd);
	describe(in, "fd=%d family=%d listening=%d mss=%d", s->fd, fam, s->listening, s->mss);
	return 0;
}

static void maxseg_check(struct inst *in, int final)
{
	struct maxseg_st *s = ST_OF(in, struct maxseg_st);
	int mss = 0;
	socklen_t l = sizeof(mss);
	getsockopt(s->fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &l);
	ICHECK(in, mss == s->mss, "fd %d TCP_MAXSEG %d, expected %d", s->fd, mss, s->mss);
	if (!final || !s->listening)
		return;
	/* the clamp is what a connection accepted from it offers: the peer's MSS is at most it */
	int c = socket(s->name.sin6_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&s->name, s->nlen) != 0) {
		IFAIL(in, "connect to the listener: %s", strerror(errno));
		if (c >= 0)
			close(c);
		return;
	}
	int peer_mss = 0;
	l = sizeof(peer_mss);
	getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &peer_mss, &l);
	ICHECK(in, peer_mss > 0 && peer_mss <= s->mss, "client of fd %d: MSS %d, expected at most %d", s->fd, peer_mss, s->mss);
	close(c);
	int a = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
	if (a >= 0)
		close(a);
}

/* ---- packet-socket: AF_PACKET (DHCP clients, LLDP, capture tools) bound to lo -------------- */

struct packet_st {
	int fd, type, proto, ifindex;
};

static int packet_build(struct inst *in, struct rng *r)
{
	struct packet_st *s = ST_OF(in, struct packet_st);
	s->type = rng_one_in(r, 2) ? SOCK_RAW : SOCK_DGRAM;
	s->proto = rng_one_in(r, 2) ? ETH_P_ALL : ETH_P_IP;
	s->fd = socket(AF_PACKET, s->type | SOCK_CLOEXEC, htons((uint16_t)s->proto));
	if (s->fd < 0)
		return 1;
	s->ifindex = (int)if_nametoindex("lo");
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons((uint16_t)s->proto), .sll_ifindex = s->ifindex };
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		DIE("bind packet");
	s->fd = place_fd(r, s->fd);
	describe(in, "fd=%d type=%d proto=0x%x", s->fd, s->type, s->proto);
	return 0;
}

static void packet_check(struct inst *in, int final)
{
	(void)final;
	struct packet_st *s = ST_OF(in, struct packet_st);
	struct sockaddr_ll a;
	socklen_t l = sizeof(a);
	memset(&a, 0, sizeof(a));
	int type = 0;
	socklen_t tl = sizeof(type);
	getsockopt(s->fd, SOL_SOCKET, SO_TYPE, &type, &tl);
	ICHECK(in, getsockname(s->fd, (struct sockaddr *)&a, &l) == 0 && a.sll_family == AF_PACKET &&
			   a.sll_ifindex == s->ifindex && ntohs(a.sll_protocol) == s->proto && type == s->type,
	       "fd %d: family %d ifindex %d proto 0x%x type %d, expected ifindex %d proto 0x%x type %d", s->fd,
	       a.sll_family, a.sll_ifindex, ntohs(a.sll_protocol), type, s->ifindex, s->proto, s->type);
}

/* ---- unix-dgram-empty: an empty datagram queued between others (a wake-up message) ---------- */

struct empty_st {
	int fd[2], type, n;
	int len[4];
	uint64_t seed[4];
};

static int empty_build(struct inst *in, struct rng *r)
{
	struct empty_st *s = ST_OF(in, struct empty_st);
	s->type = rng_one_in(r, 2) ? SOCK_DGRAM : SOCK_SEQPACKET;
	if (socketpair(AF_UNIX, s->type | SOCK_CLOEXEC, 0, s->fd) != 0)
		DIE("socketpair");
	s->n = (int)rng_range(r, 2, 4);
	int empty = (int)rng_below(r, (uint64_t)s->n - 1); /* never the last: something follows it */
	static unsigned char buf[512];
	for (int i = 0; i < s->n; i++) {
		s->len[i] = i == empty ? 0 : (int)rng_range(r, 1, sizeof(buf));
		s->seed[i] = rng_next(r);
		fill_bytes(buf, (size_t)s->len[i], s->seed[i]);
		if (send(s->fd[0], buf, (size_t)s->len[i], MSG_DONTWAIT) != s->len[i])
			DIE("send");
		describe(in, "%d ", s->len[i]);
	}
	for (int i = 0; i < 2; i++)
		s->fd[i] = place_fd(r, s->fd[i]);
	describe(in, "fds=%d,%d type=%d", s->fd[0], s->fd[1], s->type);
	return 0;
}

static void empty_check(struct inst *in, int final)
{
	struct empty_st *s = ST_OF(in, struct empty_st);
	if (!final)
		return; /* a peek sees the first message only */
	static unsigned char buf[513];
	for (int i = 0; i < s->n; i++) {
		ssize_t n = recv(s->fd[1], buf, sizeof(buf), MSG_DONTWAIT);
		if (n != s->len[i] || check_bytes(buf, (size_t)n, s->seed[i]) != -1) {
			IFAIL(in, "fd %d message %d of %d: %zd bytes (%s), expected %d", s->fd[1], i, s->n, n, n < 0 ? strerror(errno) : "ok",
			      s->len[i]);
			return;
		}
	}
}

/* ---- unix-dgram-senders: a server's queue of requests from named clients (recvfrom's name) -- */

#define SENDERS_MSGS 6

struct senders_st {
	int rx, tx[3];
	struct sockaddr_un name[3];
	socklen_t namelen[3];
	int n, from[SENDERS_MSGS], len[SENDERS_MSGS];
	uint64_t seed[SENDERS_MSGS];
};

static int senders_build(struct inst *in, struct rng *r)
{
	struct senders_st *s = ST_OF(in, struct senders_st);
	char cwd[200];
	if (!getcwd(cwd, sizeof(cwd)) || access(cwd, W_OK) != 0)
		return 1; /* its working directory removed (cwd-removed): nowhere to bind a path */
	uint64_t tag = rng_next(r);
	struct sockaddr_un rx = { .sun_family = AF_UNIX };
	int rl = snprintf(rx.sun_path + 1, sizeof(rx.sun_path) - 1, "cryo-fz-rx-%d-%d-%llx", getpid(), in->idx, (unsigned long long)tag);
	socklen_t rxlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + rl);
	s->rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->rx < 0 || bind(s->rx, (struct sockaddr *)&rx, rxlen) != 0)
		DIE("bind receiver");
	for (int k = 0; k < 3; k++) {
		s->tx[k] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s->tx[k] < 0)
			DIE("socket");
		s->name[k] = (struct sockaddr_un){ .sun_family = AF_UNIX };
		s->namelen[k] = 0; /* k == 2: unbound, recvfrom names nobody */
		if (k == 0) {
			int l = snprintf(s->name[k].sun_path, sizeof(s->name[k].sun_path), "%s/dgs-%d-%llx", cwd, in->idx, (unsigned long long)tag);
			s->namelen[k] = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + 1);
		} else if (k == 1) {
			int l = snprintf(s->name[k].sun_path + 1, sizeof(s->name[k].sun_path) - 1, "cryo-fz-tx-%d-%d-%llx", getpid(), in->idx, (unsigned long long)tag);
			s->namelen[k] = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + l);
		}
		if (s->namelen[k] && bind(s->tx[k], (struct sockaddr *)&s->name[k], s->namelen[k]) != 0)
			DIE("bind sender");
	}
	s->n = (int)rng_range(r, 2, SENDERS_MSGS);
	static unsigned char buf[300];
	describe(in, "msgs=");
	for (int i = 0; i < s->n; i++) {
		s->from[i] = (int)rng_below(r, 3);
		s->len[i] = rng_one_in(r, 4) ? 0 : (int)rng_range(r, 1, sizeof(buf));
		s->seed[i] = rng_next(r);
		fill_bytes(buf, (size_t)s->len[i], s->seed[i]);
		if (sendto(s->tx[s->from[i]], buf, (size_t)s->len[i], MSG_DONTWAIT, (struct sockaddr *)&rx, rxlen) != s->len[i])
			DIE("sendto");
		describe(in, "%s%d:%d", i ? "," : "", s->len[i], s->from[i]);
	}
	s->rx = place_fd(r, s->rx);
	for (int k = 0; k < 3; k++)
		s->tx[k] = place_fd(r, s->tx[k]);
	describe(in, " rx=%d", s->rx);
	return 0;
}

static void senders_check(struct inst *in, int final)
{
	struct senders_st *s = ST_OF(in, struct senders_st);
	if (!final)
		return; /* reading would take the queue */
	static unsigned char buf[301];
	for (int i = 0; i < s->n; i++) {
		struct sockaddr_un from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->rx, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		int k = s->from[i];
		if (n != s->len[i] || check_bytes(buf, (size_t)n, s->seed[i]) != -1) {
			IFAIL(in, "fd %d message %d of %d: %zd bytes (%s), expected %d", s->rx, i, s->n, n, n < 0 ? strerror(errno) : "ok", s->len[i]);
			return;
		}
		ICHECK(in, fl == s->namelen[k] && (!fl || memcmp(&from, &s->name[k], fl) == 0),
		       "fd %d message %d of %d: from a name of %u bytes, expected sender %d's (%u bytes)", s->rx, i, s->n, (unsigned)fl, k,
		       (unsigned)s->namelen[k]);
	}
}

/* ---- sock-filter: a classic BPF filter (SO_ATTACH_FILTER) that drops messages starting with one
 * byte and cuts the others, maybe locked; the messages queued before it was attached (some it
 * would drop) and one it cut wait in the queue. */

#define SF_QUEUED 5

struct sf_st {
	int rx, tx, fam, locked;
	int off;  /* where the payload starts in what the filter sees: a UDP socket's sees its header */
	int keep; /* payload bytes a passing message keeps, 0: all of it */
	unsigned char drop;
	int n, len[SF_QUEUED + 1], cut[SF_QUEUED + 1];
	uint64_t seed[SF_QUEUED + 1];
	struct sock_filter prog[4];
	struct sockaddr_in6 to;
	socklen_t tolen;
};

static ssize_t sf_send(struct sf_st *s, const unsigned char *buf, size_t len)
{
	return s->fam == AF_UNIX ? send(s->tx, buf, len, MSG_DONTWAIT) : sendto(s->tx, buf, len, MSG_DONTWAIT, (struct sockaddr *)&s->to, s->tolen);
}

/* message i: its pattern, with the filter's byte first when it is one the filter drops */
static void sf_fill(unsigned char *buf, const struct sf_st *s, int i, int dropped)
{
	fill_bytes(buf, (size_t)s->len[i], s->seed[i]);
	if (s->len[i])
		buf[0] = dropped ? s->drop : (unsigned char)(s->drop + 1 + (buf[0] % 200));
}

static int sf_build(struct inst *in, struct rng *r)
{
	struct sf_st *s = ST_OF(in, struct sf_st);
	int k = (int)rng_below(r, 3);
	s->fam = k == 0 ? AF_UNIX : k == 1 ? AF_INET : AF_INET6;
	if (s->fam == AF_UNIX) {
		int sv[2];
		if (socketpair(AF_UNIX, rng_one_in(r, 2) ? SOCK_DGRAM : SOCK_SEQPACKET, 0, sv) != 0)
			DIE("socketpair");
		s->rx = sv[0], s->tx = sv[1], s->off = 0;
	} else {
		s->rx = socket(s->fam, SOCK_DGRAM, 0);
		s->tx = socket(s->fam, SOCK_DGRAM, 0);
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct sockaddr *a = s->fam == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
		if (s->rx < 0 || s->tx < 0 || bind(s->rx, a, s->fam == AF_INET ? sizeof(a4) : sizeof(a6)) != 0)
			DIE("udp socket");
		s->tolen = sizeof(s->to);
		getsockname(s->rx, (struct sockaddr *)&s->to, &s->tolen);
		s->off = 8;
	}
	s->drop = (unsigned char)rng_below(r, 50);
	s->keep = rng_one_in(r, 2) ? 0 : (int)rng_range(r, 1, 64);
	s->locked = rng_one_in(r, 2);
	/* queued before the filter: messages it would drop and ones it would cut, whole */
	s->n = (int)rng_range(r, 1, SF_QUEUED);
	static unsigned char buf[300];
	for (int i = 0; i < s->n; i++) {
		s->len[i] = (int)rng_range(r, 1, sizeof(buf));
		s->seed[i] = rng_next(r);
		s->cut[i] = s->len[i];
		sf_fill(buf, s, i, rng_one_in(r, 2));
		if (sf_send(s, buf, (size_t)s->len[i]) != s->len[i])
			DIE("send");
	}
	struct sock_filter prog[4] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (unsigned)s->off),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, s->drop, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0),
		BPF_STMT(BPF_RET | BPF_K, s->keep ? (unsigned)(s->off + s->keep) : 0xffffffffu),
	};
	memcpy(s->prog, prog, sizeof(prog));
	struct sock_fprog fp = { .len = 4, .filter = s->prog };
	if (setsockopt(s->rx, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) != 0)
		DIE("SO_ATTACH_FILTER");
	int one = 1;
	if (s->locked && setsockopt(s->rx, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)) != 0)
		DIE("SO_LOCK_FILTER");
	/* one the filter cut (when it cuts), queued after it */
	int i = s->n++;
	s->len[i] = (int)rng_range(r, 1, sizeof(buf));
	s->seed[i] = rng_next(r);
	s->cut[i] = s->keep && s->keep < s->len[i] ? s->keep : s->len[i];
	sf_fill(buf, s, i, 0);
	if (sf_send(s, buf, (size_t)s->len[i]) != s->len[i])
		DIE("send");
	s->rx = place_fd(r, s->rx);
	s->tx = place_fd(r, s->tx);
	describe(in, "rx=%d family=%d drop=%u keep=%d locked=%d queued=%d", s->rx, s->fam, s->drop, s->keep, s->locked, s->n);
	return 0;
}

static void sf_check(struct inst *in, int final)
{
	struct sf_st *s = ST_OF(in, struct sf_st);
	struct sock_filter got[8];
	socklen_t gl = 8;
	if (getsockopt(s->rx, SOL_SOCKET, SO_GET_FILTER, got, &gl) != 0 || gl != 4 || memcmp(got, s->prog, sizeof(s->prog)) != 0) {
		IFAIL(in, "fd %d: the filter is not the one attached (%u instructions, %s)", s->rx, (unsigned)gl, strerror(errno));
		return;
	}
	int locked = -1;
	socklen_t ll = sizeof(locked);
	getsockopt(s->rx, SOL_SOCKET, SO_LOCK_FILTER, &locked, &ll);
	ICHECK(in, locked == s->locked, "fd %d: SO_LOCK_FILTER %d, expected %d", s->rx, locked, s->locked);
	if (!final)
		return; /* reading would take the queue */
	static unsigned char buf[301], want[300];
	for (int i = 0; i < s->n; i++) {
		ssize_t n = recv(s->rx, buf, sizeof(buf), MSG_DONTWAIT);
		fill_bytes(want, (size_t)s->len[i], s->seed[i]);
		if (n != s->cut[i] || memcmp(buf + 1, want + 1, (size_t)n - 1) != 0) {
			IFAIL(in, "fd %d queued message %d of %d: %zd bytes (%s), expected %d", s->rx, i, s->n, n, n < 0 ? strerror(errno) : "ok", s->cut[i]);
			return;
		}
	}
	/* the filter works on what comes now: one dropped, one kept (and cut) */
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(s->rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	unsigned char msg[100];
	memset(msg, 0x5a, sizeof(msg));
	msg[0] = s->drop;
	if (sf_send(s, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		IFAIL(in, "fd %d: send after restore: %s", s->tx, strerror(errno));
	msg[0] = (unsigned char)(s->drop + 1);
	if (sf_send(s, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		IFAIL(in, "fd %d: send after restore: %s", s->tx, strerror(errno));
	ssize_t n = recv(s->rx, buf, sizeof(buf), 0);
	int cut = s->keep && s->keep < (int)sizeof(msg) ? s->keep : (int)sizeof(msg);
	ICHECK(in, n == cut && buf[0] == msg[0], "fd %d: after restore got %zd bytes starting %u, expected %d starting %u (the filter lets through what it dropped?)",
	       s->rx, n, n > 0 ? buf[0] : 0, cut, msg[0]);
	int rc = setsockopt(s->rx, SOL_SOCKET, SO_DETACH_FILTER, &rc, sizeof(rc));
	ICHECK(in, s->locked ? rc != 0 && errno == EPERM : rc == 0, "fd %d: SO_DETACH_FILTER %s with the filter %slocked", s->rx,
	       rc ? strerror(errno) : "worked", s->locked ? "" : "not ");
}

const struct item items_netmore[] = {
	{ "unix-dgram-senders", 2, senders_build, senders_check, NULL },
	{ "unix-dgram-empty", 1, empty_build, empty_check, NULL },
	{ "scm-creds", 2, creds_build, creds_check, NULL },
	{ "scm-creds-gone", 1, creds_gone_build, creds_check, NULL },
	{ "tcp-maxseg", 2, maxseg_build, maxseg_check, NULL },
	{ "packet-socket", 1, packet_build, packet_check, NULL },
	{ "sock-filter", 2, sf_build, sf_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
