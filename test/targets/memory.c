/*
 * memory: the address space must come back identical.
 *
 * Sets up: heap (malloc'd chunks + an sbrk'd area), a big stack array, an anonymous private
 * mapping with only some pages touched, an anonymous MAP_SHARED mapping, a MAP_PRIVATE mapping
 * of a file in cwd (some pages modified in memory), a MAP_SHARED mapping of a file (written
 * through the mapping), a PROT_NONE region, a region with a PROT_NONE guard page inside, and a
 * region whose upper half is mprotect'ed read-only. All patterns are position-dependent.
 *
 * After go it checks:
 *  - /proc/self/maps is identical, line by line, to the one saved at setup. The only field not
 *    compared is the inode of anonymous shared memory ("/dev/zero (deleted)", "/SYSV..."): that
 *    inode belongs to a shmem object the kernel creates per mapping, so a restored mapping has a
 *    new one. [vvar]/[vvar_vclock]/[vdso] ARE compared: on the same kernel the engine must put
 *    them back at the same addresses (ARCH_MAP_VDSO_64).
 *  - smaps VmFlags of every VMA are identical (except "sd", the soft-dirty tracking bit).
 *  - the fd table is unchanged.
 *  - pagemap: anon-private pages never touched at setup (and not resident then) are still not
 *    resident (the engine must not populate or dump untouched pages), and unmodified pages of the
 *    private file mapping, if resident, are file pages, not anonymous copies.
 *  - every pattern; untouched pages read as zero; the private file on disk is unchanged; the
 *    shared file on disk holds what was written through the mapping and a new write through the
 *    mapping reaches the file (it is really MAP_SHARED on that file).
 *  - the guard page and the PROT_NONE region fault on access; the read-only part faults on write
 *    and the writable part does not.
 *  - sbrk(0) is unchanged and the heap can still grow (brk restored); malloc still works.
 */
#include "common.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096UL

/* layout inside one reservation, in pages; holes (unmapped) keep regions from touching */
#define R_ANON 1 /* 64 pages anon private, some touched */
#define N_ANON 64
#define R_SHANON 66 /* 16 pages anon shared, 0..9 written */
#define N_SHANON 16
#define R_PFILE 83 /* 16 pages private file mapping */
#define N_PFILE 16
#define R_SFILE 100 /* 8 pages shared file mapping */
#define N_SFILE 8
#define R_NONE 109 /* 4 pages PROT_NONE */
#define N_NONE 4
#define R_GUARD 114 /* 8 pages rw, page 3 PROT_NONE */
#define N_GUARD 8
#define GUARD_PAGE 3
#define R_RO 123 /* 8 pages, pages 4..7 read-only */
#define N_RO 8
#define RO_FROM 4
#define N_TOTAL 132
static const int holes[] = { 0, 65, 82, 99, 108, 113, 122, 131 };

static const int anon_touched[] = { 0, 1, 5, 17, 40, 63 };
#define N_ANON_TOUCHED ((int)(sizeof(anon_touched) / sizeof(anon_touched[0])))
static const int pfile_modified[] = { 2, 3, 9 };
#define N_PFILE_MOD 3

#define HEAP_CHUNKS 8
#define HEAP_CHUNK (48 * 1024)
#define SBRK_SIZE (64 * 1024)
#define STACK_DATA (256 * 1024)

static char *base;
static char *heap_chunk[HEAP_CHUNKS];
static char *sbrk_area;
static void *brk_at_setup;
static uint64_t anon_present_at_setup; /* bit i: anon page i resident at setup */

static char maps_before[65536], maps_after[65536];
static char smaps_before[262144], smaps_after[262144];
static struct fdset fds_before;

static char *pg(int page) { return base + (size_t)page * PG; }

/* ---- fault probing ------------------------------------------------------------------------ */

static sigjmp_buf probe_jmp;
static volatile sig_atomic_t probing;

