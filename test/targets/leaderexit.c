/*
 * leaderexit: a process whose main thread has exited (pthread_exit) while a worker thread runs
 * on: /proc shows its leader as a zombie, but the process lives. With "child", the process is a
 * child of the target's root, which waits for it. cryo refuses it, named (it was once taken for
 * a zombie and would have come back as one). After go the worker says PASS: it ran on untouched.
 */
#include "common.h"

#include <pthread.h>
#include <sys/wait.h>

static void *worker(void *arg)
{
	(void)arg;
	say("READY %d", (int)getpid());
	wait_go();
	say("PASS");
	exit(0);
}

static void leader_exits(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		fail("pthread_create");
	pthread_exit(NULL);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "child") != 0)
		leader_exits();
	pid_t kid = fork();
	if (kid < 0)
		fail("fork");
	if (kid == 0)
		leader_exits();
	int st;
	while (waitpid(kid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
