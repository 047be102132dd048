// timerfds: a clock, the time left, the interval, the settime flags and the expirations not read
// yet. fdinfo shows all of it; the restore re-arms the timer with the time that was left and sets
// the ticks back. An absolute timer (TFD_TIMER_ABSTIME, with TFD_TIMER_CANCEL_ON_SET: systemd's
// and cron's watch on the wall clock being set) is armed absolute again: on a wall clock for the
// time it was armed for (kept in cryo_abs_ns: the wall clock goes on while the tree is down), on
// a monotonic or boot clock for the restoring host's clock plus the time that was left (CRIU's
// rule: another boot's clocks mean nothing here, so only the time left is kept).
//
// A periodic timer counts the periods it missed only when it is read (or asked): fdinfo's ticks
// say 1 however long ago it expired. The dump asks it first (timerfd_gettime on our copy, which
// adds the missed periods to the ticks, takes nothing and re-arms it for the next period), then
// reads fdinfo.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { parseFdinfo, type ProcFdinfo } from '../../proc/index.js';
import { sys } from '../../sys/index.js';
import { withOurCopy } from './our-copy.js';
import { hasField } from '../../image/presence.js';
import { timerfd_entrySchema } from '../../image/gen/timerfd_pb.js';
import { timespecText } from '../observe/names.js';
import { hostClockNs } from '../ns/time.js';
import { CREATE_FLAGS, fdinfoField, type FdKind, type FdSeen } from './fd-kind.js';
import type { FownData } from './fown.js';

export type TimerfdData = MessageInitShape<typeof timerfd_entrySchema> & {
  id: number; flags: number; fown: FownData; clockid: number; ticks: bigint; vsec: bigint; vnsec: bigint; isec: bigint; insec: bigint;
};

const TFD_IOC_SET_TICKS = 0x40085400;
const TFD_TIMER_ABSTIME = 1;
const TFD_TIMER_CANCEL_ON_SET = 2;
const NS = 1_000_000_000n;
/** CLOCK_REALTIME, CLOCK_REALTIME_ALARM, CLOCK_TAI: the same time on every boot and host. */
const WALL_CLOCKS = new Set([0, 8, 11]);

/** "(sec, nsec)" as fdinfo prints a timespec; null when the line is not one. */
function timespec(v: string | undefined): [bigint, bigint] | null {
  const m = /\((-?\d+),\s*(-?\d+)\)/.exec(v ?? '');
  return m ? [BigInt(m[1]!), BigInt(m[2]!)] : null;
}

function mustTimespec(info: ProcFdinfo, key: string): [bigint, bigint] {
  const t = timespec(fdinfoField(info, key));
  if (!t) throw new Error(`bad timespec in fdinfo: ${key}: ${fdinfoField(info, key)}`);
  return t;
}

/** Armed: time left, or a period (an expired periodic timer goes on from its next period). */
export function timerfdArmed(vsec: bigint, vnsec: bigint, isec: bigint, insec: bigint): string {
  return vsec || vnsec || isec || insec ? 'armed' : 'disarmed';
}

