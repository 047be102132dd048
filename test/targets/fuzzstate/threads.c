/*
 * fuzzstate item: threads, each with its own signal mask, alternate stack, name, a signal
 * pending for it alone, a parent-death signal of its own (thread-pdeathsig) and a stack pattern. The main thread asks them to check themselves by
 * bumping a generation counter; each answers in its slot.
 */
#include "fuzz.h"

#include <pthread.h>
#include <sys/prctl.h>

#define MAX_THREADS 8

struct thread_slot {
	pthread_t th;
	pid_t tid;
	uint64_t mask; /* its own blocked set */
	int pending;   /* signal sent to it alone with tgkill (0: none) */
	int pdeath;    /* its PR_SET_PDEATHSIG (0: none); blocked everywhere, so a firing stays pending */
	char name[16];
	stack_t ss;
	uint64_t stack_seed;
	volatile int ready, done_gen, bad;
	char why[256];
};

static struct thread_slot slots[MAX_THREADS];
static int n_threads;
static volatile int check_gen;
static char thread_altstacks[MAX_THREADS][32768] __attribute__((aligned(64)));

static void thread_self_check(struct thread_slot *t, const uint64_t *stack_words)
{
	sigset_t m, p;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	t->bad = 0;
	for (int s = 1; s <= 64 && !t->bad; s++)
		if (s != SIGKILL && s != SIGSTOP && s != 32 && s != 33 && !!sigismember(&m, s) != !!(t->mask & (1ULL << (s - 1))))
			t->bad = 1, snprintf(t->why, sizeof(t->why), "signal %d is %sblocked", s, sigismember(&m, s) ? "" : "not ");
	stack_t ss;
	sigaltstack(NULL, &ss);
	if (!t->bad && (ss.ss_sp != t->ss.ss_sp || ss.ss_size != t->ss.ss_size || ss.ss_flags != t->ss.ss_flags))
		t->bad = 1, snprintf(t->why, sizeof(t->why), "altstack %p+%zu flags %d, expected %p+%zu %d", ss.ss_sp,
				     ss.ss_size, ss.ss_flags, t->ss.ss_sp, t->ss.ss_size, t->ss.ss_flags);
	char name[17] = "";
	prctl(PR_GET_NAME, name);
	if (!t->bad && strcmp(name, t->name) != 0)
		t->bad = 1, snprintf(t->why, sizeof(t->why), "name %s, expected %s", name, t->name);
	int pdeath = -1;
	prctl(PR_GET_PDEATHSIG, &pdeath);
	if (!t->bad && pdeath != t->pdeath)
		t->bad = 1, snprintf(t->why, sizeof(t->why), "parent-death signal %d, expected %d", pdeath, t->pdeath);
	if (!t->bad && gettid() != t->tid)
		t->bad = 1, snprintf(t->why, sizeof(t->why), "tid %d, expected %d", gettid(), t->tid);
	sigpending(&p);
	if (!t->bad && t->pending && !sigismember(&p, t->pending))
		t->bad = 1, snprintf(t->why, sizeof(t->why), "signal %d is not pending", t->pending);
	for (int i = 0; i < 64 && !t->bad; i++)
		if (stack_words[i] != mix64(t->stack_seed + (uint64_t)i))
			t->bad = 1, snprintf(t->why, sizeof(t->why), "stack word %d differs", i);
}

static void *thread_main(void *arg)
{
	struct thread_slot *t = arg;
	volatile uint64_t words[64];
	for (int i = 0; i < 64; i++)
		words[i] = mix64(t->stack_seed + (uint64_t)i);
	t->tid = gettid();
	sigset_t m;
	sigemptyset(&m);
	for (int s = 1; s <= 64; s++)
		if (t->mask & (1ULL << (s - 1)))
			sigaddset(&m, s);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	prctl(PR_SET_NAME, t->name);
	if (t->pdeath && prctl(PR_SET_PDEATHSIG, t->pdeath) != 0)
		t->bad = 1, snprintf(t->why, sizeof(t->why), "PR_SET_PDEATHSIG failed");
	if (t->ss.ss_size && sigaltstack(&t->ss, NULL) != 0)
		t->bad = 1, snprintf(t->why, sizeof(t->why), "sigaltstack failed");
	sigaltstack(NULL, &t->ss); /* what the kernel reports (SS_DISABLE when none) */
	t->ready = 1;
	struct timespec tick = { 0, 5 * 1000000L };
	for (;;) {
		int g = check_gen;
		if (g != t->done_gen) {
			thread_self_check(t, (const uint64_t *)words);
			__atomic_store_n(&t->done_gen, g, __ATOMIC_RELEASE);
		}
		nanosleep(&tick, NULL);
	}
	return NULL;
}

