/* fuzzstate items: rlimits, umask, cwd, nice, prctl values, file locks, a seccomp filter. */
#include "fuzz.h"
#include <sched.h>
#include <sys/syscall.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* ---- rlimits ------------------------------------------------------------------------------ */

struct rlimit_st {
	int n;
	int res[6];
	struct rlimit lim[6];
};

static int rlimit_common(struct inst *in, struct rng *r, int lower_hard)
{
	/* resources with a floor that keeps the target (and the harness's checks) working */
	static const struct {
		int res;
		rlim_t floor;
	} pool[] = {
		{ RLIMIT_CORE, 0 },		{ RLIMIT_NOFILE, 1024 },     { RLIMIT_MSGQUEUE, 0 },
		{ RLIMIT_NICE, 0 },		{ RLIMIT_RTPRIO, 0 },	     { RLIMIT_CPU, 100000 },
		{ RLIMIT_FSIZE, 1UL << 30 }, { RLIMIT_SIGPENDING, 1024 }, { RLIMIT_STACK, 8UL << 20 },
		{ RLIMIT_MEMLOCK, 1UL << 20 }, { RLIMIT_AS, 1UL << 34 },
	};
	static int used; /* each resource belongs to one instance */
	struct rlimit_st *s = ST_OF(in, struct rlimit_st);
	int n = (int)rng_range(r, 1, 6);
	for (int k = 0; k < n; k++) {
		int i = (int)rng_below(r, sizeof(pool) / sizeof(pool[0]));
		if (used & (1 << i))
			continue;
		used |= 1 << i;
		struct rlimit cur;
		getrlimit(pool[i].res, &cur);
		rlim_t hard = cur.rlim_max;
		if (lower_hard && (hard == RLIM_INFINITY || hard > pool[i].floor + 1000))
			hard = pool[i].floor + 1000 + rng_below(r, 1 << 20); /* lowered for good */
		rlim_t soft = pool[i].floor + rng_below(r, 1000);
		if (soft > hard)
			soft = hard;
		struct rlimit l = { soft, hard };
		if (setrlimit(pool[i].res, &l) != 0)
			continue;
		s->res[s->n] = pool[i].res;
		getrlimit(pool[i].res, &s->lim[s->n]);
		describe(in, "%d=%llu/%llu", s->res[s->n], (unsigned long long)soft, (unsigned long long)hard);
		s->n++;
	}
	return s->n ? 0 : 1;
}

static int rlimit_build(struct inst *in, struct rng *r)
{
	return rlimit_common(in, r, 0);
}

/* hard limits lowered too (for good: no CAP_SYS_RESOURCE here to raise them again) */
static int rlimit_hard_build(struct inst *in, struct rng *r)
{
	return rlimit_common(in, r, 1);
}

static void rlimit_check(struct inst *in, int final)
{
	(void)final;
	struct rlimit_st *s = ST_OF(in, struct rlimit_st);
	for (int i = 0; i < s->n; i++) {
		struct rlimit now;
		getrlimit(s->res[i], &now);
		ICHECK(in, now.rlim_cur == s->lim[i].rlim_cur && now.rlim_max == s->lim[i].rlim_max,
		       "rlimit %d is %llu/%llu, expected %llu/%llu", s->res[i], (unsigned long long)now.rlim_cur,
		       (unsigned long long)now.rlim_max, (unsigned long long)s->lim[i].rlim_cur,
		       (unsigned long long)s->lim[i].rlim_max);
	}
}

/* ---- umask, cwd, nice --------------------------------------------------------------------- */

struct fsctx_st {
	mode_t umask;
	char cwd[300];
	int nice;
};

static int umask_build(struct inst *in, struct rng *r)
{
	struct fsctx_st *s = ST_OF(in, struct fsctx_st);
	s->umask = (mode_t)rng_below(r, 0777);
	umask(s->umask);
	describe(in, "0%o", s->umask);
	return 0;
}

static void umask_check(struct inst *in, int final)
{
	(void)final;
	struct fsctx_st *s = ST_OF(in, struct fsctx_st);
	mode_t now = umask(s->umask);
	ICHECK(in, now == s->umask, "umask 0%o, expected 0%o", now, s->umask);
}

static int cwd_build(struct inst *in, struct rng *r)
{
	struct fsctx_st *s = ST_OF(in, struct fsctx_st);
	char now[300];
	if (!getcwd(now, sizeof(now)) || strlen(now) + 1 != strlen(g_base))
		return 1; /* cwd-removed has it (one owner of the cwd) */
	snprintf(s->cwd, sizeof(s->cwd), "%swd%d-%llx", g_base, in->idx, (unsigned long long)(rng_next(r) & 0xfff));
	if (mkdir(s->cwd, 0755) != 0 || chdir(s->cwd) != 0)
		DIE("cwd %s", s->cwd);
	describe(in, "%s", s->cwd + strlen(g_base));
	return 0;
}

