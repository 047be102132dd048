/*
 * threads: 8 threads, each counting in its own __thread variable and in a shared array under a
 * mutex, plus threads blocked in a futex wait (pthread_cond_wait), nanosleep, poll with a timeout
 * and sigwaitinfo. After go: every counter kept going with no lost or repeated count (the TLS
 * copy and the shared copy agree, and both grew after the restore), TIDs are the same, the
 * blocked threads each wake as the program expects.
 */
#include "common.h"

#include <poll.h>
#include <pthread.h>

#define NCOUNT 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cv_flag;
static long shared_count[NCOUNT];
static volatile long seen_tls[NCOUNT];
static volatile pid_t tids[NCOUNT + 4];
static volatile int stop;
static volatile int cond_woke, sleep_done, poll_done, sigwait_got;
static __thread long my_count;

static void *counter(void *arg)
{
	long i = (long)arg;
	tids[i] = (pid_t)syscall(SYS_gettid);
	while (!stop) {
		pthread_mutex_lock(&mu);
		my_count++;
		shared_count[i]++;
		if (shared_count[i] != my_count)
			fail("thread %ld: shared %ld != tls %ld", i, shared_count[i], my_count);
		seen_tls[i] = my_count;
		pthread_mutex_unlock(&mu);
		sleep_ms(1);
	}
	return NULL;
}

static void *cond_waiter(void *arg)
{
	(void)arg;
	tids[NCOUNT] = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&mu);
	while (!cv_flag)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	cond_woke = 1;
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	tids[NCOUNT + 1] = (pid_t)syscall(SYS_gettid);
	struct timespec ts = { 8, 0 }, rem;
	int64_t t0 = mono_ns();
	/* A whole 8 s of sleep, resumed after EINTR, must take at least 8 s overall: long enough
	 * that the dump finds the thread still asleep on a loaded machine. */
	while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
		ts = rem;
	sleep_done = mono_ns() - t0 >= 8000000000LL - 50000000LL ? 1 : -1;
	return NULL;
}

static void *poller(void *arg)
{
	(void)arg;
	tids[NCOUNT + 2] = (pid_t)syscall(SYS_gettid);
	int r;
	do
		r = poll(NULL, 0, 7000);
	while (r < 0 && errno == EINTR);
	poll_done = r == 0 ? 1 : -1;
	return NULL;
}

static void *sigwaiter(void *arg)
{
	(void)arg;
	tids[NCOUNT + 3] = (pid_t)syscall(SYS_gettid);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	siginfo_t si;
	int r;
	do
		r = sigwaitinfo(&s, &si);
	while (r < 0 && errno == EINTR);
	sigwait_got = r;
	return NULL;
}

int main(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_t th[NCOUNT + 4];
	for (long i = 0; i < NCOUNT; i++)
		pthread_create(&th[i], NULL, counter, (void *)i);
	pthread_create(&th[NCOUNT], NULL, cond_waiter, NULL);
	pthread_create(&th[NCOUNT + 1], NULL, sleeper, NULL);
	pthread_create(&th[NCOUNT + 2], NULL, poller, NULL);
	pthread_create(&th[NCOUNT + 3], NULL, sigwaiter, NULL);
	for (int i = 0; i < NCOUNT + 4; i++)
		while (!tids[i])
			sleep_ms(1);
	pid_t before[NCOUNT + 4];
	memcpy(before, (const void *)tids, sizeof(before));
	sleep_ms(50);
	ready();
	wait_go();

	long at_go[NCOUNT];
	for (int i = 0; i < NCOUNT; i++)
		at_go[i] = seen_tls[i];
	sleep_ms(200);
	for (int i = 0; i < NCOUNT; i++)
		CHECK(seen_tls[i] > at_go[i], "counter %d did not go on after restore (%ld)", i, seen_tls[i]);
	for (int i = 0; i < NCOUNT + 4; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%d", before[i]);
		CHECK(access(path, F_OK) == 0, "thread %d lost its TID %d", i, before[i]);
	}
	pthread_mutex_lock(&mu);
	cv_flag = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	syscall(SYS_tgkill, getpid(), before[NCOUNT + 3], SIGUSR1);
	for (int i = 0; i < 1000 && !(cond_woke && sleep_done && poll_done && sigwait_got); i++)
		sleep_ms(10);
	CHECK(cond_woke, "futex waiter never woke");
	CHECK(sleep_done == 1, "nanosleep of 8 s was cut short (%d)", sleep_done);
	CHECK(poll_done == 1, "poll with a 7 s timeout did not time out cleanly (%d)", poll_done);
	CHECK(sigwait_got == SIGUSR1, "sigwaitinfo returned %d", sigwait_got);
	stop = 1;
	for (int i = 0; i < NCOUNT + 4; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_lock(&mu);
	for (int i = 0; i < NCOUNT; i++)
		CHECK(shared_count[i] == seen_tls[i], "thread %d: shared %ld, tls %ld", i, shared_count[i], seen_tls[i]);
	pthread_mutex_unlock(&mu);
	return finish();
}
