/*
 * churn: a parent whose children and threads come and go all the time, as a job runner or a
 * thread pool does. Each round forks a child that lives 0-3 ms, starts a thread that lives as
 * long, and reaps whatever has ended (some children are zombies for a while).
 * After go: it keeps churning for 300 ms more; PASS if every child it reaped exited 0 and rounds
 * go on.
 */
#include "common.h"

#include <pthread.h>
#include <sys/wait.h>

static void *brief(void *arg)
{
	sleep_ms((long)arg);
	return NULL;
}

static long rounds, bad;

static void round_once(unsigned *seed)
{
	long ms = (long)(rand_r(seed) % 4);
	pid_t p = fork();
	if (p == 0) {
		sleep_ms(ms);
		_exit(0);
	}
	pthread_t th;
	if (pthread_create(&th, NULL, brief, (void *)ms) == 0)
		pthread_join(th, NULL);
	int st;
	pid_t r;
	while ((r = waitpid(-1, &st, WNOHANG)) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	rounds++;
}

int main(void)
{
	unsigned seed = (unsigned)getpid();
	for (int i = 0; i < 20; i++)
		round_once(&seed);
	ready();
	while (!go_exists())
		round_once(&seed);
	long at_go = rounds;
	int64_t t0 = mono_ns();
	while (mono_ns() - t0 < 300 * 1000000LL)
		round_once(&seed);
	int st;
	while (waitpid(-1, &st, 0) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	CHECK(bad == 0, "%ld children did not exit 0", bad);
	CHECK(rounds > at_go + 10, "only %ld rounds after go", rounds - at_go);
	return finish();
}
