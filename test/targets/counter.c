/*
 * counter: a process that keeps working through checkpoints.
 *
 * Increments a counter every 10 ms (kept in three places: a global, a stack variable and an
 * anonymous mapping, which must always agree) and prints "count N" every 100 ms. Each print
 * checks N is larger than the previous print (a reset or a rollback to older memory shows up
 * as FAIL). After go: the counter is larger than at READY and at the last print before go, the
 * three copies agree, and it still increments over the next 100 ms. The harness additionally
 * checks that the "count" lines in the log increase across the whole run.
 */
#include "common.h"

#include <sys/mman.h>

static volatile uint64_t counter;

int main(void)
{
	struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	volatile uint64_t *mapped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mapped == MAP_FAILED)
		DIE("mmap");
	volatile uint64_t on_stack = 0;
	uint64_t last_printed = 0, at_ready;
	int64_t next_print = mono_ns();

	for (int i = 0; i < 5; i++) {
		counter++;
		on_stack++;
		*mapped += 1;
		sleep_ms(10);
	}
	at_ready = counter;
	say("count %llu", (unsigned long long)counter);
	last_printed = counter;
	ready();

	while (!go_exists()) {
		counter++;
		on_stack++;
		*mapped += 1;
		if (counter != on_stack || counter != *mapped) {
			fail("copies disagree: global %llu stack %llu mapped %llu", (unsigned long long)counter,
			     (unsigned long long)on_stack, (unsigned long long)*mapped);
			return finish();
		}
		if (mono_ns() >= next_print) {
			if (counter <= last_printed) {
				fail("counter %llu is not above the last printed value %llu",
				     (unsigned long long)counter, (unsigned long long)last_printed);
				return finish();
			}
			say("count %llu", (unsigned long long)counter);
			last_printed = counter;
			next_print = mono_ns() + 100 * 1000000LL;
		}
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}

	uint64_t at_go = counter;
	say("count %llu (go)", (unsigned long long)at_go);
	CHECK(at_go > at_ready, "counter %llu at go is not above %llu at READY", (unsigned long long)at_go,
	      (unsigned long long)at_ready);
	CHECK(at_go >= last_printed, "counter %llu at go is below the last printed %llu",
	      (unsigned long long)at_go, (unsigned long long)last_printed);
	CHECK(counter == on_stack && counter == *mapped, "copies disagree at go");
	for (int i = 0; i < 10; i++) {
		counter++;
		sleep_ms(10);
	}
	CHECK(counter == at_go + 10, "counter did not keep incrementing");
	fdset_compare(&fds);
	return finish();
}
