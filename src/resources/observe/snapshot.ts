// A task's observable state as data: what -> value, one map per process. The same shape holds
// what the kernel shows (read.ts) and what the images say it should show (restore/verify), so one
// comparison serves the check before a restored tree is released and the proof that a
// --leave-running dump left its target unchanged. Differences are data too ({pid, what,
// expected, got}), for the CLI's messages now and a JSON report later.

/**
 * A value: a plain string compared as is; a set of items (flags, signals, fds, mappings) compared
 * item by item, limited to `only` when given (the items the other side knows about); or, on the
 * expected side only, a lower bound (counters that may only grow, e.g. timerfd ticks).
 */
export type Value = string | { set: string[]; only?: string[] } | { atLeast: bigint };

/** what -> value, e.g. "fd 3 (pipe)" -> {set: ['O_RDONLY', 'O_NONBLOCK']}. */
export type Snapshot = Map<string, Value>;

export interface Difference {
  pid: number;
  /** What differs, as in the snapshot ("tid 43 SigBlk", "fd 3 (pipe)", "mapping 0x...-0x..."). */
  what: string;
  expected: string;
  got: string;
}

export function showValue(v: Value): string {
  if (typeof v === 'string') return v;
  if ('set' in v) return v.set.length ? v.set.join(' ') : '(none)';
  return `>= ${v.atLeast}`;
}

export interface DiffOptions {
  /** 'expected': only what the expected side names (images record only some things); 'both'. */
  keys: 'expected' | 'both';
  /** Keys that legitimately differ in this comparison (left out). */
  ignore?: (what: string) => boolean;
}

function diffValue(pid: number, what: string, want: Value, got: Value): Difference[] {
  if (typeof want === 'object' && 'set' in want) {
    if (typeof got !== 'object' || !('set' in got)) return [{ pid, what, expected: showValue(want), got: showValue(got) }];
    const have = new Set(got.set);
    const wanted = new Set(want.set);
    const out: Difference[] = [];
    for (const item of want.set) if (!have.has(item)) out.push({ pid, what, expected: item, got: 'absent' });
    const only = want.only ? new Set(want.only) : null;
    for (const item of got.set) if (!wanted.has(item) && (!only || only.has(item))) out.push({ pid, what, expected: `no ${item}`, got: item });
    return out;
  }
  if (typeof want === 'object' && 'atLeast' in want) {
    const n = typeof got === 'string' && /^\d+$/.test(got) ? BigInt(got) : null;
    return n !== null && n >= want.atLeast ? [] : [{ pid, what, expected: showValue(want), got: showValue(got) }];
  }
  const g = showValue(got);
  return want === g ? [] : [{ pid, what, expected: want, got: g }];
}

/** Everything that differs between the expected and the observed state of process `pid`. */
export function diffSnapshots(pid: number, expected: Snapshot, got: Snapshot, opts: DiffOptions): Difference[] {
  const out: Difference[] = [];
  const skip = opts.ignore ?? (() => false);
  for (const [what, want] of expected) {
    if (skip(what)) continue;
    const have = got.get(what);
    if (have === undefined) out.push({ pid, what, expected: showValue(want), got: 'absent' });
    else out.push(...diffValue(pid, what, want, have));
  }
  if (opts.keys === 'both') {
    for (const [what, have] of got) if (!expected.has(what) && !skip(what)) out.push({ pid, what, expected: 'absent', got: showValue(have) });
  }
  return out;
}

/** "pid 42 fd 3 (pipe): O_NONBLOCK expected, absent". */
export function formatDifference(d: Difference): string {
  return `pid ${d.pid} ${d.what}: ${d.expected} expected, ${d.got}`;
}
