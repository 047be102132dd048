/*
 * task: per-process attributes.
 *
 * Sets: cwd = "./work dir/sub" (a path with a space), umask 027, RLIMIT_NOFILE soft 512,
 * RLIMIT_CORE {1 MiB, 4 MiB}, RLIMIT_STACK soft 16 MiB, personality ADDR_NO_RANDOMIZE (only
 * affects the next exec: harmless), comm "cryo-task" (PR_SET_NAME), PR_SET_PDEATHSIG SIGUSR2
 * (with a handler that counts deliveries), PR_SET_DUMPABLE 0, nice 5, and drops CAP_SYS_BOOT from
 * the capability bounding set.
 * After go it compares: cwd (path and dev/ino), umask, all 16 rlimits, personality, comm,
 * pdeathsig and that it was never delivered, dumpable, nice, pid/sid/pgid (sid == pgid == pid),
 * uids/gids/groups, the /proc/self/status lines Umask, Uid, Gid, Groups, Cap*, NoNewPrivs and
 * Seccomp, the /proc/self/exe link, and the exact bytes of /proc/self/cmdline, environ and auxv
 * (these come from the mm fields the engine restores with PR_SET_MM_MAP).
 */
#include "common.h"

#include <grp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

static volatile sig_atomic_t pdeath_hits;
static void h_usr2(int s) { (void)s; pdeath_hits++; }

struct snap {
	char cwd[4096];
	dev_t cwd_dev;
	ino_t cwd_ino;
	struct rlimit rl[RLIM_NLIMITS];
	int persona;
	char comm[32];
	int pdeathsig;
	int dumpable;
	int nice;
	pid_t pid, sid, pgid;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ngroups;
	gid_t groups[64];
	char status[2048];
	char exe[4096];
	char cmdline[8192];
	ssize_t cmdline_len;
	char environ_[16384];
	ssize_t environ_len;
	char auxv[4096];
	ssize_t auxv_len;
};

static struct snap before, after;

static void status_lines(char *out, size_t size)
{
	static char st[16384];
	out[0] = 0;
	if (read_file("/proc/self/status", st, sizeof(st)) < 0)
		return;
	static const char *keep[] = { "Umask:", "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:",
				      "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:" };
	size_t o = 0;
	for (char *l = st; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			if (strncmp(l, keep[i], strlen(keep[i])) == 0)
				o += (size_t)snprintf(out + o, size - o, "%s\n", l);
		l = nl ? nl + 1 : NULL;
	}
}

static void take(struct snap *s)
{
	memset(s, 0, sizeof(*s));
	if (!getcwd(s->cwd, sizeof(s->cwd)))
		strcpy(s->cwd, "<getcwd failed>");
	struct stat d;
	if (stat(".", &d) == 0) {
		s->cwd_dev = d.st_dev;
		s->cwd_ino = d.st_ino;
	}
	for (int i = 0; i < RLIM_NLIMITS; i++)
		getrlimit(i, &s->rl[i]);
	s->persona = personality(0xffffffff);
	prctl(PR_GET_NAME, s->comm);
	prctl(PR_GET_PDEATHSIG, &s->pdeathsig);
	s->dumpable = prctl(PR_GET_DUMPABLE);
	errno = 0;
	s->nice = getpriority(PRIO_PROCESS, 0);
	s->pid = getpid();
	s->sid = getsid(0);
	s->pgid = getpgid(0);
	getresuid(&s->ru, &s->eu, &s->su);
	getresgid(&s->rg, &s->eg, &s->sg);
	s->ngroups = getgroups(64, s->groups);
	status_lines(s->status, sizeof(s->status));
	ssize_t n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	if (n >= 0)
		s->exe[n] = 0;
	s->cmdline_len = read_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = read_file("/proc/self/environ", s->environ_, sizeof(s->environ_));
	s->auxv_len = read_file("/proc/self/auxv", s->auxv, sizeof(s->auxv));
}

