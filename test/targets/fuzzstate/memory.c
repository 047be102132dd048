/* fuzzstate items: mappings of every kind with mprotect/madvise/mlock/mremap, one file mapped
 * several times. Region bookkeeping is in regions.c. */
#include "fuzz.h"

#include <sys/mman.h>
#include <sys/shm.h>

/* ---- mapping: anon/file, private/shared, partly written, mprotect'ed and madvise'd -------- */

struct mapping_st {
	struct region g;
	int kind;
};

static const char *const map_kinds[] = { "anon-private", "anon-shared", "file-private", "file-shared", "memfd-shared" };

static void random_madvise(struct inst *in, struct rng *r, struct region *g, int private_anon)
{
	static const struct {
		int advice;
		const char *name;
		int anon_only;
	} advs[] = {
		{ MADV_DONTFORK, "dontfork", 0 },  { MADV_DONTDUMP, "dontdump", 0 },
		{ MADV_HUGEPAGE, "hugepage", 1 },  { MADV_NOHUGEPAGE, "nohugepage", 1 },
		{ MADV_WIPEONFORK, "wipeonfork", 1 }, { MADV_RANDOM, "random", 0 },
		{ MADV_SEQUENTIAL, "sequential", 0 },
	};
	int n = (int)rng_below(r, 3);
	for (int k = 0; k < n; k++) {
		int i = (int)rng_below(r, sizeof(advs) / sizeof(advs[0]));
		if (advs[i].anon_only && !private_anon)
			continue;
		int p0 = (int)rng_below(r, (uint64_t)g->npages), p1 = (int)rng_range(r, p0 + 1, g->npages);
		if (madvise((void *)(g->addr + (uintptr_t)p0 * PAGE), (size_t)(p1 - p0) * PAGE, advs[i].advice) == 0)
			describe(in, "%s[%d,%d)", advs[i].name, p0, p1);
	}
}

static void random_mprotect(struct inst *in, struct rng *r, struct region *g)
{
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, PROT_WRITE };
	int n = (int)rng_below(r, 3);
	for (int k = 0; k < n; k++) {
		int p0 = (int)rng_below(r, (uint64_t)g->npages), p1 = (int)rng_range(r, p0 + 1, g->npages);
		int prot = prots[rng_below(r, 5)];
		if (mprotect((void *)(g->addr + (uintptr_t)p0 * PAGE), (size_t)(p1 - p0) * PAGE, prot) != 0)
			DIE("mprotect");
		describe(in, "prot%d[%d,%d)", prot, p0, p1);
	}
}

/* splits: 0 none, 1 madvise only, 2 madvise and mprotect */
static int mapping_common(struct inst *in, struct rng *r, int kind, int splits)
{
	struct mapping_st *s = ST_OF(in, struct mapping_st);
	struct region *g = &s->g;
	s->kind = kind;
	g->npages = (int)rng_range(r, 1, REGION_PAGES);
	size_t len = (size_t)g->npages * PAGE;
	int fd = -1, off_pages = 0;
	uint64_t fbase = rng_next(r) | 1;
	if (s->kind == 2 || s->kind == 3) {
		off_pages = (int)rng_below(r, 4);
		fd = make_page_file(base_path("map%d", in->idx), g->npages + off_pages, fbase, O_RDWR);
	} else if (s->kind == 4) {
		fd = memfd_create("fz-map", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
			DIE("memfd");
	}
	int flags = (s->kind == 0 || s->kind == 2) ? MAP_PRIVATE : MAP_SHARED;
	if (fd < 0)
		flags |= MAP_ANONYMOUS;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, (off_t)off_pages * (off_t)PAGE);
	if (p == MAP_FAILED)
		DIE("mmap");
	g->addr = (uintptr_t)p;
	for (int i = 0; i < g->npages; i++) {
		g->seed[i] = fd >= 0 && s->kind != 4 ? fbase + (uint64_t)(off_pages + i) : 0;
		if (rng_one_in(r, 2)) {
			g->seed[i] = rng_next(r) | 1;
			fill_page(g->addr + (uintptr_t)i * PAGE, g->seed[i]);
		}
	}
	if (fd >= 0)
		close(fd); /* the mapping keeps the file */
	describe(in, "%s pages=%d off=%d at=%lx", map_kinds[s->kind], g->npages, off_pages, (unsigned long)g->addr);
	if (splits >= 1)
		random_madvise(in, r, g, s->kind == 0);
	if (splits >= 2)
		random_mprotect(in, r, g);
	region_snapshot(g);
	return 0;
}

#define MAPPING_ITEM(fn, kind, splits)                                                             \
	static int fn(struct inst *in, struct rng *r)                                              \
	{                                                                                          \
		return mapping_common(in, r, kind, splits);                                        \
	}
