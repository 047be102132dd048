/*
 * fuzzstate: from a seed, build a random combination of the state cryo checkpoints, then check
 * all of it.
 *
 * usage: fuzzstate SEED [-x item,item...] [-o item,item...] [-k MIN-MAX]
 *   -x  never build these items (the harness passes its known-broken list)
 *   -o  build only these items
 *   -k  how many instances to build (default 5-25)
 *
 * A splitmix64 stream from SEED picks the items (fuzzstate/items-*.c); each instance gets its
 * own stream (seed and position), so its parameters do not depend on what came before. Prints
 * `built: NAME#I(params)` per instance, then READY. Then, in its cwd:
 *   file `check` appears -> checks everything without changing anything, removes `check`,
 *                           prints `CHECKED ok` or `CHECKED FAIL` (after `detail:` lines);
 *   file `go` appears    -> the last check (may consume queues, reap zombies), kills its own
 *                           children, prints PASS or FAIL and exits.
 * Every detail line starts with `NAME#I:` (or `fuzz:` for the process-wide checks: the fd table,
 * the main thread's signal mask and pending set, its session), so findings group by item.
 * This file is the whole program: it includes the item files (one translation unit, so the
 * failure accounting in common.h is shared).
 */
#include "fuzzstate/fuzz.h"

#include "fuzzstate/util.c"
#include "fuzzstate/signals.c"
#include "fuzzstate/timers.c"
#include "fuzzstate/files.c"
#include "fuzzstate/pipes.c"
#include "fuzzstate/anonfds.c"
#include "fuzzstate/sockets.c"
#include "fuzzstate/scm_rights.c"
#include "fuzzstate/regions.c"
#include "fuzzstate/memory.c"
#include "fuzzstate/tasks.c"
#include "fuzzstate/threads.c"
#include "fuzzstate/children.c"
#include "fuzzstate/clones.c"
#include "fuzzstate/netopts.c"
#include "fuzzstate/process.c"
#include "fuzzstate/modes.c"
#include "fuzzstate/kobjs.c"
#include "fuzzstate/netmore.c"
#include "fuzzstate/threadstate.c"
#include "fuzzstate/vmas.c"

#define MAX_INSTANCES 40

static const struct item *const *catalogue_tables(void)
{
	static const struct item *const tables[] = { items_signals, items_timers, items_files,
						     items_pipes, items_anonfds, items_sockets,
						     items_memory, items_tasks, items_threads, items_children, items_scm_rights,
						     items_clones, items_netopts, items_process, items_modes,
						     items_kobjs, items_netmore, items_threadstate, items_vmas,
						     NULL };
	return tables;
}

static int in_list(const char *list, const char *name)
{
	if (!list)
		return 0;
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0)
			return 1;
		if (!c)
			break;
		p = c + 1;
	}
	return 0;
}

static struct inst insts[MAX_INSTANCES];
static int n_insts;
static struct fdset fds_built;
static char check_path[300], go_file[300];

/* Process-wide state that several items contribute to. */
static void check_process(int final)
{
	(void)final;
	sigset_t mask, pend;
	sigprocmask(SIG_BLOCK, NULL, &mask);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && sigismember(&mask, s) != sigismember(&g_block, s))
			fail("fuzz: signal %d is %s in the main thread's mask", s,
			     sigismember(&mask, s) ? "blocked" : "not blocked");
	sigpending(&pend);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&pend, s) != sigismember(&g_pending, s))
			fail("fuzz: signal %d is %s", s, sigismember(&pend, s) ? "pending" : "not pending");
	CHECK(getsid(0) == getpid() && getpgid(0) == getpid(), "fuzz: sid %d pgid %d, expected %d",
	      getsid(0), getpgid(0), getpid());
	fdset_compare(&fds_built);
}

static int run_checks(int final)
{
	int before = fail_count_;
	/* in reverse build order: a later item may depend on an earlier one's state */
	for (int i = n_insts - 1; i >= 0; i--)
		insts[i].item->check(&insts[i], final);
	/* the queues were consumed by the final checks: nothing is expected pending any more */
	if (!final)
		check_process(0);
	return fail_count_ - before;
}

static void build_all(uint64_t seed, const char *exclude, const char *only, int kmin, int kmax)
{
	const struct item *cands[128];
	int counts[128] = { 0 }, nc = 0;
	for (const struct item *const *t = catalogue_tables(); *t; t++)
		for (const struct item *it = *t; it->name; it++)
			if (!in_list(exclude, it->name) && (!only || in_list(only, it->name)) && nc < 128)
				cands[nc++] = it;
	if (!nc)
		DIE("no catalogue item is enabled");
	struct rng r = { seed };
	int k = (int)rng_range(&r, kmin, kmax);
	for (int attempts = 0; n_insts < k && n_insts < MAX_INSTANCES && attempts < 20 * k; attempts++) {
		int c = (int)rng_below(&r, (uint64_t)nc);
		if (counts[c] >= cands[c]->max)
			continue;
		struct inst *in = &insts[n_insts];
		memset(in, 0, sizeof(*in));
		in->item = cands[c];
		in->idx = n_insts;
		struct rng ir = { mix64(seed) ^ mix64((uint64_t)n_insts + 1) };
		if (cands[c]->build(in, &ir) != 0)
			continue;
		counts[c]++;
		say("built: %s#%d(%s)", in->item->name, in->idx, in->desc);
		n_insts++;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		DIE("usage: fuzzstate SEED [-x items] [-o items] [-k MIN-MAX]");
	uint64_t seed = strtoull(argv[1], NULL, 0);
	const char *exclude = NULL, *only = NULL;
	int kmin = 5, kmax = 25;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-x"))
			exclude = argv[i + 1];
		else if (!strcmp(argv[i], "-o"))
			only = argv[i + 1];
		else if (!strcmp(argv[i], "-k") && sscanf(argv[i + 1], "%d-%d", &kmin, &kmax) == 2)
			;
		else
			DIE("unknown option %s", argv[i]);
	}
	if (!getcwd(g_base, sizeof(g_base) - 2))
		DIE("getcwd");
	strcat(g_base, "/");
	snprintf(check_path, sizeof(check_path), "%scheck", g_base);
	snprintf(go_file, sizeof(go_file), "%sgo", g_base);
	go_path = go_file;
	sigemptyset(&g_block);
	sigemptyset(&g_pending);

	build_all(seed, exclude, only, kmin, kmax);
	/* the main thread's final mask: everything the items blocked, nothing else */
	sigprocmask(SIG_SETMASK, &g_block, NULL);
	finish_tasks();
	for (int i = 0; i < n_insts; i++)
		if (insts[i].item->settle)
			insts[i].item->settle(&insts[i]);
	fdset_take(&fds_built);
	say("built %d items from seed %llu", n_insts, (unsigned long long)seed);
	ready();

	struct timespec tick = { 0, 10 * 1000000L };
	for (;;) {
		if (access(check_path, F_OK) == 0) {
			int bad = run_checks(0);
			unlink(check_path);
			say("CHECKED %s", bad ? "FAIL" : "ok");
		}
		if (go_exists())
			break;
		nanosleep(&tick, NULL);
	}
	check_process(1);
	run_checks(1);
	kill_children();
	finish();
}
