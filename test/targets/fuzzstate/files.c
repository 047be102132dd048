/* fuzzstate items: regular files (live, deleted, O_TMPFILE), directories, devices, memfds. */
#include "fuzz.h"

#include <sys/file.h>
#include <sys/mman.h>

/* Write len pattern bytes to fd at offset 0. */
static void write_pattern(int fd, size_t len, uint64_t seed)
{
	static unsigned char buf[1 << 18];
	if (len > sizeof(buf))
		DIE("pattern too long");
	fill_bytes(buf, len, seed);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len)
		DIE("pwrite");
}

static int random_open_mode(struct rng *r)
{
	static const int acc[] = { O_RDONLY, O_WRONLY, O_RDWR };
	int fl = acc[rng_below(r, 3)];
	if ((fl & O_ACCMODE) != O_RDONLY && rng_one_in(r, 3))
		fl |= O_APPEND;
	if (rng_one_in(r, 4))
		fl |= O_NONBLOCK;
	if (rng_one_in(r, 4))
		fl |= O_NOATIME;
	if (rng_one_in(r, 3))
		fl |= O_CLOEXEC;
	return fl;
}

/* ---- regfile: a file in cwd with contents, a mode, an offset, dups and other opens -------- */

struct regfile_st {
	char path[300];
	size_t size;
	uint64_t seed;
	int fd, dup, other; /* dup: same description; other: a second open of the file */
	off_t off, other_off;
	unsigned long ino;
};

static int regfile_build(struct inst *in, struct rng *r)
{
	struct regfile_st *s = ST_OF(in, struct regfile_st);
	snprintf(s->path, sizeof(s->path), "%sreg%d", g_base, in->idx);
	s->size = (size_t)rng_below(r, 200000);
	s->seed = rng_next(r);
	int wfd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)rng_range(r, 0400, 0777));
	if (wfd < 0)
		DIE("create %s", s->path);
	write_pattern(wfd, s->size, s->seed);
	close(wfd);
	int fl = random_open_mode(r);
	int fd = open(s->path, fl);
	if (fd < 0)
		DIE("open %s 0%o", s->path, fl);
	s->off = (off_t)rng_below(r, s->size + 4096);
	lseek(fd, s->off, SEEK_SET);
	s->fd = place_fd(r, fd);
	s->dup = s->other = -1;
	if (rng_one_in(r, 3)) {
		s->dup = fcntl(s->fd, rng_one_in(r, 2) ? F_DUPFD_CLOEXEC : F_DUPFD, (int)rng_range(r, 3, 600));
		if (s->dup < 0)
			DIE("F_DUPFD");
	}
	if (rng_one_in(r, 3)) {
		s->other = open(s->path, random_open_mode(r));
		if (s->other < 0)
			DIE("second open");
		s->other_off = (off_t)rng_below(r, s->size + 1);
		lseek(s->other, s->other_off, SEEK_SET);
		s->other = place_fd(r, s->other);
	}
	s->ino = fd_ino(s->fd);
	describe(in, "fd=%d flags=0%o size=%zu off=%lld dup=%d other=%d", s->fd, fl, s->size,
		 (long long)s->off, s->dup, s->other);
	return 0;
}

