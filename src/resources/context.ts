// What a resource module gets to work with while one task is frozen (dump) or being rebuilt
// (restore). Each module in resources/ reads from and writes into these.
import { SafeRemote, type Tracee, type Remote, type Scratch, type BatchCall, type RemoteArg, batchesSideBySide } from '../ptrace/index.js';
import { NR, type Regs, type SyscallName } from '../sys/index.js';
import type { ProcStat, ProcStatus, MapsEntry } from '../proc/index.js';
import type { Log } from '../util/log.js';

/** Allocates the small integer ids CRIU's images use to refer to shared objects. */
export class IdAllocator {
  private next = new Map<string, number>();
  private byKey = new Map<string, number>();

  /** The id of the object `key` of `kind`, allocated on first sight. */
  id(kind: string, key: string): number {
    const k = `${kind}:${key}`;
    let v = this.byKey.get(k);
    if (v === undefined) {
      v = (this.next.get(kind) ?? 0) + 1;
      this.next.set(kind, v);
      this.byKey.set(k, v);
    }
    return v;
  }

  /** Gives `key` the id `existing` has (a shared object seen again). */
  alias(kind: string, key: string, existing: string): number {
    const v = this.id(kind, existing);
    this.byKey.set(`${kind}:${key}`, v);
    return v;
  }

  has(kind: string, key: string): boolean {
    return this.byKey.has(`${kind}:${key}`);
  }
}

export interface DumpTask {
  pid: number;
  tracee: Tracee;
  remote: Remote;
  scratch: Scratch;
  /** Registers as the task was frozen. */
  regs: Regs;
  /** The call it restarts, when it was frozen in restart_syscall (read before the freeze). */
  restartedCall?: number | null;
  /** Where it resumes if it was frozen inside an rseq critical section (its abort handler). */
  rseqAbort: bigint | null;
  stat: ProcStat;
  status: ProcStatus;
  maps: MapsEntry[];
  log: Log;
  ids: IdAllocator;
}

export interface RestoreTask {
  pid: number;
  tracee: Tracee;
  remote: Remote;
  scratch: Scratch;
  log: Log;
  /** PID of the restorer itself, for pidfd_getfd from inside the task. */
  restorerPid: number;
  /** A pidfd of the restorer the task holds already (a task in a PID namespace of its own). */
  restorerPidfd?: number;
  /** Executable memory of the task the restorer may write batches of calls into (see batchIn). */
  batchCode: { at: bigint; size: number };
}

/**
 * Runs `calls` in the task in as few stops as fit (Remote.batch), results in the scratch area:
 * for runs of calls that do not depend on each other's results (the dispositions, the mappings).
 */
export function batchIn(r: RestoreTask, calls: BatchCall[]): bigint[] {
  if (!calls.length) return [];
  const resultsAt = r.scratch.alloc(8 * calls.length);
  return r.remote.batch(calls, { codeAt: r.batchCode.at, codeSize: r.batchCode.size, resultsAt });
}

/**
 * Runs `calls` in a frozen task being dumped in as few stops as fit (SafeRemote.batch, crash-safe
 * like a single call): for reads of its state that do not depend on each other (the 64
 * dispositions, the limits). Results land in the scratch data.
 */
export function batchInDump(t: DumpTask, calls: BatchCall[]): bigint[] {
  if (!calls.length) return [];
  if (!(t.remote instanceof SafeRemote)) return calls.map((c) => (c.mayFail ? t.remote.raw(NR[c.name], c.args) : t.remote.call(c.name, c.args, c.detail)));
  return t.remote.batch(calls, { resultsAt: t.scratch.alloc(8 * calls.length) });
}

/**
 * A thread's reads of its own state gathered from several modules and run as one batch
 * (batchInDump): each module adds its calls and gets back a function that gives its result
 * once run() has run. A thread's attributes, tid address, alt stack, securebits and
 * speculation controls were eight stops of their own.
 */
export class ReadQueue {
  private calls: BatchCall[] = [];
  private results: bigint[] | null = null;
  constructor(private readonly t: DumpTask) {}

  add(name: SyscallName, args: RemoteArg[], opts: { detail?: string; mayFail?: boolean } = {}): () => bigint {
    const i = this.calls.push({ name, args, ...opts }) - 1;
    return () => {
      if (!this.results) throw new Error(`pid ${this.t.pid}: a queued read (${name}) used before the queue ran`);
      return this.results[i]!;
    };
  }

  run(): void {
    this.results = batchInDump(this.t, this.calls);
  }

  /**
   * Runs the queues of several threads of a process side by side (batchesSideBySide): those
   * whose results go to a data page of their own (SafeRemote.ownData; see openTask); the others
   * one after the other.
   */
  static runAll(queues: ReadQueue[]): void {
    const apart = queues.filter((q) => q.t.remote instanceof SafeRemote && q.t.remote.ownData !== null && q.calls.length);
    for (const q of queues) if (!apart.includes(q)) q.run();
    const results = batchesSideBySide(apart.map((q) => {
      const area = { codeAt: 0n, codeSize: 0, resultsAt: q.t.scratch.alloc(8 * q.calls.length) };
      return { remote: q.t.remote, area, runs: q.t.remote.batchRuns(q.calls, area) };
    }));
    apart.forEach((q, i) => (q.results = results[i]!));
  }
}

/**
 * Calls whose results nothing needs (mmap MAP_FIXED, mprotect, madvise, mlock, close), made in
 * order in as few stops as fit: queued, and run by flush() before anything that depends on them
 * (a call whose result is needed, a read of the task's memory or mappings). A failing call
 * throws from flush() as it would have from call(); the ones after it have not run.
 */
export class CallQueue {
  private calls: BatchCall[] = [];
  constructor(private readonly r: RestoreTask) {}

  /** `mayFail`: its failure does not stop the queue (what it did is checked otherwise). */
  add(name: SyscallName, args: RemoteArg[], detail?: string, opts: { mayFail?: boolean } = {}): void {
    this.calls.push({ name, args, ...(detail !== undefined ? { detail } : {}), ...(opts.mayFail ? { mayFail: true } : {}) });
  }

  flush(): void {
    const calls = this.calls;
    this.calls = [];
    batchIn(this.r, calls);
  }

  /**
   * Flushes the queues of several tasks side by side (the threads of a process, each with batch
   * code and scratch memory of its own): each one's next batch started in every task, then each
   * waited for, so that their stops overlap. Every batch started is waited for before an error
   * (the first) is thrown: no task is left running.
   */
  static flushAll(queues: CallQueue[]): void {
    batchesSideBySide(queues.filter((q) => q.calls.length).map((q) => {
      const calls = q.calls;
      q.calls = [];
      const area = { codeAt: q.r.batchCode.at, codeSize: q.r.batchCode.size, resultsAt: q.r.scratch.alloc(8 * calls.length) };
      return { remote: q.r.remote, area, runs: q.r.remote.batchRuns(calls, area) };
    }));
  }
}