/** The kernel's largest time (ktime_t, signed 64-bit ns). */
const KTIME_MAX = (1n << 63n) - 1n;
const minBig = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export const timerfdKind = {
  name: 'timerfd' as const,
  type: 'TIMERFD',
  field: 'tfd',
  phase: 'table',
  object: true,
  recognise: (link: string) => link === 'anon_inode:[timerfd]',
  blocker: () => null,
  dump(f: FdSeen, id: number, flags: number, fown: FownData): TimerfdData {
    withOurCopy(f.pid, f.fd, (ours) => sys('timerfd_gettime', [ours, Buffer.alloc(32)], `timerfd fd ${f.fd} of pid ${f.pid}`));
    const info = parseFdinfo(readFileSync(`/proc/${f.pid}/fdinfo/${f.fd}`, 'utf8'));
    const [vsec, vnsec] = mustTimespec(info, 'it_value');
    const [isec, insec] = mustTimespec(info, 'it_interval');
    const clockid = Number(fdinfoField(info, 'clockid'));
    const settimeFlags = parseInt(fdinfoField(info, 'settime flags'), 8);
    const wallAbs = settimeFlags & TFD_TIMER_ABSTIME && WALL_CLOCKS.has(clockid) && (vsec || vnsec);
    return {
      id, flags, fown, vsec, vnsec, isec, insec, clockid, settimeFlags,
      ticks: BigInt(fdinfoField(info, 'ticks')),
      // A timer armed for ever (a time near the end of ktime) would pass int64: the kernel's own
      // limit, KTIME_MAX, is what it is armed for anyway.
      ...(wallAbs ? { cryoAbsNs: minBig(hostClockNs(clockid) + vsec * NS + vnsec, KTIME_MAX) } : {}),
    };
  },
  read: (entry: unknown, id: number) => ({ ...(entry as TimerfdData), id }),
  open(t: TimerfdData): number {
    const fd = sys('timerfd_create', [t.clockid, t.flags & CREATE_FLAGS], `timerfd ${t.id}`);
    // fdinfo shows the time left, so re-arm relative to now, or at now plus that for an absolute
    // timer. A periodic timer that expired and was not read yet shows 0 left: the kernel would
    // go on from the next period, so arm it for one interval.
    const flags = (t.settimeFlags ?? 0) & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
    const expired = !t.vsec && !t.vnsec;
    const armed = !expired || t.isec || t.insec;
    let value = expired ? t.isec * NS + t.insec : t.vsec * NS + t.vnsec;
    if (hasField(timerfd_entrySchema, t, 'cryoAbsNs') && flags & TFD_TIMER_ABSTIME) value = t.cryoAbsNs!;
    else if (armed && flags & TFD_TIMER_ABSTIME) value += hostClockNs(t.clockid);
    const spec = Buffer.alloc(32);
    spec.writeBigInt64LE(t.isec, 0);
    spec.writeBigInt64LE(t.insec, 8);
    spec.writeBigInt64LE(armed ? value / NS : 0n, 16);
    spec.writeBigInt64LE(armed ? value % NS : 0n, 24);
    // A disarmed timer keeps its flags too (CANCEL_ON_SET reports a clock set even so).
    if (armed || flags) sys('timerfd_settime', [fd, flags, spec, 0], `timerfd ${t.id}`);
    if (t.ticks) {
      const ticks = Buffer.alloc(8);
      ticks.writeBigUInt64LE(t.ticks);
      sys('ioctl', [fd, TFD_IOC_SET_TICKS, ticks], `timerfd ${t.id} ticks`);
    }
    return fd;
  },
  expect(t: TimerfdData, s, key) {
    s.set(`${key} clockid`, String(t.clockid));
    s.set(`${key} interval`, timespecText(t.isec, t.insec));
    // The time left is not compared: it went on running since the dump (the restore re-arms
    // with what was left then). Ticks may only have grown.
    s.set(`${key} armed`, timerfdArmed(t.vsec, t.vnsec, t.isec, t.insec));
    s.set(`${key} ticks`, { atLeast: t.ticks });
    s.set(`${key} settime flags`, String((t.settimeFlags ?? 0) & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)));
  },
  observe(info, s, key) {
    const value = timespec(info.extra.get('it_value')?.[0]);
    const interval = timespec(info.extra.get('it_interval')?.[0]);
    if (!value || !interval) return;
    s.set(`${key} clockid`, info.extra.get('clockid')?.[0] ?? '');
    s.set(`${key} interval`, timespecText(interval[0], interval[1]));
    s.set(`${key} armed`, timerfdArmed(value[0], value[1], interval[0], interval[1]));
    s.set(`${key} ticks`, info.extra.get('ticks')?.[0] ?? '');
    s.set(`${key} settime flags`, String(parseInt(info.extra.get('settime flags')?.[0] ?? '0', 8)));
  },
} satisfies FdKind<TimerfdData>;
