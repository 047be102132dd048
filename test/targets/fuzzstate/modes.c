/* fuzzstate items: modes a child process holds that the restore must not break on its way —
 * seccomp strict mode (only read, write, exit and sigreturn: every other call kills it, also
 * those the restore makes in it after setting the mode again); a chrooted daemon (its root and
 * its cwd inside it, a file of its root open and the fds it inherited from us, outside it).
 * Needs children.c (track_kid, proc_state) before it. */
#include "fuzz.h"
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* ---- seccomp-strict: a child that answers over pipes in strict mode ----------------------- */

struct strict_st {
	pid_t pid;
	int cmd, reply;
};

/* In strict mode: read a byte; 'p' is echoed back, anything else makes a forbidden call. */
static void strict_child(int cmd, int reply)
{
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
		syscall(SYS_exit, 2);
	char ready = 's';
	syscall(SYS_write, reply, &ready, 1); /* in strict mode now: the build waits for this */
	for (;;) {
		char c;
		long n = syscall(SYS_read, cmd, &c, 1);
		if (n == 0)
			syscall(SYS_exit, 0); /* the parent is gone (exit_group is not allowed) */
		if (n != 1)
			continue;
		if (c != 'p')
			syscall(SYS_getpid); /* SIGKILL */
		syscall(SYS_write, reply, &c, 1);
	}
}

static int strict_build(struct inst *in, struct rng *r)
{
	(void)r;
	struct strict_st *s = ST_OF(in, struct strict_st);
	if (n_kids >= MAX_KIDS * 2)
		return 1;
	/* strict mode cannot be set over a filter (EINVAL): an earlier seccomp item rules it out */
	char status[4096];
	const char *mode = read_file("/proc/self/status", status, sizeof(status)) < 0 ? NULL : strstr(status, "\nSeccomp:\t");
	if (!mode || mode[10] != '0')
		return 1;
	int cmd[2], reply[2];
	if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(reply, O_CLOEXEC) != 0)
		DIE("pipe2");
	s->pid = fork();
	if (s->pid < 0)
		DIE("fork");
	if (s->pid == 0) {
		close(cmd[1]);
		close(reply[0]);
		strict_child(cmd[0], reply[1]);
	}
	track_kid(s->pid);
	close(cmd[0]);
	close(reply[1]);
	char ready = 0;
	if (read(reply[0], &ready, 1) != 1 || ready != 's')
		DIE("strict child %d did not enter strict mode", s->pid);
	s->cmd = cmd[1];
	s->reply = reply[0];
	describe(in, "pid=%d", s->pid);
	return 0;
}

