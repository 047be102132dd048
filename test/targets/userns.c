/*
 * userns: a tree in a user namespace of its own with a mapped range, owning its UTS, IPC and
 * network namespaces (a PID namespace is refused with a user namespace: resources/ns/user.ts). Started by the test as host root: the launcher forks a child that unshares
 * CLONE_NEWUSER; the launcher writes the child's uid_map and gid_map (argv[1], argv[2], e.g.
 * "0 100000 65536": root may write any map; setgroups stays "allow"), then the child becomes
 * root inside (setresuid 0: before, its ids are the launcher's, unmapped), unshares
 * CLONE_NEWUTS|NEWIPC|NEWNET and forks the root, the tree the test dumps; launcher and child wait
 * outside it. The root (uid 0 inside) sets a hostname, makes a message queue with
 * a message, and forks a worker that takes groups 1000 and 2000, gids 1000/1001/1002 and uids
 * 1000/1001/1002 inside. READY once the worker's credentials are set. After go each checks its
 * own uid_map, gid_map and setgroups (as read before), its ids and groups, its PID and parent;
 * the root that its UTS, IPC and network namespaces are owned by its user namespace (NS_GET_USERNS),
 * that it can still use its capabilities there (sethostname, a new message queue) and that the
 * queue and message are there with owner uid 0 inside; the worker that it cannot sethostname
 * (EPERM: no capability left). The root reaps the worker (exit 0) before PASS.
 */
#include "common.h"

#include <sched.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#define NS_GET_USERNS 0xb701
#define MSG_KEY 0x55534e01
#define HOST "cryo-userns"

struct msgtext {
	long mtype;
	char text[32];
};

static char uid_map[256], gid_map[256], setgroups_text[32];
/* Shared with the worker: set once it has its credentials. */
static volatile int *dropped;

static void read_maps(char *u, char *g, char *sg)
{
	memset(u, 0, 256);
	memset(g, 0, 256);
	memset(sg, 0, 32);
	if (read_file("/proc/self/uid_map", u, 255) < 0 || read_file("/proc/self/gid_map", g, 255) < 0 || read_file("/proc/self/setgroups", sg, 31) < 0)
		DIE("read maps");
}

static void check_maps(const char *who)
{
	char u[256], g[256], sg[32];
	read_maps(u, g, sg);
	CHECK(strcmp(u, uid_map) == 0, "%s: uid_map '%s', was '%s'", who, u, uid_map);
	CHECK(strcmp(g, gid_map) == 0, "%s: gid_map '%s', was '%s'", who, g, gid_map);
	CHECK(strcmp(sg, setgroups_text) == 0, "%s: setgroups '%s', was '%s'", who, sg, setgroups_text);
}

static void check_ids(const char *who, uid_t u0, uid_t u1, uid_t u2, gid_t g0, gid_t g1, gid_t g2)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	CHECK(getresuid(&r, &e, &s) == 0 && r == u0 && e == u1 && s == u2, "%s: uids %u %u %u, want %u %u %u", who, r, e, s, u0, u1, u2);
	CHECK(getresgid(&gr, &ge, &gs) == 0 && gr == g0 && ge == g1 && gs == g2, "%s: gids %u %u %u, want %u %u %u", who, gr, ge, gs, g0, g1, g2);
}

/* Whether the namespace of `kind` is owned by this task's user namespace. */
static int owned_by_my_userns(const char *kind)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/ns/%s", kind);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int owner = fd < 0 ? -1 : ioctl(fd, NS_GET_USERNS);
	struct stat a, b;
	int ok = owner >= 0 && fstat(owner, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_ino == b.st_ino;
	if (owner >= 0)
		close(owner);
	if (fd >= 0)
		close(fd);
	return ok;
}

static pid_t root_pid, worker_pid;

static int worker(void)
{
	worker_pid = getpid();
	gid_t groups[2] = { 1000, 2000 };
	if (setgroups(2, groups) < 0 || setresgid(1000, 1001, 1002) < 0 || setresuid(1000, 1001, 1002) < 0)
		DIE("worker: set credentials");
	*dropped = 1;
	wait_go();
	CHECK(getpid() == worker_pid && getppid() == root_pid, "worker: pid %d ppid %d, was %d %d", getpid(), getppid(), worker_pid, root_pid);
	check_maps("worker");
	check_ids("worker", 1000, 1001, 1002, 1000, 1001, 1002);
	gid_t now[8];
	int n = getgroups(8, now);
	CHECK(n == 2 && now[0] == 1000 && now[1] == 2000, "worker: %d groups (%u %u)", n, n > 0 ? now[0] : 0, n > 1 ? now[1] : 0);
	CHECK(sethostname("nope", 4) < 0 && errno == EPERM, "worker: sethostname did not fail with EPERM (%s)", strerror(errno));
	if (fail_count_)
		say("FAIL: worker: %s", fail_buf_);
	_exit(fail_count_ ? 1 : 0);
}

