// `--leave-running` at memory speed: under the freeze each task forks a copy-on-write snapshot of
// itself (SafeRemote.forkSnapshot: a child stopped at birth that never runs the program), and
// once the tree runs again the task's private pages are read from that child, not from the task.
// The freeze then lasts as long as the kernel takes to copy page tables (about a millisecond per
// GiB here), not as long as the disk takes to write the pages.
//
// - What a fork does not give the child (pages of MADV_DONTFORK and MADV_WIPEONFORK mappings) is
//   read under the freeze and held (at most HOLD_LIMIT for the tree).
// - Shared memory is not snapshotted (the child sees the task's own pages): it is written under
//   the freeze, like everything else but private pages (dump/pages.ts).
// - The child shares the task's fd table (CLONE_FILES): it holds no file open of its own, so a
//   close by the task has its full effect while the snapshot lasts. Its exit signal is 0: no
//   SIGCHLD, and wait() without __WALL or __WCLONE does not see it.
// - Killed once its pages are written, the child is a zombie of the task's: the task reaps it
//   itself, a wait4 injected in one short stop of one of its threads. Should cryo die first, the
//   kernel kills the child (PTRACE_O_EXITKILL) and the snapshot guard (snapshot-guard.ts), a
//   process of its own told of every child, has the task reap it.
// - Not taken (the task's pages then go to disk under the freeze, as with --frozen-copy): for a
//   tree or a task of little private memory (snapshotMin), for a task stopped by job control, or whose children go to another PID namespace (the child would
//   be that namespace's init) or time namespace (its offsets would be fixed), or that is in a
//   PID namespace nested two deep below cryo's (in one level below, a container's, the
//   namespace's last PID is read before the clones and set back after them: the image has it as
//   it was, and the task's next fork after the snapshot is gone takes the PID it would have), or when the clone is refused (a pids limit), or when the memory the
//   task's writes would cost while the snapshot lasts (at worst a copy of every page it holds) is
//   more than its cgroups and the system have left (resources/mm/headroom.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { NR, PAGE_SIZE, PTRACE_O, WAIT, uninterrupted } from '../sys/index.js';
import { SafeRemote, Tracee } from '../ptrace/index.js';
import { IdAllocator } from '../resources/context.js';
import { readPages } from '../resources/mm/dump.js';
import { memoryHeadroom } from '../resources/mm/headroom.js';
import { pidForChildrenLink } from '../resources/ns/pid-nested.js';
import { nsLink } from '../resources/ns/link.js';
import { dumpLastPid, restoreLastPid } from '../resources/ns/last-pid.js';
import { seccompMode } from '../resources/task/seccomp.js';
import { restartedCall } from '../resources/task/regs.js';
import type { Log } from '../util/log.js';
import type { PageFiles } from './pages.js';
import { openTask, closeTask, type TaskImages } from './task.js';
import type { SnapshotGuard } from './snapshot-guard.js';

const CLONE_FILES = 0x400;
/** Pages a snapshot lacks, held in cryo's memory for the whole tree: beyond it, tasks are written frozen. */
const HOLD_LIMIT = 64 << 20;

/**
 * Below these (private pages of the tree, of one task) snapshots are not worth their cost: the
 * pages are written under the freeze in a few milliseconds (8 MiB: about 5 ms here), while the
 * snapshot guard alone takes about 90 ms to start. CRYO_SNAPSHOT_MIN=BYTES sets the tree's
 * figure, and a task's with it when lower (0: every task with private pages has a snapshot).
 */
function snapshotMin(): { tree: number; task: number } {
  const env = process.env.CRYO_SNAPSHOT_MIN;
  const tree = env !== undefined && /^\d+$/.test(env) ? Number(env) : 8 << 20;
  return { tree, task: Math.min(tree, 1 << 20) };
}

/**
 * Before the freeze: whether the tree holds enough private memory for snapshots (anonymous pages
 * resident or swapped, by /proc/PID/status; a guess, as the tasks run on: wrong either way, the
 * dump is as faithful, only frozen longer or not).
 */