static void regfile_check(struct inst *in, int final)
{
	(void)final;
	struct regfile_st *s = ST_OF(in, struct regfile_st);
	ICHECK(in, fd_ino(s->fd) == s->ino, "fd %d refers to inode %lu, expected %lu", s->fd,
	       fd_ino(s->fd), s->ino);
	ICHECK(in, lseek(s->fd, 0, SEEK_CUR) == s->off, "fd %d offset %lld, expected %lld", s->fd,
	       (long long)lseek(s->fd, 0, SEEK_CUR), (long long)s->off);
	if (s->dup >= 0)
		ICHECK(in, same_description(s->fd, s->dup), "fd %d and its dup %d no longer share a description",
		       s->fd, s->dup);
	if (s->other >= 0) {
		ICHECK(in, !same_description(s->fd, s->other), "fd %d and %d (two opens) share a description",
		       s->fd, s->other);
		ICHECK(in, lseek(s->other, 0, SEEK_CUR) == s->other_off, "fd %d offset %lld, expected %lld",
		       s->other, (long long)lseek(s->other, 0, SEEK_CUR), (long long)s->other_off);
	}
	int rfd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0) {
		IFAIL(in, "cannot open %s: %s", s->path, strerror(errno));
		return;
	}
	struct stat st;
	fstat(rfd, &st);
	ICHECK(in, (size_t)st.st_size == s->size, "%s size %lld, expected %zu", s->path,
	       (long long)st.st_size, s->size);
	long bad = check_fd_bytes(rfd, 0, s->size, s->seed);
	ICHECK(in, bad == -1, "%s contents differ at %ld", s->path, bad);
	close(rfd);
}

/* ---- ghost: a file deleted while open (and O_TMPFILE, never linked) ----------------------- */

struct ghost_st {
	int fd;
	size_t size, written; /* written: the pattern's bytes; size may go on as a hole */
	uint64_t seed;
	off_t off;
	/* sparse: a hole punched in the pattern, [hole, hole + hole_len); what SEEK_HOLE and SEEK_DATA
	 * showed at the build (the file system's own answer, compared after the restore) */
	off_t hole, hole_len, first_hole, data_after;
};

static int ghost_common(struct inst *in, struct rng *r, int tmpfile)
{
	struct ghost_st *s = ST_OF(in, struct ghost_st);
	s->size = (size_t)rng_below(r, 200000);
	s->seed = rng_next(r);
	int fl = rng_one_in(r, 2) ? O_RDWR : O_RDONLY;
	int fd;
	if (tmpfile) {
		fd = open(g_base, O_TMPFILE | O_RDWR, 0600);
		if (fd < 0)
			DIE("O_TMPFILE");
		fl = O_RDWR;
		write_pattern(fd, s->size, s->seed);
	} else {
		const char *p = base_path("ghost%d", in->idx);
		int wfd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (wfd < 0)
			DIE("create %s", p);
		write_pattern(wfd, s->size, s->seed);
		fd = open(p, fl);
		close(wfd);
		if (fd < 0 || unlink(p) != 0)
			DIE("ghost %s", p);
	}
	s->written = s->size;
	if (rng_one_in(r, 3)) {
		/* sparse: a hole in the middle, and maybe more size as a hole, past the ghost limit */
		s->hole = (off_t)(rng_below(r, s->size / 4096 + 1) * 4096);
		s->hole_len = (off_t)(rng_range(r, 1, 16) * 4096);
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		int w = fl == O_RDWR ? fd : open(self, O_RDWR);
		if (w < 0 || fallocate(w, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, s->hole, s->hole_len) != 0)
			DIE("punch a hole");
		if (rng_one_in(r, 2)) {
			s->size += (size_t)rng_range(r, 1, 8 << 20);
			if (ftruncate(w, (off_t)s->size) != 0)
				DIE("ftruncate");
		}
		if (w != fd)
			close(w);
		s->first_hole = lseek(fd, 0, SEEK_HOLE);
		s->data_after = lseek(fd, s->hole, SEEK_DATA);
		describe(in, "hole=%lld+%lld ", (long long)s->hole, (long long)s->hole_len);
	}
	s->off = (off_t)rng_below(r, s->size + 1);
	lseek(fd, s->off, SEEK_SET);
	random_cloexec(r, fd);
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d flags=0%o size=%zu off=%lld", s->fd, fl, s->size, (long long)s->off);
	return 0;
}

static int ghost_build(struct inst *in, struct rng *r)
{
	return ghost_common(in, r, 0);
}

static int tmpfile_build(struct inst *in, struct rng *r)
{
	return ghost_common(in, r, 1);
}

