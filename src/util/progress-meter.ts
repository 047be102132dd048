// Counting a dump's or restore's progress and handing it to the caller's ProgressSink, throttled:
// at most once per 16 MiB of memory and once per task, plus a last report when it is complete.
import type { Progress, ProgressSink } from './progress.js';

const EVERY_BYTES = 16 << 20;

export class ProgressMeter {
  private p: Progress;
  private reportedBytes = 0;

  constructor(
    phase: Progress['phase'],
    private readonly sink: ProgressSink | undefined,
  ) {
    this.p = { phase, bytesDone: 0, bytesTotal: 0, tasksDone: 0, tasksTotal: 0 };
  }

  /** The totals, once known (the memory to move, the tasks to do). */
  plan(bytesTotal: number, tasksTotal: number): void {
    this.p.bytesTotal = bytesTotal;
    this.p.tasksTotal = tasksTotal;
    this.report();
  }

  bytes(n: number): void {
    this.p.bytesDone += n;
    if (this.p.bytesDone - this.reportedBytes >= EVERY_BYTES || this.p.bytesDone >= this.p.bytesTotal) this.report();
  }

  task(): void {
    this.p.tasksDone++;
    this.report();
  }

  private report(): void {
    if (!this.sink) return;
    this.reportedBytes = this.p.bytesDone;
    this.sink({ ...this.p });
  }
}
