// Interval timers (setitimer): real, virtual and profiling. Read by the task itself.
import type { CallQueue, DumpTask, ReadQueue, RestoreTask } from '../context.js';

export interface ItimerData {
  isec: bigint;
  iusec: bigint;
  vsec: bigint;
  vusec: bigint;
}

export interface ItimersData {
  real: ItimerData;
  virt: ItimerData;
  prof: ItimerData;
}

const WHICH = { real: 0, virt: 1, prof: 2 } as const;

/** The three timers, read with the task's other reads (`q`): once it ran. */
export function dumpItimers(t: DumpTask, q: ReadQueue): () => ItimersData {
  const buf = t.scratch.alloc(96);
  for (const which of [WHICH.real, WHICH.virt, WHICH.prof]) q.add('getitimer', [which, buf + BigInt(32 * which)]);
  return () => {
    const b = t.scratch.read(buf, 96);
    const at = (which: number): ItimerData => ({ isec: b.readBigInt64LE(32 * which), iusec: b.readBigInt64LE(32 * which + 8), vsec: b.readBigInt64LE(32 * which + 16), vusec: b.readBigInt64LE(32 * which + 24) });
    return { real: at(WHICH.real), virt: at(WHICH.virt), prof: at(WHICH.prof) };
  };
}

/** Queued in `q` (their buffers in the scratch area until it is flushed). */
export function restoreItimers(r: RestoreTask, timers: ItimersData | undefined, q: CallQueue): void {
  if (!timers) return;
  for (const key of ['real', 'virt', 'prof'] as const) {
    let it = timers[key];
    if (it.vsec === 0n && it.vusec === 0n) {
      if (it.isec === 0n && it.iusec === 0n) continue; // disarmed
      // Caught between expiry and re-arm (its signal is pending): the kernel would reload the
      // interval, and a zero value would disarm it. Arm it for one interval.
      it = { ...it, vsec: it.isec, vusec: it.iusec };
    }
    const b = Buffer.alloc(32);
    b.writeBigInt64LE(it.isec, 0);
    b.writeBigInt64LE(it.iusec, 8);
    b.writeBigInt64LE(it.vsec, 16);
    b.writeBigInt64LE(it.vusec, 24);
    q.add('setitimer', [WHICH[key], r.scratch.put(b), 0], `itimer ${key}`);
  }
}
