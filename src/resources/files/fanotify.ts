// fanotify groups (notification classes): init flags, event file flags and every mark (on an
// inode, found again by its file handle, or on a mount) from the `fanotify` lines of fdinfo.
// Restored with fanotify_init and fanotify_mark on the same paths. Events not read yet and
// permission-class groups (which need an answer from the task for each event) are not saved.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { fanotify_file_entrySchema, fanotify_mark_entrySchema } from '../../image/gen/fsnotify_pb.js';
import { sys, O, F } from '../../sys/index.js';
import type { ProcFdinfo } from '../../proc/index.js';
import { blockerAt, type Blocker, type BlockerPlace } from '../../util/blocker.js';
import { NO_FOWN, type FownData } from './fown.js';
import { handlePath, mountPath, parseHandle, type FileHandle } from './fhandle.js';
import type { FdKind, FdSeen } from './fd-kind.js';

export type FanotifyMark = MessageInitShape<typeof fanotify_mark_entrySchema> & {
  type: number; mflags: number; mask: number; ignoredMask: number; sDev: number;
  ie?: { iIno: bigint; fHandle: FileHandle };
  me?: { mntId: number; path?: string };
};
export type FanotifyData = MessageInitShape<typeof fanotify_file_entrySchema> & {
  id: number; flags: number; fown: FownData; faflags: number; evflags: number; mark: FanotifyMark[];
};

const MARK = { INODE: 1, MOUNT: 2 } as const;
const FAN_MARK_ADD = 0x1;
const FAN_MARK_MOUNT = 0x10;
const FAN_MARK_IGNORED_MASK = 0x20;
const FAN_CLASS_MASK = 0x0c; // FAN_CLASS_CONTENT / FAN_CLASS_PRE_CONTENT: permission events
const AT_FDCWD = -100;

const hex = (v: string | undefined) => parseInt(v ?? '0', 16) >>> 0;

function fields(line: string): Map<string, string> {
  return new Map(line.trim().split(/\s+/).map((kv) => kv.split(':') as [string, string]));
}

export function dumpFanotify(id: number, flags: number, fown: FownData, info: ProcFdinfo): FanotifyData {
  const head = fields(`flags:${info.extra.get('fanotify flags')?.[0] ?? '0'}`);
  const mark: FanotifyMark[] = [];
  // parseFdinfo keys each line by what precedes its first colon ("fanotify ino", ...).
  for (const l of info.extra.get('fanotify ino') ?? []) {
    const f = fields(`ino:${l}`);
    const fHandle = parseHandle(f.get('fhandle-bytes')!, f.get('fhandle-type')!, f.get('f_handle') ?? '');
    const sDev = hex(f.get('sdev'));
    const path = handlePath(sDev, fHandle);
    if (path !== null) fHandle.path = path;
    mark.push({
      id, type: MARK.INODE, mflags: hex(f.get('mflags')), mask: hex(f.get('mask')), ignoredMask: hex(f.get('ignored_mask')),
      sDev, ie: { iIno: BigInt('0x' + f.get('ino')), fHandle },
    });
  }
  for (const l of info.extra.get('fanotify mnt_id') ?? []) {
    const f = fields(`mnt_id:${l}`);
    const mntId = hex(f.get('mnt_id'));
    const path = mountPath(mntId);
    mark.push({
      id, type: MARK.MOUNT, mflags: hex(f.get('mflags')), mask: hex(f.get('mask')), ignoredMask: hex(f.get('ignored_mask')),
      sDev: 0, me: { mntId, ...(path !== null ? { path } : {}) },
    });
  }
  return { id, flags, fown, faflags: hex(head.get('flags')), evflags: hex(head.get('event-flags')), mark };
}

export function fanotifyBlocker(place: BlockerPlace, info: ProcFdinfo): Blocker | null {
  const refuse = (reason: string) => blockerAt(place, { kind: 'fanotify', reason });
  if (info.extra.has('fanotify sdev')) return refuse('fanotify group with a filesystem-wide mark — not supported yet');
  const d = dumpFanotify(0, 0, NO_FOWN, info);
  if (d.faflags & FAN_CLASS_MASK) return refuse('fanotify group of a permission class — not supported');
  for (const m of d.mark) {
    if (m.ie && !m.ie.fHandle.path) return refuse(`fanotify mark on inode ${m.ie.iIno} whose path cannot be found — not supported`);
    if (m.me && !m.me.path) return refuse(`fanotify mark on mount ${m.me.mntId} that cryo cannot see — not supported`);
  }
  return null;
}

/** A new group with the same flags and marks, in the restorer. */
export function createFanotify(d: FanotifyData): number {
  const fd = sys('fanotify_init', [d.faflags, d.evflags], `fanotify ${d.id}`);
  try {
    for (const m of d.mark) {
      const path = m.ie?.fHandle.path ?? m.me?.path;
      if (!path) throw new Error(`fanotify ${d.id}: a mark without a path`);
      const name = Buffer.from(path + '\0');
      const where = m.type === MARK.MOUNT ? FAN_MARK_MOUNT : 0;
      if (m.mask) sys('fanotify_mark', [fd, FAN_MARK_ADD | where | m.mflags, m.mask, AT_FDCWD, name], `fanotify mark on ${path}`);
      if (m.ignoredMask) {
        sys('fanotify_mark', [fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | where | m.mflags, m.ignoredMask, AT_FDCWD, name], `fanotify ignore mark on ${path}`);
      }
    }
    sys('fcntl', [fd, F.SETFL, d.flags & O.NONBLOCK]);
  } catch (e) {
    sys('close', [fd]);
    throw e;
  }
  return fd;
}

export const fanotifyKind = {
  name: 'fanotify' as const,
  type: 'FANOTIFY',
  field: 'ffy',
  phase: 'table',
  object: true,
  recognise: (link: string) => link === 'anon_inode:[fanotify]',
  blocker: (f: FdSeen) => fanotifyBlocker({ pid: f.pid, fd: f.fd }, f.info),
  dump: (f: FdSeen, id: number, flags: number, fown: FownData) => dumpFanotify(id, flags, fown, f.info),
  read: (entry: unknown) => entry as FanotifyData,
  open: (rec: FanotifyData) => createFanotify(rec),
  // Marks are checked by the fanotify tests: fdinfo spells them per mark kind.
} satisfies FdKind<FanotifyData>;
