/* fuzzstate items: unix sockets in their states, queues, names, options; TCP listen, UDP. */
#include "fuzz.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

/* The options every socket item compares. */
struct sockopts {
	int type, sndbuf, rcvbuf, passcred, acceptconn, reuseaddr;
	struct linger linger;
};

static void sockopts_get(int fd, struct sockopts *o)
{
	socklen_t l = sizeof(int);
	memset(o, 0, sizeof(*o));
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &o->type, &l);
	l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, &l);
	l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, &l);
	l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &o->passcred, &l);
	l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &o->acceptconn, &l);
	l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &o->reuseaddr, &l);
	l = sizeof(o->linger), getsockopt(fd, SOL_SOCKET, SO_LINGER, &o->linger, &l);
}

static void random_sockopts(struct rng *r, int fd)
{
	int v;
	if (rng_one_in(r, 3))
		v = (int)rng_range(r, 4096, 1 << 20), setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	if (rng_one_in(r, 3))
		v = (int)rng_range(r, 4096, 1 << 20), setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	if (rng_one_in(r, 4))
		v = 1, setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, sizeof(v));
}

static void sockopts_check(struct inst *in, int fd, const struct sockopts *want)
{
	struct sockopts now;
	sockopts_get(fd, &now);
#define SAME(f) ICHECK(in, now.f == want->f, "fd %d " #f " %d, expected %d", fd, (int)now.f, (int)want->f)
	SAME(type);
	SAME(sndbuf);
	SAME(rcvbuf);
	SAME(passcred);
	SAME(acceptconn);
	SAME(reuseaddr);
#undef SAME
	/* SO_LINGER is the so-linger item's: set, or left unset, and compared there */
}

static void linger_compare(struct inst *in, int fd, const struct sockopts *want)
{
	struct sockopts now;
	sockopts_get(fd, &now);
	ICHECK(in, now.linger.l_onoff == want->linger.l_onoff && now.linger.l_linger == want->linger.l_linger,
	       "fd %d SO_LINGER {%d, %d}, expected {%d, %d}", fd, now.linger.l_onoff, now.linger.l_linger,
	       want->linger.l_onoff, want->linger.l_linger);
}

/* Up to 6 messages queued on a socket: their sizes and pattern seeds, in order. */
struct msgq {
	int n;
	int len[6];
	uint64_t seed[6];
};

static void queue_messages(struct rng *r, int from, struct msgq *q, int stream)
{
	static unsigned char buf[4096];
	q->n = (int)rng_range(r, 0, 6);
	for (int i = 0; i < q->n; i++) {
		/* never empty: an empty datagram is the unix-dgram-empty item's (known broken) */
		q->len[i] = (int)rng_range(r, 1, 4096);
		q->seed[i] = rng_next(r);
		fill_bytes(buf, (size_t)q->len[i], q->seed[i]);
		ssize_t n = send(from, buf, (size_t)q->len[i], MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN)
			DIE("send %d bytes", q->len[i]);
		if (n < q->len[i]) { /* the buffer is full (small SO_SNDBUF): that much is queued */
			q->n = n > 0 ? i + 1 : i;
			q->len[i] = (int)n;
			break;
		}
	}
}

/* Peek (intermediate) or receive (final) what was queued, in order. */
static void check_messages(struct inst *in, int fd, const struct msgq *q, int stream, int final)
{
	static unsigned char buf[6 * 4096 + 1];
	size_t total = 0;
	for (int i = 0; i < q->n; i++)
		total += (size_t)q->len[i];
	int inq = -1;
	ioctl(fd, SIOCINQ, &inq);
	if (stream)
		ICHECK(in, inq == (int)total, "fd %d has %d bytes queued, expected %zu", fd, inq, total);
	if (!q->n)
		return;
	if (!final) {
		ssize_t n = recv(fd, buf, stream ? total : (size_t)q->len[0], MSG_PEEK | MSG_DONTWAIT);
		ICHECK(in, n == (stream ? (ssize_t)total : q->len[0]) &&
				   check_bytes(buf, (size_t)q->len[0], q->seed[0]) == -1,
		       "fd %d: peeked %zd bytes, first message differs", fd, n);
		return;
	}
	for (int i = 0; i < q->n; i++) {
		ssize_t n = recv(fd, buf, (size_t)q->len[i], MSG_DONTWAIT | (stream ? MSG_WAITALL : 0));
		if (n != q->len[i] || check_bytes(buf, (size_t)n, q->seed[i]) != -1) {
			IFAIL(in, "fd %d: message %d of %d: got %zd bytes, expected %d (or contents differ)",
			      fd, i, q->n, n, q->len[i]);
			return;
		}
	}
	ICHECK(in, recv(fd, buf, 1, MSG_DONTWAIT | MSG_PEEK) <= 0, "fd %d: more queued than was sent", fd);
}

