/*
 * iouring: holds an io_uring instance (fd and its ring mappings), which cryo cannot checkpoint.
 * `cryo check` and `cryo dump` must name it and leave the process alone: after go it checks the
 * ring fd is still there and reports PASS.
 */
#include "common.h"

int main(void)
{
	static char params[120]; /* struct io_uring_params, zeroed: default flags */
	int fd = (int)syscall(425 /* io_uring_setup */, 4, params);
	if (fd < 0)
		DIE("io_uring_setup");
	ready();
	wait_go();
	CHECK(fcntl(fd, F_GETFD) >= 0, "io_uring fd %d is gone", fd);
	return finish();
}
