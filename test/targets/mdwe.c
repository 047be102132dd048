/*
 * mdwe: a process that refuses memory both writable and executable (PR_SET_MDWE with
 * PR_MDWE_REFUSE_EXEC_GAIN, as systemd's MemoryDenyWriteExecute= sets it), with a thread that
 * counts. After go: the setting is still there (PR_GET_MDWE), a writable and executable mmap and
 * an mprotect that adds execute are still refused, the thread kept counting.
 */
#include "common.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

static volatile long ticks;

static void *counter(void *arg)
{
	(void)arg;
	for (;;) {
		ticks++;
		sleep_ms(5);
	}
	return NULL;
}

int main(void)
{
	struct fdset fds;
	pthread_t th;
	if (pthread_create(&th, NULL, counter, NULL))
		DIE("pthread_create");
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0))
		DIE("PR_SET_MDWE");
	void *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rw == MAP_FAILED)
		DIE("mmap");
	fdset_take(&fds);
	ready();
	wait_go();
	long t0 = ticks;
	int flags = prctl(PR_GET_MDWE, 0, 0, 0, 0);
	CHECK(flags == PR_MDWE_REFUSE_EXEC_GAIN, "PR_GET_MDWE is %d, not %d", flags, PR_MDWE_REFUSE_EXEC_GAIN);
	void *wx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(wx == MAP_FAILED && errno == EACCES, "a writable and executable mmap was allowed");
	CHECK(mprotect(rw, 4096, PROT_READ | PROT_EXEC) != 0 && errno == EACCES, "an mprotect that gains execute was allowed");
	sleep_ms(100);
	CHECK(ticks > t0, "the thread stopped counting");
	fdset_compare(&fds);
	return finish();
}
