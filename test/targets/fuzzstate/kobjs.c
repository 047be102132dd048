/* fuzzstate items: kernel objects and fd states real programs use that the other files do not
 * build: an AIO context with completions not yet reaped, O_PATH fds, fds above 1024, a cwd in
 * a removed directory, a directory watched with dnotify (F_NOTIFY). */
#include "fuzz.h"

#include <linux/aio_abi.h>
#include <sys/resource.h>

/* ---- aio-ring: io_setup's ring mapped in the process, completions waiting in it ----------- */

/* The ring's header as the kernel lays it out at the context's address (fs/aio.c). */
struct aio_ring_hdr {
	unsigned id, nr, head, tail, magic, compat, incompat, header_length;
};

#define AIO_EVENTS 8

struct aio_st {
	aio_context_t ctx;
	int fd, nr, queued; /* queued: completions left in the ring */
	unsigned head, tail, ring_nr;
	uint64_t seed;
	char buf[AIO_EVENTS][512];
};

static int aio_build(struct inst *in, struct rng *r)
{
	struct aio_st *s = ST_OF(in, struct aio_st);
	s->nr = (int)rng_range(r, 1, 128);
	if (syscall(SYS_io_setup, s->nr, &s->ctx) != 0)
		return 1; /* aio-max-nr reached, or no AIO in this kernel */
	const char *p = base_path("aio%d", in->idx);
	s->seed = rng_next(r);
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	static unsigned char data[AIO_EVENTS * 512];
	fill_bytes(data, sizeof(data), s->seed);
	if (fd < 0 || pwrite(fd, data, sizeof(data), 0) != (ssize_t)sizeof(data))
		DIE("aio file");
	s->fd = place_fd(r, fd);
	s->queued = (int)rng_range(r, 0, s->nr < AIO_EVENTS ? s->nr : AIO_EVENTS);
	for (int i = 0; i < s->queued; i++) {
		struct iocb cb = { .aio_data = 0xa10000ULL + (uint64_t)i, .aio_lio_opcode = IOCB_CMD_PREAD,
				   .aio_fildes = (unsigned)s->fd, .aio_buf = (uint64_t)(uintptr_t)s->buf[i],
				   .aio_nbytes = 512, .aio_offset = (int64_t)i * 512 };
		struct iocb *cbs[1] = { &cb };
		if (syscall(SYS_io_submit, s->ctx, 1, cbs) != 1)
			DIE("io_submit");
	}
	/* a buffered read completes within io_submit: wait until every event is in the ring */
	const struct aio_ring_hdr *h = (const void *)(uintptr_t)s->ctx;
	for (int t = 0; t < 2000 && (int)((h->tail + h->nr - h->head) % h->nr) < s->queued; t++)
		sleep_ms(1);
	s->head = h->head, s->tail = h->tail, s->ring_nr = h->nr;
	describe(in, "ctx=%llx nr=%d fd=%d queued=%d", (unsigned long long)s->ctx, s->nr, s->fd, s->queued);
	return 0;
}

static void aio_check(struct inst *in, int final)
{
	struct aio_st *s = ST_OF(in, struct aio_st);
	const struct aio_ring_hdr *h = (const void *)(uintptr_t)s->ctx;
	ICHECK(in, h->magic == 0xa10a10a1 && h->nr == s->ring_nr && h->head == s->head && h->tail == s->tail,
	       "ring at %llx: magic %x nr %u head %u tail %u, expected nr %u head %u tail %u",
	       (unsigned long long)s->ctx, h->magic, h->nr, h->head, h->tail, s->ring_nr, s->head, s->tail);
	if (!final)
		return;
	/* reap what was waiting, then the context must still take and complete new requests */
	struct io_event ev[AIO_EVENTS];
	struct timespec zero = { 0, 0 };
	long n = syscall(SYS_io_getevents, s->ctx, 0, AIO_EVENTS, ev, &zero);
	ICHECK(in, n == s->queued, "io_getevents: %ld events (%s), expected %d", n, n < 0 ? strerror(errno) : "ok", s->queued);
	for (long i = 0; i < n && i < s->queued; i++) {
		ICHECK(in, ev[i].data == 0xa10000ULL + (uint64_t)i && ev[i].res == 512, "event %ld: data %llx res %lld", i,
		       (unsigned long long)ev[i].data, (long long)ev[i].res);
	}
	static unsigned char want[AIO_EVENTS * 512];
	fill_bytes(want, sizeof(want), s->seed);
	for (int i = 0; i < s->queued; i++)
		ICHECK(in, memcmp(s->buf[i], want + i * 512, 512) == 0, "buffer %d: contents read differ", i);
	char buf[512];
	struct iocb cb = { .aio_data = 0xbeef, .aio_lio_opcode = IOCB_CMD_PREAD, .aio_fildes = (unsigned)s->fd,
			   .aio_buf = (uint64_t)(uintptr_t)buf, .aio_nbytes = 512, .aio_offset = 512 };
	struct iocb *cbs[1] = { &cb };
	long sub = syscall(SYS_io_submit, s->ctx, 1, cbs);
	struct timespec sec = { 5, 0 };
	n = sub == 1 ? syscall(SYS_io_getevents, s->ctx, 1, 1, ev, &sec) : -1;
	ICHECK(in, sub == 1 && n == 1 && ev[0].data == 0xbeef && memcmp(buf, want + 512, 512) == 0,
	       "a new request: io_submit %ld, io_getevents %ld (%s)", sub, n, strerror(errno));
	ICHECK(in, syscall(SYS_io_destroy, s->ctx) == 0, "io_destroy: %s", strerror(errno));
}

