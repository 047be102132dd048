/*
 * regs: register state must survive, bit for bit.
 *
 * One inline-asm block loads distinct values into
 *   - xmm0-15 (SSE), ymm0-15 upper halves (when built with -mavx), zmm0-31 full width and k0-k7
 *     (when built with -mavx512f; k registers 64-bit wide with -mavx512bw, else 16-bit),
 *   - three x87 stack registers (st0-st2), a non-default x87 control word (round toward zero,
 *     53-bit precision) and a non-default MXCSR (round toward zero + flush-to-zero),
 *   - rbx, r8, r9, r12-r15,
 * then polls for ./go with raw `syscall` instructions (access, nanosleep) touching no vector,
 * x87 or mask register, then stores everything back to memory. C code compares afterwards. No
 * libc function runs in between (glibc's string functions use ymm/zmm/k registers).
 *
 * The harness passes -mavx / -mavx512f / -mavx512bw only when /proc/cpuinfo has them; the
 * target also checks CPUID and XCR0 at run time and reports what it covers on its first line.
 */
#include "common.h"

#include <cpuid.h>

/* fixed layout: offsets are used as literals in the asm */
struct regstate {
	uint8_t zin[32][64];   /* 0    */
	uint8_t zout[32][64];  /* 2048 */
	uint64_t kin[8];       /* 4096 */
	uint64_t kout[8];      /* 4160 */
	uint64_t gin[8];       /* 4224: rbx r8 r9 r12 r13 r14 r15 - */
	uint64_t gout[8];      /* 4288 */
	uint32_t mxcsr_in;     /* 4352 */
	uint32_t mxcsr_out;    /* 4356 */
	uint16_t fcw_in;       /* 4360 */
	uint16_t fcw_out;      /* 4362 */
	uint32_t pad0;         /* 4364 */
	double fin[3];         /* 4368 */
	double fout[3];        /* 4392 */
	struct timespec ts;    /* 4416 */
	char path[16];         /* 4432 */
	uint64_t loops;        /* 4448 */
} __attribute__((aligned(64)));

_Static_assert(__builtin_offsetof(struct regstate, zout) == 2048, "layout");
_Static_assert(__builtin_offsetof(struct regstate, kin) == 4096, "layout");
_Static_assert(__builtin_offsetof(struct regstate, kout) == 4160, "layout");
_Static_assert(__builtin_offsetof(struct regstate, gin) == 4224, "layout");
_Static_assert(__builtin_offsetof(struct regstate, gout) == 4288, "layout");
_Static_assert(__builtin_offsetof(struct regstate, mxcsr_in) == 4352, "layout");
_Static_assert(__builtin_offsetof(struct regstate, mxcsr_out) == 4356, "layout");
_Static_assert(__builtin_offsetof(struct regstate, fcw_in) == 4360, "layout");
_Static_assert(__builtin_offsetof(struct regstate, fcw_out) == 4362, "layout");
_Static_assert(__builtin_offsetof(struct regstate, fin) == 4368, "layout");
_Static_assert(__builtin_offsetof(struct regstate, fout) == 4392, "layout");
_Static_assert(__builtin_offsetof(struct regstate, ts) == 4416, "layout");
_Static_assert(__builtin_offsetof(struct regstate, path) == 4432, "layout");
_Static_assert(__builtin_offsetof(struct regstate, loops) == 4448, "layout");

static struct regstate st;

#define S_(x) #x
#define S(x) S_(x)

/* vector loads/stores, %rdx = &st */
#if defined(__AVX512F__)
#define VLD(n) "vmovdqu64 " S(n) "*64(%%rdx), %%zmm" #n "\n\t"
#define VST(n) "vmovdqu64 %%zmm" #n ", 2048+" S(n) "*64(%%rdx)\n\t"
#define NVREG 32
#elif defined(__AVX__)
#define VLD(n) "vmovdqu " S(n) "*64(%%rdx), %%ymm" #n "\n\t"
#define VST(n) "vmovdqu %%ymm" #n ", 2048+" S(n) "*64(%%rdx)\n\t"
#define NVREG 16
#else
#define VLD(n) "movdqu " S(n) "*64(%%rdx), %%xmm" #n "\n\t"
#define VST(n) "movdqu %%xmm" #n ", 2048+" S(n) "*64(%%rdx)\n\t"
#define NVREG 16
#endif

