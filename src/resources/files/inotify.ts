// inotify instances: each watch (wd, mask, watched inode) from the `inotify` lines of fdinfo.
// The inode is named by a file handle there; cryo opens it (open_by_handle_at on a mount of the
// same device) to find its path, saved beside the handle. Restored by watching the paths again
// so that each watch gets its old wd. Events queued but not read are not saved (the dump warns:
// there is no peek, and an event is only made by the file system). A watch on a
// file deleted since (`tail -f` of a rotated log) keeps the path it had when the tree holds the
// file open or mapped: the restore makes it again there as a ghost, watches it, and removes it
// before the tasks run; the events the restore itself caused (the removal, its own opens) are
// read off the new instance just before they do.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { isFieldSet, type Message } from '@bufbuild/protobuf';
import { inotify_wd_entrySchema, type inotify_file_entrySchema } from '../../image/gen/fsnotify_pb.js';
import { sys, sysTry, O, E, F, TIOC, ioctlGetInt } from '../../sys/index.js';
import { withOurCopy } from './our-copy.js';
import type { ProcFdinfo } from '../../proc/index.js';
import { blockerAt, type Blocker, type BlockerPlace } from '../../util/blocker.js';
import type { FownData } from './fown.js';
import { handleTarget, parseHandle, type FileHandle } from './fhandle.js';
import type { FileScan } from './scan.js';
import type { FdKind, FdSeen } from './fd-kind.js';

export type InotifyWatch = MessageInitShape<typeof inotify_wd_entrySchema> & {
  wd: number; mask: number; iIno: bigint; sDev: number;
  fHandle: FileHandle;
};
export type InotifyData = MessageInitShape<typeof inotify_file_entrySchema> & { id: number; flags: number; fown: FownData; wd: InotifyWatch[] };

const LINE = /wd:(\d+)\s+ino:([0-9a-f]+)\s+sdev:([0-9a-f]+)\s+mask:([0-9a-f]+)\s+ignored_mask:([0-9a-f]+)\s+fhandle-bytes:([0-9a-f]+)\s+fhandle-type:([0-9a-f]+)\s+f_handle:([0-9a-f]*)/;
const KEEP = O.NONBLOCK | O.CLOEXEC;
const FIONREAD = TIOC.FIONREAD;

function parseWatch(id: number, line: string): InotifyWatch {
  const m = LINE.exec(line);
  if (!m) throw new Error(`unparsable inotify fdinfo line: ${line}`);
  return {
    id, wd: Number(m[1]), iIno: BigInt('0x' + m[2]), sDev: parseInt(m[3]!, 16), mask: parseInt(m[4]!, 16) >>> 0,
    ignoredMask: parseInt(m[5]!, 16) >>> 0,
    fHandle: parseHandle(m[6]!, m[7]!, m[8]!),
  };
}

/** The watches of fdinfo, each with where its inode is now (null: the handle opens nothing). */
function watchesOf(id: number, info: ProcFdinfo): { w: InotifyWatch; at: { path: string; deleted: boolean } | null }[] {
  // parseFdinfo keys a line by what comes before its first colon: "inotify wd".
  return (info.extra.get('inotify wd') ?? []).map((l) => {
    const w = parseWatch(id, `wd:${l}`);
    return { w, at: handleTarget(w.sDev, w.fHandle) };
  });
}

/** Whether the restore can watch it again: a path, or a deleted file the tree holds (its ghost). */
function reachable(w: InotifyWatch, at: { path: string; deleted: boolean } | null, scan: Pick<FileScan, 'deletedFiles'>): boolean {
  return at !== null && (!at.deleted || scan.deletedFiles().get(at.path) === w.iIno);
}

/**
 * The instance's watches, each with the path of what it watches: for a deleted file, the path
 * it had, when the tree holds that very inode (the ghost the restore makes there).
 */
export function dumpInotify(id: number, flags: number, fown: FownData, info: ProcFdinfo, scan: Pick<FileScan, 'deletedFiles'>): InotifyData {
  const watches = watchesOf(id, info);
  for (const { w, at } of watches) if (reachable(w, at, scan)) w.fHandle.path = at!.path;
  return { id, flags, fown, wd: watches.map(({ w }) => w) };
}

/** Why the instance cannot be dumped: a watched inode with no path left. */
export function inotifyBlocker(place: BlockerPlace, info: ProcFdinfo, scan: Pick<FileScan, 'deletedFiles'>): Blocker | null {
  for (const { w, at: t } of watchesOf(0, info)) {
    if (reachable(w, t, scan)) continue;
    const reason = t?.deleted
      ? `inotify watch ${w.wd} on ${t.path}, deleted and open nowhere in the tree — not supported`
      : `inotify watch ${w.wd} on inode ${w.iIno} whose path cannot be found — not supported`;
    return blockerAt(place, { kind: 'inotify', reason });
  }
  return null;
}

/** Reads off every event queued now (without blocking, whatever the instance's flags). */
export function drainInotify(fd: number): void {
  const n = Buffer.alloc(4);
  for (;;) {
    sys('ioctl', [fd, FIONREAD, n], 'inotify FIONREAD');
    const bytes = n.readInt32LE(0);
    if (bytes <= 0) return;
    sys('read', [fd, Buffer.alloc(bytes), bytes], 'draining inotify');
  }
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

/** A watch as the verification spells it, from the image and from fdinfo alike. */
export function inotifyWatchText(wd: number, mask: number, ignored: number): string {
  return `wd ${wd} mask 0x${(mask >>> 0).toString(16)} ignored 0x${(ignored >>> 0).toString(16)}`;
}

export const inotifyKind = {
  name: 'inotify' as const,
  type: 'INOTIFY',
  field: 'ify',
  phase: 'table',
  object: true,
  recognise: (link: string) => link === 'anon_inode:inotify',
  blocker: (f: FdSeen, scan: FileScan) => inotifyBlocker({ pid: f.pid, fd: f.fd }, f.info, scan),
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx) {
    // Not silent: a queue cannot be read without taking it, nor an event made but by the fs.
    const queued = withOurCopy(f.pid, f.fd, (ours) => ioctlGetInt(ours, FIONREAD, 'inotify FIONREAD'));
    if (queued > 0) ctx.warn(`pid ${f.pid} fd ${f.fd}: ${queued} bytes of inotify events not read yet are not saved (an inotify queue cannot be read without taking it); the restored instance starts with none`);
    return dumpInotify(id, flags, fown, f.info, ctx.scan);
  },
  // The decoded message itself: the verification asks it which optional fields it has.
  read: (entry: unknown) => entry as InotifyData,
  open: (rec: InotifyData) => createInotify(rec),
  beforeResume: (_rec: InotifyData, fd: number) => drainInotify(fd),
  expect(rec: InotifyData, s, key) {
    const set = rec.wd.map((w) => {
      const ignored = isFieldSet(w as unknown as Message, inotify_wd_entrySchema.field.ignoredMask!) ? (w.ignoredMask ?? 0) : 0;
      return inotifyWatchText(w.wd, w.mask, ignored);
    });
    s.set(`${key} watches`, { set });
  },
  observe(info, s, key) {
    const set = (info.extra.get('inotify wd') ?? []).map((l) => {
      const m = /^(\d+)\s+ino:\S+\s+sdev:\S+\s+mask:([0-9a-f]+)\s+ignored_mask:([0-9a-f]+)/.exec(l.trim());
      return m ? inotifyWatchText(Number(m[1]), parseInt(m[2]!, 16), parseInt(m[3]!, 16)) : l;
    });
    s.set(`${key} watches`, { set });
  },
} satisfies FdKind<InotifyData>;
