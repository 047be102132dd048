// inotify instances: each watch (wd, mask, watched inode) from the `inotify` lines of fdinfo.
// The inode is named by a file handle there; cryo opens it (open_by_handle_at on a mount of the
// same device) to find its path, saved beside the handle. Restored by watching the paths again
// so that each watch gets its old wd. Events queued but not read are not saved.
import { readFileSync, readlinkSync, openSync, closeSync } from 'node:fs';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { inotify_file_entrySchema, inotify_wd_entrySchema } from '../../image/gen/fsnotify_pb.js';
import { sys, sysTry, O, E, F } from '../../sys/index.js';
import type { FdInfo } from '../../proc/index.js';
import type { FownData } from './reg.js';

export type InotifyWatch = MessageInitShape<typeof inotify_wd_entrySchema> & {
  wd: number; mask: number; iIno: bigint; sDev: number;
  fHandle: { bytes: number; type: number; handle: bigint[]; path?: string };
};
export type InotifyData = MessageInitShape<typeof inotify_file_entrySchema> & { id: number; flags: number; fown: FownData; wd: InotifyWatch[] };

const LINE = /wd:(\d+)\s+ino:([0-9a-f]+)\s+sdev:([0-9a-f]+)\s+mask:([0-9a-f]+)\s+ignored_mask:([0-9a-f]+)\s+fhandle-bytes:([0-9a-f]+)\s+fhandle-type:([0-9a-f]+)\s+f_handle:([0-9a-f]*)/;
const KEEP = O.NONBLOCK | O.CLOEXEC;

function parseWatch(id: number, line: string): InotifyWatch {
  const m = LINE.exec(line);
  if (!m) throw new Error(`unparsable inotify fdinfo line: ${line}`);
  const raw = Buffer.from(m[8]!, 'hex');
  const words = Buffer.alloc(Math.ceil(raw.length / 8) * 8);
  raw.copy(words);
  return {
    id, wd: Number(m[1]), iIno: BigInt('0x' + m[2]), sDev: parseInt(m[3]!, 16), mask: parseInt(m[4]!, 16) >>> 0,
    ignoredMask: parseInt(m[5]!, 16) >>> 0,
    fHandle: {
      bytes: parseInt(m[6]!, 16), type: parseInt(m[7]!, 16),
      handle: Array.from({ length: words.length / 8 }, (_, i) => words.readBigUInt64LE(i * 8)),
    },
  };
}

/** A mount point of the kernel device `sdev` (major << 20 | minor), from our mountinfo. */
function mountOf(sdev: number): string | null {
  const want = `${sdev >>> 20}:${sdev & 0xfffff}`;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want) return f[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return null;
}

/** The path of the watched inode, through its file handle; null if it cannot be found. */
function pathOf(w: InotifyWatch): string | null {
  const mnt = mountOf(w.sDev);
  if (mnt === null) return null;
  const fh = Buffer.alloc(8 + w.fHandle.handle.length * 8);
  fh.writeUInt32LE(w.fHandle.bytes, 0);
  fh.writeInt32LE(w.fHandle.type, 4);
  w.fHandle.handle.forEach((v, i) => fh.writeBigUInt64LE(v, 8 + i * 8));
  const mfd = openSync(mnt, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    const r = sysTry('open_by_handle_at', [mfd, fh, O.PATH | O.CLOEXEC]);
    if (r.ret < 0) return null;
    try {
      const p = readlinkSync(`/proc/self/fd/${r.ret}`);
      return p.endsWith(' (deleted)') ? null : p;
    } finally {
      closeSync(r.ret);
    }
  } finally {
    closeSync(mfd);
  }
}

/** The instance's watches, each with the path of what it watches. */
export function dumpInotify(id: number, flags: number, fown: FownData, info: FdInfo): InotifyData {
  // parseFdinfo keys a line by what comes before its first colon: "inotify wd".
  const wd = (info.extra.get('inotify wd') ?? []).map((l) => parseWatch(id, `wd:${l}`));
  for (const w of wd) {
    const path = pathOf(w);
    if (path !== null) w.fHandle.path = path;
  }
  return { id, flags, fown, wd };
}

/** Why the instance cannot be dumped: a watched inode with no path left. */
export function inotifyBlocker(where: string, info: FdInfo): string | null {
  for (const w of dumpInotify(0, 0, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 }, info).wd) {
    if (!w.fHandle.path) return `${where}: inotify watch ${w.wd} on inode ${w.iIno} whose path cannot be found (deleted?) — not supported`;
  }
  return null;
}

/**
 * A new instance watching the same paths under the same watch descriptors: descriptors are
 * handed out in increasing order, so a watch is added and removed again until the next one is
 * its old number. The IN_IGNORED events that leaves behind are read off before returning.
 */
export function createInotify(d: InotifyData): number {
  const fd = sys('inotify_init1', [O.NONBLOCK | O.CLOEXEC], `inotify ${d.id}`);
  try {
    for (const w of [...d.wd].sort((a, b) => a.wd - b.wd)) {
      const path = w.fHandle.path;
      if (!path) throw new Error(`inotify watch ${w.wd}: no path in the image`);
      const name = Buffer.from(path + '\0');
      for (;;) {
        const got = sys('inotify_add_watch', [fd, name, w.mask], `inotify watch ${w.wd} on ${path}`);
        if (got === w.wd) break;
        if (got > w.wd) throw new Error(`inotify watch on ${path}: got descriptor ${got}, wanted ${w.wd}`);
        sys('inotify_rm_watch', [fd, got]);
      }
    }
    const buf = Buffer.alloc(4096);
    for (;;) {
      const r = sysTry('read', [fd, buf, buf.length]);
      if (r.ret <= 0) {
        if (r.ret < 0 && r.errno !== E.EAGAIN) throw new Error(`draining inotify ${d.id}: errno ${r.errno}`);
        break;
      }
    }
    sys('fcntl', [fd, F.SETFL, d.flags & KEEP & ~O.CLOEXEC]);
  } catch (e) {
    sys('close', [fd]);
    throw e;
  }
  return fd;
}
