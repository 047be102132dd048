// epoll instances: the targets each watches (fd number, events, user data) show in fdinfo. The
// restore creates an empty epoll; once the task's fd table is whole, the task itself registers
// each target again under the fd number it was registered with (the kind's afterTable hook).
//
// A one-shot registration (EPOLLONESHOT) that fired waits, disarmed, for the program to re-arm it
// (EPOLL_CTL_MOD): its events are only the flag bits. A registration cannot be made so, since
// every ADD and MOD adds EPOLLERR|EPOLLHUP; so it is made armed for everything and fired once
// more (an epoll_wait of the task's), before any other registration exists that could fire in
// its place. That needs the file ready for something: a pipe or FIFO read end with nothing in
// it gets a byte of cryo's for the moment; any other file with nothing ready is refused.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, writeSync, constants as fsc } from 'node:fs';
import { sys, isEpollTarget, O, F, EPOLL, ALL_READY, readyNow } from '../../sys/index.js';
import { withOurCopy } from './our-copy.js';
import { eventpoll_tfd_entrySchema, type eventpoll_file_entrySchema } from '../../image/gen/eventpoll_pb.js';
import { hasField } from '../../image/presence.js';
import { parseFdinfo, type ProcFdinfo } from '../../proc/index.js';
import type { Blocker } from '../../util/blocker.js';
import type { FownData } from './fown.js';
import type { FdDumpContext, FdKind, FdSeen, FdTableContext } from './fd-kind.js';
import type { FileScan } from './scan.js';

/** One fd an epoll watches: its number in the task, the events and the user's data. */
export type EpollTarget = MessageInitShape<typeof eventpoll_tfd_entrySchema> & { tfd: number; events: number; data: bigint };
export type EventpollData = MessageInitShape<typeof eventpoll_file_entrySchema> & { id: number; flags: number; fown: FownData; tfd: EpollTarget[] };

const TFD_LINE = /^(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*(\d+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/;
const EPOLL_CTL_ADD = 1;

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

/** Where a watched file is held now: a task of the tree (the epoll's own first) and its fd. */
export interface EpollHolder {
  pid: number;
  fd: number;
}

function fdsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map(Number);
  } catch {
    return [];
  }
}

/**
 * Who holds what epoll `epfd` of `pid` watches, for each of its registrations: the registered
 * number itself, or, when that fd was closed or reused since, another fd of the task on the same
 * file, or else an fd of another task of `tree` (a child that closed what its parent still holds,
 * as a forked worker of an asyncio program does); null where no task of the tree holds it.
 * kcmp(KCMP_EPOLL_TFD) tells which.
 */
export function epollHolders(pid: number, epfd: number, info: ProcFdinfo, tree: Iterable<number>): (EpollHolder | null)[] {
  const seen = new Map<number, number>();
  const fds = new Map<number, number[]>();
  const fdsOnce = (p: number): number[] => fds.get(p) ?? fds.set(p, fdsOf(p)).get(p)!;
  return (info.extra.get('tfd') ?? []).map((line) => {
    const t = epollTarget(0, line);
    const toff = seen.get(t.tfd) ?? 0;
    seen.set(t.tfd, toff + 1);
    if (isEpollTarget(pid, t.tfd, epfd, t.tfd, toff)) return { pid, fd: t.tfd };
    for (const p of [pid, ...[...tree].filter((q) => q !== pid)]) {
      const fd = fdsOnce(p).find((n) => isEpollTarget(pid, n, epfd, t.tfd, toff, p));
      if (fd !== undefined) return { pid: p, fd };
    }
    return null;
  });
}

/** Only flag bits left: a one-shot registration that fired and waits to be re-armed. */
export function isDisarmed(events: number): boolean {
  const flags = EPOLL.ONESHOT | EPOLL.ET | EPOLL.WAKEUP | EPOLL.EXCLUSIVE;
  return (events & EPOLL.ONESHOT) !== 0 && (events & ~flags) === 0;
}