static void ghost_check(struct inst *in, int final)
{
	(void)final;
	struct ghost_st *s = ST_OF(in, struct ghost_st);
	struct stat st;
	if (fstat(s->fd, &st) != 0) {
		IFAIL(in, "fstat(%d): %s", s->fd, strerror(errno));
		return;
	}
	ICHECK(in, S_ISREG(st.st_mode) && st.st_nlink == 0 && (size_t)st.st_size == s->size,
	       "fd %d: mode 0%o nlink %lu size %lld, expected a deleted file of %zu bytes", s->fd,
	       st.st_mode, (unsigned long)st.st_nlink, (long long)st.st_size, s->size);
	ICHECK(in, lseek(s->fd, 0, SEEK_CUR) == s->off, "fd %d offset %lld, expected %lld", s->fd,
	       (long long)lseek(s->fd, 0, SEEK_CUR), (long long)s->off);
	if (!s->hole_len) {
		long bad = check_fd_bytes(s->fd, 0, s->size, s->seed);
		ICHECK(in, bad == -1, "fd %d contents differ at %ld", s->fd, bad);
		return;
	}
	unsigned char *want = malloc(s->written + 1), *got = malloc(s->written + 1);
	if (!want || !got)
		DIE("malloc");
	fill_bytes(want, s->written, s->seed);
	for (off_t i = s->hole; i < s->hole + s->hole_len && (size_t)i < s->written; i++)
		want[i] = 0;
	ssize_t n = pread(s->fd, got, s->written, 0);
	ICHECK(in, n == (ssize_t)s->written && memcmp(want, got, s->written) == 0, "fd %d contents differ around the hole at %lld", s->fd,
	       (long long)s->hole);
	free(want);
	free(got);
	char tail[64];
	ICHECK(in, s->size == s->written || (pread(s->fd, tail, sizeof(tail), (off_t)s->size - 64) == 64 && !tail[0] && !tail[63]), "fd %d: its end is not zeros", s->fd);
	off_t first_hole = lseek(s->fd, 0, SEEK_HOLE), data_after = lseek(s->fd, s->hole, SEEK_DATA);
	ICHECK(in, first_hole == s->first_hole && data_after == s->data_after, "fd %d: first hole at %lld, data after %lld at %lld; expected %lld and %lld (holes filled?)",
	       s->fd, (long long)first_hole, (long long)s->hole, (long long)data_after, (long long)s->first_hole, (long long)s->data_after);
	lseek(s->fd, s->off, SEEK_SET);
}

/* ---- dirfd: an open directory; rmdir-dir: one removed while open -------------------------- */

struct dir_st {
	int fd;
	unsigned long ino;
	int removed;
};

static int dir_common(struct inst *in, struct rng *r, int removed)
{
	struct dir_st *s = ST_OF(in, struct dir_st);
	const char *p = base_path("dir%d", in->idx);
	if (mkdir(p, (mode_t)rng_range(r, 0500, 0777)) != 0)
		DIE("mkdir %s", p);
	if (!removed && rng_one_in(r, 2))
		mkdir(base_path("dir%d/sub", in->idx), 0700);
	int fd = open(p, O_RDONLY | O_DIRECTORY | (rng_one_in(r, 2) ? O_CLOEXEC : 0));
	if (fd < 0)
		DIE("open dir");
	if (removed && rmdir(p) != 0)
		DIE("rmdir");
	s->fd = place_fd(r, fd);
	s->ino = fd_ino(s->fd);
	s->removed = removed;
	describe(in, "fd=%d", s->fd);
	return 0;
}

static int dirfd_build(struct inst *in, struct rng *r)
{
	return dir_common(in, r, 0);
}

static int rmdir_build(struct inst *in, struct rng *r)
{
	return dir_common(in, r, 1);
}

