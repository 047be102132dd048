/*
 * files: the fd table with flags, offsets and shared descriptions.
 *
 * In its cwd the target creates data.txt, append.log, ro.txt and subdir/inner.txt, then opens:
 *    3  data.txt     O_RDWR, offset 1234
 *    7  append.log   O_WRONLY|O_APPEND (another fd appended after it, so O_APPEND matters)
 *   12  subdir       O_RDONLY|O_DIRECTORY
 *   20  /dev/null    O_WRONLY
 *   21  /dev/zero    O_RDONLY
 *   22  /dev/urandom O_RDONLY
 *   50  dup(3)       same open file description as 3
 *  100  ro.txt       O_RDONLY|O_CLOEXEC, offset 100
 * (0, 1, 2 come from the harness: /dev/null and target.log opened O_APPEND, 1 and 2 shared.)
 * After go:
 *   - exactly the same fds are open (no leaked engine fds, gaps kept), F_GETFD/F_GETFL equal;
 *   - offsets: 3 and 50 at 1234, 100 at 100; reading continues at the right bytes; 3 and 50 share
 *     one offset (reading via 3 moves 50), and kcmp(KCMP_FILE) confirms 3/50 and 1/2 are shared
 *     descriptions while 3/7 are not;
 *   - writing via 3 lands at the offset; writing via 7 appends at the current end of the file;
 *   - fstat dev/ino of every file fd matches stat() of its path; the directory fd works with
 *     openat; /dev/null, /dev/zero, /dev/urandom have the right rdev and behave (urandom gives
 *     non-zero bytes).
 */
#include "common.h"

#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define DATA_SIZE 8192
static char data[DATA_SIZE];

static void open_at(const char *path, int flags, int want)
{
	int fd = open(path, flags, 0644);
	if (fd < 0)
		DIE("open %s", path);
	if (fd != want) {
		if (dup2(fd, want) < 0)
			DIE("dup2 %s", path);
		close(fd);
		if (flags & O_CLOEXEC)
			fcntl(want, F_SETFD, FD_CLOEXEC);
	}
}