function isFifoReader(h: EpollHolder): boolean {
  try {
    return statSync(`/proc/${h.pid}/fd/${h.fd}`).isFIFO() && (parseFdinfo(readFileSync(`/proc/${h.pid}/fdinfo/${h.fd}`, 'utf8')).flags & O.ACCMODE) === O.RDONLY;
  } catch {
    return false; // closed meanwhile
  }
}

/** A disarmed registration the restore can fire once more: its file is ready, or can be made so. */
function canFireAgain(h: EpollHolder): boolean {
  return isFifoReader(h) || withOurCopy(h.pid, h.fd, (ours) => readyNow(ours) !== 0);
}

/** Links of fds the restore makes only after the tables (pidfds) or in their task (/dev/tty). */
const LATE_LINK = /^(anon_inode:\[pidfd\]|\/dev\/tty)$/;

function linkOf(h: EpollHolder): string {
  try {
    return readlinkSync(`/proc/${h.pid}/fd/${h.fd}`);
  } catch {
    return '';
  }
}

/**
 * An epoll target is registered again under its fd number; one whose number was closed or
 * reused after registration is registered through the fd that holds the file now, in this task
 * or in another of the tree. A file no task of the tree holds any more cannot be; nor one held
 * only by another task as a pidfd or /dev/tty (made after the fd tables).
 */
export function epollBlocker(pid: number, epfd: number, info: ProcFdinfo, tree: Iterable<number>): Blocker | null {
  const holders = epollHolders(pid, epfd, info, tree);
  const lines = info.extra.get('tfd') ?? [];
  for (const [i, h] of holders.entries()) {
    const t = epollTarget(0, lines[i]!);
    if (h === null)
      return { pid, fd: epfd, kind: 'epoll', reason: `epoll instance watches a file (registered as fd ${t.tfd}) that no task of the tree has open any more — not supported` };
    if (h.pid !== pid && LATE_LINK.test(linkOf(h)))
      return { pid, fd: epfd, kind: 'epoll', reason: `epoll instance watches a ${linkOf(h)} (registered as fd ${t.tfd}) that only pid ${h.pid} holds (fd ${h.fd}) — not supported` };
    if (isDisarmed(t.events) && !canFireAgain(h))
      return {
        pid, fd: epfd, kind: 'epoll',
        reason: `epoll instance has a one-shot registration of fd ${t.tfd} (${linkOf(h) || 'gone'}) that fired and waits to be re-armed, on a file ready for nothing now: it could not be disarmed again — not supported`,
      };
  }
  return null;
}

/** struct epoll_event as x86_64 packs it: u32 events, u64 data. */
export function epollEvent(t: EpollTarget): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(t.events >>> 0, 0);
  b.writeBigUInt64LE(t.data, 4);
  return b;
}

/** A target as the verification spells it, from the image and from fdinfo alike. */
export function epollTargetText(tfd: number, events: number, data: bigint): string {
  return `fd ${tfd} events 0x${(events >>> 0).toString(16)} data 0x${data.toString(16)}`;
}

/**
 * Fires a registration just made armed for everything (`target`: the disarmed one it stands for)
 * with an epoll_wait of the task's: the only one in the instance that can fire, it comes back
 * disarmed as it was. A pipe or FIFO read end with nothing ready gets a byte for the moment.
 */
