/*
 * vdso: the vDSO and its data pages are the live kernel ones, at the same place.
 *
 * At setup it records the [vdso], [vvar] and [vvar_vclock] ranges from /proc/self/maps and
 * getauxval(AT_SYSINFO_EHDR), and while polling for go it reads CLOCK_MONOTONIC (vDSO) every
 * iteration, remembering the largest value seen and whether time ever went backwards.
 * After go:
 *   - the three ranges are the same and AT_SYSINFO_EHDR equals the [vdso] start, which holds an
 *     ELF header;
 *   - CLOCK_MONOTONIC never went backwards across the checkpoint (same machine, no reboot);
 *   - vDSO clock_gettime(MONOTONIC/REALTIME/BOOTTIME), gettimeofday and time() agree with the
 *     raw syscalls within 50 ms and advance across a 20 ms sleep: a vvar restored from the image
 *     (a stale copy) instead of the kernel's live page freezes the vDSO clocks;
 *   - 100000 consecutive vDSO monotonic reads never decrease;
 *   - the vDSO's own entry points, found at setup in its ELF symbol table (as glibc keeps them),
 *     called through those old addresses: clock_gettime, gettimeofday, time, clock_getres and
 *     getcpu agree with the syscalls.
 * With a file "otherkernel" in the cwd at go, the image was given another kernel's vDSO: the
 * running one is then elsewhere, and the old addresses (a proxy of it) must still work.
 */
#include "common.h"

#include <elf.h>
#include <sys/auxv.h>
#include <sys/time.h>

struct range {
	unsigned long start, end;
};

static void find_ranges(struct range *vdso, struct range *vvar, struct range *vclock)
{
	static char maps[65536];
	memset(vdso, 0, sizeof(*vdso));
	memset(vvar, 0, sizeof(*vvar));
	memset(vclock, 0, sizeof(*vclock));
	if (read_file("/proc/self/maps", maps, sizeof(maps)) < 0)
		return;
	for (char *l = maps; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		unsigned long s, e;
		if (sscanf(l, "%lx-%lx", &s, &e) == 2) {
			struct range *r = NULL;
			if (strstr(l, "[vdso]"))
				r = vdso;
			else if (strstr(l, "[vvar]"))
				r = vvar;
			else if (strstr(l, "[vvar_vclock]"))
				r = vclock;
			if (r) {
				r->start = s;
				r->end = e;
			}
		}
		l = nl ? nl + 1 : NULL;
	}
}

static int64_t ts_ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

static int64_t vdso_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return ts_ns(t);
}

static int64_t sys_ns(clockid_t c)
{
	struct timespec t;
	syscall(SYS_clock_gettime, c, &t);
	return ts_ns(t);
}

typedef int (*clock_fn)(clockid_t, struct timespec *);
typedef int (*gtod_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

/* An exported function of the vDSO mapped at base, by name (from .dynsym), or NULL. */
static void *vdso_sym(unsigned long base, const char *name)
{
	const Elf64_Ehdr *eh = (const void *)base;
	const Elf64_Phdr *ph = (const void *)(base + eh->e_phoff);
	const Elf64_Shdr *sh = (const void *)(base + eh->e_shoff);
	unsigned long load = 0;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD) {
			load = ph[i].p_vaddr - ph[i].p_offset;
			break;
		}
	for (int i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		const Elf64_Sym *sym = (const void *)(base + sh[i].sh_offset);
		const char *str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++)
			if (sym[k].st_shndx && !strcmp(str + sym[k].st_name, name))
				return (void *)(base + sym[k].st_value - load);
	}
	return NULL;
}

