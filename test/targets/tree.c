/*
 * tree: a process tree with everything the tasks share. The root (a session leader) maps a
 * MAP_SHARED anonymous region and a private region of MIB MiB (argv[1], default 64) filled with
 * a pattern, then forks: four workers (one of them leads its own process group, one has a child
 * of its own: three levels), a zombie that exited with status 7, a zombie that led its own process
 * group (status 9) and a child that stopped itself
 * with SIGSTOP. After go: every worker finds the private pattern intact and sees the others'
 * writes to the shared region; the root reaps the zombie's status 7, wakes the stopped child,
 * and collects every exit status.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define WORKERS 4
#define SLOTS (WORKERS + 2) /* workers, the grandchild, the root */

struct shared {
	volatile int hello[SLOTS];
	volatile int ok[SLOTS];
};

static struct shared *sh;
static unsigned char *priv;
static size_t priv_len;

static int member(int slot)
{
	wait_go();
	int good = pattern_check(priv, priv_len, 42) < 0;
	sh->hello[slot] = 1;
	/* Everyone must see everyone else's hello through the shared mapping. */
	for (int i = 0; i < 500; i++) {
		int all = 1;
		for (int k = 0; k < SLOTS; k++)
			all &= sh->hello[k];
		if (all)
			break;
		sleep_ms(10);
	}
	for (int k = 0; k < SLOTS; k++)
		good &= sh->hello[k] == 1;
	sh->ok[slot] = good ? 1 : -1;
	return good ? 0 : 1;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 64;
	priv_len = (size_t)mib << 20;
	sh = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	priv = mmap(NULL, priv_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || priv == MAP_FAILED)
		return 2;
	pattern_fill(priv, priv_len, 42);

	pid_t workers[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		pid_t p = fork();
		if (p == 0) {
			if (i == 2)
				setpgid(0, 0); /* a second process group in the session */
			if (i == 0) {
				pid_t g = fork();
				if (g == 0)
					_exit(member(WORKERS));
				int r = member(i);
				int st;
				if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
					r = 1;
				_exit(r);
			}
			_exit(member(i));
		}
		workers[i] = p;
	}
	pid_t zombie = fork();
	if (zombie == 0)
		_exit(7);
	pid_t zgroup = fork();
	if (zgroup == 0) {
		setpgid(0, 0);
		_exit(9);
	}
	pid_t stopped = fork();
	if (stopped == 0) {
		raise(SIGSTOP);
		_exit(go_exists() ? 0 : 3);
	}
	/* Wait until the zombie is one and the stopped child is stopped. */
	for (int i = 0; i < 500; i++) {
		siginfo_t si = { 0 };
		int a = waitid(P_PID, (id_t)zombie, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == zombie;
		si.si_pid = 0;
		a = a && waitid(P_PID, (id_t)zgroup, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == zgroup;
		char path[64], st[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", stopped);
		int b = read_file(path, st, sizeof(st)) > 0 && strstr(st, ") T ") != NULL;
		if (a && b)
			break;
		sleep_ms(10);
	}
	ready();

	int rc = member(WORKERS + 1);
	CHECK(rc == 0, "root: private pattern or shared writes wrong");
	int st;
	CHECK(waitpid(zombie, &st, 0) == zombie && WIFEXITED(st) && WEXITSTATUS(st) == 7,
	      "zombie's status is not exit 7 (0x%x)", st);
	CHECK(getpgid(zgroup) == zgroup, "the zombie that led its group is in group %d", (int)getpgid(zgroup));
	CHECK(waitpid(zgroup, &st, 0) == zgroup && WIFEXITED(st) && WEXITSTATUS(st) == 9,
	      "second zombie's status is not exit 9 (0x%x)", st);
	char path[64], text[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", stopped);
	CHECK(read_file(path, text, sizeof(text)) > 0 && strstr(text, ") T ") != NULL, "stopped child is not stopped");
	kill(stopped, SIGCONT);
	CHECK(waitpid(stopped, &st, 0) == stopped && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "stopped child did not finish well (0x%x)", st);
	for (int i = 0; i < WORKERS; i++) {
		CHECK(waitpid(workers[i], &st, 0) == workers[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "worker %d failed (0x%x)", i, st);
	}
	for (int k = 0; k < SLOTS; k++)
		CHECK(sh->ok[k] == 1, "member %d reported %d", k, sh->ok[k]);
	return finish();
}
