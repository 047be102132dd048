/*
 * ptimers: POSIX timers (timer_create) and a signal queued to one thread.
 *
 * Sets up (ids as the kernel gave them, one deleted so the ids have a hole):
 *   A  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+1 with value 0x1234, every 20 ms; an SA_SIGINFO
 *      handler counts deliveries whose si_value is 0x1234
 *   B  CLOCK_REALTIME, SIGEV_NONE, one shot in 1000 s
 *   -  a timer created and deleted (its id stays free)
 *   C  CLOCK_BOOTTIME, SIGEV_THREAD_ID to the second thread, SIGUSR1, first in 500 s then every 7 s
 *   D  CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL SIGRTMIN+2, disarmed
 *   the second thread blocks SIGRTMIN+4 and has it queued to itself (value 77) by
 *   rt_tgsigqueueinfo: pending in that thread only
 * After go:
 *   - timer_gettime works on A, B, C, D under their ids and fails (EINVAL) on the deleted one;
 *     intervals equal; B's value in (0, 1000 s], C's in (0, 500 s], D disarmed;
 *   - A keeps firing: at least 5 more deliveries within 300 ms, all with the value;
 *   - the second thread still has exactly SIGRTMIN+4 pending, value 77, and the main thread not.
 */
#include "common.h"

#include <pthread.h>

static volatile long a_hits, a_bad;
static timer_t ta, tb, tc, td, tdel;
static volatile pid_t worker_tid;
static volatile int worker_go, worker_done;
static char worker_err[256];

static void on_a(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_value.sival_int == 0x1234 && si->si_code == SI_TIMER)
		a_hits++;
	else
		a_bad++;
}

static void on_usr1(int sig) { (void)sig; }

static void *worker(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	worker_tid = (pid_t)syscall(SYS_gettid);
	while (!worker_go)
		sleep_ms(5);
	sigset_t pend;
	sigpending(&pend);
	siginfo_t si;
	struct timespec zero = { 0, 0 };
	if (!sigismember(&pend, SIGRTMIN + 4))
		snprintf(worker_err, sizeof(worker_err), "SIGRTMIN+4 not pending in the second thread");
	else if (sigtimedwait(&set, &si, &zero) != SIGRTMIN + 4 || si.si_value.sival_int != 77)
		snprintf(worker_err, sizeof(worker_err), "SIGRTMIN+4 dequeued with value %d", si.si_value.sival_int);
	worker_done = 1;
	return NULL;
}

static void make_timer(clockid_t clock, int notify, int sig, int value, pid_t tid, timer_t *t, const char *name)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = notify;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = value;
	sev._sigev_un._tid = tid;
	if (timer_create(clock, &sev, t) < 0)
		DIE("timer_create %s", name);
}

static void arm(timer_t t, long vsec, long vns, long isec, long ins)
{
	struct itimerspec its = { { isec, ins }, { vsec, vns } };
	if (timer_settime(t, 0, &its, NULL) < 0)
		DIE("timer_settime");
}

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_a;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	signal(SIGUSR1, on_usr1);
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		DIE("pthread_create");
	while (!worker_tid)
		sleep_ms(1);

	make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 1, 0x1234, 0, &ta, "A");
	make_timer(CLOCK_REALTIME, SIGEV_NONE, 0, 0, 0, &tb, "B");
	make_timer(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0, &tdel, "deleted");
	make_timer(CLOCK_BOOTTIME, SIGEV_THREAD_ID, SIGUSR1, 5, worker_tid, &tc, "C");
	make_timer(CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, SIGRTMIN + 2, 0, 0, &td, "D");
	timer_delete(tdel);
	arm(ta, 0, 20000000, 0, 20000000);
	arm(tb, 1000, 0, 0, 0);
	arm(tc, 500, 0, 7, 0);

	siginfo_t qi;
	memset(&qi, 0, sizeof(qi));
	qi.si_signo = SIGRTMIN + 4;
	qi.si_code = SI_QUEUE;
	qi.si_pid = getpid();
	qi.si_uid = getuid();
	qi.si_value.sival_int = 77;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), worker_tid, SIGRTMIN + 4, &qi) < 0)
		DIE("rt_tgsigqueueinfo");
	sleep_ms(100);
	if (a_hits < 1)
		DIE("timer A did not fire within 100 ms");
	say("ptimers: ids A=%ld B=%ld deleted=%ld C=%ld D=%ld, %ld hits before READY", (long)ta, (long)tb,
	    (long)tdel, (long)tc, (long)td, a_hits);
	ready();
	wait_go();

	struct itimerspec ia, ib, ic, id, idel;
	CHECK(timer_gettime(ta, &ia) == 0, "timer A (id %ld) is gone", (long)ta);
	CHECK(timer_gettime(tb, &ib) == 0, "timer B (id %ld) is gone", (long)tb);
	CHECK(timer_gettime(tc, &ic) == 0, "timer C (id %ld) is gone", (long)tc);
	CHECK(timer_gettime(td, &id) == 0, "timer D (id %ld) is gone", (long)td);
	CHECK(timer_gettime(tdel, &idel) < 0 && errno == EINVAL, "the deleted timer id %ld exists again", (long)tdel);
	CHECK(ns(ia.it_interval) == 20000000, "A interval %lld ns", ns(ia.it_interval));
	CHECK(ns(ib.it_interval) == 0 && ns(ib.it_value) > 0 && ns(ib.it_value) <= 1000000000000LL,
	      "B value %lld ns interval %lld", ns(ib.it_value), ns(ib.it_interval));
	CHECK(ns(ic.it_interval) == 7000000000LL && ns(ic.it_value) > 0 && ns(ic.it_value) <= 500000000000LL,
	      "C value %lld ns interval %lld", ns(ic.it_value), ns(ic.it_interval));
	CHECK(ns(id.it_value) == 0 && ns(id.it_interval) == 0, "D is armed (%lld ns)", ns(id.it_value));
	sigset_t pend;
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGRTMIN + 4), "SIGRTMIN+4 is pending in the main thread too");

	long at_go = a_hits;
	int64_t t0 = mono_ns();
	while (mono_ns() - t0 < 300 * 1000000LL)
		sleep_ms(10);
	CHECK(a_hits - at_go >= 5, "only %ld deliveries of timer A in 300 ms after restore", a_hits - at_go);
	CHECK(a_bad == 0, "%ld deliveries of SIGRTMIN+1 without the timer's value", a_bad);
	worker_go = 1;
	pthread_join(th, NULL);
	CHECK(worker_err[0] == 0, "%s", worker_err);
	fdset_compare(&fds);
	return finish();
}
