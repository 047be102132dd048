/* fuzzstate items: mappings with a state of their own that memory.c does not build: a name
 * given with PR_SET_VMA_ANON_NAME ([anon:NAME], as allocators and runtimes name their arenas),
 * a MAP_GROWSDOWN stack (VmFlags gd), memory offered to KSM with MADV_MERGEABLE (mg), memory a
 * fork does not copy or gives zeroed (MADV_DONTFORK dc, MADV_WIPEONFORK wf: a --leave-running
 * dump's snapshot lacks it), and guard pages (MADV_GUARD_INSTALL: in the page table only). */
#include "fuzz.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static void fill_some(struct rng *r, struct region *g)
{
	for (int i = 0; i < g->npages; i++)
		if (rng_one_in(r, 2)) {
			g->seed[i] = rng_next(r) | 1;
			fill_page(g->addr + (uintptr_t)i * PAGE, g->seed[i]);
		}
}

/* A private anonymous read-write mapping of lo..16 pages (random) for region g, not yet filled. */
static void *map_private(struct region *g, struct rng *r, int lo)
{
	g->npages = (int)rng_range(r, lo, 16);
	void *p = mmap(NULL, (size_t)g->npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap");
	g->addr = (uintptr_t)p;
	return p;
}

/* ---- map-anon-name: parts of a private anonymous mapping named ---------------------------- */

static int anon_name_build(struct inst *in, struct rng *r)
{
	struct region *g = ST_OF(in, struct region);
	void *p = map_private(g, r, 1);
	fill_some(r, g);
	int named = 0;
	for (int k = (int)rng_range(r, 1, 3); k > 0; k--) {
		int p0 = (int)rng_below(r, (uint64_t)g->npages), p1 = (int)rng_range(r, p0 + 1, g->npages);
		char name[40];
		/* any printable but [ ] \ $ ` (the kernel refuses those) */
		snprintf(name, sizeof(name), "fz %d.%llx", in->idx, (unsigned long long)(rng_next(r) & 0xffff));
		if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, g->addr + (uintptr_t)p0 * PAGE, (size_t)(p1 - p0) * PAGE, name) != 0)
			break; /* a kernel without CONFIG_ANON_VMA_NAME */
		describe(in, "%s[%d,%d) ", name, p0, p1);
		named++;
	}
	if (!named) {
		munmap(p, (size_t)g->npages * PAGE);
		return 1;
	}
	describe(in, "pages=%d", g->npages);
	region_snapshot(g);
	return 0;
}

/* ---- map-growsdown: a MAP_GROWSDOWN mapping (a thread stack as some runtimes make it) ----- */

