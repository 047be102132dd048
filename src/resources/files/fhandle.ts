// File handles as fsnotify fdinfo shows them (inotify watches, fanotify inode marks): turned
// back into a path by opening the handle on a mount of the same device.
import { readFileSync, readlinkSync, openSync, closeSync } from 'node:fs';
import { sysTry, O } from '../../sys/index.js';

/** CRIU's fh_entry: the handle as 64-bit words, and the path cryo found for it. */
export interface FileHandle {
  bytes: number;
  type: number;
  handle: bigint[];
  path?: string;
}

/** From the `fhandle-bytes:`, `fhandle-type:` and `f_handle:` hex fields. */
export function parseHandle(bytes: string, type: string, hex: string): FileHandle {
  const raw = Buffer.from(hex, 'hex');
  const words = Buffer.alloc(Math.ceil(raw.length / 8) * 8);
  raw.copy(words);
  return {
    bytes: parseInt(bytes, 16),
    type: parseInt(type, 16),
    handle: Array.from({ length: words.length / 8 }, (_, i) => words.readBigUInt64LE(i * 8)),
  };
}

function unescapeMount(p: string): string {
  return p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** A mount point of the kernel device `sdev` (major << 20 | minor), from our mountinfo. */
function mountOfDev(sdev: number): string | null {
  const want = `${sdev >>> 20}:${sdev & 0xfffff}`;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want) return unescapeMount(f[4]!);
  }
  return null;
}

/** The mount point of mount `id` (as fdinfo and mountinfo number mounts). */
export function mountPath(id: number): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (Number(f[0]) === id && f[4]) return unescapeMount(f[4]);
  }
  return null;
}

/** The path of the inode a handle names; null if it cannot be found or was deleted. */
export function handlePath(sdev: number, h: FileHandle): string | null {
  const t = handleTarget(sdev, h);
  return t && !t.deleted ? t.path : null;
}

/**
 * Where the inode a handle names is: its path, and whether it was deleted (the path is then
 * the one it had, as /proc shows it). Null if the handle cannot be opened.
 */
export function handleTarget(sdev: number, h: FileHandle): { path: string; deleted: boolean } | null {
  const mnt = mountOfDev(sdev);
  if (mnt === null) return null;
  const fh = Buffer.alloc(8 + h.handle.length * 8);
  fh.writeUInt32LE(h.bytes, 0);
  fh.writeInt32LE(h.type, 4);
  h.handle.forEach((v, i) => fh.writeBigUInt64LE(v, 8 + i * 8));
  const mfd = openSync(mnt, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    const r = sysTry('open_by_handle_at', [mfd, fh, O.PATH | O.CLOEXEC]);
    if (r.ret < 0) return null;
    try {
      const p = readlinkSync(`/proc/self/fd/${r.ret}`);
      return p.endsWith(' (deleted)') ? { path: p.slice(0, -' (deleted)'.length), deleted: true } : { path: p, deleted: false };
    } finally {
      closeSync(r.ret);
    }
  } finally {
    closeSync(mfd);
  }
}
