// POSIX timers (timer_create): which exist comes from /proc/PID/timers (id, clock, signal,
// notification target); their time left, interval and overrun only the task can ask for
// (timer_gettime, timer_getoverrun), injected. Restored by the task itself under the same ids,
// after its threads exist (a timer may signal one thread), with the time that was left.
//
// A periodic timer whose signal is pending (blocked, or not handled yet) folds its further
// expiries into that one signal's overrun, and is re-armed only once the signal is taken. A copy
// of the siginfo queued by the task would be no timer's: the restored timer would queue a
// second signal at its next expiry. So such a timer is armed to expire at once instead, and the
// kernel queues its own signal (the copy is not queued; timerSignalsOf). The overrun counted so
// far is lost: the kernel shows it to no one before the signal is taken.
import { readFileSync } from 'node:fs';
import { PR, NR } from '../../sys/index.js';
import { parseTimers } from '../../proc/index.js';
import { UserError } from '../../util/errors.js';
import type { DumpTask, RestoreTask } from '../context.js';

export interface PosixTimerData {
  itId: number;
  clockId: number;
  siSigno: number;
  itSigevNotify: number;
  sivalPtr: bigint;
  overrun: number;
  isec: bigint;
  insec: bigint;
  vsec: bigint;
  vnsec: bigint;
  notifyThreadId?: number;
}

const SIGEV_THREAD_ID = 4;
const SIGEVENT_SIZE = 64;
/** How many ids the fallback (kernels before PR_TIMER_CREATE_RESTORE_IDS) walks at most. */
const MAX_ID_WALK = 1 << 16;

export function dumpPosixTimers(t: DumpTask): PosixTimerData[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${t.pid}/timers`, 'utf8');
  } catch (e) {
    throw new UserError(`pid ${t.pid}: cannot read its POSIX timers: ${(e as Error).message}`);
  }
  return parseTimers(text).map((p) => {
    t.scratch.reset();
    const buf = t.scratch.alloc(32);
    t.remote.call('timer_gettime', [p.id, buf], `timer ${p.id}`);
    const b = t.scratch.read(buf, 32);
    const overrun = Number(t.remote.call('timer_getoverrun', [p.id], `timer ${p.id}`));
    return {
      // CPU clocks are negative (they encode a PID): a uint32 in the image.
      itId: p.id, clockId: p.clockId >>> 0, siSigno: p.signo, itSigevNotify: p.notify, sivalPtr: p.sival, overrun,
      isec: b.readBigInt64LE(0), insec: b.readBigInt64LE(8), vsec: b.readBigInt64LE(16), vnsec: b.readBigInt64LE(24),
      ...(p.notify & SIGEV_THREAD_ID ? { notifyThreadId: p.target } : {}),
    };
  });
}

const SI_TIMER = -2;

/** The timer a pending siginfo comes from (its si_code SI_TIMER, the id in _timer._tid), or null. */
function timerOfSignal(info: Uint8Array): number | null {
  const b = Buffer.from(info.buffer, info.byteOffset, info.byteLength);
  return b.length >= 20 && b.readInt32LE(8) === SI_TIMER ? b.readInt32LE(16) : null;
}

/** Whether pending `info` is the signal of one of the `signalled` timers: the kernel queues it again. */
export function isTimersOwn(signalled: Set<number>, info: Uint8Array): boolean {
  const id = timerOfSignal(info);
  return id !== null && signalled.has(id);
}

/** The periodic timers whose own signal is among `pending`: the kernel queues it again (see above). */
export function timerSignalsOf(timers: PosixTimerData[], pending: Uint8Array[]): Set<number> {
  const periodic = new Set(timers.filter((p) => p.isec !== 0n || p.insec !== 0n).map((p) => p.itId));
  return new Set(pending.map(timerOfSignal).filter((id): id is number => id !== null && periodic.has(id)));
}

function sigevent(p: PosixTimerData, local: (pid: number) => number): Buffer {
  const b = Buffer.alloc(SIGEVENT_SIZE);
  b.writeBigUInt64LE(BigInt.asUintN(64, p.sivalPtr), 0);
  b.writeInt32LE(p.siSigno, 8);
  b.writeInt32LE(p.itSigevNotify, 12);
  if (p.itSigevNotify & SIGEV_THREAD_ID) b.writeInt32LE(local(p.notifyThreadId ?? 0), 16);
  return b;
}

/**
 * Creates the timers again in the task (its leader), each under its old id: with
 * PR_TIMER_CREATE_RESTORE_IDS the kernel takes the id from timer_create's out-parameter; older
 * kernels hand ids out in order, so create and delete until the id comes up. `local`: the TID
 * the task itself sees for a thread the image names (the kernel reads the sigevent's thread in
 * the caller's PID namespace; the image has cryo's numbers).
 */
export function restorePosixTimers(r: RestoreTask, timers: PosixTimerData[], local: (pid: number) => number = (p) => p, signalled: Set<number> = new Set()): void {
  if (!timers.length) return;
  const call = r.remote.call.bind(r.remote);
  const restoreIds = r.remote.raw(NR.prctl, [PR.TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0]) === 0n;
  for (const p of [...timers].sort((a, b) => a.itId - b.itId)) {
    r.scratch.reset();
    const sev = r.scratch.put(sigevent(p, local));
    const idBuf = Buffer.alloc(4);
    idBuf.writeInt32LE(p.itId);
    const idAddr = r.scratch.put(idBuf);
    const what = `POSIX timer ${p.itId} (clock ${p.clockId | 0})`;
    for (let walked = 0; ; walked++) {
      call('timer_create', [p.clockId | 0, sev, idAddr], what);
      const got = r.scratch.read(idAddr, 4).readInt32LE(0);
      if (got === p.itId) break;
      call('timer_delete', [got], what);
      if (restoreIds || got > p.itId || walked > MAX_ID_WALK) throw new UserError(`${what}: the kernel gave id ${got}`);
    }
    // Expired with its signal still pending: the kernel would reload the interval on delivery,
    // and a zero value disarms. Arm it for one interval.
    let [vsec, vnsec] = [p.vsec, p.vnsec];
    if (signalled.has(p.itId)) [vsec, vnsec] = [0n, 1n];
    else if (vsec === 0n && vnsec === 0n) [vsec, vnsec] = [p.isec, p.insec];
    if (vsec === 0n && vnsec === 0n) continue;
    const its = Buffer.alloc(32);
    its.writeBigInt64LE(p.isec, 0);
    its.writeBigInt64LE(p.insec, 8);
    its.writeBigInt64LE(vsec, 16);
    its.writeBigInt64LE(vnsec, 24);
    call('timer_settime', [p.itId, 0, r.scratch.put(its), 0], what);
  }
  if (restoreIds) call('prctl', [PR.TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0], 'timer id restore mode off');
}
