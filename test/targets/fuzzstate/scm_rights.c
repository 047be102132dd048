/* fuzzstate item: descriptors in flight (SCM_RIGHTS) on a unix socket, their originals closed. */
#include "fuzz.h"

#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define SCM_MSGS 3
#define SCM_FDS 3

struct scm_st {
	int fd[2], type, nmsg;
	struct {
		int len, nfds;
		uint64_t seed;
		struct {
			int kind; /* 0 regular file, 1 pipe read end, 2 eventfd */
			unsigned long ino;
			size_t size;
			uint64_t seed;
		} f[SCM_FDS];
	} m[SCM_MSGS];
};

/* A descriptor of `kind` holding something to recognise it by; records it in *f. */
static int scm_make_fd(struct inst *in, struct rng *r, int k, int i, typeof(((struct scm_st *)0)->m[0].f[0]) *f)
{
	f->kind = (int)rng_below(r, 3);
	f->seed = rng_next(r);
	f->size = (size_t)rng_range(r, 1, 4096);
	static unsigned char buf[4096];
	fill_bytes(buf, f->size, f->seed);
	if (f->kind == 0) {
		const char *p = base_path("scm%d-%d-%d", in->idx, k, i);
		int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || pwrite(fd, buf, f->size, 0) != (ssize_t)f->size)
			DIE("scm file");
		f->ino = fd_ino(fd);
		return fd;
	}
	if (f->kind == 1) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) != 0 || write(p[1], buf, f->size) != (ssize_t)f->size)
			DIE("scm pipe");
		close(p[1]);
		return p[0];
	}
	f->size = (size_t)(f->seed & 0xffffff) + 1; /* the eventfd's count */
	int fd = eventfd((unsigned)f->size, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		DIE("scm eventfd");
	return fd;
}

static int scm_build(struct inst *in, struct rng *r)
{
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
	struct scm_st *s = ST_OF(in, struct scm_st);
	s->type = types[rng_below(r, 3)];
	if (socketpair(AF_UNIX, s->type | SOCK_CLOEXEC, 0, s->fd) != 0)
		DIE("socketpair");
	s->nmsg = (int)rng_range(r, 1, SCM_MSGS);
	describe(in, "type=%d", s->type);
	for (int k = 0; k < s->nmsg; k++) {
		static unsigned char data[512];
		s->m[k].len = (int)rng_range(r, 1, sizeof(data));
		s->m[k].seed = rng_next(r);
		s->m[k].nfds = (int)rng_range(r, 1, SCM_FDS);
		fill_bytes(data, (size_t)s->m[k].len, s->m[k].seed);
		int fds[SCM_FDS];
		describe(in, "msg%d:%dB", k, s->m[k].len);
		for (int i = 0; i < s->m[k].nfds; i++) {
			fds[i] = scm_make_fd(in, r, k, i, &s->m[k].f[i]);
			describe(in, "%s", (const char *[]){ "file", "pipe", "eventfd" }[s->m[k].f[i].kind]);
		}
		union {
			char buf[CMSG_SPACE(sizeof(int) * SCM_FDS)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { data, (size_t)s->m[k].len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)s->m[k].nfds) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)s->m[k].nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)s->m[k].nfds);
		if (sendmsg(s->fd[0], &mh, 0) != s->m[k].len)
			DIE("sendmsg");
		for (int i = 0; i < s->m[k].nfds; i++)
			close(fds[i]); /* only in flight now */
	}
	s->fd[0] = place_fd(r, s->fd[0]);
	s->fd[1] = place_fd(r, s->fd[1]);
	describe(in, "fds=%d,%d", s->fd[0], s->fd[1]);
	return 0;
}

static void scm_check_fd(struct inst *in, int fd, const typeof(((struct scm_st *)0)->m[0].f[0]) *f)
{
	static unsigned char buf[4096];
	if (f->kind == 0) {
		ICHECK(in, fd_ino(fd) == f->ino, "received fd %d is inode %lu, expected %lu", fd, fd_ino(fd), f->ino);
		long bad = check_fd_bytes(fd, 0, f->size, f->seed);
		ICHECK(in, bad == -1, "received file fd %d: contents differ at %ld", fd, bad);
	} else if (f->kind == 1) {
		ssize_t n = read(fd, buf, sizeof(buf));
		ICHECK(in, n == (ssize_t)f->size && check_bytes(buf, f->size, f->seed) == -1,
		       "received pipe fd %d: read %zd bytes, expected %zu", fd, n, f->size);
	} else {
		uint64_t v = 0;
		ICHECK(in, read(fd, &v, 8) == 8 && v == f->size, "received eventfd %d: count %llu, expected %zu", fd,
		       (unsigned long long)v, f->size);
	}
}

static void scm_check(struct inst *in, int final)
{
	struct scm_st *s = ST_OF(in, struct scm_st);
	size_t total = 0;
	for (int k = 0; k < s->nmsg; k++)
		total += (size_t)s->m[k].len;
	int inq = -1;
	ioctl(s->fd[1], SIOCINQ, &inq);
	if (s->type == SOCK_STREAM)
		ICHECK(in, inq == (int)total, "fd %d has %d bytes queued, expected %zu", s->fd[1], inq, total);
	if (!final) /* peeking with a control buffer would install the fds: look at the bytes only */
		return;
	for (int k = 0; k < s->nmsg; k++) {
		static unsigned char data[512];
		union {
			char buf[CMSG_SPACE(sizeof(int) * SCM_FDS)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { data, (size_t)s->m[k].len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
		ssize_t n = recvmsg(s->fd[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
		int nfds = c && c->cmsg_type == SCM_RIGHTS ? (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0;
		if (n != s->m[k].len || check_bytes(data, (size_t)n, s->m[k].seed) != -1 || nfds != s->m[k].nfds) {
			IFAIL(in, "message %d: %zd bytes with %d fds, expected %d bytes with %d fds", k, n, nfds,
			      s->m[k].len, s->m[k].nfds);
			for (int i = 0; i < nfds; i++)
				close(((int *)CMSG_DATA(c))[i]);
			return;
		}
		for (int i = 0; i < nfds; i++) {
			int fd = ((int *)CMSG_DATA(c))[i];
			scm_check_fd(in, fd, &s->m[k].f[i]);
			close(fd);
		}
	}
}

const struct item items_scm_rights[] = {
	{ "scm-rights", 2, scm_build, scm_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