static void cwd_check(struct inst *in, int final)
{
	(void)final;
	struct fsctx_st *s = ST_OF(in, struct fsctx_st);
	char now[300];
	ICHECK(in, getcwd(now, sizeof(now)) && strcmp(now, s->cwd) == 0, "cwd %s, expected %s", now, s->cwd);
}

static int nice_build(struct inst *in, struct rng *r)
{
	struct fsctx_st *s = ST_OF(in, struct fsctx_st);
	s->nice = (int)rng_range(r, 1, 19);
	if (setpriority(PRIO_PROCESS, 0, s->nice) != 0)
		DIE("setpriority");
	describe(in, "%d", s->nice);
	return 0;
}

static void nice_check(struct inst *in, int final)
{
	(void)final;
	struct fsctx_st *s = ST_OF(in, struct fsctx_st);
	errno = 0;
	int now = getpriority(PRIO_PROCESS, 0);
	ICHECK(in, now == s->nice, "nice %d, expected %d", now, s->nice);
}

/* ---- prctl values a process sets on itself: one item each ------------------------------- */

struct prctl_st {
	int which;
	long value; /* what PR_GET_* said right after setting it */
	char name[16];
};

enum { P_COMM, P_SUBREAPER, P_DUMPABLE, P_NNP, P_THP, P_SLACK, P_KSM };

#define PR_SET_MEMORY_MERGE_ 67 /* linux/prctl.h, 6.4 */
#define PR_GET_MEMORY_MERGE_ 68

static long prctl_get(int which, char *name)
{
	int v = 0;
	switch (which) {
	case P_COMM:
		prctl(PR_GET_NAME, name);
		return 0;
	case P_SUBREAPER:
		prctl(PR_GET_CHILD_SUBREAPER, &v);
		return v;
	case P_DUMPABLE:
		return prctl(PR_GET_DUMPABLE);
	case P_NNP:
		return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	case P_THP:
		return prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	case P_KSM:
		return prctl(PR_GET_MEMORY_MERGE_, 0, 0, 0, 0);
	default:
		return prctl(PR_GET_TIMERSLACK);
	}
}

static int prctl_common(struct inst *in, struct rng *r, int which)
{
	struct prctl_st *s = ST_OF(in, struct prctl_st);
	s->which = which;
	switch (which) {
	case P_COMM:
		snprintf(s->name, sizeof(s->name), "fz%llx", (unsigned long long)(rng_next(r) & 0xffffff));
		prctl(PR_SET_NAME, s->name);
		break;
	case P_SUBREAPER:
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		break;
	case P_DUMPABLE:
		prctl(PR_SET_DUMPABLE, 0);
		break;
	case P_NNP:
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		break;
	case P_THP:
		prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
		break;
	case P_KSM:
		/* It marks every mapping mergeable (VmFlags mg), those other items recorded too:
		 * only as the seed's first item. */
		if (in->idx != 0 || prctl(PR_SET_MEMORY_MERGE_, 1, 0, 0, 0) != 0)
			return 1; /* a kernel without KSM */
		break;
	default:
		prctl(PR_SET_TIMERSLACK, (unsigned long)rng_range(r, 1, 1000000));
	}
	char name[17] = "";
	s->value = prctl_get(which, name);
	describe(in, "%s=%ld", which == P_COMM ? s->name : "value", s->value);
	return 0;
}

static void prctl_check(struct inst *in, int final)
{
	(void)final;
	struct prctl_st *s = ST_OF(in, struct prctl_st);
	char name[17] = "";
	long now = prctl_get(s->which, name);
	if (s->which == P_COMM)
		ICHECK(in, strcmp(name, s->name) == 0, "comm %s, expected %s", name, s->name);
	else
		ICHECK(in, now == s->value, "%s is %ld, expected %ld", in->item->name, now, s->value);
}

#define PRCTL_ITEM(fn, which)                                                                      \
	static int fn(struct inst *in, struct rng *r)                                              \
	{                                                                                          \
		return prctl_common(in, r, which);                                                 \
	}
PRCTL_ITEM(comm_build, P_COMM)
PRCTL_ITEM(subreaper_build, P_SUBREAPER)
PRCTL_ITEM(dumpable_build, P_DUMPABLE)
PRCTL_ITEM(nnp_build, P_NNP)
PRCTL_ITEM(thp_build, P_THP)
PRCTL_ITEM(slack_build, P_SLACK)
PRCTL_ITEM(ksm_build, P_KSM)

