// A thread's timer slack (PR_SET_TIMERSLACK): how late the kernel may fire its timers to batch
// wake-ups. Per thread; read from /proc/TID (a thread's id names it there too) and set by the
// thread itself. CRIU's images have no field for it: kept in thread_core_entry 1001.
import { readFileSync } from 'node:fs';
import { PR } from '../../sys/index.js';
import type { CallQueue } from '../context.js';

/** The thread's slack in ns; null when it cannot be read (the thread ended meanwhile). */
export function dumpTimerSlack(tid: number): bigint | null {
  try {
    return BigInt(readFileSync(`/proc/${tid}/timerslack_ns`, 'utf8').trim());
  } catch {
    return null;
  }
}

/**
 * Set by the thread. 0 is what an RT or deadline thread reads (the kernel gives them no slack
 * and ignores the call): nothing to set.
 */
export function restoreTimerSlack(q: CallQueue, slack: bigint): void {
  if (slack > 0n) q.add('prctl', [PR.SET_TIMERSLACK, slack, 0, 0, 0], 'timer slack');
}