/* ---- unix-pair: socketpair of any type, queues both ways, options, shutdown ---------------- */

struct pair_st {
	int fd[2], type, shut;
	struct msgq q[2]; /* q[i]: queued for fd[i] to receive */
	struct sockopts o[2];
};

static const int sock_types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };

static int pair_build(struct inst *in, struct rng *r)
{
	struct pair_st *s = ST_OF(in, struct pair_st);
	s->type = sock_types[rng_below(r, 3)];
	int flags = (rng_one_in(r, 2) ? SOCK_NONBLOCK : 0) | (rng_one_in(r, 2) ? SOCK_CLOEXEC : 0);
	if (socketpair(AF_UNIX, s->type | flags, 0, s->fd) != 0)
		DIE("socketpair");
	for (int i = 0; i < 2; i++) {
		random_sockopts(r, s->fd[i]);
		queue_messages(r, s->fd[1 - i], &s->q[i], s->type == SOCK_STREAM);
	}
	s->shut = s->type == SOCK_STREAM && rng_one_in(r, 3) ? (int)rng_range(r, SHUT_RD, SHUT_RDWR) + 1 : 0;
	if (s->shut)
		shutdown(s->fd[0], s->shut - 1);
	for (int i = 0; i < 2; i++) {
		s->fd[i] = place_fd(r, s->fd[i]);
		sockopts_get(s->fd[i], &s->o[i]);
	}
	describe(in, "fds=%d,%d type=%d queued=%d,%d shutdown=%d", s->fd[0], s->fd[1], s->type,
		 s->q[0].n, s->q[1].n, s->shut - 1);
	return 0;
}

static void pair_check(struct inst *in, int final)
{
	struct pair_st *s = ST_OF(in, struct pair_st);
	for (int i = 0; i < 2; i++) {
		sockopts_check(in, s->fd[i], &s->o[i]);
		check_messages(in, s->fd[i], &s->q[i], s->type == SOCK_STREAM, final);
	}
}

/* ---- named unix sockets: path, abstract (with NULs), dgram self-connected, listeners ------- */

struct named_st {
	int fd, type, listening, nclients, self;
	int clients[4];
	struct sockaddr_un addr;
	socklen_t alen;
	struct msgq q;
	struct sockopts o;
};

/* kind: 0 path, 1 abstract, 2 abstract with NUL bytes */
static void random_name(struct inst *in, struct rng *r, int kind, struct sockaddr_un *a, socklen_t *alen)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (kind == 0) {
		if ((size_t)snprintf(a->sun_path, sizeof(a->sun_path), "%.90ssk%d", g_base, in->idx) >= sizeof(a->sun_path))
			DIE("socket path too long");
		*alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
		return;
	}
	int n = (int)rng_range(r, 4, 40);
	int len = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "cryo-fuzz-%d-%d-", getpid(), in->idx);
	for (int i = 0; i < n; i++)
		a->sun_path[1 + len + i] = kind == 2 && rng_one_in(r, 4) ? 0 : (char)('a' + rng_below(r, 26));
	*alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len + (size_t)n);
}

