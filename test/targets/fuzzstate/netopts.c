/* fuzzstate items: socket options beyond CRIU's set, multicast memberships, shared anonymous
 * pages that only an exited child wrote, an inotify watch on a deleted file still held open. */
#include "fuzz.h"

#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---- protocol options --------------------------------------------------------------------- */

struct protoopt {
	int level, name, lo, hi;
	int v4, v6, tcp, udp; /* where it applies */
	const char *label;
};

static const struct protoopt protoopts[] = {
	{ IPPROTO_IP, IP_TOS, 1, 63, 1, 1, 1, 1, "IP_TOS" },
	{ IPPROTO_IP, IP_TTL, 1, 255, 1, 0, 1, 1, "IP_TTL" },
	{ IPPROTO_IP, IP_RECVERR, 1, 1, 1, 0, 1, 1, "IP_RECVERR" },
	{ IPPROTO_IP, IP_PKTINFO, 1, 1, 1, 0, 0, 1, "IP_PKTINFO" },
	{ IPPROTO_IP, IP_RECVTOS, 1, 1, 1, 0, 0, 1, "IP_RECVTOS" },
	{ IPPROTO_IP, IP_FREEBIND, 1, 1, 1, 0, 1, 1, "IP_FREEBIND" },
	{ IPPROTO_IP, IP_MULTICAST_TTL, 2, 255, 1, 0, 0, 1, "IP_MULTICAST_TTL" },
	{ IPPROTO_IP, IP_MULTICAST_LOOP, 0, 0, 1, 0, 0, 1, "IP_MULTICAST_LOOP" },
	{ IPPROTO_IPV6, IPV6_UNICAST_HOPS, 1, 255, 0, 1, 1, 1, "IPV6_UNICAST_HOPS" },
	{ IPPROTO_IPV6, IPV6_TCLASS, 1, 255, 0, 1, 1, 1, "IPV6_TCLASS" },
	{ IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, 1, 0, 1, 0, 1, "IPV6_RECVPKTINFO" },
	{ IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 2, 255, 0, 1, 0, 1, "IPV6_MULTICAST_HOPS" },
	{ SOL_SOCKET, SO_TIMESTAMP, 1, 1, 1, 1, 1, 1, "SO_TIMESTAMP" },
	{ SOL_SOCKET, SO_TIMESTAMPNS, 1, 1, 1, 1, 1, 1, "SO_TIMESTAMPNS" },
	{ IPPROTO_TCP, TCP_USER_TIMEOUT, 1, 100000, 1, 1, 1, 0, "TCP_USER_TIMEOUT" },
	{ IPPROTO_TCP, TCP_NOTSENT_LOWAT, 1, 1 << 20, 1, 1, 1, 0, "TCP_NOTSENT_LOWAT" },
	{ IPPROTO_TCP, TCP_SYNCNT, 1, 10, 1, 1, 1, 0, "TCP_SYNCNT" },
	{ IPPROTO_TCP, TCP_DEFER_ACCEPT, 1, 30, 1, 1, 1, 0, "TCP_DEFER_ACCEPT" },
	{ IPPROTO_TCP, TCP_FASTOPEN, 1, 64, 1, 1, 1, 0, "TCP_FASTOPEN" },
};
#define N_PROTOOPTS (int)(sizeof(protoopts) / sizeof(protoopts[0]))

struct protoopts_st {
	int fd, fam, type;
	int n;
	int which[N_PROTOOPTS];
	int got[N_PROTOOPTS];
};

static int protoopt_get(int fd, const struct protoopt *o)
{
	int v = -12345;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, o->level, o->name, &v, &l))
		return -12345;
	return v;
}

