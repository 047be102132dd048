/*
 * rseq: glibc's restartable-sequences registration survives.
 *
 * glibc (>= 2.35) registers an rseq area for every thread at thread pointer + __rseq_offset.
 * At setup the target checks the area is registered: cpu_id >= 0, and re-registering the same
 * area with the same length and signature fails with EBUSY (the kernel's answer when exactly
 * this registration exists; a different area/length/signature gives EINVAL instead).
 * After go:
 *   - the same probe gives EBUSY again (registered at the same address, length, signature);
 *   - cpu_id >= 0 and equals cpu_id_start and the getcpu syscall (retried: we may migrate);
 *   - rseq_cs is 0 (no stale critical-section pointer);
 *   - sched_getcpu() (which glibc answers from the rseq area) agrees with the syscall.
 */
#include "common.h"

#include <linux/rseq.h>
#include <sched.h>
#include <sys/rseq.h>

#define SIG 0x53053053 /* RSEQ_SIG on x86 */

static volatile struct rseq *area(void)
{
	return (volatile struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* errno of re-registering the area with length len (0 would mean it was NOT registered) */
static int probe(unsigned len)
{
	long r = syscall(SYS_rseq, (void *)area(), len, 0, SIG);
	if (r == 0) {
		/* we just registered it ourselves: it was not registered before; undo */
		syscall(SYS_rseq, (void *)area(), len, RSEQ_FLAG_UNREGISTER, SIG);
		return 0;
	}
	return errno;
}

static unsigned sys_getcpu(void)
{
	unsigned cpu = ~0u;
	syscall(SYS_getcpu, &cpu, NULL, NULL);
	return cpu;
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	if (__rseq_size == 0)
		DIE("glibc did not register rseq (__rseq_size == 0; GLIBC_TUNABLES=glibc.pthread.rseq=0?)");
	/* glibc 2.36 registers 32 bytes; __rseq_size may say less in newer versions */
	unsigned len = 0;
	unsigned candidates[] = { __rseq_size, 32, 20 };
	for (int i = 0; i < 3 && !len; i++)
		if (probe(candidates[i]) == EBUSY)
			len = candidates[i];
	if (!len)
		DIE("rseq area at %p is not registered (no EBUSY for lengths %u/32/20)", (void *)area(),
		    __rseq_size);
	if ((int)area()->cpu_id < 0)
		DIE("rseq cpu_id is %d at setup", (int)area()->cpu_id);
	say("rseq: area %p (offset %td), registered length %u, cpu %u", (void *)area(), __rseq_offset,
	    len, area()->cpu_id);

	ready();
	wait_go();

	int e = probe(len);
	CHECK(e == EBUSY,
	      "rseq is not registered as before after restore: re-registering area %p len %u gave %s",
	      (void *)area(), len, e == 0 ? "success (it was not registered at all)" : strerror(e));
	int ok = 0;
	unsigned cpu = 0, sys = 0, start = 0;
	for (int i = 0; i < 20 && !ok; i++) {
		cpu = area()->cpu_id;
		start = area()->cpu_id_start;
		sys = sys_getcpu();
		ok = (int)cpu >= 0 && cpu == sys && start == sys;
	}
	CHECK(ok, "rseq cpu_id %d / cpu_id_start %u do not track the CPU (getcpu says %u)", (int)cpu,
	      start, sys);
	CHECK(area()->rseq_cs == 0, "rseq_cs is 0x%llx, expected 0", (unsigned long long)area()->rseq_cs);
	ok = 0;
	int g = -1;
	for (int i = 0; i < 20 && !ok; i++) {
		g = sched_getcpu();
		sys = sys_getcpu();
		ok = g >= 0 && (unsigned)g == sys;
	}
	CHECK(ok, "sched_getcpu() is %d, getcpu syscall says %u", g, sys);
	fdset_compare(&fds);
	return finish();
}