function fireOnce(epfd: number, target: EpollTarget, t: FdTableContext, what: string): void {
  const call = t.task.remote.call.bind(t.task.remote);
  const out = t.task.scratch.alloc(12);
  if (call('epoll_wait', [epfd, out, 1, 0], what) === 1n) return;
  let fd = -1;
  let why = '';
  try {
    fd = openSync(`/proc/${t.task.pid}/fd/${target.tfd}`, fsc.O_RDWR | fsc.O_NONBLOCK);
    if (!statSync(`/proc/${t.task.pid}/fd/${target.tfd}`).isFIFO()) throw new Error('not a pipe or FIFO');
    writeSync(fd, Buffer.of(0));
    const fired = call('epoll_wait', [epfd, out, 1, 0], what);
    readSync(fd, Buffer.alloc(1));
    if (fired === 1n) return;
  } catch (e) {
    why = ` (${(e as Error).message})`;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  throw new Error(`${what}: a one-shot registration that had fired cannot be disarmed again: its file is ready for nothing${why}`);
}

/**
 * Registers every target again, from inside the task whose table is whole (`epfd`: its epoll):
 * disarmed one-shot registrations first, each fired once more while nothing else can fire.
 */
function fillEpoll(rec: EventpollData, epfd: number, t: FdTableContext): void {
  const call = t.task.remote.call.bind(t.task.remote);
  const ordered = [...rec.tfd.filter((x) => isDisarmed(x.events)), ...rec.tfd.filter((x) => !isDisarmed(x.events))];
  for (const target of ordered) {
    t.task.scratch.reset();
    const what = `epoll fd ${epfd} target fd ${target.tfd}`;
    const disarmed = isDisarmed(target.events);
    const ev = t.task.scratch.put(epollEvent(disarmed ? { ...target, events: (target.events | ALL_READY) >>> 0 } : target));
    const add = () => {
      call('epoll_ctl', [epfd, EPOLL_CTL_ADD, target.tfd, ev], what);
      if (disarmed) fireOnce(epfd, target, t, what);
    };
    // Held by another task of the tree only (maybe under the same number): from the restorer.
    const elsewhere = hasField(eventpoll_tfd_entrySchema, target, 'cryoHolderPid');
    if (!elsewhere && (!hasField(eventpoll_tfd_entrySchema, target, 'cryoFileFd') || target.cryoFileFd === target.tfd)) {
      add();
      continue;
    }
    // Registered under a number that was closed or reused since: the file (held by another fd,
    // of this task or another) goes under that number for the registration, and whatever is
    // there now comes back.
    const inUse = t.table.find((f) => f.fd === target.tfd);
    const saved = inUse ? call('fcntl', [target.tfd, F.DUPFD_CLOEXEC, t.maxFd + 1], what) : -1n;
    if (elsewhere) t.pullFile(target.cryoHolderPid!, target.cryoFileFd!, target.tfd);
    else call('dup3', [target.cryoFileFd!, target.tfd, 0], what);
    add();
    if (inUse) {
      call('dup3', [saved, target.tfd, inUse.flags & 1 ? O.CLOEXEC : 0], what);
      call('close', [saved]);
    } else {
      call('close', [target.tfd]);
    }
  }
}

export const epollKind = {
  name: 'epoll' as const,
  type: 'EVENTPOLL',
  field: 'epfd',
  phase: 'table',
  object: true,
  recognise: (link: string) => link === 'anon_inode:[eventpoll]',
  blocker: (f: FdSeen, scan: FileScan) => epollBlocker(f.pid, f.fd, f.info, scan.tree),
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): EventpollData {
    const tfd = (f.info.extra.get('tfd') ?? []).map((l) => epollTarget(id, l));
    // Targets whose fd number was closed or reused since registration: which fd holds them now.
    const holders = epollHolders(f.pid, f.fd, f.info, ctx.scan.tree);
    tfd.forEach((t, i) => {
      const h = holders[i];
      if (!h || (h.pid === f.pid && h.fd === t.tfd)) return;
      t.cryoFileFd = h.fd;
      if (h.pid !== f.pid) t.cryoHolderPid = h.pid;
    });
    return { id, flags, fown, tfd };
  },
  read: (entry: unknown) => entry as EventpollData,
  // Empty: its targets are fds of the task, added by the task once its table is whole.
  open: (rec: EventpollData) => sys('epoll_create1', [rec.flags & O.CLOEXEC], `epoll ${rec.id}`),
  afterTable: fillEpoll,
  expect: (rec: EventpollData, s, key) => s.set(`${key} targets`, { set: rec.tfd.map((t) => epollTargetText(t.tfd, t.events, t.data)) }),
  observe(info, s, key) {
    const set = (info.extra.get('tfd') ?? []).map((l) => {
      const m = /^(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)/.exec(l.trim());
      return m ? epollTargetText(Number(m[1]), parseInt(m[2]!, 16), BigInt('0x' + m[3])) : l;
    });
    s.set(`${key} targets`, { set });
  },
} satisfies FdKind<EventpollData>;