static int named_common(struct inst *in, struct rng *r, int kind, int self_connected)
{
	struct named_st *s = ST_OF(in, struct named_st);
	s->type = self_connected ? SOCK_DGRAM : sock_types[rng_below(r, 3)];
	s->fd = socket(AF_UNIX, s->type | (rng_one_in(r, 2) ? SOCK_NONBLOCK : 0), 0);
	if (s->fd < 0)
		DIE("socket");
	random_name(in, r, kind, &s->addr, &s->alen);
	if (bind(s->fd, (struct sockaddr *)&s->addr, s->alen) != 0)
		DIE("bind");
	random_sockopts(r, s->fd);
	s->self = self_connected;
	if (self_connected) {
		if (connect(s->fd, (struct sockaddr *)&s->addr, s->alen) != 0)
			DIE("connect to itself");
		queue_messages(r, s->fd, &s->q, 0);
	} else if (s->type == SOCK_DGRAM) {
		int c = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&s->addr, s->alen) != 0)
			DIE("connect dgram client");
		queue_messages(r, c, &s->q, 0);
		s->clients[s->nclients++] = place_fd(r, c);
	} else {
		s->listening = 1;
		if (listen(s->fd, (int)rng_range(r, 1, 64)) != 0)
			DIE("listen");
		int n = (int)rng_range(r, 0, 4);
		for (int i = 0; i < n; i++) {
			int c = socket(AF_UNIX, s->type | SOCK_NONBLOCK, 0);
			if (c < 0 || connect(c, (struct sockaddr *)&s->addr, s->alen) != 0)
				break;
			s->clients[s->nclients++] = place_fd(r, c);
		}
	}
	s->fd = place_fd(r, s->fd);
	sockopts_get(s->fd, &s->o);
	describe(in, "fd=%d type=%d name-len=%d listening=%d clients=%d queued=%d", s->fd, s->type,
		 (int)s->alen, s->listening, s->nclients, s->q.n);
	return 0;
}

static int unix_path_build(struct inst *in, struct rng *r)
{
	return named_common(in, r, 0, 0);
}

static int unix_abstract_build(struct inst *in, struct rng *r)
{
	return named_common(in, r, 1, 0);
}

static int unix_abstract_nul_build(struct inst *in, struct rng *r)
{
	return named_common(in, r, 2, 0);
}

static int unix_self_build(struct inst *in, struct rng *r)
{
	return named_common(in, r, rng_one_in(r, 2) ? 0 : 1, 1);
}

static void named_check(struct inst *in, int final)
{
	struct named_st *s = ST_OF(in, struct named_st);
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	memset(&a, 0, sizeof(a));
	getsockname(s->fd, (struct sockaddr *)&a, &l);
	ICHECK(in, l == s->alen && memcmp(&a, &s->addr, l) == 0, "fd %d is bound to another name (%d bytes, expected %d)",
	       s->fd, (int)l, (int)s->alen);
	sockopts_check(in, s->fd, &s->o);
	if (s->type == SOCK_DGRAM)
		check_messages(in, s->fd, &s->q, 0, final);
	if (s->self) {
		l = sizeof(a);
		ICHECK(in, getpeername(s->fd, (struct sockaddr *)&a, &l) == 0 && l == s->alen,
		       "self-connected fd %d has no peer", s->fd);
	}
	if (!final || !s->listening)
		return;
	/* every client's connection is waiting: accept them all, answer each, each client hears */
	for (int i = 0; i < s->nclients; i++) {
		int c = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			IFAIL(in, "accept #%d of %d: %s", i, s->nclients, strerror(errno));
			return;
		}
		ICHECK(in, send(c, "k", 1, 0) == 1, "send on accepted connection: %s", strerror(errno));
		close(c);
	}
	for (int i = 0; i < s->nclients; i++) {
		char b;
		ICHECK(in, recv(s->clients[i], &b, 1, MSG_DONTWAIT) == 1, "client fd %d heard nothing",
		       s->clients[i]);
	}
}

/* ---- so-linger: SO_LINGER set, or left unset, on a socket (unix or TCP) ------------------- */

struct linger_st {
	int fd;
	struct sockopts o;
};

