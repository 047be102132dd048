// What the open files of a whole tree look like, taken once per check or dump, and what the user
// allows: the view every file module judges its fds and mappings against.
import { readdirSync, readlinkSync } from 'node:fs';
import { unixSockets, type UnixDiag } from '../../sys/index.js';
import { socketInode } from './socket.js';

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
        if (ino !== null) held.add(ino);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return {
    unix: held.size ? unixSockets() : new Map(),
    held,
    extUnixSk: opts.extUnixSk ?? false,
    ghostLimit: opts.ghostLimit ?? DEFAULT_GHOST_LIMIT,
    fileLocks: opts.fileLocks ?? false,
  };
}
