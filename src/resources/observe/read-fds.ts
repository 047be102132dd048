// The fd table part of a snapshot: per fd its kind, flags, position or path, and what its fdinfo
// or getsockopt shows for its kind (eventfd count, timerfd settings, signalfd mask, epoll
// targets, inotify watches, locks, socket options).
import { readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { O, SOL, AF, SOCK, pidfdOpen, pidfdGetfd, closeFd, sysTry } from '../../sys/index.js';
import { parseFdinfo, parseLockLine } from '../../proc/index.js';
import { fdFlagSet } from './names.js';
import { fdKindOf, OBJECT_KINDS, type ObservedKind } from './fd-kinds.js';
import type { Snapshot } from './snapshot.js';
import { registeredKindOf } from '../files/registry.js';
import { inItsState, optionsFor, optText, readOpt, socketKind } from '../files/sk-proto-opts.js';
import { dumpMemberships, membershipText } from '../net/mcast.js';
import { SOCKET_OPTIONS } from '../files/sk-verify.js';
import { observedFilter } from '../files/sk-filter.js';


export function fdKey(fd: number, kind: ObservedKind): string {
  return `fd ${fd} (${kind})`;
}

export function readFds(s: Snapshot, pid: number, sockets: boolean): void {
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  s.set('fds', { set: fds.map(String) });
  let pidfd = -1;
  try {
    for (const fd of fds) {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const mode = statSync(`/proc/${pid}/fd/${fd}`).mode;
      const kind = fdKindOf(link, mode, { pid, fd });
      const info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      const key = fdKey(fd, kind);
      s.set(key, fdFlagSet(info.flags & ~O.CLOEXEC, (info.flags & O.CLOEXEC) !== 0, OBJECT_KINDS.has(kind)));
      // The kind's own: positions, paths, counters, settings, watches, targets.
      registeredKindOf(link, mode, { pid, fd })?.observe?.(info, s, key, { link, mode, at: { pid, fd } });
      const locks = (info.extra.get('lock') ?? []).map(parseLockLine).filter((l) => l !== null);
      if (locks.length) s.set(`${key} locks`, { set: locks.map((l) => lockText(l.kind, l.type, l.start, l.end)) });
      if (kind === 'socket' && sockets) {
        if (pidfd < 0) pidfd = pidfdOpen(pid);
        socketOptions(s, key, pidfd, fd, pid);
      }
    }
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
  }
}

export function lockText(kind: string, type: string, start: bigint, end: bigint | null): string {
  return `${kind} ${type} ${start}-${end ?? 'EOF'}`;
}

/** getsockopt on a dup of the task's socket (the same open file, so the same options). */
function socketOptions(s: Snapshot, key: string, pidfd: number, fd: number, pid: number): void {
  let mine: number;
  try {
    mine = pidfdGetfd(pidfd, fd);
  } catch {
    return; // closed meanwhile
  }
  try {
    for (const [name, opt, , how] of SOCKET_OPTIONS) {
      const buf = Buffer.alloc(16);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(how === 'timeval' ? 16 : 4);
      if (sysTry('getsockopt', [mine, SOL.SOCKET, opt, buf, len]).ret < 0) continue;
      const v = how === 'timeval' ? `${buf.readBigInt64LE(0)}.${buf.readBigInt64LE(8)}` : how === 'bool' ? (buf.readInt32LE(0) ? '1' : '0') : String(buf.readInt32LE(0));
      s.set(`${key} ${name}`, v);
    }
    const kind = socketKind(mine);
    for (const o of optionsFor(kind)) {
      if (!inItsState(mine, o)) continue;
      const v = readOpt(mine, o);
      if (v) s.set(`${key} ${o.label}`, optText(v));
    }
    const filter = observedFilter(mine);
    if (filter) s.set(`${key} SO_ATTACH_FILTER`, filter);
    if ((kind.domain === AF.INET || kind.domain === AF.INET6) && kind.type !== SOCK.STREAM) {
      const set = dumpMemberships(pid, mine, kind.domain).map((m) => membershipText(kind.domain, m.ifname, m.group, m.mode, m.sources));
      if (set.length) s.set(`${key} multicast`, { set });
    }
  } finally {
    closeFd(mine);
  }
}
