// The guard of a dump's snapshots (dump/snapshot.ts): should cryo die while a snapshot lives, the
// kernel kills the snapshot (PTRACE_O_EXITKILL) but its zombie stays with the task, whose own
// wait() never sees it (exit signal 0). The guard (snapshot-guard-main.ts, a process of its own)
// is told of each snapshot as it is made; when its pipe from cryo closes without "done", it has
// each task that still has one reap it, as cryo would have.
import { fileURLToPath } from 'node:url';
import { GuardLink } from '../sys/index.js';
import { startTimeOf } from '../resources/task/start-time.js';
import { childrenOf } from '../resources/task/children.js';

const MAIN = fileURLToPath(new URL('./snapshot-guard-main.js', import.meta.url));

export class SnapshotGuard {
  private constructor(private readonly link: GuardLink) {}

  /** Starts the guard (before the freeze: it comes up meanwhile; the first `watch` waits for it). */
  static start(): SnapshotGuard {
    return new SnapshotGuard(GuardLink.start('snapshot guard', MAIN));
  }

  /** Waits until the guard listens (before the freeze, so that the freeze never waits for it). */
  ready(): void {
    this.link.ask('hello');
  }

  /**
   * Task `pid` is about to fork a snapshot (its children now given, for the guard to tell the new
   * one should cryo die before `watch`).
   */
  expect(pid: number): void {
    this.link.ask(`pre ${pid}:${startTimeOf(pid)} ${childrenOf(pid).join(',') || '-'}`);
  }

  /** Snapshot `child` of task `pid`, which names it `inner`. */
  watch(pid: number, child: number, inner: number): void {
    this.link.ask(`snap ${pid}:${startTimeOf(pid)} ${child}:${startTimeOf(child)} ${inner}`);
  }

  /** Every snapshot is reaped: the guard ends. */
  done(): void {
    this.link.close('done');
  }
}