static void strict_check(struct inst *in, int final)
{
	struct strict_st *s = ST_OF(in, struct strict_st);
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", s->pid);
	const char *mode = read_file(path, buf, sizeof(buf)) < 0 ? NULL : strstr(buf, "\nSeccomp:\t");
	ICHECK(in, mode && mode[10] == '1', "child %d: %.12s, expected Seccomp: 1", s->pid, mode ? mode + 1 : "no status");
	char c = 'p';
	struct pollfd pfd = { s->reply, POLLIN, 0 };
	if (write(s->cmd, &c, 1) != 1 || poll(&pfd, 1, 5000) != 1 || read(s->reply, &c, 1) != 1 || c != 'p') {
		IFAIL(in, "child %d in strict mode did not answer", s->pid);
		return;
	}
	if (!final)
		return;
	/* the mode is at work: a forbidden call kills it */
	c = 'x';
	int st = 0;
	if (write(s->cmd, &c, 1) != 1)
		DIE("strict child %d", s->pid);
	pid_t w = waitpid(s->pid, &st, 0);
	struct sigaction chld;
	sigaction(SIGCHLD, NULL, &chld);
	if (w < 0 && errno == ECHILD && (chld.sa_handler == SIG_IGN || (chld.sa_flags & SA_NOCLDWAIT))) {
		/* sigchld-ignore: the kernel reaped it, so its status is gone; it is gone, at least */
		ICHECK(in, kill(s->pid, 0) != 0, "child %d still runs after a forbidden call", s->pid);
		return;
	}
	if (w != s->pid)
		DIE("strict child %d", s->pid);
	ICHECK(in, WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child %d ended with status 0x%x, expected SIGKILL", s->pid, st);
}

/* ---- chroot-child: a child chrooted below our base, its cwd inside its root --------------- */

struct chroot_st {
	pid_t pid;
	int fd; /* in the child: /sub/data of its root */
	unsigned long ino;
	char root[300], cwd[310];
};

static void chroot_build_dirs(struct chroot_st *s, struct inst *in, struct rng *r)
{
	snprintf(s->root, sizeof(s->root), "%schroot%d-%llx", g_base, in->idx, (unsigned long long)(rng_next(r) & 0xfff));
	snprintf(s->cwd, sizeof(s->cwd), "%s/sub", s->root);
	if (mkdir(s->root, 0755) != 0 || mkdir(s->cwd, 0755) != 0)
		DIE("mkdir %s", s->cwd);
}

static int chroot_build(struct inst *in, struct rng *r)
{
	struct chroot_st *s = ST_OF(in, struct chroot_st);
	if (n_kids >= MAX_KIDS * 2)
		return 1;
	chroot_build_dirs(s, in, r);
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) != 0)
		DIE("pipe2");
	s->pid = fork();
	if (s->pid < 0)
		DIE("fork");
	if (s->pid == 0) {
		/* as a daemon does: chroot, then chdir to a directory of the new root */
		char ok = chroot(s->root) == 0 && chdir("/sub") == 0;
		int fd = ok ? open("/sub/data", O_RDWR | O_CREAT, 0644) : -1;
		if (write(ready[1], &fd, sizeof(fd)) != sizeof(fd))
			_exit(3);
		close(ready[1]);
		for (;;)
			pause();
	}
	track_kid(s->pid);
	close(ready[1]);
	s->fd = -1;
	if (read(ready[0], &s->fd, sizeof(s->fd)) != sizeof(s->fd) || s->fd < 0)
		DIE("chroot child");
	close(ready[0]);
	struct stat st;
	char data[330];
	snprintf(data, sizeof(data), "%s/data", s->cwd);
	if (stat(data, &st) != 0)
		DIE("stat %s", data);
	s->ino = st.st_ino;
	describe(in, "pid=%d root=%s", s->pid, s->root + strlen(g_base));
	return 0;
}

/* /proc/PID/LINK (as we see it, from our root) is `want` */
static void chroot_check_link(struct inst *in, pid_t pid, const char *link, const char *want)
{
	char path[64], now[400] = "";
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, link);
	ssize_t n = readlink(path, now, sizeof(now) - 1);
	now[n > 0 ? n : 0] = 0;
	ICHECK(in, strcmp(now, want) == 0, "child %d: %s is %s, expected %s", pid, link, now, want);
}

static void chroot_check(struct inst *in, int final)
{
	(void)final;
	struct chroot_st *s = ST_OF(in, struct chroot_st);
	chroot_check_link(in, s->pid, "root", s->root);
	chroot_check_link(in, s->pid, "cwd", s->cwd);
	char fd[32], data[330];
	snprintf(fd, sizeof(fd), "fd/%d", s->fd);
	snprintf(data, sizeof(data), "%s/data", s->cwd);
	chroot_check_link(in, s->pid, fd, data);
	struct stat st;
	snprintf(data, sizeof(data), "/proc/%d/fd/%d", s->pid, s->fd);
	ICHECK(in, stat(data, &st) == 0 && st.st_ino == s->ino, "child %d: fd %d is not the file it opened", s->pid, s->fd);
}

const struct item items_modes[] = {
	{ "seccomp-strict", 1, strict_build, strict_check, NULL },
	{ "chroot-child", 1, chroot_build, chroot_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