static int protoopts_build(struct inst *in, struct rng *r)
{
	struct protoopts_st *s = ST_OF(in, struct protoopts_st);
	s->fam = rng_one_in(r, 2) ? AF_INET : AF_INET6;
	s->type = rng_one_in(r, 2) ? SOCK_STREAM : SOCK_DGRAM;
	s->fd = socket(s->fam, s->type, 0);
	if (s->fd < 0)
		DIE("socket");
	s->n = 0;
	for (int i = 0; i < N_PROTOOPTS; i++) {
		const struct protoopt *o = &protoopts[i];
		if (!(s->fam == AF_INET ? o->v4 : o->v6) || !(s->type == SOCK_STREAM ? o->tcp : o->udp) || !rng_one_in(r, 3))
			continue;
		int v = (int)rng_range(r, o->lo, o->hi);
		if (setsockopt(s->fd, o->level, o->name, &v, sizeof(v)))
			DIE("setsockopt %s %d", o->label, v);
		s->which[s->n++] = i;
	}
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (rng_one_in(r, 2) && bind(s->fd, s->fam == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6, s->fam == AF_INET ? sizeof(a4) : sizeof(a6)))
		DIE("bind");
	s->fd = place_fd(r, s->fd);
	for (int k = 0; k < s->n; k++)
		s->got[k] = protoopt_get(s->fd, &protoopts[s->which[k]]);
	describe(in, "fd=%d family=%d type=%d options=%d", s->fd, s->fam, s->type, s->n);
	return 0;
}

static void protoopts_check(struct inst *in, int final)
{
	(void)final;
	struct protoopts_st *s = ST_OF(in, struct protoopts_st);
	for (int k = 0; k < s->n; k++) {
		const struct protoopt *o = &protoopts[s->which[k]];
		int v = protoopt_get(s->fd, o);
		ICHECK(in, v == s->got[k], "fd %d %s is %d, expected %d", s->fd, o->label, v, s->got[k]);
	}
}

/* ---- multicast ---------------------------------------------------------------------------- */

struct mcast_st {
	int fd, n;
	unsigned char grp[3];
	int source[3]; /* source-specific (127.0.0.1 only) */
};

static void mcast_group(struct sockaddr_storage *ss, unsigned char last)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(0xef070000u | last); /* 239.7.0.x */
}

static int mcast_build(struct inst *in, struct rng *r)
{
	struct mcast_st *s = ST_OF(in, struct mcast_st);
	s->fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in any = { .sin_family = AF_INET };
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&any, sizeof(any)))
		DIE("mcast socket");
	s->n = (int)rng_range(r, 1, 3);
	for (int i = 0; i < s->n; i++) {
		s->grp[i] = (unsigned char)(in->idx * 3 + i + 1);
		s->source[i] = rng_one_in(r, 2);
		if (s->source[i]) {
			struct group_source_req g = { .gsr_interface = if_nametoindex("lo") };
			mcast_group(&g.gsr_group, s->grp[i]);
			struct sockaddr_in *src = (struct sockaddr_in *)&g.gsr_source;
			src->sin_family = AF_INET;
			src->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			if (setsockopt(s->fd, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &g, sizeof(g)))
				DIE("MCAST_JOIN_SOURCE_GROUP");
		} else {
			struct group_req g = { .gr_interface = if_nametoindex("lo") };
			mcast_group(&g.gr_group, s->grp[i]);
			if (setsockopt(s->fd, IPPROTO_IP, MCAST_JOIN_GROUP, &g, sizeof(g)))
				DIE("MCAST_JOIN_GROUP");
		}
	}
	s->fd = place_fd(r, s->fd);
	describe(in, "fd=%d groups=%d", s->fd, s->n);
	return 0;
}

static void mcast_check(struct inst *in, int final)
{
	(void)final;
	struct mcast_st *s = ST_OF(in, struct mcast_st);
	for (int i = 0; i < s->n; i++) {
		char buf[sizeof(struct group_filter) + 2 * sizeof(struct sockaddr_storage)];
		struct group_filter *f = (struct group_filter *)buf;
		memset(buf, 0, sizeof(buf));
		f->gf_interface = if_nametoindex("lo");
		mcast_group(&f->gf_group, s->grp[i]);
		f->gf_numsrc = 2;
		socklen_t l = sizeof(buf);
		int rc = getsockopt(s->fd, IPPROTO_IP, MCAST_MSFILTER, f, &l);
		ICHECK(in, rc == 0, "fd %d: group 239.7.0.%d no longer joined (%s)", s->fd, s->grp[i], strerror(errno));
		if (rc == 0)
			ICHECK(in, (int)f->gf_fmode == (s->source[i] ? MCAST_INCLUDE : MCAST_EXCLUDE) && (int)f->gf_numsrc == s->source[i],
			       "fd %d: group 239.7.0.%d mode %u with %u sources", s->fd, s->grp[i], f->gf_fmode, f->gf_numsrc);
	}
}

