/*
 * fuzzstate item: a child process created with clone(CLONE_FILES and/or CLONE_FS), which must
 * still share the fd table / the umask with the parent after restore. The check shows it: the
 * parent opens a probe fd (or sets a probe umask) and asks the child what it sees.
 * Needs children.c (track_kid, proc_state) before it.
 */
#include "fuzz.h"

#include <poll.h>
#include <sched.h>

struct clone_st {
	pid_t pid;
	int flags, cmd[2], reply[2];
};

static char clone_stacks[2][65536] __attribute__((aligned(16)));
static int n_clone_stacks;

/* What the parent asks: the probe fd and umask; what it gets back: what the child sees. */
struct clone_probe {
	int fd;
	mode_t umask;
};

static int clone_child_main(void *arg)
{
	struct clone_st *s = arg;
	for (;;) {
		struct clone_probe q, a;
		ssize_t n = read(s->cmd[0], &q, sizeof(q));
		if (n == 0)
			_exit(0);
		if (n != sizeof(q))
			continue;
		a.fd = fcntl(q.fd, F_GETFD) >= 0;
		a.umask = umask(0);
		umask(a.umask);
		if (write(s->reply[1], &a, sizeof(a)) != sizeof(a))
			_exit(3);
	}
}

static int clone_build(struct inst *in, struct rng *r)
{
	struct clone_st *s = ST_OF(in, struct clone_st);
	if (n_kids >= MAX_KIDS * 2 || n_clone_stacks >= 2)
		return 1;
	char *stack = clone_stacks[n_clone_stacks++];
	int pick = (int)rng_range(r, 1, 3);
	s->flags = (pick & 1 ? CLONE_FILES : 0) | (pick & 2 ? CLONE_FS : 0);
	if (pipe2(s->cmd, O_CLOEXEC) != 0 || pipe2(s->reply, O_CLOEXEC) != 0)
		DIE("pipe2");
	s->pid = clone(clone_child_main, stack + sizeof(clone_stacks[0]), s->flags | SIGCHLD, s);
	if (s->pid < 0)
		DIE("clone");
	track_kid(s->pid);
	if (!(s->flags & CLONE_FILES)) { /* a shared table holds the child's ends too: keep them */
		close(s->cmd[0]);
		close(s->reply[1]);
		s->cmd[0] = s->reply[1] = -1;
	}
	describe(in, "pid=%d files=%d fs=%d", s->pid, !!(s->flags & CLONE_FILES), !!(s->flags & CLONE_FS));
	return 0;
}

static void clone_check(struct inst *in, int final)
{
	(void)final;
	struct clone_st *s = ST_OF(in, struct clone_st);
	struct clone_probe q, a;
	/* above every number place_fd hands out, so an unshared copy of the table cannot have it */
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	q.fd = fcntl(nul, F_DUPFD_CLOEXEC, 990 + in->idx % 8);
	close(nul);
	q.umask = umask(0123); /* put back below */
	ssize_t w = write(s->cmd[1], &q, sizeof(q));
	struct pollfd pfd = { s->reply[0], POLLIN, 0 };
	int got = w == sizeof(q) && poll(&pfd, 1, 5000) == 1 && read(s->reply[0], &a, sizeof(a)) == sizeof(a);
	umask(q.umask);
	close(q.fd);
	if (!got) {
		IFAIL(in, "clone child %d did not answer", s->pid);
		return;
	}
	int share_files = !!(s->flags & CLONE_FILES), share_fs = !!(s->flags & CLONE_FS);
	ICHECK(in, a.fd == share_files, "clone child %d %s the parent's new fd %d", s->pid, a.fd ? "sees" : "does not see", q.fd);
	ICHECK(in, (a.umask == 0123) == share_fs, "clone child %d has umask 0%o while the parent's is 0123 (CLONE_FS %d)",
	       s->pid, a.umask, share_fs);
}

const struct item items_clones[] = {
	{ "clone-files-fs", 2, clone_build, clone_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
