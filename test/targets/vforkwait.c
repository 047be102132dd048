/*
 * vforkwait: a parent blocked in vfork() because its child neither execs nor exits. cryo must
 * refuse it (the parent is inside the syscall, waiting on its child) and leave both running.
 */
#include "common.h"

int main(void)
{
	ready();
	pid_t p = vfork();
	if (p == 0) {
		for (;;)
			pause(); /* killed by the test */
	}
	return 0;
}
