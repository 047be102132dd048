/*
 * evfds: an eventfd (counter 5, EFD_SEMAPHORE, non-blocking), a signalfd for SIGUSR1 and
 * SIGUSR2, and a timerfd firing every 100 ms. After go: the eventfd still counts 5 in semaphore
 * mode, the signalfd still has its mask (a raised SIGUSR2 is read from it), the timerfd keeps
 * its interval and keeps firing, and all keep their flags. An epoll watches the eventfd and the
 * timerfd (with user data 0xe0 and 0x71, the timerfd edge-triggered): after go it reports both,
 * with their data, and still knows their fd numbers (EPOLL_CTL_MOD works).
 */
#include "common.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

int main(void)
{
	int efd = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = { { 0, 100 * 1000000L }, { 0, 100 * 1000000L } };
	timerfd_settime(tfd, 0, &its, NULL);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xe0 };
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x71;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	if (efd < 0 || sfd < 0 || tfd < 0 || ep < 0)
		return 2;
	ready();
	wait_go();

	int seen_e = 0, seen_t = 0;
	for (int round = 0; round < 20 && !(seen_e && seen_t); round++) {
		struct epoll_event out[4];
		int n = epoll_wait(ep, out, 4, 100);
		for (int i = 0; i < n; i++) {
			seen_e |= out[i].data.u64 == 0xe0 && (out[i].events & EPOLLIN);
			seen_t |= out[i].data.u64 == 0x71 && (out[i].events & EPOLLIN);
		}
	}
	CHECK(seen_e && seen_t, "epoll reported eventfd %d, timerfd %d", seen_e, seen_t);
	ev.events = EPOLLIN;
	ev.data.u64 = 0x72;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, tfd, &ev) == 0, "epoll no longer knows the timerfd's fd number");
	CHECK(fcntl(ep, F_GETFD) & FD_CLOEXEC, "epoll lost FD_CLOEXEC");

	uint64_t v;
	for (int i = 0; i < 5; i++)
		CHECK(read(efd, &v, 8) == 8 && v == 1, "eventfd read %d: got %llu (semaphore mode and counter 5 expected)", i, (unsigned long long)v);
	CHECK(read(efd, &v, 8) < 0 && errno == EAGAIN, "eventfd: counter was more than 5, or not non-blocking");

	raise(SIGUSR2);
	struct signalfd_siginfo si;
	CHECK(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2, "signalfd did not deliver SIGUSR2");
	CHECK(fcntl(sfd, F_GETFL) & O_NONBLOCK, "signalfd lost O_NONBLOCK");

	struct itimerspec cur;
	CHECK(timerfd_gettime(tfd, &cur) == 0 && cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == 100 * 1000000L,
	      "timerfd interval changed (%ld.%09ld)", (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
	sleep_ms(350);
	uint64_t ticks = 0;
	CHECK(read(tfd, &ticks, 8) == 8 && ticks >= 3, "timerfd fired %llu times in 350 ms", (unsigned long long)ticks);
	return finish();
}