MAPPING_ITEM(map_anon_private_build, 0, 2)
MAPPING_ITEM(map_anon_shared_build, 1, 0)
MAPPING_ITEM(map_anon_shared_split_build, 1, 2)
MAPPING_ITEM(map_file_private_build, 2, 1)
MAPPING_ITEM(map_file_private_mprotect_build, 2, 2)
MAPPING_ITEM(map_file_shared_build, 3, 1)
MAPPING_ITEM(map_file_shared_mprotect_build, 3, 2)
MAPPING_ITEM(map_memfd_shared_build, 4, 1)
MAPPING_ITEM(map_memfd_shared_mprotect_build, 4, 2)

static void mapping_check(struct inst *in, int final)
{
	(void)final;
	region_check(in, &ST_OF(in, struct mapping_st)->g);
}

/* ---- mlock: MAP_LOCKED, mlock or mlock2(MLOCK_ONFAULT) on an anonymous region -------------- */

static int mlock_build(struct inst *in, struct rng *r)
{
	struct mapping_st *s = ST_OF(in, struct mapping_st);
	struct region *g = &s->g;
	g->npages = (int)rng_range(r, 1, 16);
	size_t len = (size_t)g->npages * PAGE;
	int how = (int)rng_below(r, 3);
	int shared = rng_one_in(r, 3);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | (how == 0 ? MAP_LOCKED : 0), -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap");
	g->addr = (uintptr_t)p;
	int p0 = (int)rng_below(r, (uint64_t)g->npages), p1 = (int)rng_range(r, p0 + 1, g->npages);
	if (how == 1 && mlock((void *)(g->addr + (uintptr_t)p0 * PAGE), (size_t)(p1 - p0) * PAGE) != 0)
		DIE("mlock");
	if (how == 2 && syscall(SYS_mlock2, g->addr + (uintptr_t)p0 * PAGE, (size_t)(p1 - p0) * PAGE, 1 /* MLOCK_ONFAULT */) != 0)
		DIE("mlock2");
	for (int i = 0; i < g->npages; i++)
		if (rng_one_in(r, 2)) {
			g->seed[i] = rng_next(r) | 1;
			fill_page(g->addr + (uintptr_t)i * PAGE, g->seed[i]);
		}
	describe(in, "%s %s pages=%d range=[%d,%d)", shared ? "shared" : "private",
		 how == 0 ? "MAP_LOCKED" : how == 1 ? "mlock" : "mlock2-onfault", g->npages, p0, p1);
	region_snapshot(g);
	return 0;
}

/* ---- mseal: part of an anonymous mapping sealed (VmFlags sl), some of it read-only first ---- */

static int mseal_build(struct inst *in, struct rng *r)
{
	struct mapping_st *s = ST_OF(in, struct mapping_st);
	struct region *g = &s->g;
	g->npages = (int)rng_range(r, 1, 16);
	size_t len = (size_t)g->npages * PAGE;
	int shared = rng_one_in(r, 3);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap");
	g->addr = (uintptr_t)p;
	for (int i = 0; i < g->npages; i++)
		if (rng_one_in(r, 2)) {
			g->seed[i] = rng_next(r) | 1;
			fill_page(g->addr + (uintptr_t)i * PAGE, g->seed[i]);
		}
	int p0 = (int)rng_below(r, (uint64_t)g->npages), p1 = (int)rng_range(r, p0 + 1, g->npages);
	int ro = rng_one_in(r, 2);
	if (ro && mprotect((void *)(g->addr + (uintptr_t)p0 * PAGE), (size_t)(p1 - p0) * PAGE, PROT_READ) != 0)
		DIE("mprotect");
	if (syscall(462 /* mseal */, g->addr + (uintptr_t)p0 * PAGE, (size_t)(p1 - p0) * PAGE, 0) != 0)
		return 1; /* a kernel without mseal (before 6.10) */
	describe(in, "%s pages=%d sealed=[%d,%d)%s", shared ? "shared" : "private", g->npages, p0, p1, ro ? " read-only" : "");
	region_snapshot(g);
	return 0;
}

/* ---- mremap-shared: MAP_SHARED anonymous memory moved/grown by mremap, partly unmapped ----- */

