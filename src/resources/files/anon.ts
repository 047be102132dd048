// eventfd, signalfd, timerfd, epoll, inotify and fanotify: kernel objects whose whole state shows in /proc/PID/fdinfo.
// Dumped from there; restored by creating the object in the restorer with that state and handing
// it to the task like any open file.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { writeSync, readdirSync } from 'node:fs';
import { sys, isEpollTarget } from '../../sys/index.js';
import type { eventfd_file_entrySchema } from '../../image/gen/eventfd_pb.js';
import type { signalfd_entrySchema } from '../../image/gen/signalfd_pb.js';
import type { timerfd_entrySchema } from '../../image/gen/timerfd_pb.js';
import type { eventpoll_file_entrySchema, eventpoll_tfd_entrySchema } from '../../image/gen/eventpoll_pb.js';
import type { FdInfo } from '../../proc/index.js';
import type { Blocker } from '../../util/blocker.js';
import type { FownData } from './reg.js';
import { dumpInotify, createInotify, type InotifyData } from './inotify.js';
import { dumpFanotify, createFanotify, type FanotifyData } from './fanotify.js';

export type AnonKind = 'EVENTFD' | 'SIGNALFD' | 'TIMERFD' | 'EVENTPOLL' | 'INOTIFY' | 'FANOTIFY';

// The image's own message shapes (as create() takes them).
export type EventfdData = MessageInitShape<typeof eventfd_file_entrySchema> & { flags: number; counter: bigint };
export type SignalfdData = MessageInitShape<typeof signalfd_entrySchema> & { flags: number; sigmask: bigint };
export type TimerfdData = MessageInitShape<typeof timerfd_entrySchema> & {
  flags: number; clockid: number; ticks: bigint; vsec: bigint; vnsec: bigint; isec: bigint; insec: bigint;
};
/** One fd an epoll watches: its number in the task, the events and the user's data. */
export type EpollTarget = MessageInitShape<typeof eventpoll_tfd_entrySchema> & { tfd: number; events: number; data: bigint };
export type EventpollData = MessageInitShape<typeof eventpoll_file_entrySchema> & { flags: number; tfd: EpollTarget[] };

export type AnonRecord =
  | { type: 'EVENTPOLL'; id: number; epfd: EventpollData }
  | { type: 'EVENTFD'; id: number; efd: EventfdData }
  | { type: 'SIGNALFD'; id: number; sgfd: SignalfdData }
  | { type: 'TIMERFD'; id: number; tfd: TimerfdData }
  | { type: 'INOTIFY'; id: number; ify: InotifyData }
  | { type: 'FANOTIFY'; id: number; ffy: FanotifyData };

const EFD_SEMAPHORE = 1;
const KEEP = 0o4000 | 0o2000000; // O_NONBLOCK | O_CLOEXEC: what the create calls accept

export function anonKind(link: string): AnonKind | null {
  if (link === 'anon_inode:[eventfd]') return 'EVENTFD';
  if (link === 'anon_inode:[signalfd]') return 'SIGNALFD';
  if (link === 'anon_inode:[timerfd]') return 'TIMERFD';
  if (link === 'anon_inode:[eventpoll]') return 'EVENTPOLL';
  if (link === 'anon_inode:inotify') return 'INOTIFY';
  if (link === 'anon_inode:[fanotify]') return 'FANOTIFY';
  return null;
}

function one(info: FdInfo, key: string): string {
  const v = info.extra.get(key)?.[0];
  if (v === undefined) throw new Error(`fdinfo has no "${key}"`);
  return v;
}

