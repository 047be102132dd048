/* fuzzstate items: signal dispositions, masks, pending and queued signals, alternate stack. */
#include "fuzz.h"

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static long ksigaction_get(int sig, struct ksigaction *k)
{
	memset(k, 0, sizeof(*k));
	return syscall(SYS_rt_sigaction, sig, NULL, k, 8);
}

static void handler_a(int sig)
{
	(void)sig;
}

static void handler_b(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
}

/* ---- sigaction: a handler, SIG_IGN or SIG_DFL with random flags and mask ------------------- */

struct sigaction_st {
	int sig;
	struct ksigaction k; /* the kernel's view right after setting it */
};

static uint64_t random_sigmask(struct rng *r)
{
	uint64_t m = 0;
	int n = (int)rng_below(r, 6);
	for (int i = 0; i < n; i++) {
		int s = (int)rng_range(r, 1, 64);
		if (s != SIGKILL && s != SIGSTOP && s != 32 && s != 33)
			m |= 1ULL << (s - 1);
	}
	return m;
}

static void sigset_from_u64(sigset_t *set, uint64_t m)
{
	sigemptyset(set);
	for (int s = 1; s <= 64; s++)
		if (m & (1ULL << (s - 1)))
			sigaddset(set, s);
}

static int install_random_action(struct inst *in, struct rng *r, int sig, struct ksigaction *out)
{
	static const int flag_pool[] = { SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_ONSTACK, SA_NOCLDSTOP };
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	int kind = (int)rng_below(r, 4);
	for (size_t i = 0; i < sizeof(flag_pool) / sizeof(flag_pool[0]); i++)
		if (rng_one_in(r, 3))
			sa.sa_flags |= flag_pool[i];
	if (kind == 0)
		sa.sa_handler = SIG_IGN;
	else if (kind == 1)
		sa.sa_handler = handler_a;
	else {
		sa.sa_sigaction = handler_b;
		sa.sa_flags |= SA_SIGINFO;
	}
	sigset_from_u64(&sa.sa_mask, random_sigmask(r));
	if (sigaction(sig, &sa, NULL) != 0)
		DIE("sigaction %d", sig);
	if (ksigaction_get(sig, out) != 0)
		DIE("rt_sigaction get %d", sig);
	describe(in, "sig=%d %s flags=0x%lx mask=0x%llx", sig,
		 kind == 0 ? "SIG_IGN" : kind == 1 ? "handler" : "siginfo-handler", out->flags,
		 (unsigned long long)out->mask);
	return 0;
}

static void check_action(struct inst *in, int sig, const struct ksigaction *want)
{
	struct ksigaction now;
	if (ksigaction_get(sig, &now) != 0) {
		IFAIL(in, "rt_sigaction(%d): %s", sig, strerror(errno));
		return;
	}
	ICHECK(in, now.handler == want->handler, "signal %d handler %p, expected %p", sig, now.handler,
	       want->handler);
	ICHECK(in, now.flags == want->flags, "signal %d flags 0x%lx, expected 0x%lx", sig, now.flags,
	       want->flags);
	ICHECK(in, now.restorer == want->restorer, "signal %d restorer %p, expected %p", sig,
	       now.restorer, want->restorer);
	ICHECK(in, now.mask == want->mask, "signal %d sa_mask 0x%llx, expected 0x%llx", sig,
	       (unsigned long long)now.mask, (unsigned long long)want->mask);
}

static int sigaction_build(struct inst *in, struct rng *r)
{
	struct sigaction_st *s = ST_OF(in, struct sigaction_st);
	s->sig = sig_alloc(r, rng_one_in(r, 2));
	if (!s->sig)
		return 1;
	return install_random_action(in, r, s->sig, &s->k);
}

static void sigaction_check(struct inst *in, int final)
{
	(void)final;
	struct sigaction_st *s = ST_OF(in, struct sigaction_st);
	check_action(in, s->sig, &s->k);
}

