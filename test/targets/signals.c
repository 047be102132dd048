/*
 * signals: dispositions, mask, alternate stack, pending signals.
 *
 * Sets up:
 *   SIGUSR1     SA_SIGINFO|SA_RESTART handler, sa_mask {SIGUSR2, SIGTERM, SIGRTMIN+1}
 *   SIGUSR2     SA_ONSTACK|SA_NODEFER handler, sa_mask {SIGINT}
 *   SIGINT      SA_RESETHAND handler
 *   SIGRTMIN+2  SA_SIGINFO handler
 *   SIGHUP, SIGPIPE ignored
 *   blocked: SIGQUIT, SIGTERM, SIGRTMIN+3, SIGRTMIN+5
 *   pending (blocked): SIGQUIT sent with raise() (thread-private queue), SIGRTMIN+3 queued twice
 *   with sigqueue() values 0xabc then 0xdef, SIGRTMIN+5 sent with kill() (shared queue)
 *   sigaltstack: 64 KiB static buffer
 * After go:
 *   - the kernel's view of every disposition (raw rt_sigaction for 1..64: handler, flags incl.
 *     SA_RESTORER, restorer, mask) is identical to setup;
 *   - sigprocmask and sigaltstack are identical;
 *   - sigpending is exactly {SIGQUIT, SIGRTMIN+3, SIGRTMIN+5}; sigtimedwait dequeues SIGRTMIN+3
 *     twice with values 0xabc, 0xdef in that order (si_code SI_QUEUE, si_pid = our pid), SIGQUIT
 *     (SI_TKILL or SI_USER, depending on the kernel) and SIGRTMIN+5 (SI_USER), then nothing is
 *     pending;
 *   - raise(SIGUSR1) runs the handler with siginfo and its sa_mask; raise(SIGUSR2) runs on the
 *     alternate stack; raise(SIGINT) runs once and resets to SIG_DFL; SIGHUP is ignored; a
 *     sigqueue'd SIGRTMIN+2 delivers its value.
 */
#include "common.h"

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static long rt_sigaction_get(int sig, struct ksigaction *k)
{
	memset(k, 0, sizeof(*k));
	return syscall(SYS_rt_sigaction, sig, NULL, k, 8);
}

static volatile sig_atomic_t usr1_runs, usr2_runs, int_runs, rt2_runs;
static volatile int usr1_code, usr1_pid, usr1_mask_ok, usr2_on_alt, usr2_mask_ok, rt2_value;
static char altstack[65536] __attribute__((aligned(64)));

static void h_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	usr1_runs++;
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
	usr1_mask_ok = sig == SIGUSR1 && sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGUSR2) &&
		       sigismember(&cur, SIGTERM) && sigismember(&cur, SIGRTMIN + 1);
}

static void h_usr2(int sig)
{
	(void)sig;
	volatile char local;
	stack_t ss;
	sigset_t cur;
	sigaltstack(NULL, &ss);
	sigprocmask(SIG_BLOCK, NULL, &cur);
	usr2_runs++;
	usr2_on_alt = (char *)&local >= altstack && (char *)&local < altstack + sizeof(altstack) &&
		      (ss.ss_flags & SS_ONSTACK);
	usr2_mask_ok = sigismember(&cur, SIGINT) && !sigismember(&cur, SIGUSR2); /* SA_NODEFER */
}

static void h_int(int sig)
{
	(void)sig;
	int_runs++;
}

static void h_rt2(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	rt2_runs++;
	rt2_value = si->si_value.sival_int;
}

static void set(int sig, void *h, int flags, const int *mask_sigs)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = h;
	else
		sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; mask_sigs && *mask_sigs; mask_sigs++)
		sigaddset(&sa.sa_mask, *mask_sigs);
	if (sigaction(sig, &sa, NULL) < 0)
		DIE("sigaction %d", sig);
}

