/* fuzzstate items: interval timers, timerfds and POSIX timers (all far from expiring but one: a
 * periodic timerfd that expired many times, nobody reading it). */
#include "fuzz.h"

#include <sys/time.h>
#include <sys/timerfd.h>

static int64_t tv_ns(struct timeval tv)
{
	return (int64_t)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A value in [1000 s, 100000 s]: never expires while the target lives. */
static struct timespec far_timespec(struct rng *r)
{
	struct timespec ts = { rng_range(r, 1000, 100000), rng_range(r, 0, 999999999) };
	return ts;
}

/* ---- itimer: ITIMER_REAL / VIRTUAL / PROF ------------------------------------------------- */

struct itimer_st {
	int which;
	struct itimerval set;
};

static int itimers_used;

static int itimer_build(struct inst *in, struct rng *r)
{
	struct itimer_st *s = ST_OF(in, struct itimer_st);
	s->which = (int)rng_below(r, 3);
	if (itimers_used & (1 << s->which))
		return 1;
	itimers_used |= 1 << s->which;
	struct timespec v = far_timespec(r);
	s->set.it_value.tv_sec = v.tv_sec;
	s->set.it_value.tv_usec = v.tv_nsec / 1000;
	if (rng_one_in(r, 2)) {
		s->set.it_interval.tv_sec = rng_range(r, 0, 5000);
		s->set.it_interval.tv_usec = rng_range(r, 1, 999999);
	}
	if (setitimer(s->which, &s->set, NULL) != 0)
		DIE("setitimer");
	/* the kernel rounds to its resolution (CPU timers: a tick): what it reports is the reference */
	struct itimerval now;
	getitimer(s->which, &now);
	s->set = now;
	describe(in, "which=%d value=%llds interval=%lld.%06llds", s->which, (long long)v.tv_sec,
		 (long long)now.it_interval.tv_sec, (long long)now.it_interval.tv_usec);
	return 0;
}

static void itimer_check(struct inst *in, int final)
{
	(void)final;
	struct itimer_st *s = ST_OF(in, struct itimer_st);
	struct itimerval now;
	getitimer(s->which, &now);
	int64_t left = tv_ns(now.it_value), was = tv_ns(s->set.it_value);
	/* setting a CPU-time itimer adds a tick (kernel/time/itimer.c), so a restore that sets
	 * the remaining time shows up to one tick more: allow 10 ms (HZ >= 100) */
	if (s->which != ITIMER_REAL)
		was += 10000000LL;
	ICHECK(in, left > 0 && left <= was, "itimer %d has %lld ns left, armed with %lld", s->which,
	       (long long)left, (long long)was);
	ICHECK(in, tv_ns(now.it_interval) == tv_ns(s->set.it_interval),
	       "itimer %d interval %lld ns, expected %lld", s->which, (long long)tv_ns(now.it_interval),
	       (long long)tv_ns(s->set.it_interval));
}

/* ---- timerfd ------------------------------------------------------------------------------ */

struct timerfd_st {
	int fd, clock, abs;
	struct itimerspec set;
	int64_t armed_at; /* the clock's value when armed, for absolute timers */
};

static const int timerfd_clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME };

static int timerfd_build(struct inst *in, struct rng *r)
{
	struct timerfd_st *s = ST_OF(in, struct timerfd_st);
	s->clock = timerfd_clocks[rng_below(r, 3)];
	int flags = (rng_one_in(r, 2) ? TFD_NONBLOCK : 0) | (rng_one_in(r, 2) ? TFD_CLOEXEC : 0);
	int fd = timerfd_create(s->clock, flags);
	if (fd < 0)
		DIE("timerfd_create");
	s->set.it_value = far_timespec(r);
	if (rng_one_in(r, 2))
		s->set.it_interval = far_timespec(r);
	s->abs = rng_one_in(r, 3);
	struct itimerspec arm = s->set;
	if (s->abs) {
		struct timespec now;
		clock_gettime(s->clock, &now);
		int64_t at = ts_ns(now) + ts_ns(s->set.it_value);
		arm.it_value.tv_sec = at / 1000000000LL;
		arm.it_value.tv_nsec = at % 1000000000LL;
	}
	if (timerfd_settime(fd, s->abs ? TFD_TIMER_ABSTIME : 0, &arm, NULL) != 0)
		DIE("timerfd_settime");
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d clock=%d flags=0%o value=%llds interval=%llds abs=%d", s->fd, s->clock,
		 flags, (long long)s->set.it_value.tv_sec, (long long)s->set.it_interval.tv_sec, s->abs);
	return 0;
}