static int mremap_build(struct inst *in, struct rng *r)
{
	struct mapping_st *s = ST_OF(in, struct mapping_st);
	struct region *g = &s->g;
	int n = (int)rng_range(r, 2, REGION_PAGES / 2);
	void *p = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap");
	uint64_t seeds[REGION_PAGES];
	for (int i = 0; i < n; i++) {
		seeds[i] = rng_one_in(r, 4) ? 0 : rng_next(r) | 1;
		if (seeds[i])
			fill_page((uintptr_t)p + (uintptr_t)i * PAGE, seeds[i]);
	}
	/* move it (growing shared anonymous memory would map past its object's end) or shrink it */
	int moved = rng_one_in(r, 2), shrunk = 0;
	if (moved) {
		void *to = mmap(NULL, (size_t)n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		void *q = mremap(p, (size_t)n * PAGE, (size_t)n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		if (to == MAP_FAILED || q == MAP_FAILED)
			DIE("mremap");
		p = q;
	} else if (n > 2 && rng_one_in(r, 2)) {
		shrunk = (int)rng_range(r, 1, n - 2);
		if (mremap(p, (size_t)n * PAGE, (size_t)(n - shrunk) * PAGE, 0) == MAP_FAILED)
			DIE("mremap shrink");
		n -= shrunk;
	}
	int cut = (int)rng_range(r, 1, n - 1); /* unmap the first `cut` pages: pgoff becomes cut */
	munmap(p, (size_t)cut * PAGE);
	g->addr = (uintptr_t)p + (uintptr_t)cut * PAGE;
	g->npages = n - cut;
	for (int i = 0; i < g->npages; i++)
		g->seed[i] = seeds[cut + i];
	describe(in, "moved=%d shrunk=%d cut=%d pages=%d at=%lx", moved, shrunk, cut, g->npages, (unsigned long)g->addr);
	region_snapshot(g);
	return 0;
}

/* ---- file-multimap: one file mapped several times, with different modes and protections ---- */

struct multimap_st {
	struct region g[3];
	int fd_ro, fd_rw;
};

static int multimap_build(struct inst *in, struct rng *r)
{
	struct multimap_st *s = ST_OF(in, struct multimap_st);
	int npages = (int)rng_range(r, 2, 16);
	uint64_t fbase = rng_next(r) | 1;
	const char *path = base_path("multi%d", in->idx);
	s->fd_rw = make_page_file(path, npages, fbase, O_RDWR);
	s->fd_ro = open(path, O_RDONLY);
	if (s->fd_ro < 0)
		DIE("open ro");
	uint64_t file[REGION_PAGES];
	for (int p = 0; p < npages; p++)
		file[p] = fbase + (uint64_t)p;
	/* g[0]: shared read-write through the O_RDWR fd; its writes change the file */
	struct region *sh = &s->g[0];
	int off0 = (int)rng_below(r, (uint64_t)npages);
	sh->npages = (int)rng_range(r, 1, npages - off0);
	void *p = mmap(NULL, (size_t)sh->npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd_rw, (off_t)off0 * (off_t)PAGE);
	if (p == MAP_FAILED)
		DIE("mmap shared");
	sh->addr = (uintptr_t)p;
	for (int i = 0; i < sh->npages; i++) {
		if (rng_one_in(r, 2)) {
			file[off0 + i] = rng_next(r) | 1;
			fill_page(sh->addr + (uintptr_t)i * PAGE, file[off0 + i]);
		}
	}
	for (int i = 0; i < sh->npages; i++)
		sh->seed[i] = file[off0 + i];
	/* g[1]: private read-only through the O_RDONLY fd; g[2]: private, written (copy on write) */
	int off[3] = { off0, 0, 0 };
	for (int k = 1; k < 3; k++) {
		struct region *g = &s->g[k];
		off[k] = (int)rng_below(r, (uint64_t)npages);
		g->npages = (int)rng_range(r, 1, npages - off[k]);
		int prot = k == 1 ? PROT_READ | (rng_one_in(r, 2) ? PROT_EXEC : 0) : PROT_READ | PROT_WRITE;
		p = mmap(NULL, (size_t)g->npages * PAGE, prot, MAP_PRIVATE, k == 1 ? s->fd_ro : s->fd_rw,
			 (off_t)off[k] * (off_t)PAGE);
		if (p == MAP_FAILED)
			DIE("mmap private");
		g->addr = (uintptr_t)p;
		for (int i = 0; i < g->npages; i++) {
			g->seed[i] = file[off[k] + i];
			if (k == 2 && rng_one_in(r, 2)) {
				g->seed[i] = rng_next(r) | 1;
				fill_page(g->addr + (uintptr_t)i * PAGE, g->seed[i]);
			}
		}
	}
	/* the shared one's protection may drop once written */
	if (rng_one_in(r, 2) && mprotect((void *)sh->addr, (size_t)sh->npages * PAGE, PROT_READ) != 0)
		DIE("mprotect");
	for (int k = 0; k < 3; k++)
		region_snapshot(&s->g[k]);
	s->fd_ro = place_fd(r, s->fd_ro);
	s->fd_rw = place_fd(r, s->fd_rw);
	describe(in, "pages=%d shared@%d+%d private-ro@%d+%d private-rw@%d+%d fds=%d,%d", npages, off0,
		 s->g[0].npages, off[1], s->g[1].npages, off[2], s->g[2].npages, s->fd_ro, s->fd_rw);
	return 0;
}

static void multimap_check(struct inst *in, int final)
{
	(void)final;
	struct multimap_st *s = ST_OF(in, struct multimap_st);
	for (int k = 0; k < 3; k++)
		region_check(in, &s->g[k]);
}

/* ---- sysv-shm: a SysV shared memory segment, attached, partly written ------------------- */

struct shm_st {
	struct region g;
	int id, removed;
	unsigned long nattch; /* children forked later are attached too: recorded by settle */
};

static int shm_ids[8], n_shm_ids;

/* Segments not marked for removal outlive the target: kill_children() removes them too. */
void remove_shm_segments(void)
{
	for (int i = 0; i < n_shm_ids; i++)
		shmctl(shm_ids[i], IPC_RMID, NULL);
}

static int shm_common(struct inst *in, struct rng *r, int removed)
{
	struct shm_st *s = ST_OF(in, struct shm_st);
	if (n_shm_ids >= 8)
		return 1;
	struct region *g = &s->g;
	g->npages = (int)rng_range(r, 1, REGION_PAGES);
	s->id = shmget(IPC_PRIVATE, (size_t)g->npages * PAGE, IPC_CREAT | 0600);
	if (s->id < 0)
		DIE("shmget");
	shm_ids[n_shm_ids++] = s->id;
	void *p = shmat(s->id, NULL, 0);
	if (p == (void *)-1)
		DIE("shmat");
	g->addr = (uintptr_t)p;
	for (int i = 0; i < g->npages; i++)
		if (rng_one_in(r, 2)) {
			g->seed[i] = rng_next(r) | 1;
			fill_page(g->addr + (uintptr_t)i * PAGE, g->seed[i]);
		}
	s->removed = removed;
	if (removed && shmctl(s->id, IPC_RMID, NULL) != 0)
		DIE("IPC_RMID");
	region_snapshot(g);
	describe(in, "id=%d pages=%d removed=%d", s->id, g->npages, removed);
	return 0;
}

static int shm_build(struct inst *in, struct rng *r)
{
	return shm_common(in, r, 0);
}

static int shm_removed_build(struct inst *in, struct rng *r)
{
	return shm_common(in, r, 1);
}

static void shm_check(struct inst *in, int final)
{
	struct shm_st *s = ST_OF(in, struct shm_st);
	region_check(in, &s->g);
	struct shmid_ds ds;
	int st = shmctl(s->id, IPC_STAT, &ds);
	/* the final checks run in reverse build order, and a later item's may end a child that is
	 * attached too (seccomp-strict's): then fewer attaches, never more */
	if (!s->removed)
		ICHECK(in, st == 0 && ds.shm_segsz == (size_t)s->g.npages * PAGE &&
			   (final ? ds.shm_nattch >= 1 && ds.shm_nattch <= s->nattch : ds.shm_nattch == s->nattch),
		       "segment %d: IPC_STAT %d size %zu nattch %lu, expected %lu", s->id, st,
		       st == 0 ? (size_t)ds.shm_segsz : 0, st == 0 ? (unsigned long)ds.shm_nattch : 0, s->nattch);
}

static void shm_settle(struct inst *in)
{
	struct shm_st *s = ST_OF(in, struct shm_st);
	struct shmid_ds ds;
	s->nattch = shmctl(s->id, IPC_STAT, &ds) == 0 ? (unsigned long)ds.shm_nattch : 0;
}

const struct item items_memory[] = {
	{ "map-anon-private", 4, map_anon_private_build, mapping_check, NULL },
	{ "map-anon-shared", 3, map_anon_shared_build, mapping_check, NULL },
	{ "map-anon-shared-split", 2, map_anon_shared_split_build, mapping_check, NULL },
	{ "map-file-private", 4, map_file_private_build, mapping_check, NULL },
	{ "map-file-private-mprotect", 2, map_file_private_mprotect_build, mapping_check, NULL },
	{ "map-file-shared", 3, map_file_shared_build, mapping_check, NULL },
	{ "map-file-shared-mprotect", 2, map_file_shared_mprotect_build, mapping_check, NULL },
	{ "map-memfd-shared", 3, map_memfd_shared_build, mapping_check, NULL },
	{ "map-memfd-shared-mprotect", 2, map_memfd_shared_mprotect_build, mapping_check, NULL },
	{ "mlock", 3, mlock_build, mapping_check, NULL },
	{ "mseal", 2, mseal_build, mapping_check, NULL },
	{ "mremap-shared", 2, mremap_build, mapping_check, NULL },
	{ "file-multimap", 2, multimap_build, multimap_check, NULL },
	{ "sysv-shm", 2, shm_build, shm_check, shm_settle },
	{ "sysv-shm-removed", 2, shm_removed_build, shm_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
