// epoll instances, whose targets show in /proc/PID/fdinfo. (The other anon_inode objects —
// eventfd, signalfd, timerfd, inotify, fanotify, pidfd — are kinds of the registry.)
// Dumped from there; restored by creating the object in the restorer with that state and handing
// it to the task like any open file.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { readdirSync } from 'node:fs';
import { sys, isEpollTarget } from '../../sys/index.js';
import type { eventpoll_file_entrySchema, eventpoll_tfd_entrySchema } from '../../image/gen/eventpoll_pb.js';
import type { ProcFdinfo } from '../../proc/index.js';
import type { Blocker } from '../../util/blocker.js';
import type { FownData } from './reg.js';

export type AnonKind = 'EVENTPOLL';

/** One fd an epoll watches: its number in the task, the events and the user's data. */
export type EpollTarget = MessageInitShape<typeof eventpoll_tfd_entrySchema> & { tfd: number; events: number; data: bigint };
export type EventpollData = MessageInitShape<typeof eventpoll_file_entrySchema> & { flags: number; tfd: EpollTarget[] };

export type AnonRecord = { type: 'EVENTPOLL'; id: number; epfd: EventpollData };

export function anonKind(link: string): AnonKind | null {
  if (link === 'anon_inode:[eventpoll]') return 'EVENTPOLL';
  return null;
}

export function anonFromFdinfo(kind: AnonKind, id: number, flags: number, fown: FownData, info: ProcFdinfo): AnonRecord {
  return { type: kind, id, epfd: { id, flags, fown, tfd: (info.extra.get('tfd') ?? []).map((l) => epollTarget(id, l)) } };
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
export function epollHolders(pid: number, epfd: number, info: ProcFdinfo): (number | null)[] {
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
export function epollBlocker(pid: number, epfd: number, info: ProcFdinfo): Blocker | null {
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

/**
 * Creates the object in the restorer, with its state; returns our fd. An epoll starts empty:
 * its targets are fds of the task, added by the task itself once its fd table is complete.
 */
export function createAnon(rec: AnonRecord): number {
  return sys('epoll_create1', [rec.epfd.flags & 0o2000000], `epoll ${rec.id}`);
}