/* ---- o-path: fds opened with O_PATH (a file, a directory, a symlink itself) ---------------- */

struct opath_st {
	int fd, kind;
	unsigned long ino;
};

/* kind: 0 a file, 1 a directory, 2 a symlink itself (O_NOFOLLOW) */
static int opath_common(struct inst *in, struct rng *r, int kind)
{
	struct opath_st *s = ST_OF(in, struct opath_st);
	s->kind = kind;
	const char *p = base_path("opath%d", in->idx);
	int extra = 0;
	if (s->kind == 0) {
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd < 0)
			DIE("create %s", p);
		close(fd);
	} else if (s->kind == 1) {
		if (mkdir(p, 0750) != 0)
			DIE("mkdir %s", p);
		extra = O_DIRECTORY;
	} else {
		if (symlink("no-such-target", p) != 0)
			DIE("symlink %s", p);
		extra = O_NOFOLLOW;
	}
	int fd = open(p, O_PATH | extra | (rng_one_in(r, 2) ? O_CLOEXEC : 0));
	if (fd < 0)
		DIE("open O_PATH %s", p);
	s->fd = place_fd(r, fd);
	s->ino = fd_ino(s->fd);
	describe(in, "fd=%d kind=%s", s->fd, s->kind == 0 ? "file" : s->kind == 1 ? "dir" : "symlink");
	return 0;
}

static int opath_build(struct inst *in, struct rng *r)
{
	return opath_common(in, r, (int)rng_below(r, 2));
}

static int opath_symlink_build(struct inst *in, struct rng *r)
{
	return opath_common(in, r, 2);
}

