/* fuzzstate items: eventfd, signalfd, epoll (with what it watches), inotify. */
#include "fuzz.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>

/* ---- eventfd ------------------------------------------------------------------------------ */

struct eventfd_st {
	int fd, sem;
	unsigned long long count;
};

static int eventfd_common(struct inst *in, struct rng *r, int big)
{
	struct eventfd_st *s = ST_OF(in, struct eventfd_st);
	s->sem = rng_one_in(r, 3);
	s->count = rng_one_in(r, 4) ? 0 : rng_below(r, 1ULL << 32);
	if (big) /* beyond 32 bits */
		s->count = (rng_below(r, 1ULL << 20) + 1) << 32 | s->count;
	int fd = eventfd((unsigned)(s->count & 0xffffffff), (s->sem ? EFD_SEMAPHORE : 0) |
		     (rng_one_in(r, 2) ? EFD_NONBLOCK : 0) | (rng_one_in(r, 2) ? EFD_CLOEXEC : 0));
	if (fd < 0)
		DIE("eventfd");
	uint64_t more = s->count - (s->count & 0xffffffff);
	if (more && write(fd, &more, 8) != 8)
		DIE("eventfd write");
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d count=%llu semaphore=%d", s->fd, s->count, s->sem);
	return 0;
}

static int eventfd_build(struct inst *in, struct rng *r)
{
	return eventfd_common(in, r, 0);
}

static int eventfd_big_build(struct inst *in, struct rng *r)
{
	return eventfd_common(in, r, 1);
}

static void eventfd_check(struct inst *in, int final)
{
	struct eventfd_st *s = ST_OF(in, struct eventfd_st);
	const char *v = fdinfo_value(s->fd, "eventfd-count:");
	unsigned long long now = v ? strtoull(v, NULL, 16) : ~0ULL;
	ICHECK(in, now == s->count, "fd %d eventfd-count %s, expected %llx", s->fd, v ? v : "?", s->count);
	if (final && s->count) {
		uint64_t got = 0;
		ICHECK(in, read(s->fd, &got, 8) == 8 && got == (s->sem ? 1 : s->count),
		       "fd %d read %llu, expected %llu", s->fd, (unsigned long long)got,
		       s->sem ? 1ULL : s->count);
	}
}

/* ---- signalfd ----------------------------------------------------------------------------- */

struct signalfd_st {
	int fd;
	unsigned long long mask;
};

static int signalfd_build(struct inst *in, struct rng *r)
{
	struct signalfd_st *s = ST_OF(in, struct signalfd_st);
	sigset_t set;
	sigemptyset(&set);
	int n = (int)rng_range(r, 1, 6);
	for (int i = 0; i < n; i++) {
		int sig = (int)rng_range(r, 1, 64);
		if (sig != SIGKILL && sig != SIGSTOP && sig != 32 && sig != 33)
			sigaddset(&set, sig);
	}
	int fd = signalfd(-1, &set, (rng_one_in(r, 2) ? SFD_NONBLOCK : 0) | (rng_one_in(r, 2) ? SFD_CLOEXEC : 0));
	if (fd < 0)
		DIE("signalfd");
	const char *v = fdinfo_value(fd, "sigmask:");
	s->mask = v ? strtoull(v, NULL, 16) : 0;
	s->fd = place_fd(r, fd);
	describe(in, "fd=%d mask=%llx", s->fd, s->mask);
	return 0;
}

static void signalfd_check(struct inst *in, int final)
{
	(void)final;
	struct signalfd_st *s = ST_OF(in, struct signalfd_st);
	const char *v = fdinfo_value(s->fd, "sigmask:");
	ICHECK(in, v && strtoull(v, NULL, 16) == s->mask, "fd %d sigmask %s, expected %llx", s->fd,
	       v ? v : "?", s->mask);
}

/* ---- epoll: watching pipes and eventfds of its own, some of them ready -------------------- */

/* The events and data /proc shows for the watch of tfd in epoll fd ep; the number of watches. */
static int epoll_fdinfo(int ep, int tfd, unsigned *events, unsigned long long *data)
{
	static char buf[65536];
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	int seen = 0;
	for (char *p = strstr(buf, "tfd:"); p; p = strstr(p + 1, "tfd:")) {
		int t;
		unsigned ev;
		unsigned long long d;
		if (sscanf(p, "tfd: %d events: %x data: %llx", &t, &ev, &d) != 3)
			continue;
		seen++;
		if (t == tfd) {
			*events = ev;
			if (data)
				*data = d;
		}
	}
	return seen;
}