static int64_t llabs64(int64_t v) { return v < 0 ? -v : v; }

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	struct range vdso0, vvar0, vclock0;
	find_ranges(&vdso0, &vvar0, &vclock0);
	unsigned long ehdr0 = getauxval(AT_SYSINFO_EHDR);
	if (!vdso0.start || ehdr0 != vdso0.start)
		DIE("no vdso or AT_SYSINFO_EHDR (0x%lx) != [vdso] (0x%lx)", ehdr0, vdso0.start);
	say("vdso: [vdso] %lx-%lx [vvar] %lx-%lx [vvar_vclock] %lx-%lx", vdso0.start, vdso0.end,
	    vvar0.start, vvar0.end, vclock0.start, vclock0.end);

	clock_fn v_gettime = vdso_sym(vdso0.start, "__vdso_clock_gettime");
	clock_fn v_getres = vdso_sym(vdso0.start, "__vdso_clock_getres");
	gtod_fn v_gtod = vdso_sym(vdso0.start, "__vdso_gettimeofday");
	time_fn v_time = vdso_sym(vdso0.start, "__vdso_time");
	getcpu_fn v_getcpu = vdso_sym(vdso0.start, "__vdso_getcpu");
	if (!v_gettime || !v_getres || !v_gtod || !v_time || !v_getcpu)
		DIE("vdso symbols not found");

	int64_t max_mono = vdso_ns(CLOCK_MONOTONIC);
	int64_t backwards = 0;
	long polls = 0;
	ready();
	struct timespec ten = { 0, 10 * 1000000L };
	while (!go_exists()) {
		int64_t now = vdso_ns(CLOCK_MONOTONIC);
		if (now < max_mono && max_mono - now > backwards)
			backwards = max_mono - now;
		if (now > max_mono)
			max_mono = now;
		polls++;
		nanosleep(&ten, NULL);
	}

	int other = access("otherkernel", F_OK) == 0;
	struct range vdso1, vvar1, vclock1;
	find_ranges(&vdso1, &vvar1, &vclock1);
	if (other) {
		CHECK(vdso1.start && vdso1.start != vdso0.start, "the running [vdso] is at %lx, expected elsewhere", vdso1.start);
		CHECK(memcmp((void *)vdso0.start, ELFMAG, SELFMAG) == 0, "the old vdso place holds no ELF header");
		CHECK(getauxval(AT_SYSINFO_EHDR) == vdso0.start, "AT_SYSINFO_EHDR moved");
	} else {
	CHECK(vdso1.start == vdso0.start && vdso1.end == vdso0.end,
	      "[vdso] is %lx-%lx, expected %lx-%lx", vdso1.start, vdso1.end, vdso0.start, vdso0.end);
	CHECK(vvar1.start == vvar0.start && vvar1.end == vvar0.end, "[vvar] is %lx-%lx, expected %lx-%lx",
	      vvar1.start, vvar1.end, vvar0.start, vvar0.end);
	CHECK(vclock1.start == vclock0.start && vclock1.end == vclock0.end,
	      "[vvar_vclock] is %lx-%lx, expected %lx-%lx", vclock1.start, vclock1.end, vclock0.start,
	      vclock0.end);
	CHECK(getauxval(AT_SYSINFO_EHDR) == vdso1.start, "AT_SYSINFO_EHDR 0x%lx != [vdso] start 0x%lx",
	      getauxval(AT_SYSINFO_EHDR), vdso1.start);
	if (vdso1.start)
		CHECK(memcmp((void *)vdso1.start, ELFMAG, SELFMAG) == 0, "[vdso] does not start with an ELF header");
	}

	int64_t now = vdso_ns(CLOCK_MONOTONIC);
	if (now < max_mono && max_mono - now > backwards)
		backwards = max_mono - now;
	CHECK(backwards == 0, "CLOCK_MONOTONIC went backwards by %lld ns", (long long)backwards);

	static const struct {
		clockid_t id;
		const char *name;
	} clocks[] = { { CLOCK_MONOTONIC, "MONOTONIC" }, { CLOCK_REALTIME, "REALTIME" }, { CLOCK_BOOTTIME, "BOOTTIME" } };
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		int64_t a = vdso_ns(clocks[i].id), s = sys_ns(clocks[i].id);
		CHECK(llabs64(a - s) < 50000000LL, "vDSO CLOCK_%s differs from the syscall by %lld ms",
		      clocks[i].name, (long long)((a - s) / 1000000));
		sleep_ms(20);
		int64_t b = vdso_ns(clocks[i].id);
		CHECK(b - a >= 15000000LL, "vDSO CLOCK_%s advanced only %lld us across a 20 ms sleep (stale vvar?)",
		      clocks[i].name, (long long)((b - a) / 1000));
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	int64_t gtod = (int64_t)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
	CHECK(llabs64(gtod - sys_ns(CLOCK_REALTIME)) < 50000000LL, "gettimeofday differs from clock_gettime(REALTIME) syscall");
	CHECK(llabs64((int64_t)time(NULL) - sys_ns(CLOCK_REALTIME) / 1000000000LL) <= 1, "time() is off");

	int64_t prev = vdso_ns(CLOCK_MONOTONIC), worst = 0;
	for (int i = 0; i < 100000; i++) {
		int64_t t = vdso_ns(CLOCK_MONOTONIC);
		if (t < prev && prev - t > worst)
			worst = prev - t;
		prev = t;
	}
	CHECK(worst == 0, "consecutive vDSO CLOCK_MONOTONIC reads decreased by %lld ns", (long long)worst);
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		struct timespec t, r1, r2;
		CHECK(v_gettime(clocks[i].id, &t) == 0, "old __vdso_clock_gettime failed");
		int64_t s = sys_ns(clocks[i].id);
		CHECK(llabs64(ts_ns(t) - s) < 50000000LL, "old __vdso_clock_gettime(CLOCK_%s) is off by %lld ms", clocks[i].name, (long long)((ts_ns(t) - s) / 1000000));
		sleep_ms(20);
		struct timespec t2;
		v_gettime(clocks[i].id, &t2);
		CHECK(ts_ns(t2) - ts_ns(t) >= 15000000LL, "old __vdso_clock_gettime(CLOCK_%s) does not advance", clocks[i].name);
		CHECK(v_getres(clocks[i].id, &r1) == 0 && syscall(SYS_clock_getres, clocks[i].id, &r2) == 0 && ts_ns(r1) == ts_ns(r2),
		      "old __vdso_clock_getres(CLOCK_%s) differs", clocks[i].name);
	}
	struct timeval tv2;
	CHECK(v_gtod(&tv2, NULL) == 0, "old __vdso_gettimeofday failed");
	int64_t g2 = (int64_t)tv2.tv_sec * 1000000000LL + tv2.tv_usec * 1000LL;
	CHECK(llabs64(g2 - sys_ns(CLOCK_REALTIME)) < 50000000LL, "old __vdso_gettimeofday is off by %lld ms", (long long)((g2 - sys_ns(CLOCK_REALTIME)) / 1000000));
	CHECK(llabs64((int64_t)v_time(NULL) - sys_ns(CLOCK_REALTIME) / 1000000000LL) <= 1, "old __vdso_time is off");
	unsigned cpu = ~0u, node = ~0u;
	CHECK(v_getcpu(&cpu, &node, NULL) == 0 && cpu < 4096 && node < 4096, "old __vdso_getcpu failed (%u %u)", cpu, node);
	say("vdso: %ld polls%s", polls, other ? " (another kernel's vdso at the old place)" : "");
	fdset_compare(&fds);
	return finish();
}
