/*
 * rseqcs: a thread that sits in an rseq critical section when it is frozen. The section is an
 * endless loop, left only through its abort handler, which the kernel runs when the thread is
 * preempted or signalled; the handler counts and enters the section again. A thread restored
 * inside the section without being moved to its abort handler would spin there forever (the
 * kernel forgets the section when rseq is registered again from elsewhere): the count stops.
 * READY prints the abort handler's address, so the test can find it in the thread's registers.
 * After go the main thread waits for the count to move, then stops the spinner.
 */
#include "common.h"

#include <pthread.h>
#include <sys/rseq.h>

extern char cryo_rseq_abort[];
static volatile uint64_t aborts;
static volatile int stop;

static void *spinner(void *arg)
{
	(void)arg;
	volatile struct rseq *rs = (volatile struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	for (;;) {
		__asm__ __volatile__ goto(
			"leaq 3f(%%rip), %%rax\n\t"
			"movq %%rax, %[cs]\n\t"
			"1:\n\t"
			"jmp 1b\n\t"
			"2:\n\t"
			".pushsection .data.rel.local, \"aw\"\n\t"
			".balign 32\n\t"
			"3: .long 0, 0\n\t"
			".quad 1b, 2b - 1b, cryo_rseq_abort\n\t"
			".popsection\n\t"
			".pushsection .text, \"ax\"\n\t"
			".long 0x53053053\n\t"
			".globl cryo_rseq_abort\n\t"
			"cryo_rseq_abort:\n\t"
			"jmp %l[aborted]\n\t"
			".popsection\n\t"
			:
			: [cs] "m"(rs->rseq_cs)
			: "rax", "memory"
			: aborted);
	aborted:
		aborts++;
		if (stop)
			return NULL;
	}
}

int main(void)
{
	pthread_t th;
	if (pthread_create(&th, NULL, spinner, NULL))
		DIE("pthread_create");
	for (int i = 0; i < 500 && aborts < 3; i++)
		sleep_ms(10);
	if (aborts < 3)
		DIE("the critical section never aborts (rseq not registered?)");
	say("READY abort=%lx", (unsigned long)(uintptr_t)cryo_rseq_abort);
	wait_go();
	uint64_t at_go = aborts;
	for (int i = 0; i < 300 && aborts == at_go; i++)
		sleep_ms(10);
	CHECK(aborts > at_go, "the thread is stuck in its critical section: no abort in 3 s");
	stop = 1;
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 3;
	CHECK(pthread_timedjoin_np(th, NULL, &deadline) == 0, "the spinner did not stop");
	return finish();
}