struct epoll_st {
	int fd, n;
	struct {
		int tfd, wfd; /* wfd: the pipe's write end (-1: tfd is an eventfd) */
		unsigned events;
		unsigned long long data;
		int ready;
		int edge_taken; /* ready, edge-triggered, reported already: a restore may report it once more */
	} w[6];
};

static int epoll_build(struct inst *in, struct rng *r)
{
	struct epoll_st *s = ST_OF(in, struct epoll_st);
	int ep = epoll_create1(rng_one_in(r, 2) ? EPOLL_CLOEXEC : 0);
	if (ep < 0)
		DIE("epoll_create1");
	s->n = (int)rng_range(r, 0, 6);
	describe(in, "watches");
	for (int i = 0; i < s->n; i++) {
		s->w[i].ready = rng_one_in(r, 2);
		if (rng_one_in(r, 2)) {
			int p[2];
			if (pipe2(p, O_NONBLOCK) != 0)
				DIE("pipe2");
			if (s->w[i].ready && write(p[1], "x", 1) != 1)
				DIE("write");
			s->w[i].tfd = place_fd(r, p[0]);
			s->w[i].wfd = place_fd(r, p[1]);
		} else {
			s->w[i].tfd = place_fd(r, eventfd(s->w[i].ready ? 1 : 0, EFD_NONBLOCK));
			s->w[i].wfd = -1;
		}
		static const unsigned ev_pool[] = { EPOLLIN, EPOLLPRI, EPOLLRDHUP, EPOLLET, EPOLLONESHOT };
		s->w[i].events = EPOLLIN;
		for (int b = 0; b < 5; b++)
			if (rng_one_in(r, 3))
				s->w[i].events |= ev_pool[b];
		s->w[i].data = rng_next(r);
		struct epoll_event ev = { .events = s->w[i].events, .data.u64 = s->w[i].data };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, s->w[i].tfd, &ev) != 0)
			DIE("epoll_ctl");
		describe(in, "%d:0x%x%s", s->w[i].tfd, s->w[i].events, s->w[i].ready ? "(ready)" : "");
		/* a one-shot watch that fired and waits to be re-armed (a worker thread has its fd);
		 * what else the wait reported: an edge-triggered or one-shot watch is not ready again */
		if ((s->w[i].events & EPOLLONESHOT) && s->w[i].ready && rng_one_in(r, 2)) {
			struct epoll_event evs[8];
			int n = epoll_wait(ep, evs, 8, 0);
			for (int k = 0; k < n; k++)
				for (int j = 0; j <= i; j++)
					if (evs[k].data.u64 == s->w[j].data && (s->w[j].events & (EPOLLET | EPOLLONESHOT))) {
						s->w[j].ready = 0;
						/* /proc does not show that an edge was reported: the restore adds the
						 * watch again, ready, as a wake-up edge-triggered readers take in stride */
						s->w[j].edge_taken = !(s->w[j].events & EPOLLONESHOT);
					}
			/* and maybe its pipe or eventfd emptied since: ready for nothing (a pipe), or to write */
			char c[8];
			if (rng_one_in(r, 2) && read(s->w[i].tfd, c, s->w[i].wfd >= 0 ? 1 : 8) < 0)
				DIE("read");
			describe(in, "(fired)");
		}
	}
	s->fd = place_fd(r, ep);
	/* what the kernel shows for each watch (it adds EPOLLERR|EPOLLHUP) is the reference */
	for (int i = 0; i < s->n; i++)
		epoll_fdinfo(s->fd, s->w[i].tfd, &s->w[i].events, NULL);
	describe(in, "fd=%d", s->fd);
	return 0;
}

