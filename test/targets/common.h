/*
 * Shared helpers for cryo test targets.
 *
 * Protocol (see test/lib/target.ts): the harness starts a target in its own session, cwd = a
 * fresh temp dir, stdin /dev/null, stdout+stderr appended to target.log. The target sets up its
 * state, prints READY, waits for a file named "go" in its cwd (access + 10 ms nanosleep), then
 * verifies its state and prints "PASS" or "FAIL: <what differs>" and exits 0 / 1.
 *
 * Everything here avoids stdio and malloc: output goes through write(2) from static buffers so
 * that printing never changes the memory layout (memory.c compares /proc/self/maps exactly).
 */
#ifndef CRYO_TARGET_COMMON_H
#define CRYO_TARGET_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define UNUSED __attribute__((unused))

/* ---- output ------------------------------------------------------------------------------- */

static char say_buf_[8192];

static void write_all_(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* printf-like, one write(2) per call, appends '\n'. */
static UNUSED __attribute__((format(printf, 1, 2))) void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(say_buf_, sizeof(say_buf_) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(say_buf_) - 2)
		n = (int)sizeof(say_buf_) - 2;
	say_buf_[n++] = '\n';
	write_all_(1, say_buf_, (size_t)n);
}

/* ---- failure accounting ------------------------------------------------------------------- */

static char fail_buf_[4096];
static size_t fail_len_;
static int fail_count_;

/* Record a failure: printed at once as "detail: ..." and summarised on the final FAIL line. */
static UNUSED __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	say("detail: %s", tmp);
	fail_count_++;
	size_t n = strlen(tmp);
	if (fail_len_ + n + 3 < sizeof(fail_buf_)) {
		if (fail_len_) {
			memcpy(fail_buf_ + fail_len_, "; ", 2);
			fail_len_ += 2;
		}
		memcpy(fail_buf_ + fail_len_, tmp, n);
		fail_len_ += n;
		fail_buf_[fail_len_] = 0;
	}
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail(__VA_ARGS__);                                                         \
	} while (0)

/* Setup error: the target cannot even start its scenario. */
#define DIE(...)                                                                                   \
	do {                                                                                       \
		say("SETUP-ERROR: " __VA_ARGS__);                                                   \
		say("FAIL: setup error (see above), errno=%d (%s)", errno, strerror(errno));         \
		_exit(2);                                                                          \
	} while (0)

static UNUSED int finish(void)
{
	if (fail_count_ == 0) {
		say("PASS");
		_exit(0);
	}
	say("FAIL: %s", fail_buf_);
	_exit(1);
}

/* ---- timing / waiting --------------------------------------------------------------------- */

static UNUSED void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static UNUSED int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Path of the go file; a target that changes its cwd points this at the original dir. */
static const char *go_path = "go";

static UNUSED int go_exists(void)
{
	return access(go_path, F_OK) == 0;
}

/* Wait for ./go: access + 10 ms nanosleep. A checkpoint usually lands inside the nanosleep. */
static UNUSED void wait_go(void)
{
	struct timespec ts = { 0, 10 * 1000000L };
	while (!go_exists())
		nanosleep(&ts, NULL); /* EINTR (signals, restore) is fine: just poll again */
}

static UNUSED void ready(void)
{
	say("READY");
}

/* ---- small file helpers (no malloc) ------------------------------------------------------- */

/* Read a whole (small, /proc) file into buf; returns length or -1. NUL-terminates. */
static UNUSED ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t off = 0;
	for (;;) {
		if (off + 1 >= size) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
		ssize_t r = read(fd, buf + off, size - 1 - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	buf[off] = 0;
	return (ssize_t)off;
}

static UNUSED int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	const char *p = data;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	close(fd);
	return 0;
}

/* ---- fd table snapshot -------------------------------------------------------------------- */
/*
 * Every target checks that its fd table is exactly the same after restore: the engine must not
 * leak its own descriptors (image fds, pidfds, the stub's fds) into the restored task, and must
 * not drop any. Read with getdents64 into a static buffer (opendir would malloc).
 */
#define FDSET_MAX 1024

struct fdset {
	int n;
	int fd[FDSET_MAX];
	int fdflags[FDSET_MAX]; /* F_GETFD */
	int flflags[FDSET_MAX]; /* F_GETFL */
};

static char dents_buf_[65536];

static UNUSED int fdset_take(struct fdset *s)
{
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	s->n = 0;
	for (;;) {
		long nread = syscall(SYS_getdents64, dfd, dents_buf_, sizeof(dents_buf_));
		if (nread <= 0)
			break;
		for (long pos = 0; pos < nread;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(dents_buf_ + pos);
			pos += d->reclen;
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			int fd = atoi(d->name);
			if (fd == dfd || s->n >= FDSET_MAX)
				continue;
			/* keep sorted (insertion) */
			int i = s->n++;
			while (i > 0 && s->fd[i - 1] > fd) {
				s->fd[i] = s->fd[i - 1];
				i--;
			}
			s->fd[i] = fd;
		}
	}
	close(dfd);
	for (int i = 0; i < s->n; i++) {
		s->fdflags[i] = fcntl(s->fd[i], F_GETFD);
		s->flflags[i] = fcntl(s->fd[i], F_GETFL);
	}
	return 0;
}

static UNUSED void fdset_compare(const struct fdset *before)
{
	static struct fdset now;
	if (fdset_take(&now) < 0) {
		fail("cannot list /proc/self/fd: %s", strerror(errno));
		return;
	}
	char a[1024] = "", b[1024] = "";
	size_t la = 0, lb = 0;
	for (int i = 0; i < before->n && la < sizeof(a) - 16; i++)
		la += (size_t)snprintf(a + la, sizeof(a) - la, "%d ", before->fd[i]);
	for (int i = 0; i < now.n && lb < sizeof(b) - 16; i++)
		lb += (size_t)snprintf(b + lb, sizeof(b) - lb, "%d ", now.fd[i]);
	if (strcmp(a, b) != 0) {
		fail("fd table differs: before [%s] after [%s]", a, b);
		return;
	}
	for (int i = 0; i < now.n; i++) {
		CHECK(now.fdflags[i] == before->fdflags[i], "fd %d F_GETFD 0x%x, expected 0x%x", now.fd[i],
		      now.fdflags[i], before->fdflags[i]);
		CHECK(now.flflags[i] == before->flflags[i], "fd %d F_GETFL 0%o, expected 0%o", now.fd[i],
		      now.flflags[i], before->flflags[i]);
	}
}

/* ---- patterns ----------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill len bytes (multiple of 8) with a pattern derived from seed and position. */
static UNUSED void pattern_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix64(seed * 0x100000001b3ULL + i);
}

/*
 * Check bytes [from, from+len) of a block that was filled as a whole with pattern_fill(block,
 * ..., seed). Returns -1 when they match, else the byte offset (from the block) of the first
 * differing word.
 */
static UNUSED long pattern_check_part(const void *block, size_t from, size_t len, uint64_t seed)
{
	const uint64_t *w = block;
	for (size_t i = from / 8; i < (from + len) / 8; i++)
		if (w[i] != mix64(seed * 0x100000001b3ULL + i))
			return (long)(i * 8);
	return -1;
}

/* Returns -1 when the pattern matches, else the byte offset of the first differing word. */
static UNUSED long pattern_check(const void *p, size_t len, uint64_t seed)
{
	return pattern_check_part(p, 0, len, seed);
}

static UNUSED int all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < len; i++)
		if (c[i])
			return 0;
	return 1;
}

#endif