static void timerfd_check(struct inst *in, int final)
{
	(void)final;
	struct timerfd_st *s = ST_OF(in, struct timerfd_st);
	struct itimerspec now;
	if (timerfd_gettime(s->fd, &now) != 0) {
		IFAIL(in, "timerfd_gettime(%d): %s", s->fd, strerror(errno));
		return;
	}
	int64_t left = ts_ns(now.it_value), was = ts_ns(s->set.it_value);
	ICHECK(in, left > 0 && left <= was, "timerfd %d has %lld ns left, armed with %lld", s->fd,
	       (long long)left, (long long)was);
	ICHECK(in, ts_ns(now.it_interval) == ts_ns(s->set.it_interval),
	       "timerfd %d interval %lld ns, expected %lld", s->fd, (long long)ts_ns(now.it_interval),
	       (long long)ts_ns(s->set.it_interval));
	const char *clk = fdinfo_value(s->fd, "clockid:");
	ICHECK(in, clk && atoi(clk) == s->clock, "timerfd %d clockid %s, expected %d", s->fd,
	       clk ? clk : "?", s->clock);
	uint64_t ticks;
	ICHECK(in, !(fcntl(s->fd, F_GETFL) & O_NONBLOCK) || read(s->fd, &ticks, 8) < 0,
	       "timerfd %d has expired", s->fd);
}

/* ---- posix-timer: timer_create on several clocks and notification kinds -------------------- */

struct ptimer_st {
	timer_t id;
	int clock, notify, sig;
	struct itimerspec set;
};

static const clockid_t ptimer_clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME,
					   CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID };

static int ptimer_build(struct inst *in, struct rng *r)
{
	struct ptimer_st *s = ST_OF(in, struct ptimer_st);
	s->clock = (int)ptimer_clocks[rng_below(r, 5)];
	s->notify = (int)rng_below(r, 3); /* SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID */
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	if (s->notify != 1) {
		s->sig = sig_alloc(r, 1);
		if (!s->sig)
			return 1;
		block_now(s->sig);
		ev.sigev_signo = s->sig;
		ev.sigev_value.sival_int = (int)(rng_next(r) & 0xffff);
	}
	ev.sigev_notify = s->notify == 0 ? SIGEV_SIGNAL : s->notify == 1 ? SIGEV_NONE : SIGEV_THREAD_ID;
	if (s->notify == 2)
		ev._sigev_un._tid = gettid();
	if (timer_create(s->clock, &ev, &s->id) != 0)
		DIE("timer_create");
	s->set.it_value = far_timespec(r);
	if (rng_one_in(r, 2))
		s->set.it_interval = far_timespec(r);
	if (rng_one_in(r, 5))
		memset(&s->set, 0, sizeof(s->set)); /* created, never armed */
	if (timer_settime(s->id, 0, &s->set, NULL) != 0)
		DIE("timer_settime");
	describe(in, "id=%ld clock=%d notify=%s sig=%d value=%llds interval=%llds", (long)s->id,
		 s->clock, s->notify == 0 ? "signal" : s->notify == 1 ? "none" : "thread-id", s->sig,
		 (long long)s->set.it_value.tv_sec, (long long)s->set.it_interval.tv_sec);
	return 0;
}

static void ptimer_check(struct inst *in, int final)
{
	(void)final;
	struct ptimer_st *s = ST_OF(in, struct ptimer_st);
	struct itimerspec now;
	if (timer_gettime(s->id, &now) != 0) {
		IFAIL(in, "timer_gettime(id %ld): %s", (long)s->id, strerror(errno));
		return;
	}
	int64_t left = ts_ns(now.it_value), was = ts_ns(s->set.it_value);
	if (was == 0)
		ICHECK(in, left == 0, "disarmed timer %ld is armed (%lld ns left)", (long)s->id, (long long)left);
	else
		ICHECK(in, left > 0 && left <= was, "timer %ld has %lld ns left, armed with %lld",
		       (long)s->id, (long long)left, (long long)was);
	ICHECK(in, ts_ns(now.it_interval) == ts_ns(s->set.it_interval),
	       "timer %ld interval %lld ns, expected %lld", (long)s->id, (long long)ts_ns(now.it_interval),
	       (long long)ts_ns(s->set.it_interval));
	ICHECK(in, timer_getoverrun(s->id) == 0, "timer %ld overrun %d", (long)s->id,
	       timer_getoverrun(s->id));
}

