// What the open files of a whole tree look like, taken once per check or dump, and what the user
// allows: the view every file module judges its fds and mappings against.
import { readdirSync, readlinkSync, fstatSync } from 'node:fs';
import { unixSockets, peekQueue, closeFd, TCP_STATE, type UnixDiag } from '../../sys/index.js';
import { socketInode, withOurCopy } from './socket.js';

export interface ScanOptions {
  /** Unix peers outside the tree are allowed: reconnected by name on restore. */
  extUnixSk?: boolean;
  /** Largest deleted file whose contents are saved in the images (bytes). */
  ghostLimit?: number;
  /** File locks are saved (otherwise a task holding one is refused). */
  fileLocks?: boolean;
}

/** CRIU's default ghost limit: 1 MiB. */
export const DEFAULT_GHOST_LIMIT = 1 << 20;

export interface FileScan {
  /** Every unix socket of the network namespace, by inode. */
  unix: Map<number, UnixDiag>;
  /** Socket inodes some task of the tree has open. */
  held: Set<number>;
  extUnixSk: boolean;
  ghostLimit: number;
  fileLocks: boolean;
}

export function scanFiles(pids: number[], opts: ScanOptions = {}): FileScan {
  const held = new Set<number>();
  const where = new Map<number, { pid: number; fd: number }>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or a zombie
    }
    for (const fd of fds) {
      try {
        const ino = socketInode(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (ino !== null) {
          held.add(ino);
          where.set(ino, { pid, fd: Number(fd) });
        }
      } catch {
        /* closed meanwhile */
      }
    }
  }
  const unix = held.size ? unixSockets() : new Map<number, UnixDiag>();
  for (const ino of inFlight(unix, where)) held.add(ino);
  return {
    unix,
    held,
    extUnixSk: opts.extUnixSk ?? false,
    ghostLimit: opts.ghostLimit ?? DEFAULT_GHOST_LIMIT,
    fileLocks: opts.fileLocks ?? false,
  };
}

/**
 * Unix sockets that are not in any fd table but in flight (SCM_RIGHTS) in a queue of one that
 * is: they belong to the tree too. Found by peeking at the queues (nothing is consumed).
 */
function inFlight(unix: Map<number, UnixDiag>, where: Map<number, { pid: number; fd: number }>): number[] {
  const out: number[] = [];
  for (const [ino, at] of where) {
    const d = unix.get(ino);
    if (!d || d.state === TCP_STATE.LISTEN || d.rqueue === 0) continue;
    try {
      withOurCopy(at.pid, at.fd, (ours) => {
        for (const m of peekQueue(ours, 8 << 20)) {
          for (const f of m.fds) {
            const st = fstatSync(f);
            if (st.isSocket()) out.push(st.ino);
            closeFd(f);
          }
        }
      });
    } catch {
      /* closed or gone meanwhile: the dump looks again under freeze */
    }
  }
  return out;
}