#define V16(M)                                                                                     \
	M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define V32(M)                                                                                     \
	V16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28)     \
		M(29) M(30) M(31)

#if defined(__AVX512F__)
#define VLOAD V32(VLD)
#define VSTORE V32(VST)
#if defined(__AVX512BW__)
#define KLD(n) "kmovq 4096+" S(n) "*8(%%rdx), %%k" #n "\n\t"
#define KST(n) "kmovq %%k" #n ", 4160+" S(n) "*8(%%rdx)\n\t"
#define KBITS 64
#else
#define KLD(n) "kmovw 4096+" S(n) "*8(%%rdx), %%k" #n "\n\t"
#define KST(n) "kmovw %%k" #n ", 4160+" S(n) "*8(%%rdx)\n\t"
#define KBITS 16
#endif
#define K8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define KLOAD K8(KLD)
#define KSTORE K8(KST)
#define VCLOBBER                                                                                   \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",  \
		"xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",  \
		"xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",  \
		"xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#else
#define KBITS 0
#define KLOAD ""
#define KSTORE ""
#define VLOAD V16(VLD)
#define VSTORE V16(VST)
#define VCLOBBER                                                                                   \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",  \
		"xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#endif

#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif

static void __attribute__((noinline)) run_asm(void)
{
	__asm__ volatile(
		/* x87: control word, then push three values (st2=fin0, st1=fin1, st0=fin2) */
		"fldcw 4360(%%rdx)\n\t"
		"fldl 4368(%%rdx)\n\t"
		"fldl 4376(%%rdx)\n\t"
		"fldl 4384(%%rdx)\n\t"
		"ldmxcsr 4352(%%rdx)\n\t"
		VLOAD
		KLOAD
		"mov 4224(%%rdx), %%rbx\n\t"
		"mov 4232(%%rdx), %%r8\n\t"
		"mov 4240(%%rdx), %%r9\n\t"
		"mov 4248(%%rdx), %%r12\n\t"
		"mov 4256(%%rdx), %%r13\n\t"
		"mov 4264(%%rdx), %%r14\n\t"
		"mov 4272(%%rdx), %%r15\n\t"
		/* poll: access("go", F_OK) == 0 ? done : nanosleep(10ms) */
		"1:\n\t"
		"incq 4448(%%rdx)\n\t"
		"mov $21, %%eax\n\t" /* SYS_access */
		"lea 4432(%%rdx), %%rdi\n\t"
		"xor %%esi, %%esi\n\t"
		"syscall\n\t"
		"test %%rax, %%rax\n\t"
		"jz 2f\n\t"
		"mov $35, %%eax\n\t" /* SYS_nanosleep */
		"lea 4416(%%rdx), %%rdi\n\t"
		"xor %%esi, %%esi\n\t"
		"syscall\n\t"
		"jmp 1b\n\t"
		"2:\n\t"
		"mov %%rbx, 4288(%%rdx)\n\t"
		"mov %%r8, 4296(%%rdx)\n\t"
		"mov %%r9, 4304(%%rdx)\n\t"
		"mov %%r12, 4312(%%rdx)\n\t"
		"mov %%r13, 4320(%%rdx)\n\t"
		"mov %%r14, 4328(%%rdx)\n\t"
		"mov %%r15, 4336(%%rdx)\n\t"
		VSTORE
		KSTORE
		"stmxcsr 4356(%%rdx)\n\t"
		"fnstcw 4362(%%rdx)\n\t"
		"fstpl 4392(%%rdx)\n\t"
		"fstpl 4400(%%rdx)\n\t"
		"fstpl 4408(%%rdx)\n\t"
		/* back to the ABI defaults for the C code that follows */
		"movl $0x1f80, 4364(%%rdx)\n\t"
		"ldmxcsr 4364(%%rdx)\n\t"
		"movw $0x037f, 4364(%%rdx)\n\t"
		"fldcw 4364(%%rdx)\n\t"
		:
		: "d"(&st)
		: "rax", "rbx", "rcx", "rdi", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		  "memory", "cc", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
		  VCLOBBER);
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");

	/* what the CPU and the OS support vs. what we were built for */
	unsigned a, b, c, d;
	__cpuid(1, a, b, c, d);
	int osxsave = (c >> 27) & 1;
	uint64_t xcr0 = osxsave ? xgetbv0() : 3;
#if defined(__AVX__)
	if (!__builtin_cpu_supports("avx") || (xcr0 & 6) != 6)
		DIE("built with -mavx but CPU/OS lacks AVX (xcr0=0x%llx)", (unsigned long long)xcr0);
#endif
#if defined(__AVX512F__)
	if (!__builtin_cpu_supports("avx512f") || (xcr0 & 0xe6) != 0xe6)
		DIE("built with -mavx512f but CPU/OS lacks AVX-512 (xcr0=0x%llx)",
		    (unsigned long long)xcr0);
#endif
#if defined(__AVX512BW__)
	if (!__builtin_cpu_supports("avx512bw"))
		DIE("built with -mavx512bw but CPU lacks it");
#endif
	say("regs: covering %d vector registers x %d bytes, k0-k7 %d bits, x87 st0-2 + fcw, mxcsr, GP rbx r8 r9 r12-r15 (xcr0=0x%llx)",
	    NVREG, VBYTES, KBITS, (unsigned long long)xcr0);

	for (int r = 0; r < 32; r++)
		for (int i = 0; i < 64; i++)
			st.zin[r][i] = (uint8_t)(0x11 * (r + 1) + i * 7 + (i >> 4) * 0x40);
	for (int k = 0; k < 8; k++)
		st.kin[k] = 0x0123456789abcdefULL * (uint64_t)(k + 1) ^ (0xfedcba9876543210ULL >> k);
	for (int g = 0; g < 7; g++)
		st.gin[g] = 0xa5a5000000000000ULL | ((uint64_t)g << 40) | (0x1111111ULL * (uint64_t)(g + 3));
	st.mxcsr_in = 0xff80; /* all exceptions masked, RC = toward zero, FTZ */
	st.fcw_in = 0x0e7f;   /* all exceptions masked, PC = 53 bit, RC = toward zero */
	st.fin[0] = 3.141592653589793;
	st.fin[1] = -2.718281828459045e100;
	st.fin[2] = 1.4142135623730951e-200;
	st.ts.tv_sec = 0;
	st.ts.tv_nsec = 10 * 1000000L;
	memcpy(st.path, "go", 3);

	ready();
	run_asm();

	say("regs: go seen after %llu polls", (unsigned long long)st.loops);
	for (int r = 0; r < NVREG; r++) {
		if (memcmp(st.zin[r], st.zout[r], VBYTES) != 0) {
			int first = 0;
			while (first < VBYTES && st.zin[r][first] == st.zout[r][first])
				first++;
			fail("vector register %d differs from byte %d (%s)", r, first,
			     first < 16 ? "xmm part" : first < 32 ? "ymm upper half" : "zmm upper half");
		}
	}
	for (int k = 0; k < 8 && KBITS; k++) {
		uint64_t mask = KBITS == 64 ? ~0ULL : 0xffffULL;
		CHECK((st.kin[k] & mask) == (st.kout[k] & mask), "k%d is 0x%llx, expected 0x%llx", k,
		      (unsigned long long)(st.kout[k] & mask), (unsigned long long)(st.kin[k] & mask));
	}
	static const char *gname[] = { "rbx", "r8", "r9", "r12", "r13", "r14", "r15" };
	for (int g = 0; g < 7; g++)
		CHECK(st.gin[g] == st.gout[g], "%s is 0x%llx, expected 0x%llx", gname[g],
		      (unsigned long long)st.gout[g], (unsigned long long)st.gin[g]);
	CHECK(st.mxcsr_out == st.mxcsr_in, "MXCSR is 0x%x, expected 0x%x", st.mxcsr_out, st.mxcsr_in);
	CHECK(st.fcw_out == st.fcw_in, "x87 control word is 0x%x, expected 0x%x", st.fcw_out,
	      st.fcw_in);
	/* st0 was the last pushed (fin[2]) */
	for (int i = 0; i < 3; i++)
		CHECK(memcmp(&st.fout[i], &st.fin[2 - i], 8) == 0, "x87 st%d is %g, expected %g", i,
		      st.fout[i], st.fin[2 - i]);
	fdset_compare(&fds);
	return finish();
}