/** "(sec, nsec)" as fdinfo prints a timespec. */
function timespec(v: string): [bigint, bigint] {
  const m = /\((-?\d+),\s*(-?\d+)\)/.exec(v);
  if (!m) throw new Error(`bad timespec in fdinfo: ${v}`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}

export function anonFromFdinfo(kind: AnonKind, id: number, flags: number, fown: FownData, info: FdInfo): AnonRecord {
  switch (kind) {
    case 'EVENTFD': {
      const sem = info.extra.get('eventfd-semaphore')?.[0] === '1' ? EFD_SEMAPHORE : 0;
      return { type: kind, id, efd: { id, flags: flags | sem, fown, counter: BigInt('0x' + one(info, 'eventfd-count')) } };
    }
    case 'INOTIFY':
      return { type: kind, id, ify: dumpInotify(id, flags, fown, info) };
    case 'FANOTIFY':
      return { type: kind, id, ffy: dumpFanotify(id, flags, fown, info) };
    case 'SIGNALFD':
      return { type: kind, id, sgfd: { id, flags, fown, sigmask: BigInt('0x' + one(info, 'sigmask')) } };
    case 'EVENTPOLL':
      return { type: kind, id, epfd: { id, flags, fown, tfd: (info.extra.get('tfd') ?? []).map((l) => epollTarget(id, l)) } };
    case 'TIMERFD': {
      const [vsec, vnsec] = timespec(one(info, 'it_value'));
      const [isec, insec] = timespec(one(info, 'it_interval'));
      return {
        type: kind,
        id,
        tfd: {
          id, flags, fown, vsec, vnsec, isec, insec,
          clockid: Number(one(info, 'clockid')),
          ticks: BigInt(one(info, 'ticks')),
          settimeFlags: parseInt(one(info, 'settime flags'), 8),
        },
      };
    }
  }
}

const TFD_LINE = /^(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*(\d+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/;

/** A "tfd:" line of an epoll's fdinfo. */
function epollTarget(id: number, line: string): EpollTarget {
  const m = TFD_LINE.exec(line.trim());
  if (!m) throw new Error(`unparsable epoll fdinfo line: tfd: ${line}`);
  return {
    id,
    tfd: Number(m[1]),
    events: parseInt(m[2]!, 16) >>> 0,
    data: BigInt('0x' + m[3]),
    pos: BigInt(m[4]!),
    inode: BigInt('0x' + m[5]),
    dev: parseInt(m[6]!, 16),
  };
}

/**
 * The fd of `pid` that holds what epoll `epfd` watches under each of its registrations: the
 * registered number itself, or, when that fd was closed or reused since, another fd of the task
 * on the same file (found with kcmp); null where the task holds it nowhere.
 */
export function epollHolders(pid: number, epfd: number, info: FdInfo): (number | null)[] {
  const seen = new Map<number, number>();
  let fds: number[] | null = null;
  return (info.extra.get('tfd') ?? []).map((line) => {
    const t = epollTarget(0, line);
    const toff = seen.get(t.tfd) ?? 0;
    seen.set(t.tfd, toff + 1);
    if (isEpollTarget(pid, t.tfd, epfd, t.tfd, toff)) return t.tfd;
    fds ??= readdirSync(`/proc/${pid}/fd`).map(Number);
    return fds.find((fd) => isEpollTarget(pid, fd, epfd, t.tfd, toff)) ?? null;
  });
}

/**
 * An epoll target is registered again under its fd number; one whose number was closed or
 * reused after registration is registered through another fd of the task on the same file. A
 * file the task holds no fd of any more (only another process does) cannot be.
 */
export function epollBlocker(pid: number, epfd: number, info: FdInfo): Blocker | null {
  const holders = epollHolders(pid, epfd, info);
  const lost = holders.findIndex((h) => h === null);
  if (lost < 0) return null;
  const t = epollTarget(0, info.extra.get('tfd')![lost]!);
  return { pid, fd: epfd, kind: 'epoll', reason: `epoll instance watches a file (registered as fd ${t.tfd}) that this task no longer has open — not supported` };
}

/** struct epoll_event as x86_64 packs it: u32 events, u64 data. */
export function epollEvent(t: EpollTarget): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(t.events >>> 0, 0);
  b.writeBigUInt64LE(t.data, 4);
  return b;
}

const TFD_IOC_SET_TICKS = 0x40085400;

/**
 * Creates the object in the restorer, with its state; returns our fd. An epoll starts empty:
 * its targets are fds of the task, added by the task itself once its fd table is complete.
 */
export function createAnon(rec: AnonRecord): number {
  switch (rec.type) {
    case 'INOTIFY':
      return createInotify(rec.ify);
    case 'FANOTIFY':
      return createFanotify(rec.ffy);
    case 'EVENTPOLL':
      return sys('epoll_create1', [rec.epfd.flags & 0o2000000], `epoll ${rec.id}`);
    case 'EVENTFD': {
      // eventfd2 takes an unsigned int: the full 64-bit count goes in with a write.
      const f = rec.efd.flags;
      const fd = sys('eventfd2', [0, (f & KEEP) | (f & EFD_SEMAPHORE)], `eventfd ${rec.id}`);
      if (rec.efd.counter) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(rec.efd.counter);
        writeSync(fd, b);
      }
      return fd;
    }
    case 'SIGNALFD': {
      const mask = Buffer.alloc(8);
      mask.writeBigUInt64LE(rec.sgfd.sigmask);
      return sys('signalfd4', [-1, mask, 8, rec.sgfd.flags & KEEP], `signalfd ${rec.id}`);
    }
    case 'TIMERFD': {
      const t = rec.tfd;
      const fd = sys('timerfd_create', [t.clockid, t.flags & KEEP], `timerfd ${rec.id}`);
      // fdinfo shows the time left, so re-arm relative to now (settime flags 0). A periodic
      // timer that expired and was not read yet shows 0 left: the kernel would go on from the
      // next period, so arm it for one interval.
      const expired = !t.vsec && !t.vnsec;
      const spec = Buffer.alloc(32);
      spec.writeBigInt64LE(t.isec, 0);
      spec.writeBigInt64LE(t.insec, 8);
      spec.writeBigInt64LE(expired ? t.isec : t.vsec, 16);
      spec.writeBigInt64LE(expired ? t.insec : t.vnsec, 24);
      if (!expired || t.isec || t.insec) sys('timerfd_settime', [fd, 0, spec, 0], `timerfd ${rec.id}`);
      if (t.ticks) {
        const ticks = Buffer.alloc(8);
        ticks.writeBigUInt64LE(t.ticks);
        sys('ioctl', [fd, TFD_IOC_SET_TICKS, ticks], `timerfd ${rec.id} ticks`);
      }
      return fd;
    }
  }
}
