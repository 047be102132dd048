/*
 * timers: interval timers keep running.
 *
 * Sets ITIMER_REAL (interval 20 ms, SIGALRM counted by an SA_RESTART handler), ITIMER_VIRTUAL
 * (interval 50 ms, first expiry after 1000 s of user CPU time) and ITIMER_PROF (interval 70 ms,
 * first expiry after 2000 s of CPU time); the go-polling loop is interrupted by SIGALRM all the
 * time (nanosleep returns EINTR).
 * After go:
 *   - getitimer shows the three intervals unchanged, and values in (0, interval] for REAL and
 *     (0, value read at setup + 50 ms] for VIRTUAL/PROF (CPU time only goes forward, so the
 *     timer must never be re-armed larger; the slack covers tick rounding per set/get);
 *   - the SIGALRM count at go is not below the count at READY (memory restored, no reset), and it
 *     grows by at least 5 within the next 300 ms (the timer is armed after restore);
 *   - no SIGVTALRM/SIGPROF was delivered; the fd table is unchanged.
 */
#include "common.h"

#include <sys/time.h>

static volatile long alarms, vtalarms, profs;

static void h_alrm(int s) { (void)s; alarms++; }
static void h_vt(int s) { (void)s; vtalarms++; }
static void h_prof(int s) { (void)s; profs++; }

/*
 * CPU-time itimers are kept in ticks: reading one back can show up to a tick more than was set,
 * and every set/get round trip (each checkpoint/restore) may add another. Allow 50 ms.
 */
#define SLACK_US 50000L

static long tv_us(struct timeval tv) { return tv.tv_sec * 1000000L + tv.tv_usec; }

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = h_alrm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = h_vt;
	sigaction(SIGVTALRM, &sa, NULL);
	sa.sa_handler = h_prof;
	sigaction(SIGPROF, &sa, NULL);

	struct itimerval real = { { 0, 20000 }, { 0, 20000 } };
	struct itimerval virt = { { 0, 50000 }, { 1000, 0 } };
	struct itimerval prof = { { 0, 70000 }, { 2000, 0 } };
	if (setitimer(ITIMER_REAL, &real, NULL) < 0 || setitimer(ITIMER_VIRTUAL, &virt, NULL) < 0 ||
	    setitimer(ITIMER_PROF, &prof, NULL) < 0)
		DIE("setitimer");

	struct itimerval v0, p0;
	getitimer(ITIMER_VIRTUAL, &v0);
	getitimer(ITIMER_PROF, &p0);
	sleep_ms(100);
	long at_ready = alarms;
	if (at_ready < 1)
		DIE("ITIMER_REAL did not fire within 100 ms");
	say("timers: %ld alarms before READY", at_ready);
	ready();
	wait_go();

	long at_go = alarms;
	struct itimerval r1, v1, p1;
	getitimer(ITIMER_REAL, &r1);
	getitimer(ITIMER_VIRTUAL, &v1);
	getitimer(ITIMER_PROF, &p1);
	say("timers: %ld alarms at go; real value %ld us, virtual value %ld us, prof value %ld us",
	    at_go, tv_us(r1.it_value), tv_us(v1.it_value), tv_us(p1.it_value));

	CHECK(tv_us(r1.it_interval) == 20000, "ITIMER_REAL interval is %ld us, expected 20000",
	      tv_us(r1.it_interval));
	CHECK(tv_us(r1.it_value) > 0 && tv_us(r1.it_value) <= 20000,
	      "ITIMER_REAL value is %ld us (disarmed or beyond the interval)", tv_us(r1.it_value));
	CHECK(tv_us(v1.it_interval) == 50000, "ITIMER_VIRTUAL interval is %ld us, expected 50000",
	      tv_us(v1.it_interval));
	CHECK(tv_us(v1.it_value) > 0 && tv_us(v1.it_value) <= tv_us(v0.it_value) + SLACK_US,
	      "ITIMER_VIRTUAL value is %ld us, expected in (0, %ld] (setup value + slack)",
	      tv_us(v1.it_value), tv_us(v0.it_value) + SLACK_US);
	CHECK(tv_us(p1.it_interval) == 70000, "ITIMER_PROF interval is %ld us, expected 70000",
	      tv_us(p1.it_interval));
	CHECK(tv_us(p1.it_value) > 0 && tv_us(p1.it_value) <= tv_us(p0.it_value) + SLACK_US,
	      "ITIMER_PROF value is %ld us, expected in (0, %ld] (setup value + slack)",
	      tv_us(p1.it_value), tv_us(p0.it_value) + SLACK_US);

	CHECK(at_go >= at_ready, "alarm count went back: %ld at go, %ld at READY", at_go, at_ready);
	int64_t t0 = mono_ns();
	while (mono_ns() - t0 < 300 * 1000000LL) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	long later = alarms;
	CHECK(later - at_go >= 5, "only %ld SIGALRM in 300 ms after restore (interval 20 ms)",
	      later - at_go);
	CHECK(vtalarms == 0 && profs == 0, "unexpected SIGVTALRM (%ld) / SIGPROF (%ld)", vtalarms, profs);
	fdset_compare(&fds);
	return finish();
}