static int root_main(void)
{
	root_pid = getpid();
	if (setsid() < 0)
		DIE("setsid");
	read_maps(uid_map, gid_map, setgroups_text);
	dropped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (dropped == MAP_FAILED)
		DIE("mmap");
	if (sethostname(HOST, strlen(HOST)) < 0)
		DIE("sethostname");
	int q = msgget(MSG_KEY, IPC_CREAT | IPC_EXCL | 0600);
	struct msgtext m = { .mtype = 3, .text = "in-userns" };
	if (q < 0 || msgsnd(q, &m, strlen(m.text), IPC_NOWAIT) < 0)
		DIE("message queue");
	pid_t w = fork();
	if (w < 0)
		DIE("fork");
	if (w == 0)
		return worker();
	/* READY once the worker has its credentials (it can no longer signal us). */
	for (int i = 0; i < 1000 && !*dropped; i++)
		sleep_ms(10);
	if (!*dropped)
		DIE("the worker did not set its credentials");
	static struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset_take");
	say("maps uid '%s' gid '%s'", uid_map, gid_map);
	ready();
	wait_go();

	CHECK(getpid() == root_pid, "root: getpid() %d, was %d", getpid(), root_pid);
	check_maps("init");
	check_ids("init", 0, 0, 0, 0, 0, 0);
	for (const char *kind = "uts"; kind; kind = strcmp(kind, "uts") == 0 ? "ipc" : strcmp(kind, "ipc") == 0 ? "net" : NULL)
		CHECK(owned_by_my_userns(kind), "root: its %s namespace is not owned by its user namespace", kind);
	char name[64] = { 0 };
	CHECK(gethostname(name, sizeof name) == 0 && strcmp(name, HOST) == 0, "root: hostname '%s'", name);
	CHECK(sethostname("cryo-userns-after", 17) == 0, "root: sethostname after restore: %s", strerror(errno));
	struct msqid_ds ds;
	CHECK(msgget(MSG_KEY, 0) == q && msgctl(q, IPC_STAT, &ds) == 0 && ds.msg_qnum == 1 && ds.msg_perm.uid == 0, "root: queue %d: %lu messages, owner uid %u (%s)",
	      q, (unsigned long)ds.msg_qnum, ds.msg_perm.uid, strerror(errno));
	struct msgtext got = { 0 };
	CHECK(msgrcv(q, &got, sizeof got.text, 0, IPC_NOWAIT) == (ssize_t)strlen("in-userns") && got.mtype == 3 && strcmp(got.text, "in-userns") == 0,
	      "root: message %ld '%s'", got.mtype, got.text);
	CHECK(msgget(IPC_PRIVATE, 0600) >= 0, "root: a new queue: %s", strerror(errno));
	int st = 0;
	CHECK(waitpid(w, &st, 0) == w && WIFEXITED(st) && WEXITSTATUS(st) == 0, "root: worker status 0x%x", st);
	fdset_compare(&fds);
	return finish();
}

int main(int argc, char **argv)
{
	if (argc != 3)
		DIE("usage: userns UID_MAP GID_MAP");
	int go[2];
	if (pipe(go) < 0)
		DIE("pipe");
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pid_t child = fork();
	if (child < 0)
		DIE("fork");
	if (child == 0) {
		close(go[1]);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		if (unshare(CLONE_NEWUSER) < 0)
			DIE("unshare user");
		char c;
		/* The launcher writes our maps, then closes its end. */
		kill(getppid(), SIGUSR1);
		if (read(go[0], &c, 1) != 0)
			DIE("handshake");
		close(go[0]);
		/* Still the launcher's (unmapped) ids until it becomes root inside, as a runtime does. */
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			DIE("become root inside");
		if (unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) < 0)
			DIE("unshare uts/ipc/net: %s", strerror(errno));
		pid_t root = fork();
		if (root < 0)
			DIE("fork root");
		if (root == 0)
			return root_main();
		int st;
		waitpid(root, &st, 0);
		_exit(0);
	}
	close(go[0]);
	int sig;
	sigwait(&set, &sig);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/uid_map", child);
	if (write_file(path, argv[1], strlen(argv[1])) < 0)
		DIE("uid_map");
	snprintf(path, sizeof path, "/proc/%d/gid_map", child);
	if (write_file(path, argv[2], strlen(argv[2])) < 0)
		DIE("gid_map");
	close(go[1]);
	int st;
	waitpid(child, &st, 0);
	return 0;
}