/* A SIGTRAP handler: the engine single-steps, and a blocked SIGTRAP resets it to SIG_DFL. */
static int sigtrap_build(struct inst *in, struct rng *r)
{
	struct sigaction_st *s = ST_OF(in, struct sigaction_st);
	s->sig = SIGTRAP;
	install_random_action(in, r, SIGTRAP, &s->k);
	if (rng_one_in(r, 2)) {
		block_now(SIGTRAP);
		describe(in, "blocked");
	}
	return 0;
}

/* ---- sigmask: extra blocked signals ------------------------------------------------------- */

struct sigmask_st {
	uint64_t m;
};

static int sigmask_build(struct inst *in, struct rng *r)
{
	struct sigmask_st *s = ST_OF(in, struct sigmask_st);
	s->m = random_sigmask(r) | (1ULL << (rng_range(r, 1, 31) - 1));
	s->m &= ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)) | (1ULL << (SIGCHLD - 1)));
	for (int sig = 1; sig <= 64; sig++)
		if (s->m & (1ULL << (sig - 1)))
			block_now(sig);
	describe(in, "block=0x%llx", (unsigned long long)s->m);
	return 0;
}

static void sigmask_check(struct inst *in, int final)
{
	(void)final;
	struct sigmask_st *s = ST_OF(in, struct sigmask_st);
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int sig = 1; sig <= 64; sig++)
		if ((s->m & (1ULL << (sig - 1))) && !sigismember(&now, sig))
			IFAIL(in, "signal %d is not blocked any more", sig);
}

/* ---- pending: a blocked signal sent with kill (shared) or tgkill (the main thread's own) --- */

struct pending_st {
	int sig, how;
};

static int pending_build(struct inst *in, struct rng *r)
{
	struct pending_st *s = ST_OF(in, struct pending_st);
	s->sig = sig_alloc(r, rng_one_in(r, 3));
	if (!s->sig)
		return 1;
	s->how = (int)rng_below(r, 2);
	block_now(s->sig);
	if (s->how == 0)
		kill(getpid(), s->sig);
	else
		syscall(SYS_tgkill, getpid(), gettid(), s->sig);
	sigaddset(&g_pending, s->sig);
	describe(in, "sig=%d via=%s", s->sig, s->how ? "tgkill" : "kill");
	return 0;
}

static void pending_check(struct inst *in, int final)
{
	struct pending_st *s = ST_OF(in, struct pending_st);
	sigset_t pend;
	sigpending(&pend);
	if (!sigismember(&pend, s->sig)) {
		IFAIL(in, "signal %d is not pending", s->sig);
		return;
	}
	if (!final)
		return;
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, s->sig);
	siginfo_t si;
	struct timespec zero = { 0, 0 };
	int got = sigtimedwait(&one, &si, &zero);
	ICHECK(in, got == s->sig, "sigtimedwait(%d) returned %d (%s)", s->sig, got, strerror(errno));
	if (got == s->sig) {
		/* tgkill gives SI_TKILL or SI_USER, depending on the kernel */
		ICHECK(in, si.si_code == SI_USER || (s->how && si.si_code == SI_TKILL),
		       "signal %d si_code %d, expected %s", s->sig, si.si_code, s->how ? "SI_TKILL/SI_USER" : "SI_USER");
		ICHECK(in, si.si_pid == getpid(), "signal %d si_pid %d, expected %d", s->sig, si.si_pid,
		       getpid());
	}
	ICHECK(in, sigtimedwait(&one, &si, &zero) < 0, "signal %d was pending twice", s->sig);
}

/* ---- sigqueue: a blocked real-time signal queued several times with values ---------------- */

struct sigqueue_st {
	int sig, n;
	int values[8];
};

