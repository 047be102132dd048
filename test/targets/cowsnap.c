/*
 * cowsnap: memory written without pause, so that a --leave-running dump's image must be the
 * memory of one instant (the freeze), not pages read at different times while it ran on.
 *
 * 64 MiB of private anonymous pages (argv[1] MiB if given), then 16 pages of a MADV_WIPEONFORK
 * mapping and 16 of a MADV_DONTFORK mapping (a fork gives a child none of their contents): one
 * sequence of pages k = 0..K-1. Round G writes {G, k} at the start of every page in order and
 * then notes cur = {G, k}; before writing page k it checks that the page holds {G-1, k} — what
 * round G-1 left there. So at every instant the pages before cur hold round G, those after it
 * round G-1. An image in which a page was read after the freeze has a page ahead of cur already
 * at round G: the restored process finds it on its way and fails, naming the page. With idx in
 * each page, a page restored at the wrong place fails too.
 *
 * After go: one more full round (every page checked once since the restore), then PASS.
 */
#include "common.h"

#include <sys/mman.h>

#define PG 4096UL
#define N_SPECIAL 16

struct stamp {
	uint64_t gen;
	uint64_t idx;
};

static char **pages;
static size_t npages;

static volatile uint64_t cur_gen, cur_idx;

static char *map_pages(size_t n, int advice)
{
	char *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap %zu pages", n);
	if (advice >= 0 && madvise(p, n * PG, advice) != 0)
		DIE("madvise %d", advice);
	return p;
}

/* One round: every page checked against the last round, then stamped with this one. */
static void round_of(uint64_t g)
{
	for (size_t k = 0; k < npages; k++) {
		volatile struct stamp *s = (volatile struct stamp *)pages[k];
		if (g > 1 && (s->gen != g - 1 || s->idx != k)) {
			fail("round %llu: page %zu of %zu holds {%llu, %llu}, wanted {%llu, %zu} (cur was {%llu, %llu})",
			     (unsigned long long)g, k, npages, (unsigned long long)s->gen, (unsigned long long)s->idx,
			     (unsigned long long)(g - 1), k, (unsigned long long)cur_gen, (unsigned long long)cur_idx);
			finish();
		}
		s->gen = g;
		s->idx = k;
		cur_idx = k;
		cur_gen = g;
	}
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 64;
	size_t nbig = mib * 256;
	npages = nbig + 2 * N_SPECIAL;
	pages = malloc(npages * sizeof(*pages));
	if (!pages)
		DIE("malloc");
	char *big = map_pages(nbig, MADV_NOHUGEPAGE);
	char *wipe = map_pages(N_SPECIAL, MADV_WIPEONFORK);
	char *keep = map_pages(N_SPECIAL, MADV_DONTFORK);
	for (size_t k = 0; k < nbig; k++)
		pages[k] = big + k * PG;
	for (size_t k = 0; k < N_SPECIAL; k++) {
		pages[nbig + k] = wipe + k * PG;
		pages[nbig + N_SPECIAL + k] = keep + k * PG;
	}
	uint64_t g = 1;
	round_of(g++);
	ready();
	while (!go_exists())
		round_of(g++);
	/* Two rounds: the one go came in, and one whole round after it. */
	round_of(g++);
	round_of(g++);
	say("rounds %llu", (unsigned long long)g - 1);
	return finish();
}