export function worthSnapshots(pids: readonly number[]): boolean {
  let kib = 0;
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/status`, 'utf8');
      for (const key of ['RssAnon', 'VmSwap']) kib += Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? 0);
    } catch {
      /* gone: the freeze will say */
    }
  }
  return kib * 1024 >= snapshotMin().tree;
}

interface Snap {
  img: TaskImages;
  child: Tracee;
  /** The child's PID in the task's own PID namespace (what its wait4 names). */
  inner: number;
  held: Map<bigint, Buffer>;
}

export class Snapshots {
  /** The last PID of each PID namespace (by its nsfs link) the snapshots took PIDs in, as it was before. */
  private readonly lastPids = new Map<string, number>();

  private constructor(private readonly snaps: Snap[], private readonly log: Log, private readonly guard: SnapshotGuard) {}

  /** The last PID of task `pid`'s PID namespace before the snapshots; undefined when they took none there. */
  lastPidOf(pid: number): number | undefined {
    const ns = nsLink(pid, 'pid');
    return ns ? this.lastPids.get(ns) : undefined;
  }

  /** Tasks whose private pages the snapshots give (written by `write`, after the release). */
  get pids(): Set<number> {
    return new Set(this.snaps.map((s) => s.img.pid));
  }

  /**
   * Under the freeze: a snapshot of each task that can have one (`stopped`: PIDs stopped by job
   * control). Never throws for a task it cannot snapshot; an error of ptrace is thrown, with
   * every child made so far gone again.
   */
  static take(images: TaskImages[], stopped: ReadonlySet<number>, log: Log, guard: SnapshotGuard): Snapshots {
    const snaps: Snap[] = [];
    const out = new Snapshots(snaps, log, guard);
    let heldBytes = 0;
    let charged = 0;
    const min = snapshotMin();
    try {
      for (const img of images) {
        const bytes = img.privatePages.reduce((n, r) => n + r.nrPages, 0) * PAGE_SIZE;
        const lacking = img.privatePages.filter((r) => r.notForked);
        const lackingBytes = lacking.reduce((n, r) => n + r.nrPages, 0) * PAGE_SIZE;
        const why = !bytes ? 'no private pages'
          : bytes < min.task ? `only ${bytes} bytes of private pages (written frozen sooner than snapshotted)`
          : !(img.remote instanceof SafeRemote) ? 'no crash-safe injection'
          : stopped.has(img.pid) ? 'stopped by job control'
          : pidForChildrenLink(img.pid) ? 'its children go to another PID namespace'
          : nsDepth(img.pid) > 2 ? 'in a PID namespace two or more below cryo\'s (the clone would move each one\'s last PID)'
          : nsLink(img.pid, 'time_for_children') !== nsLink(img.pid, 'time') ? 'its children go to another time namespace (the first to enter it fixes its offsets)'
          : heldBytes + lackingBytes > HOLD_LIMIT ? `${lackingBytes} bytes of MADV_DONTFORK/WIPEONFORK pages`
          : charged + bytes > memoryHeadroom(img.pid) ? `not memory to spare for its copies (${bytes} bytes)`
          : null;
        if (why) {
          log.debug(`pid ${img.pid}: written frozen, no snapshot: ${why}`);
          continue;
        }
        // In a PID namespace of its own (a container's) the clone takes the PID the namespace's
        // next fork would have: its last PID is read first and set back after (resources/ns/last-pid.ts).
        const ns = nsDepth(img.pid) === 2 ? nsLink(img.pid, 'pid') : null;
        if (ns && !out.lastPids.has(ns)) out.lastPids.set(ns, dumpLastPid(img.pid));
        // Should cryo die between the clone and `watch`, the guard finds the child among the new ones.
        guard.expect(img.pid);
        const child = (img.remote as SafeRemote).forkSnapshot(CLONE_FILES);
        if (ns) restoreLastPid(img.pid, out.lastPids.get(ns)!);
        if (typeof child === 'number' || child === null) {
          log.info(`pid ${img.pid}: written frozen, no snapshot: ${child === null ? 'no marker signal' : `clone failed (errno ${child})`}`);
          continue;
        }
        const s: Snap = { img, child, inner: child.ownIds().tid, held: new Map() };
        snaps.push(s);
        // Should cryo die from now on, the guard has the task reap it.
        guard.watch(img.pid, child.tid, s.inner);
        for (const r of lacking) s.held.set(r.vaddr, readPages(img.pid, r));
        heldBytes += lackingBytes;
        charged += bytes;
      }
    } catch (e) {
      out.dropFrozen();
      throw e;
    }
    if (snaps.length) log.info(`snapshots of ${snaps.length} task(s): their pages are written after the release`);
    return out;
  }

  /** After the release: each snapshotted task's private pages, from its snapshot. */
  write(files: PageFiles): void {
    for (const s of this.snaps) files.privatePages(s.img, { pid: s.child.tid, held: s.held });
  }

  /**
   * After the release: the snapshots gone, each child killed (we wait for it as its tracer) and
   * then reaped by its parent; then the guard ends. Never throws: what could not be done is logged.
   */
  end(): void {
    for (const s of this.snaps.splice(0)) {
      kill(s);
      try {
        uninterrupted(() => reapIn(s.img.pid, s.inner, this.log));
      } catch (e) {
        this.log.warn(`pid ${s.img.pid}: its snapshot (pid ${s.child.tid}) is left a zombie child of its: ${(e as Error).message}`);
      }
    }
    this.guard.done();
  }

  /** Under the freeze (a failure before the release): the same, reaped through the tasks' open remotes. */
  dropFrozen(): void {
    for (const s of this.snaps.splice(0)) {
      kill(s);
      try {
        uninterrupted(() => s.img.remote.raw(NR.wait4, [BigInt(s.inner), 0n, BigInt(WAIT.WNOHANG | WAIT.WALL), 0n]));
      } catch (e) {
        this.log.warn(`pid ${s.img.pid}: its snapshot (pid ${s.child.tid}) is left a zombie child of its: ${(e as Error).message}`);
      }
    }
    this.guard.done();
  }
}

function kill(s: Snap): void {
  s.child.kill();
  s.child.waitGone();
  s.held.clear();
}

/** How many PID namespaces, from cryo's down, task `pid` has a PID in (1: cryo's own). */
function nsDepth(pid: number): number {
  const line = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return line ? line[1]!.trim().split(/\s+/).length : 1;
}

/** A live thread of `pid` (the leader may have ended before its threads); null when none is left. */
function liveThread(pid: number): number | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && state !== 'X') return Number(tid);
    } catch {
      /* ended meanwhile */
    }
  }
  return null;
}

/**
 * Task `pid` reaps its child `inner` (its own number for it): one of its threads is seized and
 * runs wait4(inner, WNOHANG | __WALL) as any injected call of a dump, then goes on. A task that
 * ended meanwhile left the zombie to its reaper, which reaps it as its own.
 */
export function reapIn(pid: number, inner: number, log: Log): void {
  const tid = liveThread(pid);
  if (tid === null) return;
  const restarted = restartedCall(pid, tid);
  const tr = Tracee.seize(tid, pid, seccompMode(tid) ? PTRACE_O.SUSPEND_SECCOMP : 0);
  try {
    const t = openTask(tr, log, new IdAllocator(), undefined, 1, restarted);
    try {
      const got = t.remote.raw(NR.wait4, [BigInt(inner), 0n, BigInt(WAIT.WNOHANG | WAIT.WALL), 0n]);
      if (got !== BigInt(inner)) log.warn(`pid ${pid}: reaping its snapshot ${inner} returned ${got}`);
    } finally {
      closeTask(t);
    }
  } finally {
    tr.release();
  }
}
