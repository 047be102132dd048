// Fault injection of the other kind: CRYO_SKIP=<step>[,<step>...] makes the restore (or the
// dump) silently leave out one thing it should do (the first time it would do it), so tests can
// prove that the verification before release notices (restore/verify.ts; for a --leave-running
// dump, dump/unchanged.ts). Unlike CRYO_FAIL_AT nothing throws: the work goes on, wrong.

export const SKIP_STEPS = [
  // pipeEnd: the first pipe end whose image flags have O_NONBLOCK gets it without.
  'pipe-nonblock',
  // restoreMemory: the first VMA to be made read-only again after its fill stays writable.
  'mprotect',
  // restoreSigactions: the first signal with a handler keeps the default disposition.
  'sigaction',
  // restoreSkOpts: the first socket whose SO_RCVBUF differs from a fresh one keeps the default.
  'sk-rcvbuf',
  // restoreSkOpts: the first socket with options beyond CRIU's set (cryo_opts) gets none of them.
  'sk-proto-opts',
  // SafeRemote.restore: the first task's injected-call area stays mapped in it (a dump's damage).
  'scratch-unmap',
  // addRoutes: the first saved route of the tree's network namespace is not sent.
  'netns-route',
  // applyPropagation: the first mount that was a slave and in no peer group of its own stays private.
  'mnt-propagation',
  // makeUserns: the maker unshares the UTS namespace before the user namespace (owned by cryo's then).
  'userns-owner',
] as const;

export type SkipStep = (typeof SKIP_STEPS)[number];

const done = new Set<SkipStep>();

/** True once (the first call for `step`) when CRYO_SKIP names it: the caller leaves it out. */
export function skip(step: SkipStep): boolean {
  if (done.has(step) || !(process.env.CRYO_SKIP ?? '').split(',').includes(step)) return false;
  done.add(step);
  return true;
}

/** `bits` when `when` holds them and skip(step) says to leave them out, else 0: `x & ~skipBits(...)`. */
export function skipBits(step: SkipStep, when: number, bits: number): number {
  return (when & bits) === bits && skip(step) ? bits : 0;
}
