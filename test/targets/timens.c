/*
 * timens: a process in a time namespace of its own, started by
 * `unshare --time --fork --monotonic 500 --boottime 1000`, with a child in the same namespace.
 * With --any-offsets (images without cryo's offsets, as CRIU writes them: the restore works the
 * offsets out so the clocks go on from the dumped values) the offsets may differ; the rest holds.
 * Before READY both read /proc/self/timens_offsets and their CLOCK_MONOTONIC and CLOCK_BOOTTIME
 * (the namespace's, through the vdso). After go each checks that:
 *   - the offsets read the same (the restored namespace has the dumped ones),
 *   - both clocks went on (not below the values read before the dump),
 *   - BOOTTIME - MONOTONIC is what it was within a second (the two offsets keep their distance),
 *   - the vdso and the kernel agree: vdso, syscall, vdso read in a row never go backwards, for
 *     each clock (a vvar page of the wrong namespace would put the syscall's value far off).
 * The parent then prints "CLOCK <monotonic ns>" (the test bounds it by the host's clock plus
 * the offset), waits for the child, and prints PASS or FAIL.
 */
#include "common.h"

#include <sys/wait.h>

static char offsets_before[256];
static int64_t mono_before, boot_before;
static int any_offsets;

static int64_t clock_ns(clockid_t c, int by_syscall)
{
	struct timespec ts;
	if (by_syscall)
		syscall(SYS_clock_gettime, c, &ts);
	else
		clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void check_clocks(const char *who)
{
	char now[256];
	CHECK(read_file("/proc/self/timens_offsets", now, sizeof now) > 0, "%s: timens_offsets: %s", who, strerror(errno));
	CHECK(any_offsets || strcmp(now, offsets_before) == 0, "%s: timens_offsets were\n%s now\n%s", who, offsets_before, now);
	int64_t mono = clock_ns(CLOCK_MONOTONIC, 0), boot = clock_ns(CLOCK_BOOTTIME, 0);
	CHECK(mono >= mono_before, "%s: CLOCK_MONOTONIC went back: %lld before, %lld now", who, (long long)mono_before, (long long)mono);
	CHECK(boot >= boot_before, "%s: CLOCK_BOOTTIME went back: %lld before, %lld now", who, (long long)boot_before, (long long)boot);
	int64_t drift = (boot - mono) - (boot_before - mono_before);
	CHECK(drift > -1000000000LL && drift < 1000000000LL, "%s: BOOTTIME - MONOTONIC moved by %lld ns", who, (long long)drift);
	static const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_BOOTTIME };
	for (unsigned i = 0; i < 2; i++) {
		int64_t a = clock_ns(clocks[i], 0), k = clock_ns(clocks[i], 1), b = clock_ns(clocks[i], 0);
		CHECK(a <= k && k <= b, "%s: clock %d: vdso %lld, syscall %lld, vdso %lld", who, clocks[i], (long long)a, (long long)k, (long long)b);
	}
}

int main(int argc, char **argv)
{
	any_offsets = argc > 1 && strcmp(argv[1], "--any-offsets") == 0;
	/* unshare leads the session it was started in; the tree leads its own (as a container's init). */
	if (setsid() < 0)
		DIE("setsid");
	if (read_file("/proc/self/timens_offsets", offsets_before, sizeof offsets_before) <= 0)
		DIE("timens_offsets");
	if (strstr(offsets_before, " 0 ") && !strstr(offsets_before, "500"))
		DIE("not in a time namespace with offsets: %s", offsets_before);
	mono_before = clock_ns(CLOCK_MONOTONIC, 0);
	boot_before = clock_ns(CLOCK_BOOTTIME, 0);
	pid_t kid = fork();
	if (kid < 0)
		DIE("fork");
	if (kid == 0) {
		wait_go();
		check_clocks("child");
		if (fail_count_)
			say("child: %s", fail_buf_);
		_exit(fail_count_ ? 1 : 0);
	}
	ready();
	wait_go();
	check_clocks("parent");
	say("CLOCK %lld", (long long)clock_ns(CLOCK_MONOTONIC, 0));
	int st = 0;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %#x", st);
	return finish();
}
