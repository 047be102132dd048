// What kind of object an fd refers to, from its /proc/PID/fd link; the blocker text for kinds
// cryo does not support yet.
import { socketBlocker, socketInode } from './socket.js';
import type { FileScan } from './scan.js';
import { deletedPath, ghostBlocker } from './ghost.js';
import { isMemfd } from './memfd.js';
import { fdLocks, lockBlocker } from './locks.js';
import { registeredKindOf } from './registry.js';
import { parseFdinfo, type ProcFdinfo } from '../../proc/index.js';
import { readFileSync, statSync } from 'node:fs';
import { filesystemType, FS_MAGIC } from '../../sys/index.js';
import type { Blocker } from '../../util/blocker.js';

/** Character devices whose state is nothing more than being open. */
export const STATELESS_DEVICES = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);

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

function kindBlocker(pid: number, fd: number, link: string, mode: number | null, scan: FileScan, info: ProcFdinfo): Blocker | null {
  const refuse = (kind: string, reason: string): Blocker => ({ pid, fd, kind, reason });
  const sock = socketInode(link);
  if (sock !== null) return socketBlocker(pid, fd, sock, scan);
  const registered = registeredKindOf(link, mode);
  if (registered) return registered.blocker({ pid, fd, link, mode, info }, scan);
  const a = /^anon_inode:\[?([^\]]*)\]?$/.exec(link);
  if (a) return refuse(a[1]!, `${describeLink(link)} — not supported yet`);
  if (isMemfd(link)) return null;
  if (link.startsWith('/secretmem')) return refuse('secretmem', 'memfd_secret memory — its pages cannot be read from outside the process, by design; not supported');
  // Before the ghost-file test: an unlinked queue's link reads as a deleted file.
  if (mode !== null && (mode & 0o170000) === 0o100000 && filesystemType(`/proc/${pid}/fd/${fd}`) === FS_MAGIC.MQUEUE) {
    return refuse('mqueue', `POSIX message queue ${link.replace(/ \(deleted\)$/, '')} (mq_open) — not supported yet`);
  }
  const gone = deletedPath(link);
  if (gone !== null) return ghostBlocker({ pid, fd }, gone, `/proc/${pid}/fd/${fd}`, scan.ghostLimit);
  if (mode === null) return refuse('file', `${link} — cannot inspect`);
  const type = mode & 0o170000;
  if (type === 0o100000 || type === 0o040000) return pathBlocker(pid, fd, link);
  if (type === 0o020000) return STATELESS_DEVICES.has(link) ? null : refuse('device', `character device ${link} — not supported`);
  return refuse('file', `${link} (file type 0${type.toString(8)}) — not supported`);
}

/**
 * A regular file or directory is opened again by its path on restore, so the path must lead to
 * the inode the fd has open (in the task's root). It does not for a path overmounted since it
 * was opened, or a file of a mount the task cannot see by path: refused
 * here, before anything is touched, rather than failing the restore of a killed tree.
 */
function pathBlocker(pid: number, fd: number, link: string): Blocker | null {
  const refuse = (kind: string, reason: string): Blocker => ({ pid, fd, kind, reason });
  const proc = `/proc/${pid}/fd/${fd}`;
  let open;
  try {
    open = statSync(proc, { bigint: true });
  } catch {
    return null; // closed meanwhile
  }
  let named = null;
  try {
    if (link.startsWith('/')) named = statSync(`/proc/${pid}/root${link}`, { bigint: true });
  } catch {
    /* nothing there */
  }
  if (named && named.dev === open.dev && named.ino === open.ino) return null;
  const where = named ? 'to another file' : 'nowhere';
  return refuse('file', `${link}: its path leads ${where} (overmounted since it was opened, or on a mount the task cannot reach by path) — not supported`);
}