struct threads_st {
	int first, n;
};

/* what each thread has besides its mask, name and stack */
enum thread_extra { PLAIN, PENDING, PDEATH };

static int threads_common(struct inst *in, struct rng *r, enum thread_extra extra)
{
	struct threads_st *s = ST_OF(in, struct threads_st);
	s->first = n_threads;
	s->n = (int)rng_range(r, 1, 3);
	if (n_threads + s->n > MAX_THREADS)
		return 1;
	for (int i = 0; i < s->n; i++) {
		struct thread_slot *t = &slots[n_threads];
		/* every signal an item may make pending process-wide stays blocked, or this thread
		 * would take it */
		t->mask = sig_pool_mask();
		for (int k = (int)rng_below(r, 5); k > 0; k--) {
			int sig = (int)rng_range(r, 1, 64);
			if (sig != SIGKILL && sig != SIGSTOP && sig != 32 && sig != 33)
				t->mask |= 1ULL << (sig - 1);
		}
		t->pending = extra == PENDING ? sig_alloc(r, 0) : 0;
		if (t->pending)
			t->mask |= 1ULL << (t->pending - 1);
		/* the first thread's: fired by our parent's exit, it would be pending process-wide */
		t->pdeath = extra == PDEATH && i == 0 ? sig_alloc(r, 0) : 0;
		if (extra == PDEATH && i == 0 && !t->pdeath)
			return 1; /* no signal left: nothing built yet */
		if (t->pdeath)
			block_now(t->pdeath);
		snprintf(t->name, sizeof(t->name), "fz-t%d", n_threads);
		if (rng_one_in(r, 2)) {
			size_t off = (size_t)rng_below(r, 32) * 64;
			t->ss.ss_sp = thread_altstacks[n_threads] + off;
			t->ss.ss_size = (size_t)rng_range(r, 16384, (long)(sizeof(thread_altstacks[0]) - off));
			t->ss.ss_flags = 0; /* SS_AUTODISARM: the altstack-autodisarm item */
		}
		t->stack_seed = rng_next(r);
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, (size_t)rng_range(r, 64, 1024) * 1024);
		if (pthread_create(&t->th, &at, thread_main, t) != 0)
			DIE("pthread_create");
		pthread_attr_destroy(&at);
		while (!t->ready)
			sleep_ms(1);
		if (t->pending)
			syscall(SYS_tgkill, getpid(), t->tid, t->pending);
		describe(in, "tid=%d mask=0x%llx pending=%d pdeath=%d altstack=%zu", t->tid, (unsigned long long)t->mask,
			 t->pending, t->pdeath, t->ss.ss_size);
		n_threads++;
	}
	return 0;
}

static int threads_build(struct inst *in, struct rng *r)
{
	return threads_common(in, r, PLAIN);
}

/* each thread also has a signal pending for it alone (tgkill) */
static int thread_pending_build(struct inst *in, struct rng *r)
{
	return threads_common(in, r, PENDING);
}

/* the first thread has a parent-death signal: the restore must not fire it (the root is not
 * cryo's child when any thread has one) */
static int thread_pdeath_build(struct inst *in, struct rng *r)
{
	return threads_common(in, r, PDEATH);
}

static void threads_check(struct inst *in, int final)
{
	(void)final;
	struct threads_st *s = ST_OF(in, struct threads_st);
	int asked_gen = ++check_gen;
	int64_t deadline = mono_ns() + 5000000000LL;
	for (int i = s->first; i < s->first + s->n; i++) {
		struct thread_slot *t = &slots[i];
		while (__atomic_load_n(&t->done_gen, __ATOMIC_ACQUIRE) != asked_gen && mono_ns() < deadline)
			sleep_ms(1);
		if (t->done_gen != asked_gen)
			IFAIL(in, "thread %d did not answer its check", t->tid);
		else if (t->bad)
			IFAIL(in, "thread %d: %s", t->tid, t->why);
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%d", t->tid);
		ICHECK(in, access(path, F_OK) == 0, "thread %d is gone", t->tid);
	}
}

const struct item items_threads[] = {
	{ "threads", 3, threads_build, threads_check, NULL },
	{ "thread-pending", 2, thread_pending_build, threads_check, NULL },
	{ "thread-pdeathsig", 1, thread_pdeath_build, threads_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
