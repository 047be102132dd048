// Interval timers (setitimer): real, virtual and profiling. Read by the task itself.
import type { DumpTask, RestoreTask } from '../context.js';

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

export function dumpItimers(t: DumpTask): ItimersData {
  const read = (which: number): ItimerData => {
    const buf = t.scratch.alloc(32);
    t.remote.call('getitimer', [which, buf]);
    const b = t.scratch.read(buf, 32);
    return { isec: b.readBigInt64LE(0), iusec: b.readBigInt64LE(8), vsec: b.readBigInt64LE(16), vusec: b.readBigInt64LE(24) };
  };
  return { real: read(WHICH.real), virt: read(WHICH.virt), prof: read(WHICH.prof) };
}

export function restoreItimers(r: RestoreTask, timers: ItimersData | undefined): void {
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
    r.scratch.reset();
    r.remote.call('setitimer', [WHICH[key], r.scratch.put(b), 0], `itimer ${key}`);
  }
}
