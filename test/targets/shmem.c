/*
 * shmem: pages of a shared anonymous object that this process's page table does not show.
 *
 * A MAP_SHARED|MAP_ANONYMOUS region of 64 pages: this process writes pages 0..3; a child it
 * forks writes pages 10..19 and exits (the pages stay in the object, never in our page table);
 * we write pages 30..39 and drop them from our page table with MADV_DONTNEED (the object keeps
 * them). A dump that walks only pagemap loses 10..19 and 30..39 and the restore reads zeros.
 *
 * After go: every written page holds its pattern, every other page is zero, and the region is
 * still shared (a child forked now sees a write made after the fork).
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
#define NPAGES 64

static void fill(char *base, int from, int to, uint64_t seed)
{
	for (int i = from; i < to; i++)
		pattern_fill(base + i * PG, PG, seed + i);
}

static int owner(int page)
{
	if (page < 4)
		return 1;
	if (page >= 10 && page < 20)
		return 2;
	if (page >= 30 && page < 40)
		return 3;
	return 0;
}

int main(void)
{
	struct fdset fds;
	char *m = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		DIE("mmap");
	fill(m, 0, 4, 100);
	pid_t c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0) {
		fill(m, 10, 20, 200);
		_exit(0);
	}
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
		DIE("child");
	fill(m, 30, 40, 300);
	if (madvise(m + 30 * PG, 10 * PG, MADV_DONTNEED))
		DIE("madvise");
	fdset_take(&fds);
	ready();
	wait_go();

	for (int i = 0; i < NPAGES; i++) {
		int o = owner(i);
		char *p = m + i * PG;
		if (o == 0)
			CHECK(all_zero(p, PG), "page %d should be zero", i);
		else
			CHECK(pattern_check(p, PG, (uint64_t)(o * 100 + i)) < 0, "page %d (written by %s) lost", i,
			      o == 1 ? "us" : o == 2 ? "an exited child" : "us, then dropped with MADV_DONTNEED");
	}
	c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0) {
		for (int n = 0; n < 500 && m[50 * PG] != 'x'; n++)
			sleep_ms(2);
		_exit(m[50 * PG] == 'x' ? 0 : 1);
	}
	m[50 * PG] = 'x';
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the region is no longer shared with a child forked after restore");
	m[50 * PG] = 0;
	fdset_compare(&fds);
	return finish();
}
