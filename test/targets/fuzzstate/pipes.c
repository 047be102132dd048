/* fuzzstate items: pipes and FIFOs with data in flight, reopened ends, owners and signals, packet-mode
 * pipes (O_DIRECT) with packets waiting. */
#include "fuzz.h"

#include <sys/ioctl.h>

/* One pipe (or FIFO) with len pattern bytes in flight from rfd to wfd. */
struct pipe_st {
	int rfd, wfd; /* -1 when that end was closed */
	int size;     /* F_GETPIPE_SZ */
	size_t len;
	uint64_t seed;
	int reopened; /* pipe-reopen: a second description of the read end */
	int owner, sig; /* pipe-fown: F_SETOWN / F_SETSIG on rfd */
	struct f_owner_ex ownex;
};

static void fill_pipe(int wfd, size_t len, uint64_t seed)
{
	static unsigned char buf[1 << 20];
	fill_bytes(buf, len, seed);
	int fl = fcntl(wfd, F_GETFL);
	fcntl(wfd, F_SETFL, fl | O_NONBLOCK);
	if (write(wfd, buf, len) != (ssize_t)len)
		DIE("fill pipe with %zu bytes", len);
	fcntl(wfd, F_SETFL, fl);
}

static void pipe_common_check(struct inst *in, struct pipe_st *s, int final)
{
	int fd = s->rfd >= 0 ? s->rfd : s->wfd;
	ICHECK(in, fcntl(fd, F_GETPIPE_SZ) == s->size, "fd %d pipe size %d, expected %d", fd,
	       fcntl(fd, F_GETPIPE_SZ), s->size);
	int queued = -1;
	ioctl(fd, FIONREAD, &queued);
	ICHECK(in, queued == (int)s->len, "fd %d holds %d bytes, expected %zu", fd, queued, s->len);
	if (!final || s->rfd < 0 || queued != (int)s->len)
		return;
	static unsigned char buf[1 << 20];
	int fl = fcntl(s->rfd, F_GETFL);
	fcntl(s->rfd, F_SETFL, fl | O_NONBLOCK);
	size_t got = 0;
	while (got < s->len) {
		ssize_t n = read(s->rfd, buf + got, s->len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	fcntl(s->rfd, F_SETFL, fl);
	long bad = check_bytes(buf, got, s->seed);
	ICHECK(in, got == s->len && bad == -1, "fd %d: read %zu of %zu bytes, first difference at %ld",
	       s->rfd, got, s->len, bad);
}

static int pipe_build(struct inst *in, struct rng *r)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	int p[2];
	int flags = (rng_one_in(r, 2) ? O_NONBLOCK : 0) | (rng_one_in(r, 2) ? O_CLOEXEC : 0) |
		    (rng_one_in(r, 6) ? O_DIRECT : 0);
	if (pipe2(p, flags) != 0)
		DIE("pipe2");
	if (rng_one_in(r, 3))
		fcntl(p[0], F_SETPIPE_SZ, (int)rng_range(r, 4096, 1 << 20));
	s->size = fcntl(p[0], F_GETPIPE_SZ);
	/* O_DIRECT pipes are packet pipes: one write is one packet, a read takes one */
	s->len = (flags & O_DIRECT) ? (size_t)rng_below(r, 4097) : (size_t)rng_below(r, (uint64_t)s->size + 1);
	s->seed = rng_next(r);
	if (s->len)
		fill_pipe(p[1], s->len, s->seed);
	if (rng_one_in(r, 2))
		fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) ^ O_NONBLOCK);
	s->rfd = place_fd(r, p[0]);
	s->wfd = place_fd(r, p[1]);
	int drop = (int)rng_below(r, 4); /* 0: close the write end, 1: close the read end */
	if (drop == 0) {
		close(s->wfd);
		s->wfd = -1;
	} else if (drop == 1) {
		close(s->rfd);
		s->rfd = -1;
	}
	describe(in, "rfd=%d wfd=%d flags=0%o size=%d len=%zu", s->rfd, s->wfd, flags, s->size, s->len);
	return 0;
}

