/*
 * fuzzstate: what a mapped region must look like — each page's contents (a pattern seed, 0 for
 * zeroes), its VMAs as /proc/self/maps shows them, their smaps VmFlags — recorded once built
 * and compared later. Contents are read through /proc/self/mem, which also reads PROT_NONE
 * pages, so a check never changes a protection.
 */
#include "fuzz.h"

#define REGION_PAGES 32
#define PAGE 4096UL

struct region {
	uintptr_t addr;
	int npages;
	uint64_t seed[REGION_PAGES]; /* 0: the page reads as zeroes */
	char maps[1536];
	char vmflags[384];
};

static void fill_page(uintptr_t a, uint64_t seed)
{
	pattern_fill((void *)a, PAGE, seed);
}

/* The maps lines (start-end perms offset path) and VmFlags of every VMA inside the region. */
static void region_describe(const struct region *g, char *maps, size_t msz, char *flags, size_t fsz)
{
	static char buf[1 << 20];
	maps[0] = flags[0] = 0;
	if (read_file("/proc/self/smaps", buf, sizeof(buf)) < 0)
		return;
	uintptr_t lo = g->addr, hi = g->addr + (uintptr_t)g->npages * PAGE;
	size_t ml = 0, fl = 0;
	int inside = 0;
	for (char *p = buf; *p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		unsigned long s, e, off;
		char perms[8], path[512] = "";
		int n = 0;
		if (sscanf(p, "%lx-%lx %7s %lx %*s %*s %n", &s, &e, perms, &off, &n) == 4 && strchr(p, '-') &&
		    p[0] != 'V') {
			/* a VMA may reach past the region (a later mapping merged with it): clip it */
			inside = s < hi && e > lo;
			snprintf(path, sizeof(path), "%s", p + n);
			if (inside && s < lo && path[0])
				off += lo - s;
			if (inside && ml < msz)
				ml += (size_t)snprintf(maps + ml, msz - ml, "%lx-%lx %s %lx %s\n", s < lo ? lo : s,
						       e > hi ? hi : e, perms, off, path);
		} else if (inside && strncmp(p, "VmFlags:", 8) == 0 && fl < fsz) {
			/* sd (soft-dirty) says nothing about the state a program set up */
			char *q = p + 8;
			fl += (size_t)snprintf(flags + fl, fsz - fl, "[");
			for (char *t = strtok(q, " "); t; t = strtok(NULL, " "))
				if (strcmp(t, "sd") != 0 && fl < fsz)
					fl += (size_t)snprintf(flags + fl, fsz - fl, "%s ", t);
			if (fl < fsz)
				fl += (size_t)snprintf(flags + fl, fsz - fl, "]");
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

static void region_snapshot(struct region *g)
{
	region_describe(g, g->maps, sizeof(g->maps), g->vmflags, sizeof(g->vmflags));
}

static void region_check(struct inst *in, const struct region *g)
{
	static char maps[1536], flags[384];
	static unsigned char page[PAGE];
	region_describe(g, maps, sizeof(maps), flags, sizeof(flags));
	ICHECK(in, strcmp(maps, g->maps) == 0, "region %lx maps differ:\n  now:      %s\n  expected: %s",
	       (unsigned long)g->addr, maps, g->maps);
	ICHECK(in, strcmp(flags, g->vmflags) == 0, "region %lx VmFlags %s, expected %s",
	       (unsigned long)g->addr, flags, g->vmflags);
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (mem < 0) {
		IFAIL(in, "open /proc/self/mem: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < g->npages; i++) {
		uintptr_t a = g->addr + (uintptr_t)i * PAGE;
		if (pread(mem, page, PAGE, (off_t)a) != (ssize_t)PAGE) {
			IFAIL(in, "page %d at %lx unreadable: %s", i, (unsigned long)a, strerror(errno));
			break;
		}
		int ok = g->seed[i] ? pattern_check(page, PAGE, g->seed[i]) == -1 : all_zero(page, PAGE);
		if (!ok) {
			IFAIL(in, "page %d at %lx: contents differ (expected %s)", i, (unsigned long)a,
			      g->seed[i] ? "its pattern" : "zeroes");
			break;
		}
	}
	close(mem);
}

/* A file of npages pages in cwd, page p filled with seed base+p; returns an fd opened with mode. */
static int make_page_file(const char *path, int npages, uint64_t base, int mode)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		DIE("create %s", path);
	static unsigned char page[PAGE];
	for (int p = 0; p < npages; p++) {
		pattern_fill(page, PAGE, base + (uint64_t)p);
		if (pwrite(fd, page, PAGE, (off_t)p * (off_t)PAGE) != (ssize_t)PAGE)
			DIE("pwrite %s", path);
	}
	if ((mode & O_ACCMODE) == O_RDWR)
		return fd;
	close(fd);
	fd = open(path, mode | O_CLOEXEC);
	if (fd < 0)
		DIE("open %s", path);
	return fd;
}
