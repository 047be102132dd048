/*
 * guards: guard regions (madvise MADV_GUARD_INSTALL, Linux 6.13): pages of a mapping that fault
 * on any access, marked in the page table only (no VMA of their own, no VmFlags; pagemap bit 58),
 * as allocators and thread libraries put them around stacks and heaps.
 *
 * 8 pages of anonymous private memory, each filled with a pattern, then guards on page 2 and on
 * pages 5..6. After go: pages 2, 5 and 6 fault on read and on write and show bit 58 in pagemap;
 * the other pages keep their patterns, do not fault and do not show it.
 */
#include "common.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#define PG 4096UL
#define N 8
#define MADV_GUARD_INSTALL_ 102

static sigjmp_buf probe_jmp;
static volatile sig_atomic_t probing;

static void on_fault(int sig)
{
	if (probing)
		siglongjmp(probe_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* 1 if the access faulted */
static int probe(volatile char *p, int write)
{
	if (sigsetjmp(probe_jmp, 1)) {
		probing = 0;
		return 1;
	}
	probing = 1;
	if (write)
		*p = 1;
	else
		(void)*p;
	probing = 0;
	return 0;
}

static int guard_bit(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;
	if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)addr / PG) * 8) != 8)
		DIE("pagemap");
	close(fd);
	return (int)((e >> 58) & 1);
}

static int is_guard(int i)
{
	return i == 2 || i == 5 || i == 6;
}

int main(void)
{
	signal(SIGSEGV, on_fault);
	signal(SIGBUS, on_fault);
	char *m = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		DIE("mmap");
	for (int i = 0; i < N; i++)
		pattern_fill(m + i * PG, PG, 0x6a00 + i);
	if (madvise(m + 2 * PG, PG, MADV_GUARD_INSTALL_) || madvise(m + 5 * PG, 2 * PG, MADV_GUARD_INSTALL_))
		DIE("MADV_GUARD_INSTALL (Linux 6.13 or later)");
	ready();
	wait_go();
	for (int i = 0; i < N; i++) {
		char *p = m + i * PG;
		int bit = guard_bit(p);
		if (is_guard(i)) {
			CHECK(bit == 1, "page %d: pagemap shows no guard", i);
			CHECK(probe(p, 0), "page %d: a guard page reads", i);
			CHECK(probe(p + PG - 1, 1), "page %d: a guard page takes a write", i);
		} else {
			CHECK(bit == 0, "page %d: pagemap shows a guard", i);
			CHECK(!probe(p, 0), "page %d: faults on read", i);
			long bad = pattern_check(p, PG, 0x6a00 + i);
			CHECK(bad < 0, "page %d: pattern differs at byte %ld", i, bad);
		}
	}
	return finish();
}
