/*
 * mapstate: mappings real programs make that a plain layout does not show.
 *   locked      3 anonymous pages mlock()ed, 2 pages mapped MAP_LOCKED
 *   shm offset  4 shared anonymous pages, the first unmapped: the rest maps the object at offset
 *               4096; 2 shared anonymous pages mremap()ed to another address
 *   one file    $cwd/data (3 pages) mapped three times: page 0 read-only shared through an O_RDONLY
 *               fd, page 1 read-write shared through an O_RDWR fd, page 2 private read-only; both
 *               fds closed
 * After go: VmFlags show "lo" on both locked mappings; every mapping has its contents; the shared
 * writable page still writes through to the file; the offset mapping still shares its object with
 * a view opened through /proc/self/map_files.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096

static int has_vmflag(void *addr, const char *flag)
{
	static char buf[1 << 20];
	if (read_file("/proc/self/smaps", buf, sizeof(buf)) < 0)
		return -1;
	char head[32];
	snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	char *p = strstr(buf, head);
	if (!p || (p != buf && p[-1] != '\n'))
		return -1;
	char *v = strstr(p, "VmFlags:");
	if (!v)
		return -1;
	char *end = strchr(v, '\n');
	char want[8];
	snprintf(want, sizeof(want), " %s", flag);
	for (char *q = strstr(v, want); q && q < end; q = strstr(q + 1, want))
		if (q[3] == ' ' || q[3] == '\n')
			return 1;
	return 0;
}

int main(void)
{
	char *lk = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *ml = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
	if (lk == MAP_FAILED || ml == MAP_FAILED)
		DIE("mmap locked");
	pattern_fill(lk, 3 * PG, 11);
	pattern_fill(ml, 2 * PG, 12);
	if (mlock(lk, 3 * PG) < 0)
		DIE("mlock");

	char *sh = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		DIE("mmap shared");
	pattern_fill(sh, 4 * PG, 13);
	munmap(sh, PG);
	char *shoff = sh + PG;
	char *mv0 = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pattern_fill(mv0, 2 * PG, 14);
	char *hole = mmap(NULL, 8 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *mv = mremap(mv0, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, hole + 3 * PG);
	if (mv == MAP_FAILED)
		DIE("mremap");

	static char page[3 * PG];
	pattern_fill(page, sizeof(page), 15);
	if (write_file("data", page, sizeof(page)) < 0)
		DIE("data file");
	int ro = open("data", O_RDONLY), rw = open("data", O_RDWR);
	char *f = mmap(NULL, 3 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro < 0 || rw < 0 || f == MAP_FAILED ||
	    mmap(f, PG, PROT_READ, MAP_SHARED | MAP_FIXED, ro, 0) == MAP_FAILED ||
	    mmap(f + PG, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, rw, PG) == MAP_FAILED ||
	    mmap(f + 2 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, ro, 2 * PG) == MAP_FAILED)
		DIE("file mappings");
	close(ro);
	close(rw);
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	ready();
	wait_go();

	CHECK(has_vmflag(lk, "lo") == 1, "mlock()ed mapping lost its lock (VmFlags lo)");
	CHECK(has_vmflag(ml, "lo") == 1, "MAP_LOCKED mapping lost its lock (VmFlags lo)");
	CHECK(pattern_check(lk, 3 * PG, 11) < 0, "locked contents differ");
	CHECK(pattern_check(ml, 2 * PG, 12) < 0, "MAP_LOCKED contents differ");
	CHECK(pattern_check_part(sh, PG, 3 * PG, 13) < 0, "shared mapping at offset 4096: contents differ");
	CHECK(pattern_check(mv, 2 * PG, 14) < 0, "mremap()ed shared mapping: contents differ");
	char path[96];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)shoff, (unsigned long)(shoff + 3 * PG));
	int view_fd = open(path, O_RDWR);
	char *view = view_fd < 0 ? MAP_FAILED : mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, view_fd, 0);
	CHECK(view != MAP_FAILED, "cannot map the offset mapping's object: %s", strerror(errno));
	if (view != MAP_FAILED) {
		view[PG + 5] = 0x5a;
		CHECK(shoff[5] == 0x5a, "the offset mapping does not share its object (offset 4096)");
		munmap(view, 4 * PG);
	}
	if (view_fd >= 0)
		close(view_fd);
	CHECK(pattern_check(f, PG, 15) < 0, "read-only shared file page differs");
	CHECK(pattern_check_part(f, PG, PG, 15) < 0, "read-write shared file page differs");
	CHECK(pattern_check_part(f, 2 * PG, PG, 15) < 0, "private file page differs");
	f[PG + 7] = 0x42;
	msync(f + PG, PG, MS_SYNC);
	int chk = open("data", O_RDONLY);
	char c = 0;
	CHECK(pread(chk, &c, 1, PG + 7) == 1 && c == 0x42, "a write through the shared writable mapping does not reach the file");
	close(chk);
	fdset_compare(&fds);
	return finish();
}