static void opath_check(struct inst *in, int final)
{
	(void)final;
	struct opath_st *s = ST_OF(in, struct opath_st);
	int fl = fcntl(s->fd, F_GETFL);
	ICHECK(in, fl >= 0 && (fl & O_PATH), "fd %d F_GETFL 0%o: not O_PATH", s->fd, fl);
	ICHECK(in, fd_ino(s->fd) == s->ino, "fd %d inode %lu, expected %lu", s->fd, fd_ino(s->fd), s->ino);
	char c;
	ICHECK(in, read(s->fd, &c, 1) < 0 && errno == EBADF, "fd %d: read is not EBADF (not an O_PATH fd)", s->fd);
	if (s->kind == 1) {
		/* what O_PATH directories are for: a base for *at() calls */
		int sub = openat(s->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ICHECK(in, sub >= 0, "openat(fd %d, \".\"): %s", s->fd, strerror(errno));
		if (sub >= 0)
			close(sub);
	}
	if (s->kind == 2) {
		char t[64] = "";
		ssize_t n = readlinkat(s->fd, "", t, sizeof(t) - 1);
		ICHECK(in, n == 14 && memcmp(t, "no-such-target", 14) == 0, "readlinkat(fd %d): %zd", s->fd, n);
	}
}

/* ---- fd-high: a file at an fd number above 1024 (servers raise RLIMIT_NOFILE) -------------- */

struct fdhigh_st {
	int fd;
	unsigned long ino;
	off_t off;
};

static int fdhigh_build(struct inst *in, struct rng *r)
{
	struct fdhigh_st *s = ST_OF(in, struct fdhigh_st);
	struct rlimit l;
	getrlimit(RLIMIT_NOFILE, &l);
	long top = l.rlim_cur > 70000 ? 70000 : (long)l.rlim_cur;
	if (top <= 1100)
		return 1;
	int fd = open(base_path("high%d", in->idx), O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		DIE("create high");
	s->off = (off_t)rng_below(r, 100000);
	lseek(fd, s->off, SEEK_SET);
	for (int tries = 0; tries < 20; tries++) {
		int to = (int)rng_range(r, 1025, top - 1);
		if (fcntl(to, F_GETFD) >= 0)
			continue;
		if (dup3(fd, to, rng_one_in(r, 2) ? O_CLOEXEC : 0) < 0)
			DIE("dup3 %d", to);
		close(fd);
		s->fd = to;
		s->ino = fd_ino(to);
		describe(in, "fd=%d off=%lld", s->fd, (long long)s->off);
		return 0;
	}
	close(fd);
	return 1;
}

static void fdhigh_check(struct inst *in, int final)
{
	(void)final;
	struct fdhigh_st *s = ST_OF(in, struct fdhigh_st);
	ICHECK(in, fd_ino(s->fd) == s->ino, "fd %d inode %lu, expected %lu", s->fd, fd_ino(s->fd), s->ino);
	ICHECK(in, lseek(s->fd, 0, SEEK_CUR) == s->off, "fd %d offset %lld, expected %lld", s->fd,
	       (long long)lseek(s->fd, 0, SEEK_CUR), (long long)s->off);
}

/* ---- cwd-removed: the working directory was removed (rm -rf of a build dir under a shell) -- */

struct cwdrm_st {
	unsigned long dev;
	char path[300];
};

static int cwdrm_build(struct inst *in, struct rng *r)
{
	struct cwdrm_st *s = ST_OF(in, struct cwdrm_st);
	char now[300];
	if (!getcwd(now, sizeof(now)) || strlen(now) + 1 != strlen(g_base) || strncmp(now, g_base, strlen(now)) != 0)
		return 1; /* the cwd item moved it: one owner of the cwd */
	snprintf(s->path, sizeof(s->path), "%sgone%d-%llx", g_base, in->idx, (unsigned long long)(rng_next(r) & 0xfff));
	if (mkdir(s->path, 0755) != 0 || chdir(s->path) != 0 || rmdir(s->path) != 0)
		DIE("cwd-removed %s", s->path);
	struct stat st;
	if (stat(".", &st) != 0)
		DIE("stat .");
	s->dev = st.st_dev;
	describe(in, "%s", s->path + strlen(g_base));
	return 0;
}

static void cwdrm_check(struct inst *in, int final)
{
	(void)final;
	struct cwdrm_st *s = ST_OF(in, struct cwdrm_st);
	struct stat st;
	/* made again for the restore, it is another inode (as a deleted file is) on the same fs */
	ICHECK(in, stat(".", &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == s->dev && st.st_nlink == 0,
	       "cwd: mode 0%o dev %lu links %lu, expected a removed directory on dev %lu", st.st_mode,
	       (unsigned long)st.st_dev, (unsigned long)st.st_nlink, s->dev);
	char link[400] = "";
	ssize_t n = readlink("/proc/self/cwd", link, sizeof(link) - 1);
	char want[400];
	snprintf(want, sizeof(want), "%s (deleted)", s->path);
	ICHECK(in, n > 0 && strcmp(link, want) == 0, "/proc/self/cwd is %s, expected %s", link, want);
	errno = 0;
	ICHECK(in, open("x", O_RDWR | O_CREAT, 0600) < 0 && errno == ENOENT, "creating a file in the removed cwd: %s",
	       strerror(errno));
}

/* ---- dnotify: F_NOTIFY on a directory fd, a signal of its own (F_SETSIG) per change ------- */

struct dnotify_st {
	int fd, sig;
	char dir[300];
};

static int dnotify_build(struct inst *in, struct rng *r)
{
	struct dnotify_st *s = ST_OF(in, struct dnotify_st);
	s->sig = sig_alloc(r, 1);
	if (!s->sig)
		return 1;
	snprintf(s->dir, sizeof(s->dir), "%sdn%d", g_base, in->idx);
	if (mkdir(s->dir, 0755) != 0)
		DIE("mkdir %s", s->dir);
	int fd = open(s->dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		DIE("open %s", s->dir);
	block_now(s->sig); /* taken with sigtimedwait at the end; never pending before */
	if (fcntl(fd, F_SETSIG, s->sig) != 0 || fcntl(fd, F_NOTIFY, DN_CREATE | DN_MULTISHOT) != 0)
		DIE("F_NOTIFY");
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d sig=%d", s->fd, s->sig);
	return 0;
}

static void dnotify_check(struct inst *in, int final)
{
	struct dnotify_st *s = ST_OF(in, struct dnotify_st);
	ICHECK(in, fcntl(s->fd, F_GETSIG) == s->sig, "fd %d F_GETSIG %d, expected %d", s->fd, fcntl(s->fd, F_GETSIG), s->sig);
	if (!final)
		return;
	/* a file made in the directory raises the signal, with the watched fd in si_fd */
	char p[400];
	snprintf(p, sizeof(p), "%s/new", s->dir);
	int f = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (f >= 0)
		close(f);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, s->sig);
	siginfo_t si;
	struct timespec t = { 5, 0 };
	int got = sigtimedwait(&one, &si, &t);
	ICHECK(in, got == s->sig && si.si_fd == s->fd, "creating %s: sigtimedwait %d (%s) si_fd %d, expected signal %d for fd %d",
	       p, got, got < 0 ? strerror(errno) : "ok", got == s->sig ? si.si_fd : -1, s->sig, s->fd);
}

const struct item items_kobjs[] = {
	{ "dnotify", 1, dnotify_build, dnotify_check, NULL },
	{ "aio-ring", 2, aio_build, aio_check, NULL },
	{ "o-path", 3, opath_build, opath_check, NULL },
	{ "o-path-symlink", 1, opath_symlink_build, opath_check, NULL },
	{ "fd-high", 2, fdhigh_build, fdhigh_check, NULL },
	{ "cwd-removed", 1, cwdrm_build, cwdrm_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
