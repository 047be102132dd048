// The owner of an open file description (F_SETOWN / F_SETOWN_EX, F_SETSIG): who gets SIGIO or
// SIGURG for it, and which signal. Read through our own copy of the description; put back on
// the restorer's copy once every task of the tree exists (an owner may be any of them).
import { F, sys, sysTry, pidfdOpen, pidfdGetfd, closeFd } from '../../sys/index.js';
import { readFileSync } from 'node:fs';

/** An open file description's owner as fown_entry records it (F_SETOWN_EX, F_SETSIG). */
export interface FownData {
  uid: number;
  euid: number;
  signum: number;
  pidType: number;
  pid: number;
}

export const NO_FOWN: FownData = { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 };

/** The owner of `ours` (our copy of a task's fd); uid and euid are the task's, as CRIU records. */
export function readFown(ours: number, pid: number): FownData {
  const ex = Buffer.alloc(8);
  if (sysTry('fcntl', [ours, F.GETOWN_EX, ex]).ret < 0) return NO_FOWN;
  const signum = Math.max(0, sysTry('fcntl', [ours, F.GETSIG]).ret);
  const owner = ex.readInt32LE(4);
  if (!owner && !signum) return NO_FOWN;
  const [uid, euid] = (/^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) ?? [0, '0', '0']).slice(1).map(Number) as [number, number];
  return { uid, euid, signum, pidType: ex.readInt32LE(0), pid: owner };
}

/** The owner of the task's `fd`, through a copy taken with pidfd_getfd. */
export function dumpFown(pid: number, fd: number): FownData {
  const pidfd = pidfdOpen(pid);
  try {
    const ours = pidfdGetfd(pidfd, fd);
    try {
      return readFown(ours, pid);
    } finally {
      closeFd(ours);
    }
  } finally {
    closeFd(pidfd);
  }
}

export function hasOwner(f: FownData | undefined): f is FownData {
  return !!f && (f.pid !== 0 || f.signum !== 0);
}

/** Sets the owner on the restorer's copy of a description (shared with the tasks). */
export function restoreFown(ours: number, f: FownData, what: string): void {
  if (f.pid) {
    const ex = Buffer.alloc(8);
    ex.writeInt32LE(f.pidType, 0);
    ex.writeInt32LE(f.pid, 4);
    sys('fcntl', [ours, F.SETOWN_EX, ex], `${what}: owner ${f.pid}`);
  }
  if (f.signum) sys('fcntl', [ours, F.SETSIG, f.signum], `${what}: signal ${f.signum}`);
}