static int linger_build(struct inst *in, struct rng *r)
{
	struct linger_st *s = ST_OF(in, struct linger_st);
	int fam = rng_one_in(r, 2) ? AF_UNIX : AF_INET;
	s->fd = socket(fam, SOCK_STREAM, 0);
	if (s->fd < 0)
		DIE("socket");
	struct linger l = { 0, 0 };
	if (rng_one_in(r, 2)) {
		l.l_onoff = 1;
		l.l_linger = (int)rng_range(r, 0, 1000);
		if (setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) != 0)
			DIE("SO_LINGER");
	}
	s->fd = place_fd(r, s->fd);
	sockopts_get(s->fd, &s->o);
	describe(in, "fd=%d family=%d linger={%d,%d}", s->fd, fam, l.l_onoff, l.l_linger);
	return 0;
}

static void linger_check(struct inst *in, int final)
{
	(void)final;
	struct linger_st *s = ST_OF(in, struct linger_st);
	sockopts_check(in, s->fd, &s->o);
	linger_compare(in, s->fd, &s->o);
}

/* ---- inet: TCP listening and UDP (bound, maybe connected) on loopback --------------------- */

struct inet_st {
	int fd, fam, type;
	struct sockaddr_in6 name, peer;
	socklen_t nlen, plen;
	struct sockopts o;
};

static int inet_build(struct inst *in, struct rng *r)
{
	struct inet_st *s = ST_OF(in, struct inet_st);
	s->fam = rng_one_in(r, 2) ? AF_INET : AF_INET6;
	s->type = rng_one_in(r, 2) ? SOCK_STREAM : SOCK_DGRAM;
	s->fd = socket(s->fam, s->type | (rng_one_in(r, 2) ? SOCK_NONBLOCK : 0), 0);
	if (s->fd < 0)
		DIE("socket");
	int one = 1;
	if (rng_one_in(r, 2))
		setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	random_sockopts(r, s->fd);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr *a = s->fam == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
	socklen_t al = s->fam == AF_INET ? sizeof(a4) : sizeof(a6);
	if (bind(s->fd, a, al) != 0)
		DIE("bind inet");
	if (s->type == SOCK_STREAM && listen(s->fd, (int)rng_range(r, 1, 128)) != 0)
		DIE("listen inet");
	if (s->type == SOCK_DGRAM && rng_one_in(r, 2)) {
		if (s->fam == AF_INET)
			a4.sin_port = htons((uint16_t)rng_range(r, 1024, 65000));
		else
			a6.sin6_port = htons((uint16_t)rng_range(r, 1024, 65000));
		if (connect(s->fd, a, al) != 0)
			DIE("connect udp");
	}
	s->fd = place_fd(r, s->fd);
	s->nlen = sizeof(s->name);
	getsockname(s->fd, (struct sockaddr *)&s->name, &s->nlen);
	s->plen = sizeof(s->peer);
	if (getpeername(s->fd, (struct sockaddr *)&s->peer, &s->plen) != 0)
		s->plen = 0;
	sockopts_get(s->fd, &s->o);
	describe(in, "fd=%d family=%d type=%d port=%d connected=%d", s->fd, s->fam, s->type,
		 ntohs(s->name.sin6_port), s->plen > 0);
	return 0;
}

static void inet_check(struct inst *in, int final)
{
	(void)final;
	struct inet_st *s = ST_OF(in, struct inet_st);
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);
	memset(&a, 0, sizeof(a));
	getsockname(s->fd, (struct sockaddr *)&a, &l);
	ICHECK(in, l == s->nlen && memcmp(&a, &s->name, l) == 0, "fd %d: local address differs (port %d, expected %d)",
	       s->fd, ntohs(a.sin6_port), ntohs(s->name.sin6_port));
	l = sizeof(a);
	if (getpeername(s->fd, (struct sockaddr *)&a, &l) != 0)
		l = 0;
	ICHECK(in, l == s->plen && (!l || memcmp(&a, &s->peer, l) == 0), "fd %d: peer differs", s->fd);
	sockopts_check(in, s->fd, &s->o);
}