static void pipe_check(struct inst *in, int final)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	if (s->rfd >= 0 && s->wfd >= 0) {
		struct stat a, b;
		fstat(s->rfd, &a);
		fstat(s->wfd, &b);
		ICHECK(in, a.st_ino == b.st_ino, "fds %d and %d are not one pipe any more", s->rfd, s->wfd);
	}
	pipe_common_check(in, s, final);
}

/* ---- fifo: a named pipe in cwd, opened O_RDWR or as two ends ------------------------------ */

static int fifo_build(struct inst *in, struct rng *r)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	const char *p = base_path("fifo%d", in->idx);
	if (mkfifo(p, 0600) != 0)
		DIE("mkfifo %s", p);
	s->rfd = open(p, O_RDONLY | O_NONBLOCK);
	s->wfd = open(p, rng_one_in(r, 2) ? O_RDWR : O_WRONLY);
	if (s->rfd < 0 || s->wfd < 0)
		DIE("open fifo");
	if (rng_one_in(r, 2))
		fcntl(s->rfd, F_SETFL, 0);
	s->size = fcntl(s->rfd, F_GETPIPE_SZ);
	s->len = (size_t)rng_below(r, (uint64_t)s->size + 1);
	s->seed = rng_next(r);
	if (s->len)
		fill_pipe(s->wfd, s->len, s->seed);
	s->rfd = place_fd(r, s->rfd);
	s->wfd = place_fd(r, s->wfd);
	describe(in, "rfd=%d wfd=%d len=%zu", s->rfd, s->wfd, s->len);
	return 0;
}

/* ---- pipe-reopen: the read end opened again through /proc/self/fd (its own flags) ---------- */

static int reopen_build(struct inst *in, struct rng *r)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	int p[2];
	if (pipe2(p, 0) != 0)
		DIE("pipe2");
	s->size = fcntl(p[0], F_GETPIPE_SZ);
	s->len = (size_t)rng_below(r, 8192);
	s->seed = rng_next(r);
	if (s->len)
		fill_pipe(p[1], s->len, s->seed);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	int again = open(path, O_RDONLY | (rng_one_in(r, 2) ? O_NONBLOCK : 0));
	if (again < 0)
		DIE("reopen %s", path);
	if (rng_one_in(r, 2))
		fcntl(p[0], F_SETFL, O_NONBLOCK);
	s->rfd = place_fd(r, p[0]);
	s->wfd = place_fd(r, p[1]);
	s->reopened = place_fd(r, again);
	describe(in, "rfd=%d wfd=%d again=%d len=%zu", s->rfd, s->wfd, s->reopened, s->len);
	return 0;
}

static void reopen_check(struct inst *in, int final)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	ICHECK(in, !same_description(s->rfd, s->reopened), "fd %d and its reopen %d share a description",
	       s->rfd, s->reopened);
	ICHECK(in, fd_ino(s->rfd) == fd_ino(s->reopened), "fd %d and its reopen %d are different pipes",
	       s->rfd, s->reopened);
	pipe_check(in, final);
}

/* ---- pipe-fown: F_SETOWN / F_SETOWN_EX / F_SETSIG (and O_ASYNC) on a pipe end -------------- */

static int fown_build(struct inst *in, struct rng *r)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	int p[2];
	if (pipe2(p, O_NONBLOCK) != 0)
		DIE("pipe2");
	s->size = fcntl(p[0], F_GETPIPE_SZ);
	s->len = 0;
	int how = (int)rng_below(r, 3);
	if (how == 0) {
		s->ownex.type = F_OWNER_PID;
		s->ownex.pid = getpid();
	} else if (how == 1) {
		s->ownex.type = F_OWNER_PGRP;
		s->ownex.pid = getpgrp();
	} else {
		s->ownex.type = F_OWNER_TID;
		s->ownex.pid = gettid();
	}
	if (fcntl(p[0], F_SETOWN_EX, &s->ownex) != 0)
		DIE("F_SETOWN_EX");
	s->sig = rng_one_in(r, 3) ? 0 : sig_alloc(r, 1);
	if (s->sig)
		block_now(s->sig); /* never delivered: nothing is written to the pipe */
	if (fcntl(p[0], F_SETSIG, s->sig) != 0)
		DIE("F_SETSIG");
	if (rng_one_in(r, 2))
		fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC);
	s->rfd = place_fd(r, p[0]);
	s->wfd = place_fd(r, p[1]);
	describe(in, "rfd=%d owner-type=%d owner=%d sig=%d", s->rfd, s->ownex.type, s->ownex.pid, s->sig);
	return 0;
}