static const char *rlname(int i)
{
	static const char *n[] = { "CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
				   "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO",
				   "RTTIME" };
	return i < 16 ? n[i] : "?";
}

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");

	/* the go file stays in the starting dir: watch it by absolute path */
	static char go_abs[4200];
	if (!getcwd(go_abs, 4096))
		DIE("getcwd");
	strcat(go_abs, "/go");
	go_path = go_abs;
	if (mkdir("work dir", 0755) < 0 || mkdir("work dir/sub", 0755) < 0 || chdir("work dir/sub") < 0)
		DIE("cwd");
	umask(027);
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	r.rlim_cur = 512;
	if (setrlimit(RLIMIT_NOFILE, &r) < 0)
		DIE("RLIMIT_NOFILE");
	r.rlim_cur = 1 << 20;
	r.rlim_max = 4 << 20;
	if (setrlimit(RLIMIT_CORE, &r) < 0)
		DIE("RLIMIT_CORE");
	getrlimit(RLIMIT_STACK, &r);
	r.rlim_cur = 16 << 20;
	if (r.rlim_max != RLIM_INFINITY && r.rlim_max < r.rlim_cur)
		r.rlim_cur = r.rlim_max;
	if (setrlimit(RLIMIT_STACK, &r) < 0)
		DIE("RLIMIT_STACK");
	if (personality(ADDR_NO_RANDOMIZE) < 0)
		DIE("personality");
	if (prctl(PR_SET_NAME, "cryo-task") < 0)
		DIE("PR_SET_NAME");
	signal(SIGUSR2, h_usr2);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2) < 0)
		DIE("PR_SET_PDEATHSIG");
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		DIE("PR_SET_DUMPABLE");
	if (setpriority(PRIO_PROCESS, 0, 5) < 0)
		DIE("setpriority");
	if (prctl(PR_CAPBSET_DROP, 22 /* CAP_SYS_BOOT */) < 0)
		say("task: PR_CAPBSET_DROP failed (%s), bounding set left as is", strerror(errno));
	if (write_file("marker", "m", 1) < 0)
		DIE("marker");

	take(&before);
	if (before.sid != before.pid || before.pgid != before.pid)
		DIE("not a session leader: pid %d sid %d pgid %d (the harness must use setsid)", before.pid,
		    before.sid, before.pgid);
	ready();
	wait_go();
	take(&after);

	CHECK(strcmp(before.cwd, after.cwd) == 0, "cwd is '%s', expected '%s'", after.cwd, before.cwd);
	CHECK(before.cwd_dev == after.cwd_dev && before.cwd_ino == after.cwd_ino,
	      "cwd dev/ino changed");
	CHECK(access("marker", F_OK) == 0, "file created in cwd at setup is not visible in cwd");
	mode_t um = umask(0);
	umask(um);
	CHECK(um == 027, "umask is 0%o, expected 027", um);
	for (int i = 0; i < RLIM_NLIMITS; i++)
		CHECK(before.rl[i].rlim_cur == after.rl[i].rlim_cur &&
			      before.rl[i].rlim_max == after.rl[i].rlim_max,
		      "RLIMIT_%s is {%llu, %llu}, expected {%llu, %llu}", rlname(i),
		      (unsigned long long)after.rl[i].rlim_cur, (unsigned long long)after.rl[i].rlim_max,
		      (unsigned long long)before.rl[i].rlim_cur, (unsigned long long)before.rl[i].rlim_max);
	CHECK(before.persona == after.persona, "personality is 0x%x, expected 0x%x", after.persona,
	      before.persona);
	CHECK(strcmp(before.comm, after.comm) == 0, "comm is '%s', expected '%s'", after.comm, before.comm);
	CHECK(after.pdeathsig == SIGUSR2, "pdeathsig is %d, expected %d", after.pdeathsig, SIGUSR2);
	CHECK(pdeath_hits == 0, "the parent-death signal was delivered %d time(s)", (int)pdeath_hits);
	CHECK(after.dumpable == before.dumpable, "dumpable is %d, expected %d", after.dumpable,
	      before.dumpable);
	CHECK(after.nice == before.nice, "nice is %d, expected %d", after.nice, before.nice);
	CHECK(after.pid == before.pid, "pid is %d, expected %d", after.pid, before.pid);
	CHECK(after.sid == before.sid && after.pgid == before.pgid, "sid/pgid are %d/%d, expected %d/%d",
	      after.sid, after.pgid, before.sid, before.pgid);
	CHECK(after.ru == before.ru && after.eu == before.eu && after.su == before.su &&
		      after.rg == before.rg && after.eg == before.eg && after.sg == before.sg,
	      "uids/gids changed");
	CHECK(after.ngroups == before.ngroups &&
		      memcmp(after.groups, before.groups, sizeof(gid_t) * (size_t)(before.ngroups > 0 ? before.ngroups : 0)) == 0,
	      "supplementary groups changed");
	if (strcmp(before.status, after.status) != 0) {
		say("detail: status before:\n%s", before.status);
		say("detail: status after:\n%s", after.status);
		fail("/proc/self/status credentials/umask/seccomp lines differ (printed above)");
	}
	CHECK(strcmp(before.exe, after.exe) == 0, "/proc/self/exe is '%s', expected '%s'", after.exe,
	      before.exe);
	CHECK(before.cmdline_len == after.cmdline_len &&
		      memcmp(before.cmdline, after.cmdline, (size_t)(before.cmdline_len > 0 ? before.cmdline_len : 0)) == 0,
	      "/proc/self/cmdline differs (%zd vs %zd bytes)", after.cmdline_len, before.cmdline_len);
	CHECK(before.environ_len == after.environ_len &&
		      memcmp(before.environ_, after.environ_, (size_t)(before.environ_len > 0 ? before.environ_len : 0)) == 0,
	      "/proc/self/environ differs (%zd vs %zd bytes)", after.environ_len, before.environ_len);
	CHECK(before.auxv_len == after.auxv_len &&
		      memcmp(before.auxv, after.auxv, (size_t)(before.auxv_len > 0 ? before.auxv_len : 0)) == 0,
	      "/proc/self/auxv differs (%zd vs %zd bytes)", after.auxv_len, before.auxv_len);
	fdset_compare(&fds);
	return finish();
}
