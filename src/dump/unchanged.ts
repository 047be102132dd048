// `dump --leave-running` must leave the tree as it found it. The proof: the observable state of
// every task (resources/observe) read under the freeze before the dump touches it and again once
// it is put back, compared. A difference is an error (the images are complete all the same):
// the dump changed its target.
import { readFileSync } from 'node:fs';
import { parseStat } from '../proc/index.js';
import { observeProcess, treePids } from '../resources/observe/read.js';
import { diffSnapshots, formatDifference, type Difference, type Snapshot } from '../resources/observe/snapshot.js';
import type { Log } from '../util/log.js';
import { sleepMs } from '../util/sleep.js';

export type TreeSnapshot = Map<number, Snapshot>;

/** Every live process of the tree under `root`, observed (a task gone meanwhile is left out). */
export function snapshotTree(root: number): TreeSnapshot {
  return snapshotPids(treePids(root));
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
 * `threads`: compare them too (both snapshots under one freeze: none can come or go).
 */
export function treeChanges(before: TreeSnapshot, after: TreeSnapshot, opts: { threads?: boolean } = {}): Difference[] {
  const out: Difference[] = [];
  for (const [pid, b] of before) {
    const a = after.get(pid);
    if (!a) continue;
    const ignore = volatileIn(b);
    const threadsCome = (what: string) => what === 'threads' || /^tid \d+ /.test(what) && !(a.has(what) && b.has(what));
    out.push(...diffSnapshots(pid, b, a, { keys: 'both', ignore: (what) => (!opts.threads && threadsCome(what)) || ignore(what) }));
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

/**
 * The proof of a `--leave-running` dump, taken under the freeze: once when every task is held
 * and nothing is touched yet, and again when every task has been put back but not yet released.
 * Between the two the tree runs none of its own code, so any difference is the dump's. (Taken
 * before the freeze and after the release instead, a program's own work in between — a thread
 * starting up, a signal mask it sets — read as damage.) Only the stop state cannot be read
 * under the freeze (every task is in a tracing stop then): a task stopped by a signal must be
 * stopped again once released, which `verdict` checks.
 */
export class LeaveRunningProof {
  private before: TreeSnapshot = new Map();
  private changes: Difference[] = [];

  constructor(private readonly log: Log) {}

  /** Under the freeze, before the dump touches anything: `pids` are the live tasks held. */
  frozen(pids: number[]): void {
    this.before = snapshotPids(pids);
  }

  /** Under the freeze, once every task is put back and before any is released. */
  putBack(): void {
    const t0 = performance.now();
    this.changes = treeChanges(this.before, snapshotPids([...this.before.keys()]), { threads: true });
    this.log.info(`--leave-running: ${this.before.size} tasks compared under the freeze in ${(performance.now() - t0).toFixed(1)} ms: ${this.changes.length} differences`);
  }

  /** After the release: throws if the dump changed anything; `stopped` must be stopped again. */
  verdict(stopped: number[]): void {
    const changes = [...this.changes];
    for (const pid of stopped) {
      const state = settledState(pid);
      if (state !== 'T' && state !== null) changes.push({ pid, what: 'state', expected: 'stopped', got: `state ${state}` });
    }
    for (const d of changes) this.log.error(`changed by the dump: ${formatDifference(d)}`);
    if (changes.length) throw new ChangedByDumpError(changes);
  }
}

/** Every live process of `pids`, observed (one gone meanwhile is left out). */
function snapshotPids(pids: Iterable<number>): TreeSnapshot {
  const out: TreeSnapshot = new Map();
  for (const pid of pids) {
    try {
      out.set(pid, observeProcess(pid, { sockets: true, unrecorded: true }));
    } catch {
      /* gone (or a zombie without fds) while we looked */
    }
  }
  return out;
}

/** A released task's run state once a pending SIGSTOP had time to act (null: gone). */
function settledState(pid: number): string | null {
  const deadline = Date.now() + 2000;
  for (;;) {
    let state: string;
    try {
      state = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).state;
    } catch {
      return null;
    }
    if (state === 'T' || Date.now() > deadline) return state;
    sleepMs(10);
  }
}
