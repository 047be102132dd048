/*
 * safety: a process that must come through interrupted and killed dumps unharmed.
 * argv: MIB THREADS CHILDREN. It fills MIB MiB with a pattern, installs a SIGTRAP handler and a
 * SIGUSR1 handler, blocks SIGUSR2, starts THREADS threads and forks CHILDREN children (every
 * task sleeping in 1 ms steps and counting), then READY. Many dumps are started and broken off
 * while it runs; after go every task checks that its handlers are still there (it raises SIGTRAP
 * and SIGUSR1 and counts the handler calls: a SIGTRAP reset to SIG_DFL would kill it), that
 * SIGUSR2 is still blocked, that it went on counting, and the root that the pattern and its fd
 * table are intact and every child exited 0.
 */
#include "common.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MAX_THREADS 64
#define MAX_CHILDREN 64

static volatile sig_atomic_t traps, usr1s;
static volatile long counts[MAX_THREADS + 1];
static volatile int stop;
static volatile int started;

static void on_trap(int sig)
{
	(void)sig;
	traps++;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1s++;
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_trap;
	sigaction(SIGTRAP, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

/* The handlers still run, SIGUSR2 is still blocked in this thread. */
static void check_signals(const char *who)
{
	struct sigaction sa;
	sigaction(SIGTRAP, NULL, &sa);
	if (sa.sa_handler != on_trap)
		fail("%s: SIGTRAP handler is %p, not on_trap", who, (void *)sa.sa_handler);
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	if (!sigismember(&cur, SIGUSR2) || sigismember(&cur, SIGTRAP) || sigismember(&cur, SIGUSR1))
		fail("%s: signal mask changed", who);
}

static void *counter(void *arg)
{
	long i = (long)arg;
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!stop) {
		counts[i]++;
		sleep_ms(1);
	}
	check_signals("thread");
	return NULL;
}

/* Counts until go; returns how far it counted in the last 50 ms after go (must be > 0). */
static long count_until_go(volatile long *c)
{
	while (!go_exists()) {
		for (int k = 0; k < 10; k++) {
			(*c)++;
			sleep_ms(1);
		}
	}
	long before = *c;
	for (int k = 0; k < 50; k++) {
		(*c)++;
		sleep_ms(1);
	}
	return *c - before;
}

static int child_main(void)
{
	long c = 0;
	if (count_until_go(&c) <= 0)
		return 2;
	check_signals("child");
	raise(SIGTRAP);
	raise(SIGUSR1);
	if (traps != 1 || usr1s != 1)
		return 3;
	return fail_count_ ? 4 : 0;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 1;
	int nthreads = argc > 2 ? atoi(argv[2]) : 0;
	int nchildren = argc > 3 ? atoi(argv[3]) : 0;
	if (nthreads > MAX_THREADS || nchildren > MAX_CHILDREN)
		return 2;
	install();
	size_t len = (size_t)mib << 20;
	unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 2;
	pattern_fill(mem, len, 7);
	pid_t kids[MAX_CHILDREN];
	for (int i = 0; i < nchildren; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			_exit(child_main());
	}
	pthread_t th[MAX_THREADS];
	for (long i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, counter, (void *)(i + 1));
	/* READY once every thread runs its own code (a new thread starts with all signals blocked). */
	while (started < nthreads)
		sleep_ms(1);
	sleep_ms(5);
	struct fdset fds;
	fdset_take(&fds);
	ready();

	if (count_until_go(&counts[0]) <= 0)
		fail("main thread stopped counting");
	long seen[MAX_THREADS + 1];
	for (int i = 1; i <= nthreads; i++)
		seen[i] = counts[i];
	sleep_ms(50);
	for (int i = 1; i <= nthreads; i++)
		if (counts[i] == seen[i])
			fail("thread %d stopped counting", i);
	stop = 1;
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	check_signals("main");
	raise(SIGTRAP);
	raise(SIGUSR1);
	if (traps != 1 || usr1s != 1)
		fail("handlers ran %d/%d times, wanted 1/1", (int)traps, (int)usr1s);
	long bad = pattern_check(mem, len, 7);
	if (bad >= 0)
		fail("pattern differs at offset %ld", bad);
	for (int i = 0; i < nchildren; i++) {
		int st = 0;
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail("child %d (pid %d) ended with status 0x%x", i, (int)kids[i], st);
	}
	fdset_compare(&fds);
	return finish();
}
