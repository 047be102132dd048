/*
 * fuzzstate: the catalogue of state builders and what they share.
 *
 * Every catalogue item has a build() that creates one instance of its kind of state from a PRNG
 * and records what it built in the instance (params in `desc`, everything the check needs in
 * `st`), and a check() that verifies exactly that state afterwards. check(in, 0) runs while the
 * original keeps running after a --leave-running dump and must not change anything (peek, never
 * consume); check(in, 1) is the last one, after restore, and may consume (read queues, reap).
 * A check reports through IFAIL, which names the item and instance so findings group by item.
 */
#ifndef FUZZSTATE_FUZZ_H
#define FUZZSTATE_FUZZ_H

#include "../common.h"

#include <signal.h>
#include <stddef.h>
#include <sys/stat.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* linux/signal.h: not in glibc's headers */
#endif

/* ---- deterministic PRNG (splitmix64) ------------------------------------------------------ */

struct rng {
	uint64_t s;
};

uint64_t rng_next(struct rng *r);
/* uniform in [0, n), n > 0 */
uint64_t rng_below(struct rng *r, uint64_t n);
/* uniform in [lo, hi] */
long rng_range(struct rng *r, long lo, long hi);
/* true with probability 1/n */
int rng_one_in(struct rng *r, int n);

/* ---- instances and items ------------------------------------------------------------------ */

#define INST_STATE 8192

struct item;

struct inst {
	const struct item *item;
	int idx; /* position in the seed's build order */
	char desc[240];
	/* the builder's own record; each item casts it to its struct (checked by ST_OF) */
	unsigned char st[INST_STATE] __attribute__((aligned(16)));
};

struct item {
	const char *name;
	int max; /* instances per seed at most */
	/* 0 built, 1 not possible in this seed (try another item); setup errors DIE */
	int (*build)(struct inst *in, struct rng *r);
	void (*check)(struct inst *in, int final);
	/* optional: once every item is built, record what later items changed (e.g. children
	 * attached to a segment) */
	void (*settle)(struct inst *in);
};

#define ST_OF(in, type)                                                                            \
	((type *)(void *)((in)->st + 0 * sizeof(char[sizeof(type) <= INST_STATE ? 1 : -1])))

/* desc: append printf-style params */
void describe(struct inst *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define IFAIL(in, fmt, ...) fail("%s#%d: " fmt, (in)->item->name, (in)->idx, ##__VA_ARGS__)
#define ICHECK(in, cond, fmt, ...)                                                                 \
	do {                                                                                       \
		if (!(cond))                                                                       \
			IFAIL(in, fmt, ##__VA_ARGS__);                                             \
	} while (0)

/* Item tables, one per source file, each ended by an entry with name == NULL. */
extern const struct item items_signals[], items_timers[], items_files[], items_pipes[],
	items_anonfds[], items_sockets[], items_memory[], items_tasks[], items_threads[], items_children[], items_scm_rights[],
	items_clones[], items_netopts[], items_process[], items_modes[], items_kobjs[], items_netmore[],
	items_threadstate[], items_vmas[];

/* Hooks of children.c: once everything is built; before the final exit. */
void finish_tasks(void);
void kill_children(void);
/* memory.c: remove the SysV segments it created (they outlive the process otherwise) */
void remove_shm_segments(void);

/* ---- shared resources --------------------------------------------------------------------- */

/* The target's original cwd (absolute, with a trailing '/'); every item creates files here. */
extern char g_base[256];
/* base + name into a static rotating buffer */
const char *base_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Signals that no two items share: returns 0 when the pool is exhausted. rt: only RT ones. */
int sig_alloc(struct rng *r, int rt);
/* Every signal sig_alloc may hand out, as a mask (bit s-1 for signal s). */
uint64_t sig_pool_mask(void);
/* What the main thread's mask and process-wide pending set must be once everything is built. */
extern sigset_t g_block, g_pending;
/* block now (main thread) and remember it for the final mask */
void block_now(int sig);

/* Move fd to a random free number (sparse tables): returns the new fd. */
int place_fd(struct rng *r, int fd);
/* Random extra fd flags: FD_CLOEXEC on or off. */
void random_cloexec(struct rng *r, int fd);

/* Read /proc/self/fdinfo/FD and return the text after "key" on its first line, or NULL. */
const char *fdinfo_value(int fd, const char *key);
/* The inode of what fd refers to (fstat), 0 on error. */
unsigned long fd_ino(int fd);
/* kcmp(KCMP_FILE) of two of our fds: 0 when they share one open file description */
int same_description(int a, int b);

/* Fill / verify a buffer with a pattern (any length). */
void fill_bytes(void *p, size_t len, uint64_t seed);
/* -1 when equal, else the first differing offset */
long check_bytes(const void *p, size_t len, uint64_t seed);
/* pread len bytes at off from fd and compare with the pattern: -1, the offset, or -2 (short) */
long check_fd_bytes(int fd, off_t off, size_t len, uint64_t seed);

#endif