static void on_segv(int sig)
{
	if (probing)
		siglongjmp(probe_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* returns 1 if the access faulted */
static int probe(volatile char *p, int write)
{
	if (sigsetjmp(probe_jmp, 1)) {
		probing = 0;
		return 1;
	}
	probing = 1;
	if (write)
		*p = *p;
	else
		(void)*p;
	probing = 0;
	return 0;
}

/* ---- pagemap ------------------------------------------------------------------------------ */

static uint64_t pagemap_entry(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t e = 0;
	if (pread(fd, &e, 8, (off_t)((uintptr_t)addr / PG * 8)) != 8)
		e = 0;
	close(fd);
	return e;
}
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE (1ULL << 61)

/* ---- maps / smaps comparison -------------------------------------------------------------- */

/* Split the next line; returns pointer to the line (NUL-terminated in place) or NULL. */
static char *next_line(char **cur)
{
	char *s = *cur;
	if (!s || !*s)
		return NULL;
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = 0;
		*cur = nl + 1;
	} else {
		*cur = s + strlen(s);
	}
	return s;
}

/* Normalise one maps line: collapse the padding, blank the inode of shmem mappings. */
static void norm_maps_line(const char *in, char *out, size_t size)
{
	char range[64] = "", perms[8] = "", off[32] = "", dev[16] = "", path[512] = "";
	unsigned long ino = 0;
	int consumed = 0;
	sscanf(in, "%63s %7s %31s %15s %lu %n", range, perms, off, dev, &ino, &consumed);
	if (consumed > 0)
		snprintf(path, sizeof(path), "%s", in + consumed);
	int shmem = strcmp(path, "/dev/zero (deleted)") == 0 || strncmp(path, "/SYSV", 5) == 0;
	if (shmem)
		snprintf(out, size, "%s %s %s %s <shmem-inode> %s", range, perms, off, dev, path);
	else
		snprintf(out, size, "%s %s %s %s %lu %s", range, perms, off, dev, ino, path);
}

static void compare_maps(void)
{
	static char a_copy[65536], b_copy[65536];
	memcpy(a_copy, maps_before, sizeof(a_copy));
	memcpy(b_copy, maps_after, sizeof(b_copy));
	char *ca = a_copy, *cb = b_copy;
	int line = 0, diffs = 0;
	for (;;) {
		char *la = next_line(&ca), *lb = next_line(&cb);
		if (!la && !lb)
			break;
		line++;
		char na[700] = "<none>", nb[700] = "<none>";
		if (la)
			norm_maps_line(la, na, sizeof(na));
		if (lb)
			norm_maps_line(lb, nb, sizeof(nb));
		if (strcmp(na, nb) != 0) {
			if (diffs < 12) {
				say("detail: maps line %d before: %s", line, na);
				say("detail: maps line %d after:  %s", line, nb);
			}
			diffs++;
		}
	}
	if (diffs) {
		say("detail: --- full maps at setup ---\n%s--- full maps after go ---\n%s---",
		    maps_before, maps_after);
		fail("/proc/self/maps differs in %d line(s) (first differences printed above)", diffs);
	}
}

/* From smaps text, produce "range VmFlags-without-sd" lines into out. */
static void smaps_flags(const char *smaps, char *out, size_t size)
{
	static char copy[262144];
	snprintf(copy, sizeof(copy), "%s", smaps);
	char *cur = copy, *l;
	size_t o = 0;
	out[0] = 0;
	while ((l = next_line(&cur))) {
		if (strncmp(l, "VmFlags:", 8) == 0) {
			char *tok, *save = NULL;
			for (tok = strtok_r(l + 8, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
				if (strcmp(tok, "sd") == 0)
					continue;
				o += (size_t)snprintf(out + o, size - o, " %s", tok);
			}
			o += (size_t)snprintf(out + o, size - o, "\n");
		} else if (l[0] && strchr("0123456789abcdef", l[0]) && strchr(l, '-') &&
			   strchr(l, ' ') && strchr(l, '-') < strchr(l, ' ')) {
			char range[64];
			sscanf(l, "%63s", range);
			o += (size_t)snprintf(out + o, size - o, "%s", range);
		}
		if (o >= size - 64)
			break;
	}
}

static void compare_smaps_flags(void)
{
	static char fa[65536], fb[65536];
	smaps_flags(smaps_before, fa, sizeof(fa));
	smaps_flags(smaps_after, fb, sizeof(fb));
	char *ca = fa, *cb = fb, *la, *lb;
	int diffs = 0;
	for (;;) {
		la = next_line(&ca);
		lb = next_line(&cb);
		if (!la && !lb)
			break;
		if (!la || !lb || strcmp(la, lb) != 0) {
			if (diffs < 12)
				say("detail: smaps VmFlags before: %s | after: %s", la ? la : "<none>",
				    lb ? lb : "<none>");
			diffs++;
		}
	}
	CHECK(diffs == 0, "smaps VmFlags differ for %d VMA(s) (printed above)", diffs);
}

/* ---- setup -------------------------------------------------------------------------------- */

static void __attribute__((noinline)) grow_stack(void)
{
	/* pre-grow the stack VMA so the verification code never extends it */
	volatile char deep[192 * 1024];
	for (size_t i = 0; i < sizeof(deep); i += 512)
		deep[i] = (char)i;
	__asm__ volatile("" ::"r"(deep) : "memory");
}

static void snapshot(char *maps, size_t msize, char *smaps, size_t ssize)
{
	if (read_file("/proc/self/maps", maps, msize) < 0)
		DIE("read maps");
	if (read_file("/proc/self/smaps", smaps, ssize) < 0)
		DIE("read smaps");
}

static void map_fixed(int page, int npages, int prot, int flags, int fd, off_t off)
{
	void *want = pg(page);
	void *p = mmap(want, (size_t)npages * PG, prot, flags | MAP_FIXED, fd, off);
	if (p != want)
		DIE("mmap at page %d", page);
}

static void setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);

	/* heap */
	for (int i = 0; i < HEAP_CHUNKS; i++) {
		heap_chunk[i] = malloc(HEAP_CHUNK);
		if (!heap_chunk[i])
			DIE("malloc");
		pattern_fill(heap_chunk[i], HEAP_CHUNK, 1000 + (uint64_t)i);
	}
	sbrk_area = sbrk(SBRK_SIZE);
	if (sbrk_area == (void *)-1)
		DIE("sbrk");
	pattern_fill(sbrk_area, SBRK_SIZE, 2000);
	brk_at_setup = sbrk(0);

	/* one reservation, carved with MAP_FIXED, holes unmapped at the end */
	base = mmap(NULL, N_TOTAL * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		DIE("reserve");

	map_fixed(R_ANON, N_ANON, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < N_ANON_TOUCHED; i++)
		pattern_fill(pg(R_ANON + anon_touched[i]), PG, 3000 + (uint64_t)anon_touched[i]);

	map_fixed(R_SHANON, N_SHANON, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pattern_fill(pg(R_SHANON), 10 * PG, 4000);

	/* private file mapping: the file holds pattern 5000, pages 2,3,9 modified in memory */
	static char fbuf[N_PFILE * PG];
	pattern_fill(fbuf, sizeof(fbuf), 5000);
	if (write_file("private.dat", fbuf, sizeof(fbuf)) < 0)
		DIE("write private.dat");
	int fd = open("private.dat", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		DIE("open private.dat");
	map_fixed(R_PFILE, N_PFILE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	for (int i = 0; i < N_PFILE_MOD; i++)
		pattern_fill(pg(R_PFILE + pfile_modified[i]), PG, 5100 + (uint64_t)pfile_modified[i]);
	/* read (fault in from the file) a few unmodified pages */
	(void)*(volatile char *)pg(R_PFILE + 0);
	(void)*(volatile char *)pg(R_PFILE + 7);

	/* shared file mapping written through the mapping */
	fd = open("shared.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, N_SFILE * PG) < 0)
		DIE("create shared.dat");
	map_fixed(R_SFILE, N_SFILE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	pattern_fill(pg(R_SFILE), N_SFILE * PG, 6000);

	map_fixed(R_NONE, N_NONE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	map_fixed(R_GUARD, N_GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pattern_fill(pg(R_GUARD), N_GUARD * PG, 7000);
	if (mprotect(pg(R_GUARD + GUARD_PAGE), PG, PROT_NONE) < 0)
		DIE("mprotect guard");

	map_fixed(R_RO, N_RO, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pattern_fill(pg(R_RO), N_RO * PG, 8000);
	if (mprotect(pg(R_RO + RO_FROM), (N_RO - RO_FROM) * PG, PROT_READ) < 0)
		DIE("mprotect ro");

	for (size_t i = 0; i < sizeof(holes) / sizeof(holes[0]); i++)
		if (munmap(pg(holes[i]), PG) < 0)
			DIE("munmap hole");

	for (int i = 0; i < N_ANON; i++)
		if (pagemap_entry(pg(R_ANON + i)) & (PM_PRESENT | PM_SWAPPED))
			anon_present_at_setup |= 1ULL << i;
}

/* ---- verification ------------------------------------------------------------------------- */

static int is_in(const int *list, int n, int v)
{
	for (int i = 0; i < n; i++)
		if (list[i] == v)
			return 1;
	return 0;
}

static void check_pattern(const char *what, const void *p, size_t len, uint64_t seed)
{
	long off = pattern_check(p, len, seed);
	CHECK(off < 0, "%s: pattern differs at byte %ld (addr %p)", what, off, (const char *)p + (off < 0 ? 0 : off));
}

static void verify(volatile unsigned char *stack_data)
{
	/* first, before anything can fault pages in or change the layout */
	snapshot(maps_after, sizeof(maps_after), smaps_after, sizeof(smaps_after));
	compare_maps();
	compare_smaps_flags();
	fdset_compare(&fds_before);

	/* residency, before reading contents */
	for (int i = 0; i < N_ANON; i++) {
		if (is_in(anon_touched, N_ANON_TOUCHED, i) || (anon_present_at_setup >> i & 1))
			continue;
		uint64_t e = pagemap_entry(pg(R_ANON + i));
		CHECK(!(e & (PM_PRESENT | PM_SWAPPED)),
		      "anon private page %d was never touched but is resident after restore (pagemap 0x%llx): the engine populated an untouched page",
		      i, (unsigned long long)e);
	}
	for (int i = 0; i < N_PFILE; i++) {
		if (is_in(pfile_modified, N_PFILE_MOD, i))
			continue;
		uint64_t e = pagemap_entry(pg(R_PFILE + i));
		CHECK(!(e & PM_PRESENT) || (e & PM_FILE),
		      "private file mapping page %d is unmodified but is an anonymous copy after restore (pagemap 0x%llx): only pages that differ from the file should be restored",
		      i, (unsigned long long)e);
	}

	/* contents */
	for (int i = 0; i < HEAP_CHUNKS; i++) {
		char what[64];
		snprintf(what, sizeof(what), "heap chunk %d", i);
		check_pattern(what, heap_chunk[i], HEAP_CHUNK, 1000 + (uint64_t)i);
	}
	check_pattern("sbrk area", sbrk_area, SBRK_SIZE, 2000);
	check_pattern("stack array", (const void *)stack_data, STACK_DATA, 2500);

	for (int i = 0; i < N_ANON; i++) {
		char what[64];
		snprintf(what, sizeof(what), "anon private page %d", i);
		if (is_in(anon_touched, N_ANON_TOUCHED, i))
			check_pattern(what, pg(R_ANON + i), PG, 3000 + (uint64_t)i);
		else
			CHECK(all_zero(pg(R_ANON + i), PG), "%s (untouched) is not zero", what);
	}
	check_pattern("anon shared pages 0-9", pg(R_SHANON), 10 * PG, 4000);
	CHECK(all_zero(pg(R_SHANON + 10), 6 * PG), "anon shared pages 10-15 (untouched) not zero");

	static char fbuf[N_PFILE * PG], expect[PG];
	for (int i = 0; i < N_PFILE; i++) {
		char what[64];
		snprintf(what, sizeof(what), "private file mapping page %d", i);
		if (is_in(pfile_modified, N_PFILE_MOD, i)) {
			check_pattern(what, pg(R_PFILE + i), PG, 5100 + (uint64_t)i);
		} else {
			pattern_fill(fbuf, sizeof(fbuf), 5000);
			memcpy(expect, fbuf + (size_t)i * PG, PG);
			CHECK(memcmp(pg(R_PFILE + i), expect, PG) == 0, "%s differs from the file", what);
		}
	}
	memset(fbuf, 0, sizeof(fbuf));
	int fd = open("private.dat", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, fbuf, sizeof(fbuf), 0) == (ssize_t)sizeof(fbuf) &&
		      pattern_check(fbuf, sizeof(fbuf), 5000) < 0,
	      "private.dat on disk changed (private modifications leaked to the file?)");
	if (fd >= 0)
		close(fd);

	check_pattern("shared file mapping", pg(R_SFILE), N_SFILE * PG, 6000);
	static char sbuf[N_SFILE * PG];
	fd = open("shared.dat", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, sbuf, sizeof(sbuf), 0) == (ssize_t)sizeof(sbuf) &&
		      pattern_check(sbuf, sizeof(sbuf), 6000) < 0,
	      "shared.dat on disk does not hold what was written through the MAP_SHARED mapping");
	if (fd >= 0) {
		memcpy(pg(R_SFILE + 5) + 100, "through-the-mapping", 19);
		char got[19] = { 0 };
		CHECK(pread(fd, got, 19, 5 * PG + 100) == 19 && memcmp(got, "through-the-mapping", 19) == 0,
		      "a write through the shared file mapping after restore did not reach shared.dat (mapping not shared with the file)");
		/* and the other way round */
		CHECK(pwrite(fd, "through-the-file", 16, 6 * PG + 8) == 16 &&
			      memcmp(pg(R_SFILE + 6) + 8, "through-the-file", 16) == 0,
		      "a write to shared.dat after restore is not visible in the MAP_SHARED mapping");
		close(fd);
	}

	for (int i = 0; i < N_GUARD; i++) {
		if (i == GUARD_PAGE)
			continue;
		long off = pattern_check_part(pg(R_GUARD), (size_t)i * PG, PG, 7000);
		CHECK(off < 0, "guarded region page %d: pattern differs at byte %ld", i, off);
	}
	for (int i = 0; i < N_RO; i++) {
		long off = pattern_check_part(pg(R_RO), (size_t)i * PG, PG, 8000);
		CHECK(off < 0, "partly read-only region page %d: pattern differs at byte %ld", i, off);
	}

	/* protections really in force */
	CHECK(probe(pg(R_GUARD + GUARD_PAGE), 0), "guard page (PROT_NONE) is readable after restore");
	CHECK(!probe(pg(R_GUARD + GUARD_PAGE + 1), 1), "page after the guard page is not writable");
	CHECK(!probe(pg(R_GUARD + GUARD_PAGE - 1), 1), "page before the guard page is not writable");
	CHECK(probe(pg(R_NONE), 0) && probe(pg(R_NONE + N_NONE - 1), 0),
	      "PROT_NONE region is readable after restore");
	CHECK(!probe(pg(R_RO + 1), 1), "writable half of the partly read-only region is not writable");
	CHECK(probe(pg(R_RO + RO_FROM + 1), 1), "read-only half of the partly read-only region is writable");
	CHECK(!probe(pg(R_RO + RO_FROM + 1), 0), "read-only half is not readable");
	CHECK(probe(pg(holes[2]), 0), "a hole between regions is mapped after restore");

	/* brk and malloc still work */
	void *brk_now = sbrk(0);
	CHECK(brk_now == brk_at_setup, "sbrk(0) is %p after restore, was %p (mm brk not restored)", brk_now,
	      brk_at_setup);
	char *more = sbrk(128 * 1024);
	if (more == (void *)-1) {
		fail("sbrk(+128K) failed after restore: %s", strerror(errno));
	} else {
		CHECK(more == brk_at_setup, "sbrk(+128K) returned %p, expected the old break %p", more,
		      brk_at_setup);
		memset(more, 0x5a, 128 * 1024);
	}
	char *m = malloc(300 * 1000);
	CHECK(m != NULL, "malloc after restore failed");
	if (m) {
		memset(m, 1, 300 * 1000);
		free(m);
	}
}

int main(void)
{
	/* The stack array lives in main's frame for the whole run. */
	volatile unsigned char stack_data[STACK_DATA] __attribute__((aligned(64)));
	pattern_fill((void *)stack_data, STACK_DATA, 2500);

	setup();
	grow_stack();
	if (fdset_take(&fds_before) < 0)
		DIE("fdset");
	snapshot(maps_before, sizeof(maps_before), smaps_before, sizeof(smaps_before));
	ready();
	wait_go();
	verify(stack_data);
	return finish();
}
