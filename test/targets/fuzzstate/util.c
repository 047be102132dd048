/* fuzzstate helpers shared by the item files: PRNG, signal pool, fd placement, fdinfo. */
#include "fuzz.h"

#include <linux/kcmp.h>
#include <stdarg.h>

uint64_t rng_next(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	uint64_t z = r->s;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

long rng_range(struct rng *r, long lo, long hi)
{
	return lo + (long)rng_below(r, (uint64_t)(hi - lo + 1));
}

int rng_one_in(struct rng *r, int n)
{
	return rng_below(r, (uint64_t)n) == 0;
}

void describe(struct inst *in, const char *fmt, ...)
{
	size_t n = strlen(in->desc);
	if (n + 2 >= sizeof(in->desc))
		return;
	if (n)
		in->desc[n++] = ' ';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(in->desc + n, sizeof(in->desc) - n, fmt, ap);
	va_end(ap);
}

char g_base[256];

const char *base_path(const char *fmt, ...)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];
	size_t n = (size_t)snprintf(b, sizeof(bufs[0]), "%s", g_base);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b + n, sizeof(bufs[0]) - n, fmt, ap);
	va_end(ap);
	return b;
}

/* ---- signals ------------------------------------------------------------------------------ */

sigset_t g_block, g_pending;
static sigset_t sig_used;

/* Standard signals nothing else in the target relies on (SIGIO is F_SETOWN's default, SIGCHLD
 * comes from the children, SIGALRM/SIGVTALRM/SIGPROF belong to the interval timers). */
static const int std_pool[] = { SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH, SIGURG, SIGPIPE, SIGTTIN,
				SIGTTOU, SIGXCPU, SIGXFSZ, SIGPWR, SIGSYS };

int sig_alloc(struct rng *r, int rt)
{
	int cand[64], n = 0;
	if (!rt)
		for (size_t i = 0; i < sizeof(std_pool) / sizeof(std_pool[0]); i++)
			if (!sigismember(&sig_used, std_pool[i]))
				cand[n++] = std_pool[i];
	for (int s = SIGRTMIN + 2; s <= SIGRTMAX; s++)
		if (!sigismember(&sig_used, s))
			cand[n++] = s;
	if (!n)
		return 0;
	int s = cand[rng_below(r, (uint64_t)n)];
	sigaddset(&sig_used, s);
	return s;
}

uint64_t sig_pool_mask(void)
{
	uint64_t m = 0;
	for (size_t i = 0; i < sizeof(std_pool) / sizeof(std_pool[0]); i++)
		m |= 1ULL << (std_pool[i] - 1);
	for (int s = SIGRTMIN + 2; s <= SIGRTMAX; s++)
		m |= 1ULL << (s - 1);
	return m;
}

void block_now(int sig)
{
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_BLOCK, &one, NULL);
	sigaddset(&g_block, sig);
}

/* ---- fds ---------------------------------------------------------------------------------- */

int place_fd(struct rng *r, int fd)
{
	if (rng_one_in(r, 2))
		return fd;
	for (int tries = 0; tries < 20; tries++) {
		int to = (int)rng_range(r, 10, 900);
		if (fcntl(to, F_GETFD) >= 0)
			continue;
		int fdflags = fcntl(fd, F_GETFD);
		if (dup3(fd, to, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
			DIE("dup3 %d -> %d", fd, to);
		close(fd);
		return to;
	}
	return fd;
}

void random_cloexec(struct rng *r, int fd)
{
	fcntl(fd, F_SETFD, rng_one_in(r, 2) ? FD_CLOEXEC : 0);
}

const char *fdinfo_value(int fd, const char *key)
{
	static char buf[65536];
	static char line[4096];
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return NULL;
	size_t kl = strlen(key);
	for (char *p = buf; *p;) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len >= kl && memcmp(p, key, kl) == 0) {
			size_t vl = len - kl;
			if (vl >= sizeof(line))
				vl = sizeof(line) - 1;
			memcpy(line, p + kl, vl);
			line[vl] = 0;
			char *v = line;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return NULL;
}

unsigned long fd_ino(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

int same_description(int a, int b)
{
	pid_t me = getpid();
	return (int)syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

/* ---- patterns of any length --------------------------------------------------------------- */

void fill_bytes(void *p, size_t len, uint64_t seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < len; i++)
		c[i] = (unsigned char)(mix64(seed * 0x100000001b3ULL + i / 8) >> (8 * (i % 8)));
}

long check_bytes(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < len; i++)
		if (c[i] != (unsigned char)(mix64(seed * 0x100000001b3ULL + i / 8) >> (8 * (i % 8))))
			return (long)i;
	return -1;
}

long check_fd_bytes(int fd, off_t off, size_t len, uint64_t seed)
{
	static unsigned char buf[1 << 20];
	if (len > sizeof(buf))
		return -2;
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n <= 0)
			return -2;
		got += (size_t)n;
	}
	return check_bytes(buf, len, seed);
}
