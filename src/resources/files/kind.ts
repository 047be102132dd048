// What stops an fd from being dumped: its kind's blocker (registry.ts), its locks, or, for what
// no kind takes, the text for what cryo does not support yet; and what the fd is in words, for
// check's report.
import { S_IF } from '../../sys/index.js';
import { socketFamily, unsupportedSocket } from './socket-common.js';
import { blockerAt } from '../../util/blocker.js';
import type { FileScan } from './scan.js';
import { fdLocks, lockBlocker } from './locks.js';
import { registeredKindOf } from './registry.js';
import { parseFdinfo, type ProcFdinfo } from '../../proc/index.js';
import { readFileSync } from 'node:fs';
import type { Blocker } from '../../util/blocker.js';

/** Kernel objects behind anon_inode links, as a user would call them. */
const ANON_NAMES: Record<string, string> = {
  io_uring: 'io_uring instance',
  inotify: 'inotify instance',
  fanotify: 'fanotify instance',
  pidfd: 'pidfd',
  userfaultfd: 'userfaultfd',
  'perf_event': 'perf event',
  'bpf-map': 'BPF map',
  'bpf-prog': 'BPF program',
  'bpf_link': 'BPF link',
  eventfd: 'eventfd',
  signalfd: 'signalfd',
  timerfd: 'timerfd',
  eventpoll: 'epoll instance',
};

export function describeLink(link: string): string {
  const a = /^anon_inode:\[?([^\]]*)\]?$/.exec(link);
  if (a) return ANON_NAMES[a[1]!] ?? `${a[1]} (anonymous inode)`;
  const m = /^([a-z_]+):\[(.*)\]$/.exec(link);
  if (m) return `${m[1]} ${m[2]}`;
  return link;
}

/**
 * Why the fd cannot be dumped (null if it can). `info`: its fdinfo, when the caller has it
 * parsed already; read here otherwise (once, for every check that needs it).
 */
export function findFdBlocker(pid: number, fd: number, link: string, mode: number | null, scan: FileScan, info?: ProcFdinfo): Blocker | null {
  if (!info) {
    try {
      info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    } catch {
      return null; // closed meanwhile
    }
  }
  return kindBlocker(pid, fd, link, mode, scan, info) ?? lockBlocker({ pid, fd }, fdLocks(info), scan.fileLocks);
}

/** What the fd is in words (a socket's addresses; else its link as describeLink says it). */
export function describeFd(pid: number, fd: number, link: string, mode: number | null, scan: FileScan): string {
  const registered = registeredKindOf(link, mode, { pid, fd });
  if (registered?.describe) {
    const info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    return registered.describe({ pid, fd, link, mode, info }, scan);
  }
  const family = registered ? null : socketFamily(link, { pid, fd });
  return family !== null ? unsupportedSocket(family).text : describeLink(link);
}

function kindBlocker(pid: number, fd: number, link: string, mode: number | null, scan: FileScan, info: ProcFdinfo): Blocker | null {
  const refuse = (kind: string, reason: string): Blocker => ({ pid, fd, kind, reason });
  const registered = registeredKindOf(link, mode, { pid, fd });
  if (registered) return registered.blocker({ pid, fd, link, mode, info }, scan);
  const family = socketFamily(link, { pid, fd });
  if (family !== null) return blockerAt({ pid, fd }, unsupportedSocket(family).cause);
  const a = /^anon_inode:\[?([^\]]*)\]?$/.exec(link);
  if (a) return refuse(a[1]!, `${describeLink(link)} — not supported yet`);
  if (link.startsWith('/secretmem')) return refuse('secretmem', 'memfd_secret memory — its pages cannot be read from outside the process, by design; not supported');
  if (mode === null) return refuse('file', `${link} — cannot inspect`);
  return refuse('file', `${link} (file type 0${(mode & S_IF.MT).toString(8)}) — not supported`);
}