static int sigqueue_build(struct inst *in, struct rng *r)
{
	struct sigqueue_st *s = ST_OF(in, struct sigqueue_st);
	s->sig = sig_alloc(r, 1);
	if (!s->sig)
		return 1;
	s->n = (int)rng_range(r, 1, 8);
	block_now(s->sig);
	describe(in, "sig=%d values=", s->sig);
	for (int i = 0; i < s->n; i++) {
		s->values[i] = (int)(rng_next(r) & 0x7fffffff);
		union sigval v = { .sival_int = s->values[i] };
		if (sigqueue(getpid(), s->sig, v) != 0)
			DIE("sigqueue");
		describe(in, "%d", s->values[i]);
	}
	sigaddset(&g_pending, s->sig);
	return 0;
}

static void sigqueue_check(struct inst *in, int final)
{
	struct sigqueue_st *s = ST_OF(in, struct sigqueue_st);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, s->sig);
	sigset_t pend;
	sigpending(&pend);
	ICHECK(in, sigismember(&pend, s->sig), "signal %d is not pending", s->sig);
	if (!final)
		return;
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	for (int i = 0; i < s->n; i++) {
		int got = sigtimedwait(&one, &si, &zero);
		if (got != s->sig) {
			IFAIL(in, "only %d of %d queued signals %d left", i, s->n, s->sig);
			return;
		}
		ICHECK(in, si.si_code == SI_QUEUE && si.si_value.sival_int == s->values[i],
		       "queued signal %d #%d: si_code %d value %d, expected SI_QUEUE value %d", s->sig, i,
		       si.si_code, si.si_value.sival_int, s->values[i]);
	}
	ICHECK(in, sigtimedwait(&one, &si, &zero) < 0, "signal %d queued more than %d times", s->sig,
	       s->n);
}

/* ---- altstack: the main thread's alternate signal stack ----------------------------------- */

static char main_altstack[1 << 17] __attribute__((aligned(64)));

struct altstack_st {
	stack_t ss;
};

static int altstack_common(struct inst *in, struct rng *r, int autodisarm)
{
	static int used; /* altstack and altstack-autodisarm: the main thread has one */
	if (used++)
		return 1;
	struct altstack_st *s = ST_OF(in, struct altstack_st);
	size_t off = (size_t)rng_below(r, 64) * 64;
	s->ss.ss_sp = main_altstack + off;
	s->ss.ss_size = (size_t)rng_range(r, 16384, (long)(sizeof(main_altstack) - off));
	s->ss.ss_flags = autodisarm ? SS_AUTODISARM : 0;
	if (sigaltstack(&s->ss, NULL) != 0)
		DIE("sigaltstack");
	describe(in, "off=%zu size=%zu autodisarm=%d", off, s->ss.ss_size, !!s->ss.ss_flags);
	return 0;
}

static int altstack_build(struct inst *in, struct rng *r)
{
	return altstack_common(in, r, 0);
}

static int altstack_autodisarm_build(struct inst *in, struct rng *r)
{
	return altstack_common(in, r, 1);
}

static void altstack_check(struct inst *in, int final)
{
	(void)final;
	struct altstack_st *s = ST_OF(in, struct altstack_st);
	stack_t now;
	sigaltstack(NULL, &now);
	ICHECK(in, now.ss_sp == s->ss.ss_sp && now.ss_size == s->ss.ss_size && now.ss_flags == s->ss.ss_flags,
	       "sigaltstack sp %p size %zu flags 0x%x, expected %p %zu 0x%x", now.ss_sp, now.ss_size,
	       now.ss_flags, s->ss.ss_sp, s->ss.ss_size, s->ss.ss_flags);
}

const struct item items_signals[] = {
	{ "sigaction", 8, sigaction_build, sigaction_check, NULL },
	{ "sigtrap-handler", 1, sigtrap_build, sigaction_check, NULL },
	{ "sigmask", 2, sigmask_build, sigmask_check, NULL },
	{ "sig-pending", 4, pending_build, pending_check, NULL },
	{ "sigqueue-values", 3, sigqueue_build, sigqueue_check, NULL },
	{ "altstack", 1, altstack_build, altstack_check, NULL },
	{ "altstack-autodisarm", 1, altstack_autodisarm_build, altstack_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