static void fown_check(struct inst *in, int final)
{
	struct pipe_st *s = ST_OF(in, struct pipe_st);
	struct f_owner_ex now = { 0, 0 };
	fcntl(s->rfd, F_GETOWN_EX, &now);
	ICHECK(in, now.type == s->ownex.type && now.pid == s->ownex.pid,
	       "fd %d owner type %d pid %d, expected %d %d", s->rfd, now.type, now.pid, s->ownex.type,
	       s->ownex.pid);
	ICHECK(in, fcntl(s->rfd, F_GETSIG) == s->sig, "fd %d F_GETSIG %d, expected %d", s->rfd,
	       fcntl(s->rfd, F_GETSIG), s->sig);
	pipe_check(in, final);
}

/* ---- pipe-packets: a packet-mode pipe (pipe2(O_DIRECT)) with packets waiting: a read returns
 * one packet at most, and drops what of it does not fit ------------------------------------ */

#define PACKETS_MAX 8

struct packets_st {
	int rfd, wfd, n;
	int len[PACKETS_MAX];
	uint64_t seed[PACKETS_MAX];
};

static int packets_build(struct inst *in, struct rng *r)
{
	struct packets_st *s = ST_OF(in, struct packets_st);
	int p[2];
	if (pipe2(p, O_DIRECT | O_NONBLOCK) != 0)
		DIE("pipe2(O_DIRECT)");
	s->n = (int)rng_range(r, 1, PACKETS_MAX);
	static unsigned char buf[4096];
	describe(in, "packets=");
	for (int i = 0; i < s->n; i++) {
		s->len[i] = rng_one_in(r, 4) ? 1 : (int)rng_range(r, 2, sizeof(buf));
		s->seed[i] = rng_next(r);
		fill_bytes(buf, (size_t)s->len[i], s->seed[i]);
		if (write(p[1], buf, (size_t)s->len[i]) != s->len[i])
			DIE("write packet");
		describe(in, "%s%d", i ? "," : "", s->len[i]);
	}
	s->rfd = place_fd(r, p[0]);
	s->wfd = place_fd(r, p[1]);
	describe(in, " rfd=%d wfd=%d", s->rfd, s->wfd);
	return 0;
}

static void packets_check(struct inst *in, int final)
{
	struct packets_st *s = ST_OF(in, struct packets_st);
	if (!final)
		return; /* reading would take them */
	static unsigned char buf[8192];
	for (int i = 0; i < s->n; i++) {
		/* the last one, when longer than a byte, read short: the rest of it must be gone */
		size_t want = i == s->n - 1 && s->len[i] > 1 ? (size_t)s->len[i] - 1 : sizeof(buf);
		ssize_t n = read(s->rfd, buf, want);
		size_t expect = want < (size_t)s->len[i] ? want : (size_t)s->len[i];
		if (n != (ssize_t)expect || check_bytes(buf, (size_t)n, s->seed[i]) != -1) {
			IFAIL(in, "fd %d packet %d of %d: %zd bytes (%s), expected %zu", s->rfd, i, s->n, n, n < 0 ? strerror(errno) : "ok", expect);
			return;
		}
	}
	ssize_t more = read(s->rfd, buf, sizeof(buf));
	ICHECK(in, more < 0 && errno == EAGAIN, "fd %d: %zd bytes after the last packet", s->rfd, more);
	/* still a packet pipe: two writes are two packets */
	ICHECK(in, write(s->wfd, "ab", 2) == 2 && write(s->wfd, "c", 1) == 1 && read(s->rfd, buf, sizeof(buf)) == 2 && read(s->rfd, buf, sizeof(buf)) == 1,
	       "fd %d: writes after restore are not packets", s->wfd);
}

const struct item items_pipes[] = {
	{ "pipe", 6, pipe_build, pipe_check, NULL },
	{ "fifo", 2, fifo_build, pipe_check, NULL },
	{ "pipe-reopen", 2, reopen_build, reopen_check, NULL },
	{ "pipe-fown", 2, fown_build, fown_check, NULL },
	{ "pipe-packets", 2, packets_build, packets_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