static int same_file(int fd, const char *path)
{
	struct stat a, b;
	if (fstat(fd, &a) < 0 || stat(path, &b) < 0)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int kcmp_file(int a, int b)
{
	pid_t p = getpid();
	return (int)syscall(SYS_kcmp, p, p, KCMP_FILE, a, b);
}

static int is_chr(int fd, unsigned maj, unsigned min)
{
	struct stat s;
	return fstat(fd, &s) == 0 && S_ISCHR(s.st_mode) && major(s.st_rdev) == maj &&
	       minor(s.st_rdev) == min;
}

int main(void)
{
	pattern_fill(data, sizeof(data), 77);
	if (write_file("data.txt", data, sizeof(data)) < 0 || write_file("ro.txt", data, sizeof(data)) < 0)
		DIE("create files");
	if (mkdir("subdir", 0755) < 0 || write_file("subdir/inner.txt", "inner", 5) < 0)
		DIE("create subdir");

	open_at("data.txt", O_RDWR, 3);
	open_at("append.log", O_WRONLY | O_APPEND | O_CREAT, 7);
	open_at("subdir", O_RDONLY | O_DIRECTORY, 12);
	open_at("/dev/null", O_WRONLY, 20);
	open_at("/dev/zero", O_RDONLY, 21);
	open_at("/dev/urandom", O_RDONLY, 22);
	open_at("ro.txt", O_RDONLY | O_CLOEXEC, 100);
	if (dup2(3, 50) != 50)
		DIE("dup2 50");
	if (lseek(3, 1234, SEEK_SET) != 1234 || lseek(100, 100, SEEK_SET) != 100)
		DIE("lseek");
	if (write(7, "before\n", 7) != 7)
		DIE("write append.log");
	int other = open("append.log", O_WRONLY | O_APPEND);
	if (other < 0 || write(other, "other\n", 6) != 6)
		DIE("write append.log via another fd");
	close(other);

	int have_kcmp = kcmp_file(3, 50) == 0;
	if (!have_kcmp)
		say("files: kcmp unavailable (%s), sharing checked through offsets only", strerror(errno));

	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	ready();
	wait_go();

	fdset_compare(&fds);

	/* offsets and shared description */
	off_t o3 = lseek(3, 0, SEEK_CUR), o50 = lseek(50, 0, SEEK_CUR), o100 = lseek(100, 0, SEEK_CUR);
	CHECK(o3 == 1234, "fd 3 offset is %lld, expected 1234", (long long)o3);
	CHECK(o50 == 1234, "fd 50 (dup of 3) offset is %lld, expected 1234", (long long)o50);
	CHECK(o100 == 100, "fd 100 offset is %lld, expected 100", (long long)o100);
	char buf[256];
	ssize_t n = read(3, buf, 100);
	CHECK(n == 100 && memcmp(buf, data + 1234, 100) == 0, "read via fd 3 did not continue at 1234");
	o50 = lseek(50, 0, SEEK_CUR);
	CHECK(o50 == 1334, "fd 50 offset is %lld after reading 100 bytes via fd 3: 3 and 50 are not one description",
	      (long long)o50);
	n = read(100, buf, 50);
	CHECK(n == 50 && memcmp(buf, data + 100, 50) == 0, "read via fd 100 did not continue at 100");
	if (have_kcmp) {
		CHECK(kcmp_file(3, 50) == 0, "kcmp: fds 3 and 50 are not the same open file description");
		CHECK(kcmp_file(1, 2) == 0, "kcmp: stdout and stderr are not the same open file description");
		CHECK(kcmp_file(3, 7) != 0, "kcmp: fds 3 and 7 share a description");
	}

	/* writes */
	o3 = lseek(3, 0, SEEK_CUR);
	CHECK(write(3, "WXYZ", 4) == 4, "write via fd 3 failed: %s", strerror(errno));
	int chk = open("data.txt", O_RDONLY);
	CHECK(chk >= 0 && pread(chk, buf, 4, o3) == 4 && memcmp(buf, "WXYZ", 4) == 0,
	      "write via fd 3 did not land at offset %lld of data.txt", (long long)o3);
	if (chk >= 0)
		close(chk);
	CHECK(write(7, "after\n", 6) == 6, "write via fd 7 failed: %s", strerror(errno));
	chk = open("append.log", O_RDONLY);
	n = chk >= 0 ? pread(chk, buf, sizeof(buf) - 1, 0) : -1;
	if (n >= 0)
		buf[n] = 0;
	CHECK(n == 19 && strcmp(buf, "before\nother\nafter\n") == 0,
	      "append.log is '%s' (expected before/other/after lines: O_APPEND lost?)", n >= 0 ? buf : "?");
	if (chk >= 0)
		close(chk);

	/* identity */
	CHECK(same_file(3, "data.txt"), "fd 3 is not data.txt (dev/ino)");
	CHECK(same_file(50, "data.txt"), "fd 50 is not data.txt (dev/ino)");
	CHECK(same_file(7, "append.log"), "fd 7 is not append.log (dev/ino)");
	CHECK(same_file(100, "ro.txt"), "fd 100 is not ro.txt (dev/ino)");
	CHECK(same_file(12, "subdir"), "fd 12 is not subdir (dev/ino)");
	int in = openat(12, "inner.txt", O_RDONLY);
	CHECK(in >= 0 && read(in, buf, 5) == 5 && memcmp(buf, "inner", 5) == 0,
	      "openat(dirfd 12, inner.txt) failed");
	if (in >= 0)
		close(in);

	/* devices */
	CHECK(is_chr(0, 1, 3), "fd 0 is not /dev/null");
	CHECK(is_chr(20, 1, 3) && write(20, "x", 1) == 1, "fd 20 is not a working /dev/null");
	memset(buf, 1, 64);
	CHECK(is_chr(21, 1, 5) && read(21, buf, 64) == 64 && all_zero(buf, 64),
	      "fd 21 is not a working /dev/zero");
	memset(buf, 0, 32);
	CHECK(is_chr(22, 1, 9) && read(22, buf, 32) == 32 && !all_zero(buf, 32),
	      "fd 22 is not a working /dev/urandom");
	return finish();
}
