// File locks (flock, POSIX and OFD) and leases, saved with --file-locks as CRIU's
// file_lock_entry. The `lock:` lines of /proc/PID/fdinfo/N name the locks taken through that fd.
// Each lock is taken again by its owner task on the same fd once its fd table is back: POSIX
// locks belong to the process, flock and OFD locks and leases to the open file description the
// fd refers to. A lease being broken (another process is waiting for it) is refused: the break
// is the kernel's, between that process and this one, and cannot be put back.
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
const F_SETLEASE = 1024;
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
  if (l.kind === 'LEASE') return `a ${rw} lease`;
  return `a ${l.kind} ${rw} lock`;
}

/** Why the locks on this fd stop a dump (null if none, or if the user asked for them). */
export function lockBlocker(place: BlockerPlace, locks: LockLine[], fileLocks: boolean): Blocker | null {
  if (!locks.length) return null;
  const odd = locks.find((l) => KIND[l.kind] === undefined);
  if (odd) return blockerAt(place, { kind: 'lock', reason: `holds a ${odd.kind} lock — not supported` });
  const breaking = locks.find((l) => l.kind === 'LEASE' && (l.mode !== 'ACTIVE' || (l.type !== 'READ' && l.type !== 'WRITE')));
  if (breaking) return blockerAt(place, { kind: 'lock', reason: `holds a ${breaking.type.toLowerCase()} lease that another process is breaking (${breaking.mode}) — not supported`, hint: 'retry once the lease holder has given it up' });
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
    const what = `fd ${l.fd}: ${l.flag === FL.FLOCK ? 'flock' : l.flag === FL.OFD ? 'OFD lock' : l.flag === FL.LEASE ? 'lease' : 'POSIX lock'} at ${l.start}`;
    if (l.flag === FL.LEASE) {
      r.remote.call('fcntl', [l.fd, F_SETLEASE, l.type], what);
      continue;
    }
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
