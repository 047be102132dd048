// File locks (flock, POSIX and OFD), saved with --file-locks as CRIU's file_lock_entry. The
// `lock:` lines of /proc/PID/fdinfo/N name the locks taken through that fd. Each lock is taken
// again by its owner task on the same fd once its fd table is back: POSIX locks belong to the
// process, flock and OFD locks to the open file description the fd refers to.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { file_lock_entrySchema } from '../../image/gen/file-lock_pb.js';
import { parseLockLine, type ProcFdinfo, type LockLine } from '../../proc/index.js';
import { blockerAt, type Blocker, type BlockerPlace } from '../../util/blocker.js';
import type { RestoreTask } from '../context.js';

export type FileLockData = MessageInitShape<typeof file_lock_entrySchema> & {
  flag: number; type: number; pid: number; fd: number; start: bigint; len: bigint;
};

/** CRIU's lock kinds (the `flag` field) and types. */
const FL = { POSIX: 1, FLOCK: 2, OFD: 4, LEASE: 8 } as const;
const KIND: Record<string, number> = { POSIX: FL.POSIX, FLOCK: FL.FLOCK, OFDLCK: FL.OFD, LEASE: FL.LEASE };
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_SETLK = 6;
const F_OFD_SETLK = 37;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;

export function fdLocks(info: ProcFdinfo): LockLine[] {
  return (info.extra.get('lock') ?? []).map(parseLockLine).filter((l): l is LockLine => l !== null);
}

function describe(l: LockLine): string {
  const rw = l.type === 'WRITE' ? 'write' : 'read';
  if (l.kind === 'FLOCK') return `a flock ${rw} lock`;
  if (l.kind === 'OFDLCK') return `an OFD ${rw} lock`;
  return `a ${l.kind} ${rw} lock`;
}

/** Why the locks on this fd stop a dump (null if none, or if the user asked for them). */
export function lockBlocker(place: BlockerPlace, locks: LockLine[], fileLocks: boolean): Blocker | null {
  if (!locks.length) return null;
  const lease = locks.find((l) => KIND[l.kind] === undefined || l.kind === 'LEASE');
  if (lease) return blockerAt(place, { kind: 'lock', reason: `holds a ${lease.kind} — not supported` });
  if (!fileLocks) return blockerAt(place, { kind: 'lock', reason: `holds ${describe(locks[0]!)}`, hint: 'pass --file-locks to checkpoint file locks' });
  return null;
}

export function lockEntries(pid: number, fd: number, locks: LockLine[]): FileLockData[] {
  return locks.map((l) => ({
    flag: KIND[l.kind]!,
    type: l.type === 'WRITE' ? F_WRLCK : F_RDLCK,
    pid,
    fd,
    start: l.start,
    len: l.end === null ? 0n : l.end - l.start + 1n,
  }));
}

/** Takes the task's locks again, from inside it (after its fds are in place). */
export function restoreLocks(r: RestoreTask, locks: FileLockData[]): void {
  for (const l of locks) {
    const what = `fd ${l.fd}: ${l.flag === FL.FLOCK ? 'flock' : l.flag === FL.OFD ? 'OFD lock' : 'POSIX lock'} at ${l.start}`;
    if (l.flag === FL.FLOCK) {
      r.remote.call('flock', [l.fd, (l.type === F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB], what);
      continue;
    }
    // struct flock: l_type, l_whence (SEEK_SET), l_start, l_len, l_pid (0 for OFD locks)
    const fl = Buffer.alloc(32);
    fl.writeInt16LE(l.type, 0);
    fl.writeBigInt64LE(l.start, 8);
    fl.writeBigInt64LE(l.len, 16);
    r.scratch.reset();
    r.remote.call('fcntl', [l.fd, l.flag === FL.OFD ? F_OFD_SETLK : F_SETLK, r.scratch.put(fl)], what);
  }
}
