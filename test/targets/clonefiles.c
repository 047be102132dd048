/*
 * clonefiles: a parent and a child created with clone(CLONE_FILES | CLONE_FS), sharing one fd
 * table and one cwd/umask, and a second child that shares only the fd table. After go the
 * first child opens a file, changes directory and umask; the parent sees the new fd, cwd and
 * umask, and the second child sees the fd but keeps its own cwd.
 */
#include "common.h"

#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

static pid_t clone_sharing(unsigned long flags)
{
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

static char go_abs[256], sub[300];

int main(void)
{
	if (!getcwd(go_abs, sizeof(go_abs) - 8) || mkdir("sub", 0755) || write_file("data.txt", "shared-table", 12))
		DIE("setup");
	snprintf(sub, sizeof(sub), "%s/sub", go_abs);
	strcat(go_abs, "/go");
	go_path = go_abs;
	int ready_pipe[2];
	if (pipe(ready_pipe))
		DIE("pipe");
	pid_t a = clone_sharing(CLONE_FILES | CLONE_FS);
	if (a == 0) {
		wait_go();
		int fd = open("data.txt", O_RDONLY); /* lands in the shared table */
		if (fd < 0 || dup2(fd, 100) != 100 || chdir("sub") || write(ready_pipe[1], "x", 1) != 1)
			_exit(3);
		umask(0027);
		_exit(0);
	}
	pid_t b = clone_sharing(CLONE_FILES);
	if (b == 0) {
		wait_go();
		for (int i = 0; i < 500 && fcntl(100, F_GETFD) < 0; i++)
			sleep_ms(10);
		char buf[16] = { 0 };
		int ok = pread(100, buf, 12, 0) == 12 && memcmp(buf, "shared-table", 12) == 0;
		char cwd[256];
		ok = ok && getcwd(cwd, sizeof(cwd)) && strstr(cwd, "/sub") == NULL; /* own fs context */
		_exit(ok ? 0 : 4);
	}
	ready();
	wait_go();
	int st = 0;
	CHECK(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child a status 0x%x", st);
	CHECK(waitpid(b, &st, 0) == b && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child b status 0x%x (fd not shared, or cwd shared)", st);
	CHECK(fcntl(100, F_GETFD) >= 0, "fd 100 opened by the child is not in our table");
	char cwd[256] = "";
	CHECK(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, sub) == 0, "cwd %s, expected %s (fs not shared)", cwd, sub);
	mode_t m = umask(0);
	CHECK(m == 0027, "umask 0%o, expected 0027", m);
	return finish();
}
