/*
 * seccomp: filters as sandboxed programs install them (no_new_privs, then BPF filters).
 *   every thread  getpgid() -> EPERM; then a second filter (SECCOMP_FILTER_FLAG_LOG): uname() ->
 *                 ENOTTY; both installed before the second thread starts, which inherits them
 *   one thread    a third filter of its own: getcwd() -> EACCES in that thread only
 * After go every thread finds exactly its filters at work, and other calls (ours, the harness's
 * checks) still pass.
 */
#include "common.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/utsname.h>

static int deny(int nr, int err, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static volatile int thread_go, thread_done, thread_ready;
static char thread_err[200];

static void *worker(void *arg)
{
	(void)arg;
	if (deny(SYS_getcwd, EACCES, 0) < 0) {
		snprintf(thread_err, sizeof(thread_err), "thread filter: %s", strerror(errno));
		thread_ready = 1;
		return NULL;
	}
	thread_ready = 1;
	while (!thread_go)
		sleep_ms(5);
	char buf[256];
	struct utsname u;
	if (syscall(SYS_getcwd, buf, sizeof(buf)) >= 0 || errno != EACCES)
		snprintf(thread_err, sizeof(thread_err), "getcwd in the thread: not EACCES (%s)", strerror(errno));
	else if (uname(&u) == 0 || errno != ENOTTY)
		snprintf(thread_err, sizeof(thread_err), "uname in the thread: not ENOTTY (inherited filter lost)");
	thread_done = 1;
	return NULL;
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		DIE("no_new_privs");
	if (deny(SYS_getpgid, EPERM, 0) < 0)
		DIE("filter 1");
	if (deny(SYS_uname, ENOTTY, SECCOMP_FILTER_FLAG_LOG) != 0)
		DIE("filter 2");
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		DIE("pthread_create");
	while (!thread_ready)
		sleep_ms(1);
	if (thread_err[0])
		DIE("%s", thread_err);
	ready();
	wait_go();

	struct utsname u;
	char buf[256];
	CHECK(getpgid(0) < 0 && errno == EPERM, "getpgid is allowed again (filter 1 lost)");
	CHECK(uname(&u) < 0 && errno == ENOTTY, "uname is allowed again (filter 2 lost)");
	CHECK(getcwd(buf, sizeof(buf)) != NULL, "getcwd fails in the main thread: %s (the thread's filter leaked)", strerror(errno));
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs lost");
	char st[4096];
	CHECK(read_file("/proc/self/status", st, sizeof(st)) > 0 && strstr(st, "\nSeccomp:\t2\n"), "status does not say Seccomp: 2");
	thread_go = 1;
	pthread_join(th, NULL);
	CHECK(thread_err[0] == 0, "%s", thread_err);
	fdset_compare(&fds);
	return finish();
}