static int mask_eq(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s <= 64; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

static void mask_str(const sigset_t *m, char *out, size_t size)
{
	size_t o = 0;
	out[0] = 0;
	for (int s = 1; s <= 64 && o < size - 8; s++)
		if (sigismember(m, s))
			o += (size_t)snprintf(out + o, size - o, "%d ", s);
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	pid_t me = getpid();

	const int m_usr1[] = { SIGUSR2, SIGTERM, SIGRTMIN + 1, 0 };
	const int m_usr2[] = { SIGINT, 0 };
	set(SIGUSR1, (void *)h_usr1, SA_SIGINFO | SA_RESTART, m_usr1);
	set(SIGUSR2, (void *)h_usr2, SA_ONSTACK | SA_NODEFER, m_usr2);
	set(SIGINT, (void *)h_int, SA_RESETHAND, NULL);
	set(SIGRTMIN + 2, (void *)h_rt2, SA_SIGINFO, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) < 0)
		DIE("sigaltstack");

	sigset_t blocked;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGQUIT);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGRTMIN + 3);
	sigaddset(&blocked, SIGRTMIN + 5);
	if (sigprocmask(SIG_SETMASK, &blocked, NULL) < 0)
		DIE("sigprocmask");

	raise(SIGQUIT);
	union sigval v1 = { .sival_int = 0xabc }, v2 = { .sival_int = 0xdef };
	if (sigqueue(me, SIGRTMIN + 3, v1) < 0 || sigqueue(me, SIGRTMIN + 3, v2) < 0)
		DIE("sigqueue");
	kill(me, SIGRTMIN + 5);

	static struct ksigaction before[65];
	for (int s = 1; s <= 64; s++)
		rt_sigaction_get(s, &before[s]);
	sigset_t mask0;
	sigprocmask(SIG_BLOCK, NULL, &mask0);
	stack_t ss0;
	sigaltstack(NULL, &ss0);

	ready();
	wait_go();

	/* dispositions (kernel view) */
	for (int s = 1; s <= 64; s++) {
		struct ksigaction now;
		if (rt_sigaction_get(s, &now) < 0) {
			if (s != SIGKILL && s != SIGSTOP)
				fail("rt_sigaction(%d) failed: %s", s, strerror(errno));
			continue;
		}
		CHECK(now.handler == before[s].handler && now.flags == before[s].flags &&
			      now.restorer == before[s].restorer && now.mask == before[s].mask,
		      "signal %d disposition differs: handler %p flags 0x%lx restorer %p mask 0x%llx; expected %p 0x%lx %p 0x%llx",
		      s, now.handler, now.flags, now.restorer, (unsigned long long)now.mask,
		      before[s].handler, before[s].flags, before[s].restorer,
		      (unsigned long long)before[s].mask);
	}

	sigset_t mask1;
	sigprocmask(SIG_BLOCK, NULL, &mask1);
	if (!mask_eq(&mask0, &mask1)) {
		char a[256], b[256];
		mask_str(&mask0, a, sizeof(a));
		mask_str(&mask1, b, sizeof(b));
		fail("blocked mask is [%s], expected [%s]", b, a);
	}
	stack_t ss1;
	sigaltstack(NULL, &ss1);
	CHECK(ss1.ss_sp == ss0.ss_sp && ss1.ss_size == ss0.ss_size && ss1.ss_flags == ss0.ss_flags,
	      "sigaltstack is sp=%p size=%zu flags=%d, expected sp=%p size=%zu flags=%d", ss1.ss_sp,
	      ss1.ss_size, ss1.ss_flags, ss0.ss_sp, ss0.ss_size, ss0.ss_flags);

	/* pending signals */
	sigset_t pend, want;
	sigpending(&pend);
	sigemptyset(&want);
	sigaddset(&want, SIGQUIT);
	sigaddset(&want, SIGRTMIN + 3);
	sigaddset(&want, SIGRTMIN + 5);
	if (!mask_eq(&pend, &want)) {
		char a[256], b[256];
		mask_str(&pend, a, sizeof(a));
		mask_str(&want, b, sizeof(b));
		fail("pending signals are [%s], expected [%s]", a, b);
	}
	struct timespec zero = { 0, 0 };
	sigset_t one;
	siginfo_t si;
	sigemptyset(&one);
	sigaddset(&one, SIGRTMIN + 3);
	for (int i = 0; i < 2; i++) {
		int want_val = i == 0 ? 0xabc : 0xdef;
		memset(&si, 0, sizeof(si));
		int r = sigtimedwait(&one, &si, &zero);
		CHECK(r == SIGRTMIN + 3 && si.si_code == SI_QUEUE && si.si_value.sival_int == want_val &&
			      si.si_pid == me,
		      "queued SIGRTMIN+3 #%d: got sig %d code %d value 0x%x pid %d, expected value 0x%x from pid %d",
		      i + 1, r, si.si_code, si.si_value.sival_int, si.si_pid, want_val, me);
	}
	sigemptyset(&one);
	sigaddset(&one, SIGQUIT);
	memset(&si, 0, sizeof(si));
	int r = sigtimedwait(&one, &si, &zero);
	CHECK(r == SIGQUIT && (si.si_code == SI_TKILL || si.si_code == SI_USER) && si.si_pid == me,
	      "pending SIGQUIT: got sig %d code %d pid %d", r, si.si_code, si.si_pid);
	sigemptyset(&one);
	sigaddset(&one, SIGRTMIN + 5);
	memset(&si, 0, sizeof(si));
	r = sigtimedwait(&one, &si, &zero);
	CHECK(r == SIGRTMIN + 5 && si.si_code == SI_USER && si.si_pid == me,
	      "pending SIGRTMIN+5: got sig %d code %d pid %d", r, si.si_code, si.si_pid);
	sigpending(&pend);
	sigemptyset(&want);
	if (!mask_eq(&pend, &want)) {
		char a[256];
		mask_str(&pend, a, sizeof(a));
		fail("still pending after dequeuing everything: [%s]", a);
	}

	/* handlers run */
	raise(SIGUSR1);
	CHECK(usr1_runs == 1, "SIGUSR1 handler ran %d times", (int)usr1_runs);
	CHECK((usr1_code == SI_TKILL || usr1_code == SI_USER) && usr1_pid == me, "SIGUSR1 siginfo code %d pid %d", usr1_code,
	      usr1_pid);
	CHECK(usr1_mask_ok, "SIGUSR1 handler ran without its sa_mask blocked");
	raise(SIGUSR2);
	CHECK(usr2_runs == 1, "SIGUSR2 handler ran %d times", (int)usr2_runs);
	CHECK(usr2_on_alt, "SIGUSR2 handler (SA_ONSTACK) did not run on the alternate stack");
	CHECK(usr2_mask_ok, "SIGUSR2 handler mask wrong (SIGINT must be blocked, SIGUSR2 not: SA_NODEFER)");
	raise(SIGINT);
	CHECK(int_runs == 1, "SIGINT handler ran %d times", (int)int_runs);
	struct sigaction cur;
	sigaction(SIGINT, NULL, &cur);
	CHECK(cur.sa_handler == SIG_DFL, "SIGINT not reset to SIG_DFL after delivery (SA_RESETHAND)");
	raise(SIGHUP); /* ignored: must not kill us */
	union sigval v3 = { .sival_int = 0x777 };
	sigqueue(me, SIGRTMIN + 2, v3);
	CHECK(rt2_runs == 1 && rt2_value == 0x777, "SIGRTMIN+2 handler: runs %d value 0x%x",
	      (int)rt2_runs, rt2_value);

	fdset_compare(&fds);
	return finish();
}