/* ---- where it runs: CPU affinity and I/O priority of the main thread ------------------------ */

struct placement_st {
	cpu_set_t cpus;
	int ioprio;
};

static int affinity_build(struct inst *in, struct rng *r)
{
	struct placement_st *s = ST_OF(in, struct placement_st);
	cpu_set_t all;
	if (sched_getaffinity(0, sizeof(all), &all) != 0)
		DIE("sched_getaffinity");
	if (CPU_COUNT(&all) < 2)
		return 1; /* nothing to choose from */
	do {
		CPU_ZERO(&s->cpus);
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &all) && rng_one_in(r, 2))
				CPU_SET(c, &s->cpus);
	} while (CPU_COUNT(&s->cpus) == 0 || CPU_EQUAL(&s->cpus, &all));
	if (sched_setaffinity(0, sizeof(s->cpus), &s->cpus) != 0)
		DIE("sched_setaffinity");
	describe(in, "%d cpus", CPU_COUNT(&s->cpus));
	return 0;
}

static void affinity_check(struct inst *in, int final)
{
	(void)final;
	struct placement_st *s = ST_OF(in, struct placement_st);
	cpu_set_t now;
	ICHECK(in, sched_getaffinity(0, sizeof(now), &now) == 0 && CPU_EQUAL(&now, &s->cpus), "affinity %d cpus, expected %d",
	       CPU_COUNT(&now), CPU_COUNT(&s->cpus));
}

static int ioprio_build(struct inst *in, struct rng *r)
{
	struct placement_st *s = ST_OF(in, struct placement_st);
	/* best-effort level 0-7 (class 2), or idle (class 3) */
	s->ioprio = rng_one_in(r, 4) ? 3 << 13 : (2 << 13) | (int)rng_range(r, 0, 7);
	if (syscall(SYS_ioprio_set, 1, 0, s->ioprio) != 0)
		DIE("ioprio_set");
	describe(in, "0x%x", s->ioprio);
	return 0;
}

static void ioprio_check(struct inst *in, int final)
{
	(void)final;
	struct placement_st *s = ST_OF(in, struct placement_st);
	long now = syscall(SYS_ioprio_get, 1, 0);
	ICHECK(in, now == s->ioprio, "ioprio 0x%lx, expected 0x%x", now, s->ioprio);
}

/* ---- speculation: a speculation control the process turned on (PR_SET_SPECULATION_CTRL) ------ */

struct spec_st {
	int which, ctrl;
	long value; /* what PR_GET_SPECULATION_CTRL said right after */
};

static int spec_build(struct inst *in, struct rng *r)
{
	struct spec_st *s = ST_OF(in, struct spec_st);
	static int taken; /* one instance per control: a later one would change an earlier's */
	s->which = (int)rng_below(r, 2); /* store bypass, indirect branch */
	if (taken & (1 << s->which))
		return 1;
	s->ctrl = rng_one_in(r, 2) ? 8 /* PR_SPEC_FORCE_DISABLE */ : 4 /* PR_SPEC_DISABLE */;
	long now = prctl(52 /* PR_GET_SPECULATION_CTRL */, s->which, 0, 0, 0);
	if (now < 0 || !(now & 1) || (now & 8))
		return 1; /* not the process's to choose on this CPU, or forced already */
	if (prctl(53 /* PR_SET_SPECULATION_CTRL */, s->which, s->ctrl, 0, 0) != 0)
		return 1;
	taken |= 1 << s->which;
	s->value = prctl(52, s->which, 0, 0, 0);
	describe(in, "which=%d ctrl=%d value=%ld", s->which, s->ctrl, s->value);
	return 0;
}

static void spec_check(struct inst *in, int final)
{
	(void)final;
	struct spec_st *s = ST_OF(in, struct spec_st);
	long now = prctl(52, s->which, 0, 0, 0);
	ICHECK(in, now == s->value, "speculation control %d is %ld, expected %ld", s->which, now, s->value);
}

/* ---- file-lock: flock, POSIX and OFD locks on a file of its own (dumped with --file-locks) - */

struct lock_st {
	int fd, kind;
	char path[300];
	char lines[512]; /* the fd's lock lines in fdinfo, without their ordinal */
};

static void lock_lines(int fd, char *out, size_t size)
{
	static char buf[16384];
	char p[64];
	out[0] = 0;
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	if (read_file(p, buf, sizeof(buf)) < 0)
		return;
	size_t n = 0;
	for (char *l = strstr(buf, "lock:"); l && n < size; l = strstr(l + 1, "lock:")) {
		char *colon = strchr(l + 5, ':'), *nl = strchr(l, '\n');
		if (!colon || !nl)
			break;
		n += (size_t)snprintf(out + n, size - n, "%.*s\n", (int)(nl - colon - 1), colon + 1);
	}
}