static int growsdown_build(struct inst *in, struct rng *r)
{
	struct region *g = ST_OF(in, struct region);
	g->npages = (int)rng_range(r, 1, 16);
	/* a hole below it: the kernel keeps stack_guard_gap free under a growsdown mapping */
	size_t gap = 2048 * PAGE;
	char *hole = mmap(NULL, gap + (size_t)g->npages * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hole == MAP_FAILED)
		DIE("mmap hole");
	munmap(hole, gap + (size_t)g->npages * PAGE);
	void *p = mmap(hole + gap, (size_t)g->npages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	g->addr = (uintptr_t)p;
	fill_some(r, g);
	describe(in, "pages=%d at=%lx", g->npages, (unsigned long)g->addr);
	region_snapshot(g);
	return 0;
}

/* ---- madv-mergeable: anonymous memory offered to KSM (qemu's guest RAM) -------------------- */

static int mergeable_build(struct inst *in, struct rng *r)
{
	struct region *g = ST_OF(in, struct region);
	void *p = map_private(g, r, 2);
	/* identical pages: what KSM would merge */
	uint64_t same = rng_next(r) | 1;
	for (int i = 0; i < g->npages; i++)
		if (rng_one_in(r, 2))
			g->seed[i] = same, fill_page(g->addr + (uintptr_t)i * PAGE, same);
	int p0 = (int)rng_below(r, (uint64_t)g->npages - 1), p1 = (int)rng_range(r, p0 + 1, g->npages);
	if (madvise((void *)(g->addr + (uintptr_t)p0 * PAGE), (size_t)(p1 - p0) * PAGE, MADV_MERGEABLE) != 0) {
		munmap(p, (size_t)g->npages * PAGE);
		return 1; /* no KSM */
	}
	describe(in, "pages=%d mergeable=[%d,%d)", g->npages, p0, p1);
	region_snapshot(g);
	return 0;
}

/* ---- madv-dontfork / madv-wipeonfork: contents a fork does not give the child --------------- */

static int fork_advice_build(struct inst *in, struct rng *r, int advice, const char *what)
{
	struct region *g = ST_OF(in, struct region);
	void *p = map_private(g, r, 1);
	if (madvise(p, (size_t)g->npages * PAGE, advice) != 0)
		DIE("madvise %s", what);
	fill_some(r, g);
	describe(in, "pages=%d %s", g->npages, what);
	region_snapshot(g);
	return 0;
}

static int dontfork_build(struct inst *in, struct rng *r)
{
	return fork_advice_build(in, r, MADV_DONTFORK, "dontfork");
}

static int wipeonfork_build(struct inst *in, struct rng *r)
{
	return fork_advice_build(in, r, MADV_WIPEONFORK, "wipeonfork");
}

/* ---- madv-guard: guard pages (MADV_GUARD_INSTALL, Linux 6.13) in a filled mapping ---------- */

#define MADV_GUARD_INSTALL_ 102
#define MADV_GUARD_REMOVE_ 103

struct guarded {
	struct region g;
	uint32_t guards; /* bit i: page i is a guard */
};

static int guard_build(struct inst *in, struct rng *r)
{
	struct guarded *st = ST_OF(in, struct guarded);
	struct region *g = &st->g;
	/*
	 * Fenced by a PROT_NONE page each side: the kernel's guard mark (VmFlags gu) is sticky, so a
	 * neighbour of the same flags merged with this mapping would take it on too, and that
	 * neighbour's flags (another item's) would no longer be what it recorded.
	 */
	g->npages = (int)rng_range(r, 2, 16);
	char *fence = mmap(NULL, (size_t)(g->npages + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fence == MAP_FAILED)
		DIE("mmap fence");
	void *p = mmap(fence + PAGE, (size_t)g->npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap");
	g->addr = (uintptr_t)p;
	fill_some(r, g);
	st->guards = 0;
	for (int k = (int)rng_range(r, 1, 3); k > 0; k--) {
		int p0 = (int)rng_below(r, (uint64_t)g->npages), p1 = (int)rng_range(r, p0 + 1, g->npages);
		if (madvise((void *)(g->addr + (uintptr_t)p0 * PAGE), (size_t)(p1 - p0) * PAGE, MADV_GUARD_INSTALL_) != 0) {
			munmap(fence, (size_t)(g->npages + 2) * PAGE);
			return 1; /* a kernel before 6.13 */
		}
		for (int i = p0; i < p1; i++)
			st->guards |= 1u << i, g->seed[i] = 0;
		describe(in, "guard[%d,%d) ", p0, p1);
	}
	/* Sometimes all removed again: the mapping keeps the kernel's mark (VmFlags gu), no guards. */
	if (rng_one_in(r, 3)) {
		if (madvise(p, (size_t)g->npages * PAGE, MADV_GUARD_REMOVE_) != 0)
			DIE("MADV_GUARD_REMOVE");
		st->guards = 0;
		describe(in, "removed ");
	}
	describe(in, "pages=%d", g->npages);
	region_snapshot(g);
	return 0;
}

/* Guard pages: pagemap bit 58, unreadable even through /proc/self/mem; the others as filled. */
static void guard_check(struct inst *in, int final)
{
	(void)final;
	struct guarded *st = ST_OF(in, struct guarded);
	const struct region *g = &st->g;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	static unsigned char page[PAGE];
	if (pm < 0 || mem < 0) {
		IFAIL(in, "open pagemap or mem: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < g->npages; i++) {
		uintptr_t a = g->addr + (uintptr_t)i * PAGE;
		uint64_t e = 0;
		if (pread(pm, &e, 8, (off_t)(a / PAGE) * 8) != 8) {
			IFAIL(in, "pagemap of page %d: %s", i, strerror(errno));
			break;
		}
		int guard = (st->guards >> i) & 1;
		ICHECK(in, (int)((e >> 58) & 1) == guard, "page %d at %lx: %s", i, (unsigned long)a, guard ? "its guard is gone" : "a guard where there was none");
		if (guard)
			continue;
		if (pread(mem, page, PAGE, (off_t)a) != (ssize_t)PAGE) {
			IFAIL(in, "page %d at %lx unreadable: %s", i, (unsigned long)a, strerror(errno));
			break;
		}
		int ok = g->seed[i] ? pattern_check(page, PAGE, g->seed[i]) == -1 : all_zero(page, PAGE);
		ICHECK(in, ok, "page %d at %lx: contents differ (expected %s)", i, (unsigned long)a, g->seed[i] ? "its pattern" : "zeroes");
	}
out:
	if (pm >= 0)
		close(pm);
	if (mem >= 0)
		close(mem);
}

static void vma_region_check(struct inst *in, int final)
{
	(void)final;
	region_check(in, ST_OF(in, struct region));
}

const struct item items_vmas[] = {
	{ "map-anon-name", 3, anon_name_build, vma_region_check, NULL },
	{ "map-growsdown", 1, growsdown_build, vma_region_check, NULL },
	{ "madv-mergeable", 2, mergeable_build, vma_region_check, NULL },
	{ "madv-dontfork", 2, dontfork_build, vma_region_check, NULL },
	{ "madv-wipeonfork", 2, wipeonfork_build, vma_region_check, NULL },
	{ "madv-guard", 2, guard_build, guard_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
