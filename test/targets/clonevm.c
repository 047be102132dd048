/*
 * clonevm: a child created with clone(CLONE_VM | CLONE_SIGHAND) (not a thread: its own PID),
 * sharing the parent's memory and signal handlers. Before the checkpoint the child counts in a
 * global variable. After go it installs a SIGUSR1 handler and bumps a flag; the parent sees the
 * flag, the count still moving, and the child's handler in its own table (one table, shared).
 */
#include "common.h"

#include <sched.h>
#include <sys/wait.h>

static volatile uint64_t counter;
static volatile int child_saw_go;
static volatile int stop;
static char child_stack[256 * 1024] __attribute__((aligned(16)));

static void on_usr1(int sig)
{
	(void)sig;
}

static int child(void *arg)
{
	(void)arg;
	while (!go_exists())
		counter++;
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	child_saw_go = 1;
	while (!stop)
		counter++;
	return 0;
}

int main(void)
{
	pid_t kid = clone(child, child_stack + sizeof(child_stack), CLONE_VM | CLONE_SIGHAND | SIGCHLD, NULL);
	if (kid < 0)
		DIE("clone");
	for (int i = 0; i < 200 && counter == 0; i++)
		sleep_ms(5);
	if (counter == 0)
		DIE("the child does not count");
	ready();
	wait_go();
	for (int i = 0; i < 300 && !child_saw_go; i++)
		sleep_ms(10);
	CHECK(child_saw_go, "the child's write is not seen: memory not shared");
	uint64_t c0 = counter;
	sleep_ms(50);
	CHECK(counter > c0, "the count does not move: the child is not running in our memory");
	struct sigaction now;
	sigaction(SIGUSR1, NULL, &now);
	CHECK(now.sa_handler == on_usr1, "the child's SIGUSR1 handler is not ours: handlers not shared");
	stop = 1;
	int st = 0;
	CHECK(waitpid(kid, &st, __WALL) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	return finish();
}
