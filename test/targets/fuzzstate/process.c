/* fuzzstate items: process-wide modes that /proc shows only in part, or not at all — future
 * memory locking (mlockall MCL_FUTURE), the scheduling policy with SCHED_RESET_ON_FORK, the
 * machine-check kill policy (PR_MCE_KILL), children reaped by the kernel (SIGCHLD ignored or
 * SA_NOCLDWAIT). */
#include "fuzz.h"
#include <sched.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/prctl.h>

/* ---- mlockall(MCL_FUTURE): every mapping made later is locked ------------------------------ */

struct mlockall_st {
	int onfault;
};

/* The VmFlags line of the mapping at addr, from /proc/self/smaps; "" when not found. */
static const char *vmflags_at(void *addr)
{
	static char flags[256];
	char line[512], head[32];
	snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	flags[0] = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		DIE("open smaps");
	int in = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, head, strlen(head)))
			in = 1;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, sizeof(flags), "%s", line + 8);
			break;
		}
	}
	fclose(f);
	return flags;
}

static int mlockall_build(struct inst *in, struct rng *r)
{
	struct mlockall_st *s = ST_OF(in, struct mlockall_st);
	/* MCL_FUTURE alone: the mappings of other items stay as they are; only new ones lock */
	s->onfault = rng_one_in(r, 2);
	if (mlockall(MCL_FUTURE | (s->onfault ? MCL_ONFAULT : 0)) != 0)
		return 1; /* no CAP_IPC_LOCK and a small RLIMIT_MEMLOCK */
	describe(in, "%s", s->onfault ? "future,onfault" : "future");
	return 0;
}

static void mlockall_check(struct inst *in, int final)
{
	(void)final;
	struct mlockall_st *s = ST_OF(in, struct mlockall_st);
	/* a fresh mapping shows it, and goes again: nothing changes for the next check */
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap");
	const char *f = vmflags_at(p);
	ICHECK(in, strstr(f, " lo") != NULL, "a new mapping is not locked (VmFlags:%s)", f);
	if (s->onfault)
		ICHECK(in, strstr(f, " lf") != NULL, "a new mapping is not locked on fault (VmFlags:%s)", f);
	else
		ICHECK(in, strstr(f, " lf") == NULL, "a new mapping is locked on fault (VmFlags:%s)", f);
	munmap(p, 4096);
}

/* ---- the scheduling policy, SCHED_RESET_ON_FORK included ----------------------------------- */

struct sched_st {
	int policy; /* as sched_getscheduler says, flag included */
};

static int sched_build(struct inst *in, struct rng *r)
{
	static const int policies[] = { SCHED_OTHER, SCHED_BATCH, SCHED_IDLE };
	struct sched_st *s = ST_OF(in, struct sched_st);
	int policy = policies[rng_below(r, 3)];
	if (policy == SCHED_OTHER || rng_one_in(r, 2))
		policy |= SCHED_RESET_ON_FORK;
	struct sched_param p = { 0 };
	if (sched_setscheduler(0, policy, &p) != 0)
		DIE("sched_setscheduler");
	s->policy = sched_getscheduler(0);
	describe(in, "0x%x", s->policy);
	return 0;
}

static void sched_check(struct inst *in, int final)
{
	(void)final;
	struct sched_st *s = ST_OF(in, struct sched_st);
	int now = sched_getscheduler(0);
	ICHECK(in, now == s->policy, "policy 0x%x, expected 0x%x", now, s->policy);
}

/* ---- PR_MCE_KILL: the machine-check kill policy of the main thread ------------------------ */

struct mce_st {
	int policy;
};

static int mce_build(struct inst *in, struct rng *r)
{
	struct mce_st *s = ST_OF(in, struct mce_st);
	int want = rng_one_in(r, 2) ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE;
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, want, 0, 0) != 0)
		return 1;
	s->policy = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	describe(in, "%s", s->policy == PR_MCE_KILL_EARLY ? "early" : "late");
	return 0;
}

static void mce_check(struct inst *in, int final)
{
	(void)final;
	struct mce_st *s = ST_OF(in, struct mce_st);
	int now = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	ICHECK(in, now == s->policy, "PR_MCE_KILL_GET %d, expected %d", now, s->policy);
}

/* ---- sigchld-ignore: exited children are reaped by the kernel, no zombie, wait gives ECHILD -- */

struct nocldwait_st {
	int how; /* 0 SIG_IGN, 1 a handler with SA_NOCLDWAIT */
	struct sigaction sa;
};

static void nocld_handler(int sig)
{
	(void)sig;
}

static int nocldwait_build(struct inst *in, struct rng *r)
{
	struct nocldwait_st *s = ST_OF(in, struct nocldwait_st);
	s->how = (int)rng_below(r, 2);
	describe(in, "%s", s->how ? "SA_NOCLDWAIT" : "SIG_IGN");
	return 0;
}

/* Once everything is built: other items fork and wait for helpers while they build, and their
 * zombies stay (ignoring SIGCHLD reaps only the children that exit from now on). */
static void nocldwait_settle(struct inst *in)
{
	struct nocldwait_st *s = ST_OF(in, struct nocldwait_st);
	struct sigaction sa = { 0 };
	sa.sa_handler = s->how ? nocld_handler : SIG_IGN;
	sa.sa_flags = s->how ? SA_NOCLDWAIT | SA_RESTART : 0;
	if (sigaction(SIGCHLD, &sa, NULL) != 0)
		DIE("sigaction SIGCHLD");
	sigaction(SIGCHLD, NULL, &s->sa);
}

static void nocldwait_check(struct inst *in, int final)
{
	struct nocldwait_st *s = ST_OF(in, struct nocldwait_st);
	struct sigaction now;
	sigaction(SIGCHLD, NULL, &now);
	ICHECK(in, now.sa_handler == s->sa.sa_handler && (now.sa_flags & SA_NOCLDWAIT) == (s->sa.sa_flags & SA_NOCLDWAIT),
	       "SIGCHLD handler %p flags 0x%x, expected %p 0x%x", (void *)now.sa_handler, now.sa_flags,
	       (void *)s->sa.sa_handler, s->sa.sa_flags);
	if (!final)
		return;
	/* a child that exits now is reaped by the kernel: waiting for it ends with ECHILD */
	pid_t c = fork();
	if (c < 0)
		DIE("fork");
	if (c == 0)
		_exit(3);
	errno = 0;
	pid_t w = waitpid(c, NULL, 0);
	ICHECK(in, w < 0 && errno == ECHILD, "waitpid of an exited child gave %d (%s): it was left a zombie", w, strerror(errno));
}

const struct item items_process[] = {
	{ "sigchld-ignore", 1, nocldwait_build, nocldwait_check, nocldwait_settle },
	{ "mlockall-future", 1, mlockall_build, mlockall_check, NULL },
	{ "sched-policy", 1, sched_build, sched_check, NULL },
	{ "mce-kill", 1, mce_build, mce_check, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};
