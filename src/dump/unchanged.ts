// `dump --leave-running` must leave the tree as it found it. The proof: the observable state of
// every task (resources/observe) read before the freeze and again after the release, compared.
// A difference is an error (the images are complete all the same): the dump changed its target.
import { observeProcess, treePids } from '../resources/observe/read.js';
import { diffSnapshots, formatDifference, type Difference, type Snapshot } from '../resources/observe/snapshot.js';
import type { Log } from '../util/log.js';

export type TreeSnapshot = Map<number, Snapshot>;

/** Every live process of the tree under `root`, observed (a task gone meanwhile is left out). */
export function snapshotTree(root: number): TreeSnapshot {
  const out: TreeSnapshot = new Map();
  for (const pid of treePids(root)) {
    try {
      out.set(pid, observeProcess(pid, { sockets: true, unrecorded: true }));
    } catch {
      /* gone (or a zombie without fds) while we looked */
    }
  }
  return out;
}

/**
 * What legitimately changes while a running target is looked at twice: signals in flight, timer
 * expirations, and the position of files it appends to (its own writes move it).
 */
function volatileIn(before: Snapshot): (what: string) => boolean {
  return (what) => {
    if (/(^|tid \d+ )(SigPnd|ShdPnd)$/.test(what) || what.endsWith(' ticks')) return true;
    const pos = /^(fd \d+ \(\w+\)) pos$/.exec(what);
    if (!pos) return false;
    const flags = before.get(pos[1]!);
    return typeof flags === 'object' && 'set' in flags && flags.set.includes('O_APPEND');
  };
}

/**
 * Differences between two snapshots of the same tree, for the processes in both. Which processes
 * and threads there are is left out: a program that starts and ends them all the time (a job
 * runner, a thread pool) does so by itself, and a natural exit cannot be told from one the dump
 * caused by looking at the tree (the crash-safety tests are what show a dump kills nothing).
 */
export function treeChanges(before: TreeSnapshot, after: TreeSnapshot): Difference[] {
  const out: Difference[] = [];
  for (const [pid, b] of before) {
    const a = after.get(pid);
    if (!a) continue;
    const ignore = volatileIn(b);
    out.push(...diffSnapshots(pid, b, a, { keys: 'both', ignore: (what) => what === 'threads' || /^tid \d+ /.test(what) && !(a.has(what) && b.has(what)) || ignore(what) }));
  }
  return out;
}

/** The dump changed what it should have left alone; the images are complete. */
export class ChangedByDumpError extends Error {
  constructor(readonly differences: Difference[]) {
    const shown = differences.slice(0, 5).map(formatDifference).join('; ');
    const more = differences.length > 5 ? ` (and ${differences.length - 5} more)` : '';
    super(`dump --leave-running changed the running tree (the images are complete): ${shown}${more}`);
    this.name = 'ChangedByDumpError';
  }
}

/** Runs `dump` (which releases the tree) between two snapshots; throws if they differ. */
export function provenUnchanged<T>(root: number, log: Log, dump: () => T): T {
  const before = snapshotTree(root);
  const result = dump();
  const t0 = performance.now();
  const changes = treeChanges(before, snapshotTree(root));
  log.info(`--leave-running: ${before.size} tasks compared before and after the dump in ${(performance.now() - t0).toFixed(1)} ms: ${changes.length} differences`);
  for (const d of changes) log.error(`changed by the dump: ${formatDifference(d)}`);
  if (changes.length) throw new ChangedByDumpError(changes);
  return result;
}