static void epoll_check(struct inst *in, int final)
{
	struct epoll_st *s = ST_OF(in, struct epoll_st);
	for (int i = 0; i < s->n; i++) {
		unsigned ev = 0;
		unsigned long long data = 0;
		int seen = epoll_fdinfo(s->fd, s->w[i].tfd, &ev, &data);
		ICHECK(in, seen == s->n, "%d watches, expected %d", seen, s->n);
		ICHECK(in, ev == s->w[i].events && data == s->w[i].data,
		       "watch of fd %d: events 0x%x data %llx, expected 0x%x %llx", s->w[i].tfd, ev, data,
		       s->w[i].events, s->w[i].data);
	}
	if (!final)
		return;
	struct epoll_event evs[8];
	int n = epoll_wait(s->fd, evs, 8, 0), want = 0, taken = 0;
	for (int i = 0; i < s->n; i++)
		want += s->w[i].ready, taken += s->w[i].edge_taken;
	ICHECK(in, n >= want && n <= want + taken, "epoll_wait reports %d ready, expected %d (and up to %d edges reported before)", n, want, taken);
	for (int k = 0; k < n; k++) {
		int ok = 0;
		for (int i = 0; i < s->n; i++)
			ok |= (s->w[i].ready || s->w[i].edge_taken) && evs[k].data.u64 == s->w[i].data;
		ICHECK(in, ok, "epoll_wait reports data %llx, which is not a ready watch",
		       (unsigned long long)evs[k].data.u64);
	}
}

/* ---- inotify: watches on directories of its own (nothing else touches them) --------------- */

/* The mask /proc shows for watch wd of inotify fd; the number of watches. */
static int inotify_fdinfo(int fd, int wd, unsigned *mask)
{
	static char buf[65536];
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	int seen = 0;
	for (char *p = strstr(buf, "inotify wd:"); p; p = strstr(p + 1, "inotify wd:")) {
		int w;
		unsigned long ino;
		unsigned sdev, m;
		if (sscanf(p, "inotify wd:%d ino:%lx sdev:%x mask:%x", &w, &ino, &sdev, &m) != 4)
			continue;
		seen++;
		if (w == wd)
			*mask = m;
	}
	return seen;
}

struct inotify_st {
	int fd, n;
	int wd[4];
	unsigned mask[4];
};

static int inotify_build(struct inst *in, struct rng *r)
{
	struct inotify_st *s = ST_OF(in, struct inotify_st);
	int fd = inotify_init1((rng_one_in(r, 2) ? IN_NONBLOCK : 0) | (rng_one_in(r, 2) ? IN_CLOEXEC : 0));
	if (fd < 0)
		DIE("inotify_init1");
	s->n = (int)rng_range(r, 1, 4);
	describe(in, "watches");
	for (int i = 0; i < s->n; i++) {
		const char *d = base_path("ino%d-%d", in->idx, i);
		if (mkdir(d, 0700) != 0)
			DIE("mkdir %s", d);
		unsigned m = (unsigned)(rng_next(r) & IN_ALL_EVENTS) | IN_CREATE;
		if (rng_one_in(r, 4))
			m |= IN_ONLYDIR;
		s->wd[i] = inotify_add_watch(fd, d, m);
		if (s->wd[i] < 0)
			DIE("inotify_add_watch");
		s->mask[i] = m;
		describe(in, "%d:0x%x", s->wd[i], m);
	}
	s->fd = place_fd(r, fd);
	for (int i = 0; i < s->n; i++)
		inotify_fdinfo(s->fd, s->wd[i], &s->mask[i]);
	describe(in, "fd=%d", s->fd);
	return 0;
}

static void inotify_check(struct inst *in, int final)
{
	(void)final;
	struct inotify_st *s = ST_OF(in, struct inotify_st);
	for (int i = 0; i < s->n; i++) {
		unsigned m = 0;
		int seen = inotify_fdinfo(s->fd, s->wd[i], &m);
		ICHECK(in, seen == s->n, "%d watches, expected %d", seen, s->n);
		ICHECK(in, m == s->mask[i], "watch %d mask 0x%x, expected 0x%x", s->wd[i], m, s->mask[i]);
	}
}

const struct item items_anonfds[] = {
	{ "eventfd", 3, eventfd_build, eventfd_check, NULL },
	{ "eventfd-64bit", 2, eventfd_big_build, eventfd_check, NULL },
	{ "signalfd", 2, signalfd_build, signalfd_check, NULL },
	{ "epoll", 3, epoll_build, epoll_check, NULL },
	{ "inotify", 2, inotify_build, inotify_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
