/*
 * tls: thread-local storage and the segment bases.
 *
 * Sets initialised and zero-initialised __thread variables, records their addresses, the FS base
 * (arch_prctl ARCH_GET_FS), the thread pointer and the TCB self-pointer at %fs:0. It also sets a
 * GS base (ARCH_SET_GS, unused by glibc on x86_64) pointing at a static block and reads through
 * %gs. After go: the fs base and thread pointer are the same, %fs:0 still points to itself, the
 * __thread values and addresses are unchanged, errno (TLS) works, and the GS base and a load
 * through %gs:8 still give the recorded values.
 */
#include "common.h"

#include <asm/prctl.h>

__thread long tv_long = 0x1122334455667788L;
__thread char tv_str[64] = "thread-local string";
__thread int tv_bss[1000];
__thread struct {
	void *self;
	uint64_t magic;
} tv_self;

static struct {
	uint64_t q[4];
} gs_block = { { 0x6773676173676173ULL, 0x0102030405060708ULL, 3, 4 } };

static long arch_prctl(int code, unsigned long addr)
{
	return syscall(SYS_arch_prctl, code, addr);
}

static uint64_t read_gs8(void)
{
	uint64_t v;
	__asm__ volatile("mov %%gs:8, %0" : "=r"(v));
	return v;
}

static void *read_fs0(void)
{
	void *v;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(v));
	return v;
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");

	unsigned long fs0 = 0, gs0 = 0;
	if (arch_prctl(ARCH_GET_FS, (unsigned long)&fs0) < 0)
		DIE("ARCH_GET_FS");
	void *tp0 = __builtin_thread_pointer();
	void *self0 = read_fs0();
	if ((unsigned long)tp0 != fs0 || self0 != tp0)
		DIE("inconsistent TLS at setup: fs=0x%lx tp=%p fs:0=%p", fs0, tp0, self0);

	tv_long ^= 0x5a5a;
	snprintf(tv_str, sizeof(tv_str), "changed at setup %d", 42);
	for (int i = 0; i < 1000; i++)
		tv_bss[i] = i * 3 + 1;
	tv_self.self = &tv_self;
	tv_self.magic = 0xfeedfacecafebeefULL;
	void *addr_long = &tv_long, *addr_str = tv_str, *addr_bss = tv_bss;

	if (arch_prctl(ARCH_SET_GS, (unsigned long)&gs_block) < 0)
		DIE("ARCH_SET_GS");
	if (arch_prctl(ARCH_GET_GS, (unsigned long)&gs0) < 0 || gs0 != (unsigned long)&gs_block)
		DIE("ARCH_GET_GS after set");
	if (read_gs8() != gs_block.q[1])
		DIE("read through gs");
	say("tls: fs base 0x%lx, gs base 0x%lx", fs0, gs0);

	ready();
	wait_go();

	unsigned long fs1 = 0, gs1 = 0;
	CHECK(arch_prctl(ARCH_GET_FS, (unsigned long)&fs1) == 0 && fs1 == fs0,
	      "fs base is 0x%lx, expected 0x%lx", fs1, fs0);
	CHECK(__builtin_thread_pointer() == tp0, "thread pointer is %p, expected %p",
	      __builtin_thread_pointer(), tp0);
	CHECK(read_fs0() == tp0, "%%fs:0 (TCB self pointer) is %p, expected %p", read_fs0(), tp0);
	CHECK(arch_prctl(ARCH_GET_GS, (unsigned long)&gs1) == 0 && gs1 == gs0,
	      "gs base is 0x%lx, expected 0x%lx", gs1, gs0);
	if (gs1 == gs0)
		CHECK(read_gs8() == gs_block.q[1], "load through %%gs:8 gives 0x%llx",
		      (unsigned long long)read_gs8());

	CHECK(tv_long == (0x1122334455667788L ^ 0x5a5a), "__thread long is 0x%lx", tv_long);
	CHECK(strcmp(tv_str, "changed at setup 42") == 0, "__thread string is '%.60s'", tv_str);
	int bad = -1;
	for (int i = 0; i < 1000 && bad < 0; i++)
		if (tv_bss[i] != i * 3 + 1)
			bad = i;
	CHECK(bad < 0, "__thread array differs at index %d", bad);
	CHECK(tv_self.self == &tv_self && tv_self.magic == 0xfeedfacecafebeefULL,
	      "__thread struct self pointer/magic changed");
	CHECK((void *)&tv_long == addr_long && (void *)tv_str == addr_str && (void *)tv_bss == addr_bss,
	      "__thread variable addresses changed");

	errno = 0;
	CHECK(close(-1) < 0 && errno == EBADF, "errno (TLS) broken: %d", errno);
	fdset_compare(&fds);
	return finish();
}