static void dir_check(struct inst *in, int final)
{
	(void)final;
	struct dir_st *s = ST_OF(in, struct dir_st);
	struct stat st;
	if (fstat(s->fd, &st) != 0) {
		IFAIL(in, "fstat(%d): %s", s->fd, strerror(errno));
		return;
	}
	ICHECK(in, S_ISDIR(st.st_mode), "fd %d is not a directory (mode 0%o)", s->fd, st.st_mode);
	if (s->removed)
		ICHECK(in, st.st_nlink == 0, "removed directory fd %d has %lu links", s->fd,
		       (unsigned long)st.st_nlink);
	else
		ICHECK(in, st.st_ino == s->ino, "fd %d is inode %lu, expected %lu", s->fd,
		       (unsigned long)st.st_ino, s->ino);
}

/* ---- device: /dev/null-like character devices --------------------------------------------- */

struct dev_st {
	int fd;
	dev_t rdev;
};

static int dev_build(struct inst *in, struct rng *r)
{
	static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random" };
	struct dev_st *s = ST_OF(in, struct dev_st);
	const char *d = devs[rng_below(r, 5)];
	int fl = random_open_mode(r) & ~O_NOATIME;
	int fd = open(d, fl);
	if (fd < 0)
		DIE("open %s", d);
	s->fd = place_fd(r, fd);
	struct stat st;
	fstat(s->fd, &st);
	s->rdev = st.st_rdev;
	describe(in, "fd=%d %s flags=0%o", s->fd, d, fl);
	return 0;
}