/* ---- shared anonymous pages written by an exited child ------------------------------------ */

struct shmem_st {
	char *m;
	int pages;
	uint64_t seed;
	unsigned char written[64];
};

static int shmem_build(struct inst *in, struct rng *r)
{
	struct shmem_st *s = ST_OF(in, struct shmem_st);
	s->pages = (int)rng_range(r, 4, 64);
	s->seed = rng_next(r);
	s->m = mmap(NULL, (size_t)s->pages * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->m == MAP_FAILED)
		DIE("mmap shared");
	for (int i = 0; i < s->pages; i++)
		s->written[i] = rng_one_in(r, 2);
	pid_t c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0) {
		for (int i = 0; i < s->pages; i++)
			if (s->written[i])
				pattern_fill(s->m + i * 4096, 4096, s->seed + (uint64_t)i);
		_exit(0);
	}
	int st;
	if (waitpid(c, &st, 0) != c)
		DIE("waitpid");
	describe(in, "pages=%d", s->pages);
	return 0;
}

static void shmem_check(struct inst *in, int final)
{
	(void)final;
	struct shmem_st *s = ST_OF(in, struct shmem_st);
	for (int i = 0; i < s->pages; i++) {
		const char *p = s->m + i * 4096;
		if (s->written[i])
			ICHECK(in, pattern_check(p, 4096, s->seed + (uint64_t)i) < 0, "page %d written by the exited child is lost", i);
		else
			ICHECK(in, all_zero(p, 4096), "page %d should be zero", i);
	}
}

/* ---- inotify watch on a deleted file still held open --------------------------------------- */

struct ighost_st {
	int ifd, file, wd;
	char path[300];
};

static int ighost_build(struct inst *in, struct rng *r)
{
	struct ighost_st *s = ST_OF(in, struct ighost_st);
	snprintf(s->path, sizeof(s->path), "%s", base_path("ighost-%d.txt", in->idx)); /* not relative: cwd-removed */
	if (write_file(s->path, "x", 1))
		DIE("ighost file");
	s->file = open(s->path, O_WRONLY | O_APPEND);
	s->ifd = inotify_init1(IN_NONBLOCK);
	s->wd = inotify_add_watch(s->ifd, s->path, IN_MODIFY);
	if (s->file < 0 || s->ifd < 0 || s->wd < 0 || unlink(s->path))
		DIE("ighost");
	char buf[256];
	while (read(s->ifd, buf, sizeof(buf)) > 0)
		;
	s->file = place_fd(r, s->file);
	s->ifd = place_fd(r, s->ifd);
	describe(in, "inotify=%d file=%d", s->ifd, s->file);
	return 0;
}

static void ighost_check(struct inst *in, int final)
{
	struct ighost_st *s = ST_OF(in, struct ighost_st);
	int queued = -1;
	ICHECK(in, ioctl(s->ifd, FIONREAD, &queued) == 0 && queued == 0, "inotify %d: %d bytes of events nobody caused", s->ifd, queued);
	if (!final)
		return;
	ICHECK(in, write(s->file, "y", 1) == 1, "write to the deleted file");
	char buf[256] __attribute__((aligned(8)));
	ssize_t n = read(s->ifd, buf, sizeof(buf));
	const struct inotify_event *e = (const struct inotify_event *)buf;
	ICHECK(in, n >= (ssize_t)sizeof(*e) && e->wd == s->wd && (e->mask & IN_MODIFY), "inotify %d: no IN_MODIFY for wd %d (read %zd)", s->ifd, s->wd, n);
}

const struct item items_netopts[] = {
	{ "sockopt-proto", 3, protoopts_build, protoopts_check, NULL },
	{ "mcast-join", 2, mcast_build, mcast_check, NULL },
	{ "shmem-exited-writer", 2, shmem_build, shmem_check, NULL },
	{ "inotify-ghost", 2, ighost_build, ighost_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
