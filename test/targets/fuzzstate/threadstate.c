/* fuzzstate items: state each thread of a process keeps for itself that threads.c does not
 * build (thread-attrs: nice or a real-time policy, CPU affinity, I/O priority, timer slack, rounding mode and MXCSR,
 * robust list and clear_child_tid as glibc set them; pthread_join must still see it end) and
 * threads waiting with a deadline (thread-timedwait: pthread_cond_timedwait, epoll_wait,
 * sem_timedwait), which must never come back before it. */
#include "fuzz.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#define TA_MAX 4

struct ta_slot {
	pthread_t th;
	pid_t tid;
	int nice, ioprio, round, use_aff;
	int policy, prio; /* a real-time policy (0: none), as sched_getscheduler/getparam said */
	unsigned mxcsr_bits;	/* FTZ and DAZ on top of the rounding mode */
	unsigned long slack;
	cpu_set_t cpus;
	void *robust_head, *tid_addr;
	size_t robust_len;
	volatile int ready, stop, gen, done_gen;
	char why[256];
};

static struct ta_slot ta_slots[TA_MAX];
static int ta_n;

static unsigned read_mxcsr(void)
{
	unsigned v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static unsigned short read_x87cw(void)
{
	unsigned short v;
	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

/* fesetround's work without libm: the rounding control of both x87 (bits 10-11) and SSE (13-14) */
static void set_rounding(int rc)
{
	unsigned short cw = (unsigned short)((read_x87cw() & ~0x0c00) | (rc << 10));
	__asm__ volatile("fldcw %0" : : "m"(cw));
	unsigned mx = (read_mxcsr() & ~0x6000u) | ((unsigned)rc << 13);
	__asm__ volatile("ldmxcsr %0" : : "m"(mx));
}

static void ta_self_check(struct ta_slot *t)
{
	t->why[0] = 0;
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	long io = syscall(SYS_ioprio_get, 1, 0);
	cpu_set_t now;
	sched_getaffinity(0, sizeof(now), &now);
	void *head = NULL, *tid_addr = NULL;
	size_t len = 0;
	syscall(SYS_get_robust_list, 0, &head, &len);
	prctl(PR_GET_TID_ADDRESS, &tid_addr);
	unsigned mx = read_mxcsr();
	struct sched_param sp = { 0 };
	sched_getparam(0, &sp);
	int policy = sched_getscheduler(0);
	if (t->policy && (policy != t->policy || sp.sched_priority != t->prio))
		snprintf(t->why, sizeof(t->why), "policy 0x%x priority %d, expected 0x%x %d", policy, sp.sched_priority, t->policy, t->prio);
	else if (!t->policy && nice != t->nice)
		snprintf(t->why, sizeof(t->why), "nice %d, expected %d", nice, t->nice);
	else if (io != t->ioprio)
		snprintf(t->why, sizeof(t->why), "ioprio 0x%lx, expected 0x%x", io, t->ioprio);
	else if (t->use_aff && !CPU_EQUAL(&now, &t->cpus))
		snprintf(t->why, sizeof(t->why), "affinity %d cpus, expected %d", CPU_COUNT(&now), CPU_COUNT(&t->cpus));
	else if ((unsigned long)prctl(PR_GET_TIMERSLACK) != t->slack)
		snprintf(t->why, sizeof(t->why), "timer slack %d, expected %lu", prctl(PR_GET_TIMERSLACK), t->slack);
	else if (((read_x87cw() >> 10) & 3) != t->round || ((mx >> 13) & 3) != (unsigned)t->round)
		snprintf(t->why, sizeof(t->why), "rounding: x87 control word 0x%x MXCSR 0x%x, expected mode %d", read_x87cw(), mx,
			 t->round);
	else if ((mx & 0x8040) != t->mxcsr_bits)
		snprintf(t->why, sizeof(t->why), "MXCSR 0x%x: FTZ/DAZ 0x%x, expected 0x%x", mx, mx & 0x8040, t->mxcsr_bits);
	else if (head != t->robust_head || len != t->robust_len)
		snprintf(t->why, sizeof(t->why), "robust list %p+%zu, expected %p+%zu", head, len, t->robust_head, t->robust_len);
	else if (tid_addr != t->tid_addr)
		snprintf(t->why, sizeof(t->why), "clear_child_tid %p, expected %p", tid_addr, t->tid_addr);
}

/* Signals are the other items': a signal made pending for the process must not land here. */
static void block_all_signals(void)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
}

static void *ta_main(void *arg)
{
	struct ta_slot *t = arg;
	block_all_signals();
	t->tid = gettid();
	setpriority(PRIO_PROCESS, 0, t->nice);
	if (t->policy) {
		struct sched_param sp = { t->prio };
		if (sched_setscheduler(0, t->policy, &sp) != 0)
			t->policy = 0; /* no real-time budget here (a cgroup without rt_runtime) */
		else
			t->policy = sched_getscheduler(0);
	}
	syscall(SYS_ioprio_set, 1, 0, t->ioprio);
	if (t->use_aff)
		sched_setaffinity(0, sizeof(t->cpus), &t->cpus);
	prctl(PR_SET_TIMERSLACK, t->slack);
	t->slack = (unsigned long)prctl(PR_GET_TIMERSLACK); /* a real-time thread has none: 0 */
	set_rounding(t->round);
	unsigned mx = read_mxcsr() | t->mxcsr_bits;
	__asm__ volatile("ldmxcsr %0" : : "m"(mx));
	syscall(SYS_get_robust_list, 0, &t->robust_head, &t->robust_len);
	prctl(PR_GET_TID_ADDRESS, &t->tid_addr);
	t->ready = 1;
	while (!t->stop) {
		int g = t->gen;
		if (g != t->done_gen) {
			ta_self_check(t);
			__atomic_store_n(&t->done_gen, g, __ATOMIC_RELEASE);
		}
		sleep_ms(5);
	}
	return (void *)(uintptr_t)0x5eed;
}

struct ta_st {
	int first, n;
};

static int ta_build(struct inst *in, struct rng *r)
{
	struct ta_st *s = ST_OF(in, struct ta_st);
	s->first = ta_n;
	s->n = (int)rng_range(r, 1, 2);
	if (ta_n + s->n > TA_MAX)
		return 1;
	cpu_set_t all;
	sched_getaffinity(0, sizeof(all), &all);
	for (int i = 0; i < s->n; i++) {
		struct ta_slot *t = &ta_slots[ta_n];
		t->nice = (int)rng_range(r, 0, 19);
		/* a real-time thread now and then: SCHED_FIFO or SCHED_RR, maybe resetting on fork */
		t->policy = !rng_one_in(r, 3) ? 0 : (rng_one_in(r, 2) ? SCHED_FIFO : SCHED_RR) | (rng_one_in(r, 2) ? SCHED_RESET_ON_FORK : 0);
		t->prio = (int)rng_range(r, 1, 50);
		t->ioprio = rng_one_in(r, 3) ? 0 : (2 << 13) | (int)rng_range(r, 0, 7);
		t->slack = (unsigned long)rng_range(r, 1, 2000000);
		t->round = (int)rng_below(r, 4); /* nearest, down, up, toward zero */
		t->mxcsr_bits = (rng_one_in(r, 2) ? 0x8000 : 0) | (rng_one_in(r, 2) ? 0x40 : 0);
		t->use_aff = CPU_COUNT(&all) > 1 && rng_one_in(r, 2);
		if (t->use_aff) {
			CPU_ZERO(&t->cpus);
			for (int c = 0; c < CPU_SETSIZE; c++)
				if (CPU_ISSET(c, &all) && (CPU_COUNT(&t->cpus) == 0 || rng_one_in(r, 2)))
					CPU_SET(c, &t->cpus);
		}
		if (pthread_create(&t->th, NULL, ta_main, t) != 0)
			DIE("pthread_create");
		while (!t->ready)
			sleep_ms(1);
		describe(in, "tid=%d policy=0x%x/%d nice=%d ioprio=0x%x slack=%lu round=%d mxcsr=0x%x cpus=%d", t->tid, t->policy, t->policy ? t->prio : 0, t->nice, t->ioprio,
			 t->slack, t->round, t->mxcsr_bits, t->use_aff ? CPU_COUNT(&t->cpus) : 0);
		ta_n++;
	}
	return 0;
}

static void ta_check(struct inst *in, int final)
{
	struct ta_st *s = ST_OF(in, struct ta_st);
	for (int i = s->first; i < s->first + s->n; i++) {
		struct ta_slot *t = &ta_slots[i];
		int g = ++t->gen;
		int64_t deadline = mono_ns() + 5000000000LL;
		while (__atomic_load_n(&t->done_gen, __ATOMIC_ACQUIRE) != g && mono_ns() < deadline)
			sleep_ms(1);
		if (t->done_gen != g)
			IFAIL(in, "thread %d did not answer its check", t->tid);
		else if (t->why[0])
			IFAIL(in, "thread %d: %s", t->tid, t->why);
		if (!final)
			continue;
		/* pthread_join waits for the kernel's clear_child_tid write: it hangs if that is lost */
		t->stop = 1;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		void *ret = NULL;
		int rc = pthread_timedjoin_np(t->th, &ret, &ts);
		ICHECK(in, rc == 0 && ret == (void *)(uintptr_t)0x5eed, "pthread_join of thread %d: %s", t->tid, strerror(rc));
	}
}

/* ---- thread-timedwait: threads waiting with an absolute or relative deadline --------------- */

#define TW_MAX 3

struct tw_slot {
	pthread_t th;
	int how; /* 0 pthread_cond_timedwait, 1 epoll_wait, 2 sem_timedwait */
	long ms;
	volatile int ready, rounds, early, errors;
	char why[160];
};

static struct tw_slot tw_slots[TW_MAX];
static int tw_n;
static pthread_mutex_t tw_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tw_cv = PTHREAD_COND_INITIALIZER;
static sem_t tw_sem;

static void *tw_main(void *arg)
{
	struct tw_slot *t = arg;
	block_all_signals();
	int ep = t->how == 1 ? epoll_create1(EPOLL_CLOEXEC) : -1;
	t->ready = 1;
	for (;;) {
		struct timespec start, dl, end;
		clock_gettime(CLOCK_REALTIME, &start);
		dl = start;
		dl.tv_sec += t->ms / 1000;
		dl.tv_nsec += (t->ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L)
			dl.tv_sec++, dl.tv_nsec -= 1000000000L;
		int rc = 0;
		if (t->how == 0) {
			pthread_mutex_lock(&tw_mu);
			rc = pthread_cond_timedwait(&tw_cv, &tw_mu, &dl);
			pthread_mutex_unlock(&tw_mu);
			if (rc != ETIMEDOUT)
				t->errors++, snprintf(t->why, sizeof(t->why), "pthread_cond_timedwait: %s", strerror(rc));
		} else if (t->how == 1) {
			struct epoll_event ev;
			rc = epoll_wait(ep, &ev, 1, (int)t->ms);
			if (rc < 0 && errno == EINTR)
				continue; /* documented after a stop (signal(7)): the program retries */
			if (rc != 0)
				t->errors++, snprintf(t->why, sizeof(t->why), "epoll_wait: %d (%s)", rc, strerror(errno));
		} else {
			rc = sem_timedwait(&tw_sem, &dl);
			if (rc != -1 || errno != ETIMEDOUT)
				t->errors++, snprintf(t->why, sizeof(t->why), "sem_timedwait: %d (%s)", rc, strerror(errno));
		}
		clock_gettime(CLOCK_REALTIME, &end);
		/* a wait that timed out before its deadline (a restart with the whole time is late, not
		 * wrong); epoll's relative timeout is checked against the same span */
		int64_t want = (int64_t)start.tv_sec * 1000000000LL + start.tv_nsec + t->ms * 1000000LL;
		int64_t got = (int64_t)end.tv_sec * 1000000000LL + end.tv_nsec;
		if (got + 2000000LL < want)
			t->early++, snprintf(t->why, sizeof(t->why), "a %ld ms wait ended %lld us early", t->ms,
					     (long long)(want - got) / 1000);
		__atomic_add_fetch(&t->rounds, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int tw_build(struct inst *in, struct rng *r)
{
	if (tw_n >= TW_MAX)
		return 1;
	if (tw_n == 0)
		sem_init(&tw_sem, 0, 0);
	struct tw_slot *t = &tw_slots[tw_n];
	*ST_OF(in, int) = tw_n;
	t->how = (int)rng_below(r, 3);
	t->ms = rng_range(r, 200, 1500);
	if (pthread_create(&t->th, NULL, tw_main, t) != 0)
		DIE("pthread_create");
	while (!t->ready)
		sleep_ms(1);
	describe(in, "%s %ld ms", t->how == 0 ? "cond_timedwait" : t->how == 1 ? "epoll_wait" : "sem_timedwait", t->ms);
	tw_n++;
	return 0;
}

static void tw_check(struct inst *in, int final)
{
	struct tw_slot *t = &tw_slots[*ST_OF(in, int)];
	ICHECK(in, !t->early && !t->errors, "%s", t->why);
	if (!final)
		return;
	/* it goes on waiting after the restore: two more rounds, all on time */
	int start = __atomic_load_n(&t->rounds, __ATOMIC_ACQUIRE);
	int64_t deadline = mono_ns() + 3 * (t->ms + 1000) * 1000000LL;
	while (__atomic_load_n(&t->rounds, __ATOMIC_ACQUIRE) < start + 2 && mono_ns() < deadline)
		sleep_ms(10);
	ICHECK(in, t->rounds >= start + 2, "the waiting thread finished %d waits since, expected 2", t->rounds - start);
	ICHECK(in, !t->early && !t->errors, "%s", t->why);
}

const struct item items_threadstate[] = {
	{ "thread-attrs", 2, ta_build, ta_check, NULL },
	{ "thread-timedwait", 3, tw_build, tw_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
