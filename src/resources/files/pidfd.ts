// pidfds (pidfd_open, clone's CLONE_PIDFD): an fd that refers to one process, or to a process
// that has died (fdinfo `Pid: -1`). CRIU's pidfd_entry keeps the pid it refers to (`nspid`, -1
// for a dead one), the pidfs inode (two fds on one process share it) and the file flags
// (O_NONBLOCK; PIDFD_THREAD is O_EXCL, shown in the flags too).
//
// A pidfd to a task of the tree is opened again on the restored task (same PID), once it exists:
// the kind's phase is 'after-children'. A pidfd to a dead process is made from a helper that
// exits and is reaped before the task gets the fd, so it too refers to a dead process (poll
// says POLLIN|POLLHUP, pidfd_send_signal ESRCH). A pidfd to a live process outside the tree is
// refused: nothing guarantees that PID names the same process at restore time.
import { existsSync } from 'node:fs';
import { O, sys, posixSpawn, wait4 } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { FdKind, FdSeen } from './fd-kind.js';
import type { FownData } from './fown.js';
import type { FileScan } from './scan.js';
import { tgidOf, madeByHolderChildren } from './tree-line.js';

/** PIDFD_THREAD (linux/pidfd.h): the pidfd names a thread, not a thread group. Equal to O_EXCL. */
const PIDFD_THREAD = O.EXCL;
/** The flags pidfd_open takes back; the rest (O_RDWR) the kernel sets itself. */
const OPEN_FLAGS = O.NONBLOCK | PIDFD_THREAD;

export interface PidfdRecord {
  id: number;
  /** The pidfs inode: pidfds on one process share it. */
  ino: number;
  flags: number;
  /** The PID it refers to; -1 when that process has died. */
  nspid: number;
  fown: FownData;
}

/** fdinfo's `Pid:` (the PID in our namespace, -1 for a process that died). */
function pidOf(f: FdSeen): number | null {
  const v = f.info.extra.get('Pid')?.[0];
  return v === undefined ? null : Number(v);
}

/** A helper that has exited and been reaped: a pidfd on it refers to a dead process. */
function deadPidfd(flags: number): number {
  const bin = ['/usr/bin/true', '/bin/true'].find((p) => existsSync(p));
  if (!bin) throw new UserError('no /usr/bin/true to make a pidfd of a dead process from');
  const pid = posixSpawn(bin, [bin], []);
  let fd: number;
  try {
    // Our child until we reap it below: the PID cannot be reused before pidfd_open has it.
    fd = sys('pidfd_open', [pid, flags & O.NONBLOCK], `pidfd of helper ${pid}`);
  } finally {
    wait4(pid);
  }
  return fd;
}

export const pidfdKind = {
  name: 'pidfd' as const,
  type: 'PIDFD',
  field: 'pidfd',
  phase: 'after-children',
  object: true,
  recognise: (link: string) => link === 'anon_inode:[pidfd]',
  blocker(f: FdSeen, scan: FileScan) {
    const pid = pidOf(f);
    if (pid === null) return { pid: f.pid, fd: f.fd, kind: 'pidfd', reason: 'pidfd whose fdinfo has no Pid line — cannot inspect' };
    if (pid === -1) return null;
    const tgid = tgidOf(pid);
    if (tgid !== null && scan.tree.has(tgid)) {
      // The restore opens a pidfd once its holder's children exist: its target must be the
      // holder, an ancestor or a descendant (a sibling's branch is made later: ESRCH).
      if (madeByHolderChildren(f.pid, tgid, scan.tree)) return null;
      return { pid: f.pid, fd: f.fd, kind: 'pidfd', reason: `pidfd of pid ${pid}, which is neither an ancestor nor a descendant of its holder — not supported yet` };
    }
    return { pid: f.pid, fd: f.fd, kind: 'pidfd', reason: `pidfd of pid ${pid}, which is outside the dumped tree — not supported`, hint: 'dump the tree that holds that process too' };
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData): PidfdRecord {
    return { id, ino: f.info.ino, flags, nspid: pidOf(f) ?? -1, fown };
  },
  read(entry: unknown, id: number): PidfdRecord {
    const e = entry as PidfdRecord;
    if (!Number.isInteger(e.nspid) || e.nspid < -1 || e.nspid === 0) throw new UserError(`files.img: pidfd ${id} refers to pid ${e.nspid}`);
    return { id, ino: e.ino, flags: e.flags, nspid: e.nspid, fown: e.fown };
  },
  open(rec: PidfdRecord, ctx: { what: string }): number {
    if (rec.nspid === -1) return deadPidfd(rec.flags);
    return sys('pidfd_open', [rec.nspid, rec.flags & OPEN_FLAGS], `${ctx.what}: pidfd of pid ${rec.nspid}`);
  },
  expect(rec: PidfdRecord, s, key) {
    s.set(`${key} pid`, String(rec.nspid));
  },
  observe(info, s, key) {
    s.set(`${key} pid`, info.extra.get('Pid')?.[0] ?? '');
  },
} satisfies FdKind<PidfdRecord>;
