/*
 * sleepers: threads waiting with a timeout when the checkpoint comes; none may see EINTR.
 *   nanosleep     1.2 s relative, rem NULL, in a loop
 *   poll          no fds, 700 ms timeout, in a loop (must return 0)
 *   futex         FUTEX_WAIT on a word nobody changes, 900 ms relative timeout (ETIMEDOUT)
 *   absolute      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to deadlines 400 ms apart;
 *                 it must never wake before its deadline
 * After go the threads go on for 1.5 s more; then each reports how many waits it finished and
 * whether any ended early or with an error.
 */
#include "common.h"

#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>

static volatile int stop;
static volatile long rounds[4];
static char errs[4][160];
static int word;

static void bad(int k, const char *what, int err)
{
	if (!errs[k][0])
		snprintf(errs[k], sizeof(errs[k]), "%s: %s", what, strerror(err));
}

static void *sleeper(void *arg)
{
	int k = (int)(long)arg;
	while (!stop) {
		if (k == 0) {
			struct timespec ts = { 1, 200000000 };
			if (nanosleep(&ts, NULL) != 0)
				bad(k, "nanosleep", errno);
		} else if (k == 1) {
			int n = poll(NULL, 0, 700);
			if (n != 0)
				bad(k, "poll", n < 0 ? errno : EINVAL);
		} else if (k == 2) {
			struct timespec ts = { 0, 900000000 };
			long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
			if (r != -1 || errno != ETIMEDOUT)
				bad(k, "futex", r == -1 ? errno : EINVAL);
		} else {
			struct timespec at;
			clock_gettime(CLOCK_MONOTONIC, &at);
			at.tv_nsec += 400000000;
			if (at.tv_nsec >= 1000000000) {
				at.tv_sec++;
				at.tv_nsec -= 1000000000;
			}
			int e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (e)
				bad(k, "clock_nanosleep", e);
			else if (now.tv_sec < at.tv_sec || (now.tv_sec == at.tv_sec && now.tv_nsec < at.tv_nsec))
				bad(k, "clock_nanosleep woke before its deadline", 0);
		}
		rounds[k]++;
	}
	return NULL;
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	pthread_t th[4];
	for (long k = 0; k < 4; k++)
		if (pthread_create(&th[k], NULL, sleeper, (void *)k))
			DIE("pthread_create");
	sleep_ms(100);
	ready();
	wait_go();
	long at_go[4];
	for (int k = 0; k < 4; k++)
		at_go[k] = rounds[k];
	sleep_ms(1500);
	stop = 1;
	for (int k = 0; k < 4; k++)
		pthread_join(th[k], NULL);
	static const char *names[] = { "nanosleep", "poll", "futex", "absolute" };
	for (int k = 0; k < 4; k++) {
		CHECK(!errs[k][0], "%s thread: %s", names[k], errs[k]);
		CHECK(rounds[k] > at_go[k], "%s thread finished no wait after go", names[k]);
	}
	fdset_compare(&fds);
	return finish();
}
