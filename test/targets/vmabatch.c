/*
 * vmabatch: many small mappings, more than one batch of injected calls holds (the restore maps,
 * protects, advises and locks a task's VMAs in batches of about 40 calls a stop), each with its
 * own variant, separated by holes so that none merges with another:
 *   i % 6 == 0  read-write, filled              3  filled, madvise(MADV_RANDOM)      (rr)
 *           1   filled, then mprotect read-only 4  filled, madvise(MADV_SEQUENTIAL)  (sr)
 *           2   filled, then mlock()ed (lo)     5  filled, then PROT_NONE (no pages read back)
 * After go: every mapping has its protection, its VmFlags (lo, rr, sr) and its contents.
 */
#include "common.h"

#include <sys/mman.h>

#define PG 4096
#define N 150

static char smaps[4 << 20];

/* The VmFlags line of the mapping starting at addr, and its permissions, from smaps. */
static int vma_info(const char *buf, void *addr, char perms[5], char *flags, size_t flen)
{
	char head[32];
	snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	const char *p = strstr(buf, head);
	while (p && p != buf && p[-1] != '\n')
		p = strstr(p + 1, head);
	if (!p)
		return -1;
	const char *sp = strchr(p, ' ');
	if (!sp)
		return -1;
	memcpy(perms, sp + 1, 4);
	perms[4] = 0;
	const char *v = strstr(p, "VmFlags:");
	const char *end = v ? strchr(v, '\n') : NULL;
	if (!v || !end || (size_t)(end - v) >= flen)
		return -1;
	memcpy(flags, v, (size_t)(end - v));
	flags[end - v] = 0;
	strcat(flags, " ");
	return 0;
}

int main(void)
{
	/* 3 pages a slot: 2 mapped, 1 hole. */
	char *base = mmap(NULL, (size_t)3 * N * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		DIE("reserve");
	munmap(base, (size_t)3 * N * PG);
	for (int i = 0; i < N; i++) {
		char *m = base + (size_t)3 * i * PG;
		if (mmap(m, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != m)
			DIE("mmap %d", i);
		pattern_fill(m, 2 * PG, 100 + (uint64_t)i);
		int r = 0;
		switch (i % 6) {
		case 1: r = mprotect(m, 2 * PG, PROT_READ); break;
		case 2: r = mlock(m, 2 * PG); break;
		case 3: r = madvise(m, 2 * PG, MADV_RANDOM); break;
		case 4: r = madvise(m, 2 * PG, MADV_SEQUENTIAL); break;
		case 5: r = mprotect(m, 2 * PG, PROT_NONE); break;
		}
		if (r < 0)
			DIE("variant %d", i);
	}
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	ready();
	wait_go();

	if (read_file("/proc/self/smaps", smaps, sizeof(smaps)) < 0)
		DIE("smaps");
	static const char *want_perms[6] = { "rw-p", "r--p", "rw-p", "rw-p", "rw-p", "---p" };
	static const char *want_flag[6] = { NULL, NULL, " lo ", " rr ", " sr ", NULL };
	for (int i = 0; i < N; i++) {
		char *m = base + (size_t)3 * i * PG;
		char perms[5], flags[256];
		if (vma_info(smaps, m, perms, flags, sizeof(flags)) < 0) {
			fail("mapping %d at %p is gone", i, (void *)m);
			continue;
		}
		CHECK(strcmp(perms, want_perms[i % 6]) == 0, "mapping %d: %s, expected %s", i, perms, want_perms[i % 6]);
		if (want_flag[i % 6])
			CHECK(strstr(flags, want_flag[i % 6]) != NULL, "mapping %d: VmFlags lack%s(%s)", i, want_flag[i % 6], flags);
		if (i % 6 == 5 && mprotect(m, 2 * PG, PROT_READ) < 0)
			DIE("mprotect back %d", i);
		CHECK(pattern_check(m, 2 * PG, 100 + (uint64_t)i) < 0, "mapping %d: contents differ", i);
	}
	fdset_compare(&fds);
	return finish();
}