/* ---- udp-queue: datagrams waiting in a bound UDP socket, from a sender socket of its own ---- */

#define UDPQ_MAX 6

struct udpq_st {
	int fd, from, fam, n;
	int len[UDPQ_MAX];
	unsigned seed;
	struct sockaddr_in6 sender;
	socklen_t slen;
};

static void udpq_fill(unsigned char *buf, const struct udpq_st *s, int i)
{
	for (int j = 0; j < s->len[i]; j++)
		buf[j] = (unsigned char)(s->seed + (unsigned)i * 31u + (unsigned)j);
}

static int udpq_build(struct inst *in, struct rng *r)
{
	struct udpq_st *s = ST_OF(in, struct udpq_st);
	s->fam = rng_one_in(r, 2) ? AF_INET : AF_INET6;
	s->fd = socket(s->fam, SOCK_DGRAM, 0);
	s->from = socket(s->fam, SOCK_DGRAM, 0);
	if (s->fd < 0 || s->from < 0)
		DIE("socket udp");
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr *a = s->fam == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
	socklen_t al = s->fam == AF_INET ? sizeof(a4) : sizeof(a6);
	if (bind(s->fd, a, al) != 0 || bind(s->from, a, al) != 0)
		DIE("bind udp");
	struct sockaddr_in6 to;
	socklen_t tl = sizeof(to);
	getsockname(s->fd, (struct sockaddr *)&to, &tl);
	s->slen = sizeof(s->sender);
	getsockname(s->from, (struct sockaddr *)&s->sender, &s->slen);
	s->n = (int)rng_range(r, 1, UDPQ_MAX);
	s->seed = (unsigned)rng_next(r);
	static unsigned char buf[4096];
	for (int i = 0; i < s->n; i++) {
		s->len[i] = (int)rng_range(r, 1, (long)sizeof(buf));
		udpq_fill(buf, s, i);
		if (sendto(s->from, buf, (size_t)s->len[i], 0, (struct sockaddr *)&to, tl) != s->len[i])
			DIE("sendto udp");
	}
	s->fd = place_fd(r, s->fd);
	describe(in, "fd=%d family=%d datagrams=%d", s->fd, s->fam, s->n);
	return 0;
}

static void udpq_check(struct inst *in, int final)
{
	struct udpq_st *s = ST_OF(in, struct udpq_st);
	static unsigned char got[8192], want[4096];
	for (int i = 0; i < (final ? s->n : 1); i++) {
		struct sockaddr_in6 from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->fd, got, sizeof(got), MSG_DONTWAIT | (final ? 0 : MSG_PEEK), (struct sockaddr *)&from, &fl);
		if (n < 0) {
			IFAIL(in, "fd %d: datagram %d of %d missing (errno %d)", s->fd, i, s->n, errno);
			return;
		}
		udpq_fill(want, s, i);
		ICHECK(in, n == s->len[i] && memcmp(got, want, (size_t)n) == 0, "fd %d: datagram %d: %zd bytes, expected %d", s->fd, i,
		       n, s->len[i]);
		ICHECK(in, fl == s->slen && memcmp(&from, &s->sender, fl) == 0, "fd %d: datagram %d from another sender", s->fd, i);
	}
	if (final)
		ICHECK(in, recv(s->fd, got, sizeof(got), MSG_DONTWAIT) < 0, "fd %d: more datagrams than the %d sent", s->fd, s->n);
}

const struct item items_sockets[] = {
	{ "unix-pair", 4, pair_build, pair_check, NULL },
	{ "unix-path", 3, unix_path_build, named_check, NULL },
	{ "unix-abstract", 3, unix_abstract_build, named_check, NULL },
	{ "unix-abstract-nul", 2, unix_abstract_nul_build, named_check, NULL },
	{ "unix-dgram-self", 2, unix_self_build, named_check, NULL },
	{ "so-linger", 2, linger_build, linger_check, NULL },
	{ "inet", 4, inet_build, inet_check, NULL },
	{ "udp-queue", 2, udpq_build, udpq_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