/* ---- timerfd-abstime: an absolute timer, on the wall clock with TFD_TIMER_CANCEL_ON_SET -------
 * as systemd and cron watch for the clock being set: far ahead, or at the end of time. */

struct tfd_abs_st {
	int fd, clock, flags, forever;
	int64_t at; /* the absolute expiry armed */
};

static int tfd_abs_build(struct inst *in, struct rng *r)
{
	struct tfd_abs_st *s = ST_OF(in, struct tfd_abs_st);
	s->clock = timerfd_clocks[rng_below(r, 3)];
	s->flags = TFD_TIMER_ABSTIME;
	if (s->clock == CLOCK_REALTIME && !rng_one_in(r, 3))
		s->flags |= TFD_TIMER_CANCEL_ON_SET;
	int fd = timerfd_create(s->clock, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		DIE("timerfd_create");
	struct timespec now;
	clock_gettime(s->clock, &now);
	s->forever = rng_one_in(r, 3);
	/* systemd arms TIME_T_MAX: the kernel keeps it as its largest time (KTIME_MAX) */
	s->at = s->forever ? INT64_MAX : ts_ns(now) + ts_ns(far_timespec(r));
	struct itimerspec arm = { .it_value = { s->forever ? INT64_MAX / 1000000000LL : s->at / 1000000000LL,
						s->forever ? 0 : s->at % 1000000000LL } };
	if (timerfd_settime(fd, s->flags, &arm, NULL) != 0)
		DIE("timerfd_settime");
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d clock=%d flags=%d%s", s->fd, s->clock, s->flags, s->forever ? " forever" : "");
	return 0;
}

static void tfd_abs_check(struct inst *in, int final)
{
	(void)final;
	struct tfd_abs_st *s = ST_OF(in, struct tfd_abs_st);
	const char *fl = fdinfo_value(s->fd, "settime flags:");
	ICHECK(in, fl && strtol(fl, NULL, 8) == s->flags, "timerfd %d settime flags %s, expected 0%o", s->fd, fl ? fl : "?",
	       s->flags);
	struct itimerspec left;
	struct timespec now;
	if (timerfd_gettime(s->fd, &left) != 0)
		DIE("timerfd_gettime");
	clock_gettime(s->clock, &now);
	/* still armed: on the wall clock for the same time; on a monotonic clock the time left is
	 * kept (CRIU's rule: it may expire later by the time the process was down, never sooner) */
	int64_t at = ts_ns(now) + ts_ns(left.it_value), slack = 5000000;
	int wall = s->clock == CLOCK_REALTIME;
	ICHECK(in, ts_ns(left.it_value) > 0, "timerfd %d is disarmed", s->fd);
	if (!s->forever)
		ICHECK(in, at >= s->at - slack && at <= s->at + (wall ? slack : 600000000000LL),
		       "timerfd %d (clock %d) expires at %lld, armed for %lld", s->fd, s->clock, (long long)at, (long long)s->at);
}

/* ---- timerfd-ticking: a periodic timerfd nobody read while it expired many times -------- */

struct ticking_st {
	int fd;
	uint64_t periods; /* that passed before the build ended: the ticks read after must count them */
	int64_t interval;
};

static int ticking_build(struct inst *in, struct rng *r)
{
	struct ticking_st *s = ST_OF(in, struct ticking_st);
	s->interval = (int64_t)rng_range(r, 5, 10) * 1000000;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | (rng_one_in(r, 2) ? TFD_CLOEXEC : 0));
	if (fd < 0)
		DIE("timerfd_create");
	struct itimerspec arm = { { 0, s->interval }, { 0, s->interval } };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (timerfd_settime(fd, 0, &arm, NULL) != 0)
		DIE("timerfd_settime");
	struct timespec wait = { 0, 300 * 1000000L };
	while (nanosleep(&wait, &wait) != 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->periods = (uint64_t)((ts_ns(t1) - ts_ns(t0)) / s->interval);
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d interval=%lld ms periods=%llu", s->fd, (long long)(s->interval / 1000000), (unsigned long long)s->periods);
	return 0;
}

static void ticking_check(struct inst *in, int final)
{
	struct ticking_st *s = ST_OF(in, struct ticking_st);
	if (!final)
		return; /* reading takes the ticks */
	uint64_t ticks = 0;
	if (read(s->fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks)) {
		IFAIL(in, "timerfd %d: read: %s", s->fd, strerror(errno));
		return;
	}
	ICHECK(in, ticks >= s->periods, "timerfd %d: %llu expirations read, but %llu periods had passed before the dump", s->fd,
	       (unsigned long long)ticks, (unsigned long long)s->periods);
}

/* ---- posix-timer-pending: a periodic POSIX timer whose blocked signal is pending: its later
 * expiries are overruns of that one signal, never a second one ------------------------------ */

struct ptpend_st {
	int sig, value;
	timer_t id;
	int64_t interval;
};

static int ptpend_build(struct inst *in, struct rng *r)
{
	struct ptpend_st *s = ST_OF(in, struct ptpend_st);
	s->sig = sig_alloc(r, 1);
	if (!s->sig)
		return 1;
	block_now(s->sig);
	s->value = (int)(rng_next(r) & 0x7fffffff);
	s->interval = (int64_t)rng_range(r, 20, 50) * 1000000;
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = s->sig, .sigev_value.sival_int = s->value };
	if (timer_create(rng_one_in(r, 2) ? CLOCK_MONOTONIC : CLOCK_BOOTTIME, &ev, &s->id) != 0)
		DIE("timer_create");
	struct itimerspec arm = { { 0, s->interval }, { 0, s->interval } };
	if (timer_settime(s->id, 0, &arm, NULL) != 0)
		DIE("timer_settime");
	struct timespec wait = { 0, 150 * 1000000L };
	while (nanosleep(&wait, &wait) != 0)
		;
	sigaddset(&g_pending, s->sig);
	describe(in, "sig=%d interval=%lld ms", s->sig, (long long)(s->interval / 1000000));
	return 0;
}