static int lock_build(struct inst *in, struct rng *r)
{
	struct lock_st *s = ST_OF(in, struct lock_st);
	snprintf(s->path, sizeof(s->path), "%slock%d", g_base, in->idx);
	s->fd = open(s->path, O_RDWR | O_CREAT, 0644);
	if (s->fd < 0 || ftruncate(s->fd, 65536) != 0)
		DIE("lock file");
	s->kind = (int)rng_below(r, 3);
	int excl = rng_one_in(r, 2);
	if (s->kind == 0) {
		if (flock(s->fd, excl ? LOCK_EX : LOCK_SH) != 0)
			DIE("flock");
		describe(in, "flock %s", excl ? "ex" : "sh");
	} else {
		int n = (int)rng_range(r, 1, 3);
		for (int i = 0; i < n; i++) {
			struct flock fl = { .l_type = (short)(rng_one_in(r, 2) ? F_WRLCK : F_RDLCK), .l_whence = SEEK_SET,
					    .l_start = (off_t)(i * 1000 + rng_below(r, 500)), .l_len = (off_t)rng_below(r, 400) + 1 };
			if (fcntl(s->fd, s->kind == 1 ? F_SETLK : F_OFD_SETLK, &fl) != 0)
				DIE("lock");
			describe(in, "%s %s %lld+%lld", s->kind == 1 ? "posix" : "ofd", fl.l_type == F_WRLCK ? "w" : "r",
				 (long long)fl.l_start, (long long)fl.l_len);
		}
	}
	s->fd = place_fd(r, s->fd);
	lock_lines(s->fd, s->lines, sizeof(s->lines));
	describe(in, "fd=%d", s->fd);
	return 0;
}

static void lock_check(struct inst *in, int final)
{
	(void)final;
	struct lock_st *s = ST_OF(in, struct lock_st);
	static char now[512];
	lock_lines(s->fd, now, sizeof(now));
	ICHECK(in, strcmp(now, s->lines) == 0, "fd %d locks:\n%s  expected:\n%s", s->fd, now, s->lines);
}

/* ---- seccomp: a filter that makes acct(2) fail with a chosen errno ------------------------ */

struct seccomp_st {
	int err;
};

static int seccomp_build(struct inst *in, struct rng *r)
{
	struct seccomp_st *s = ST_OF(in, struct seccomp_st);
	s->err = (int)rng_range(r, 1, 200);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_acct, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)s->err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		DIE("seccomp");
	describe(in, "acct->errno %d", s->err);
	return 0;
}

static void seccomp_check(struct inst *in, int final)
{
	(void)final;
	struct seccomp_st *s = ST_OF(in, struct seccomp_st);
	ICHECK(in, prctl(PR_GET_SECCOMP) == 2, "seccomp mode %d, expected 2 (filter)", prctl(PR_GET_SECCOMP));
	errno = 0;
	long rc = syscall(SYS_acct, NULL);
	ICHECK(in, rc == -1 && errno == s->err, "acct(NULL) returned %ld errno %d, expected errno %d", rc,
	       errno, s->err);
}

const struct item items_tasks[] = {
	{ "rlimit", 2, rlimit_build, rlimit_check, NULL },
	{ "rlimit-hard", 1, rlimit_hard_build, rlimit_check, NULL },
	{ "umask", 1, umask_build, umask_check, NULL },
	{ "cwd", 1, cwd_build, cwd_check, NULL },
	{ "nice", 1, nice_build, nice_check, NULL },
	{ "comm", 1, comm_build, prctl_check, NULL },
	{ "child-subreaper", 1, subreaper_build, prctl_check, NULL },
	{ "not-dumpable", 1, dumpable_build, prctl_check, NULL },
	{ "no-new-privs", 1, nnp_build, prctl_check, NULL },
	{ "thp-disable", 1, thp_build, prctl_check, NULL },
	{ "timerslack", 1, slack_build, prctl_check, NULL },
	{ "ksm-merge-any", 1, ksm_build, prctl_check, NULL },
	{ "cpu-affinity", 1, affinity_build, affinity_check, NULL },
	{ "ioprio", 1, ioprio_build, ioprio_check, NULL },
	{ "speculation", 2, spec_build, spec_check, NULL },
	{ "file-lock", 3, lock_build, lock_check, NULL },
	{ "seccomp", 1, seccomp_build, seccomp_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