static void dev_check(struct inst *in, int final)
{
	(void)final;
	struct dev_st *s = ST_OF(in, struct dev_st);
	struct stat st;
	ICHECK(in, fstat(s->fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == s->rdev,
	       "fd %d is not the same character device", s->fd);
}

/* ---- procfs: a file of the kernel's own kept open and read again (a monitor's) ------------ */

struct procfs_st {
	int fd, which; /* 0: /proc/self/status (our Pid), 1: /proc/self/stat (our pid first), 2: /proc/meminfo */
};

static const char *const procfs_paths[] = { "/proc/self/status", "/proc/self/stat", "/proc/meminfo" };

static int procfs_build(struct inst *in, struct rng *r)
{
	struct procfs_st *s = ST_OF(in, struct procfs_st);
	s->which = (int)rng_below(r, 3);
	int fd = open(procfs_paths[s->which], O_RDONLY | (rng_one_in(r, 2) ? O_CLOEXEC : 0));
	if (fd < 0)
		DIE("open %s", procfs_paths[s->which]);
	char buf[64];
	if (read(fd, buf, sizeof(buf)) <= 0) /* a position past 0, as a reader leaves it */
		DIE("read %s", procfs_paths[s->which]);
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d %s", s->fd, procfs_paths[s->which]);
	return 0;
}

static void procfs_check(struct inst *in, int final)
{
	(void)final;
	struct procfs_st *s = ST_OF(in, struct procfs_st);
	char buf[4096];
	ssize_t n = pread(s->fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0) {
		IFAIL(in, "fd %d (%s) reads nothing", s->fd, procfs_paths[s->which]);
		return;
	}
	buf[n] = 0;
	char want[64];
	if (s->which == 0) {
		snprintf(want, sizeof(want), "\nPid:\t%d\n", (int)getpid());
		ICHECK(in, strstr(buf, want) != NULL, "fd %d: /proc/self/status is not ours", s->fd);
	} else if (s->which == 1) {
		snprintf(want, sizeof(want), "%d (", (int)getpid());
		ICHECK(in, !strncmp(buf, want, strlen(want)), "fd %d: /proc/self/stat is not ours", s->fd);
	} else
		ICHECK(in, !strncmp(buf, "MemTotal:", 9), "fd %d: /proc/meminfo reads %.20s", s->fd, buf);
}

/* ---- memfd: name, size, contents, seals --------------------------------------------------- */

struct memfd_st {
	int fd;
	char name[32];
	size_t size, plen; /* plen: the pattern's length (the rest reads as zeroes) */
	uint64_t seed;
	int seals;
};

static int memfd_common(struct inst *in, struct rng *r, int odd_size)
{
	struct memfd_st *s = ST_OF(in, struct memfd_st);
	snprintf(s->name, sizeof(s->name), "fz%d-%llx", in->idx, (unsigned long long)(rng_next(r) & 0xffff));
	int sealing = rng_one_in(r, 2);
	int fd = memfd_create(s->name, (sealing ? MFD_ALLOW_SEALING : 0) | (rng_one_in(r, 2) ? MFD_CLOEXEC : 0));
	if (fd < 0)
		DIE("memfd_create");
	s->size = (size_t)rng_below(r, 200000);
	if (!odd_size) /* a whole number of pages: the memfd-odd-size item has the others */
		s->size &= ~4095UL;
	s->seed = rng_next(r);
	s->plen = s->size;
	write_pattern(fd, s->size, s->seed);
	if (rng_one_in(r, 3) && ftruncate(fd, (off_t)(s->size + (rng_below(r, 100000) & (odd_size ? ~0UL : ~4095UL)))) == 0) {
		struct stat st;
		fstat(fd, &st);
		s->size = (size_t)st.st_size;
	}
	if (sealing) {
		int want = 0;
		if (rng_one_in(r, 2))
			want |= F_SEAL_SHRINK;
		if (rng_one_in(r, 2))
			want |= F_SEAL_GROW;
		if (rng_one_in(r, 3))
			want |= F_SEAL_WRITE;
		if (rng_one_in(r, 3))
			want |= F_SEAL_SEAL;
		if (want && fcntl(fd, F_ADD_SEALS, want) != 0)
			DIE("F_ADD_SEALS");
	}
	s->seals = fcntl(fd, F_GET_SEALS);
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d name=%s size=%zu seals=0x%x", s->fd, s->name, s->size, s->seals);
	return 0;
}

static int memfd_build(struct inst *in, struct rng *r)
{
	return memfd_common(in, r, 0);
}

static int memfd_odd_build(struct inst *in, struct rng *r)
{
	return memfd_common(in, r, 1);
}

static void memfd_check(struct inst *in, int final)
{
	(void)final;
	struct memfd_st *s = ST_OF(in, struct memfd_st);
	char link[128], want[128], lp[64];
	snprintf(lp, sizeof(lp), "/proc/self/fd/%d", s->fd);
	ssize_t n = readlink(lp, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", s->name);
	ICHECK(in, strcmp(link, want) == 0, "fd %d is %s, expected %s", s->fd, link, want);
	ICHECK(in, fcntl(s->fd, F_GET_SEALS) == s->seals, "fd %d seals 0x%x, expected 0x%x", s->fd,
	       fcntl(s->fd, F_GET_SEALS), s->seals);
	struct stat st;
	fstat(s->fd, &st);
	ICHECK(in, (size_t)st.st_size == s->size, "fd %d size %lld, expected %zu", s->fd,
	       (long long)st.st_size, s->size);
	long bad = check_fd_bytes(s->fd, 0, s->plen, s->seed);
	ICHECK(in, bad == -1, "fd %d contents differ at %ld", s->fd, bad);
}

const struct item items_files[] = {
	{ "regfile", 5, regfile_build, regfile_check, NULL },
	{ "ghost-file", 3, ghost_build, ghost_check, NULL },
	{ "o-tmpfile", 2, tmpfile_build, ghost_check, NULL },
	{ "dirfd", 3, dirfd_build, dir_check, NULL },
	{ "removed-dir", 2, rmdir_build, dir_check, NULL },
	{ "chardev", 3, dev_build, dev_check, NULL },
	{ "procfs", 2, procfs_build, procfs_check, NULL },
	{ "memfd", 3, memfd_build, memfd_check, NULL },
	{ "memfd-odd-size", 2, memfd_odd_build, memfd_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