static void ptpend_check(struct inst *in, int final)
{
	struct ptpend_st *s = ST_OF(in, struct ptpend_st);
	sigset_t pend, one;
	sigpending(&pend);
	ICHECK(in, sigismember(&pend, s->sig), "the timer's signal %d is not pending", s->sig);
	if (!final)
		return;
	sigemptyset(&one);
	sigaddset(&one, s->sig);
	/* two periods: a restored timer that forgot its signal is pending would queue another */
	struct timespec two = { 0, 2 * s->interval };
	while (nanosleep(&two, &two) != 0)
		;
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	int got = sigtimedwait(&one, &si, &zero);
	/* taken: the timer is re-armed a whole period on, so a second signal now is a stray copy */
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };
	timer_settime(s->id, 0, &off, NULL);
	siginfo_t again;
	int second = sigtimedwait(&one, &again, &zero);
	ICHECK(in, got == s->sig && si.si_code == SI_TIMER && si.si_value.sival_int == s->value && si.si_overrun >= 0,
	       "signal %d: got %d si_code %d value %d overrun %d, expected SI_TIMER value %d", s->sig, got, si.si_code, si.si_value.sival_int,
	       si.si_overrun, s->value);
	ICHECK(in, second < 0, "signal %d pending twice: the timer queued another (si_code %d) while its first was pending", s->sig, again.si_code);
}

const struct item items_timers[] = {
	{ "itimer", 3, itimer_build, itimer_check, NULL },
	{ "timerfd", 3, timerfd_build, timerfd_check, NULL },
	{ "timerfd-abstime", 2, tfd_abs_build, tfd_abs_check, NULL },
	{ "timerfd-ticking", 1, ticking_build, ticking_check, NULL },
	{ "posix-timer", 4, ptimer_build, ptimer_check, NULL },
	{ "posix-timer-pending", 1, ptpend_build, ptpend_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
