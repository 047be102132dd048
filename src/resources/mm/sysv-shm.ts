// SysV shared memory segments attached by the tree. Each segment is saved once (its key, owner,
// mode, size and contents, as CRIU's ipc_shm_entry with the bytes after it); each attachment is
// a VMA with the SYSVIPC status and the segment id. On restore the segment is made again with
// its old id (shm_next_id) and contents, the tasks attach it where it was, and a segment that
// had been removed (IPC_RMID) is removed again once everyone is attached.
import { readFileSync, writeFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ipc_shm_entrySchema } from '../../image/gen/ipc-shm_pb.js';
import { sys, sysTry, E, PAGE_SIZE } from '../../sys/index.js';
import { parseSysvShm, SHM_DEST, type MapsEntry, type ShmSegment } from '../../proc/index.js';
import { UserError } from '../../util/errors.js';
import type { Blocker } from '../../util/blocker.js';
import { mappingName } from './vma-kind.js';

export type ShmEntry = MessageInitShape<typeof ipc_shm_entrySchema> & {
  desc: { key: number; uid: number; gid: number; cuid: number; cgid: number; mode: number; id: number };
  size: bigint;
};
export interface ShmImage {
  entry: ShmEntry;
  data: Buffer;
}

const IPC_CREAT = 0o1000;
const IPC_EXCL = 0o2000;
const IPC_RMID = 0;
const SHM_RDONLY = 0o10000;

export function isSysvShm(m: MapsEntry): boolean {
  return m.path.startsWith('/SYSV');
}

export function sysvSegments(): Map<number, ShmSegment> {
  return new Map(parseSysvShm(readFileSync('/proc/sysvipc/shm', 'utf8')).map((s) => [s.shmid, s]));
}

const pageAlign = (n: bigint) => (n + BigInt(PAGE_SIZE - 1)) & ~BigInt(PAGE_SIZE - 1);

/**
 * Why the tree's attachments cannot be saved: each must cover its whole segment, and every
 * attachment of a segment must be the tree's (the others would lose it).
 */
export function sysvShmBlockers(attachments: { pid: number; m: MapsEntry }[]): Blocker[] {
  if (!attachments.length) return [];
  const segs = sysvSegments();
  const out: Blocker[] = [];
  // Per segment: how often the tree attaches it, and one attachment to name it by.
  const count = new Map<number, { n: number; pid: number; mapping: string }>();
  for (const { pid, m } of attachments) {
    const mapping = mappingName(m);
    const seg = segs.get(m.inode);
    if (!seg) {
      out.push({ pid, mapping, kind: 'sysv-shm', reason: `SysV shared memory segment ${m.inode} not found in /proc/sysvipc/shm` });
      continue;
    }
    if (m.offset !== 0n || m.end - m.start !== pageAlign(seg.size)) {
      out.push({ pid, mapping, kind: 'sysv-shm', reason: `part of SysV shared memory segment ${m.inode} (split by mprotect or munmap) — not supported yet` });
    }
    const c = count.get(seg.shmid) ?? { n: 0, pid, mapping };
    c.n++;
    count.set(seg.shmid, c);
  }
  for (const [id, { n, pid, mapping }] of count) {
    const seg = segs.get(id)!;
    if (seg.nattch > n) {
      out.push({ pid, mapping, kind: 'sysv-shm', reason: `SysV shared memory segment ${id} (key ${seg.key}): attached ${seg.nattch - n} more time(s) outside the dumped tree — not supported` });
    }
  }
  return out;
}

/** The segment's description and contents, read through one of its attachments. */
export function dumpSegment(seg: ShmSegment, source: string): ShmImage {
  const data = readFileSync(source).subarray(0, Number(seg.size));
  const padded = Buffer.alloc((data.length + 3) & ~3);
  data.copy(padded);
  return { entry: segmentEntry(seg), data: padded };
}

function segmentEntry(seg: ShmSegment): ShmEntry {
  return { desc: { key: seg.key, uid: seg.uid, gid: seg.gid, cuid: seg.cuid, cgid: seg.cgid, mode: seg.perms, id: seg.shmid }, size: seg.size };
}

/**
 * Every segment of the caller's IPC namespace with its contents, read through an attachment of
 * our own (read-only): for a namespace dumped whole, where a segment may be attached by no one.
 */
export function dumpAllSegments(): ShmImage[] {
  return [...sysvSegments().values()].map((seg) => {
    const addr = BigInt.asUintN(64, BigInt(sys('shmat', [seg.shmid, 0, SHM_RDONLY], `segment ${seg.shmid}`)));
    try {
      const data = Buffer.alloc((Number(seg.size) + 3) & ~3);
      const mem = openSync('/proc/self/mem', 'r');
      try {
        readSync(mem, data, 0, Number(seg.size), Number(addr));
      } finally {
        closeSync(mem);
      }
      return { entry: segmentEntry(seg), data };
    } finally {
      sys('shmdt', [addr]);
    }
  });
}

/**
 * The segment for the restore, filled with the saved contents: the old one when it is still
 * there unattached (a segment outlives its processes unless it was removed), else a new one,
 * with its old id when that is free (shm_next_id). `created`: ours to remove if the restore fails.
 */
export function createSegment(img: ShmImage): { id: number; created: boolean } {
  const d = img.entry.desc;
  const removed = (d.mode & SHM_DEST) !== 0;
  const old = sysvSegments().get(d.id);
  if (!removed && old && old.key === d.key && old.size === img.entry.size && old.nattch === 0 && !(old.perms & SHM_DEST)) {
    fill(d.id, img);
    return { id: d.id, created: false };
  }
  const key = removed ? 0 : d.key; // a removed segment's key is gone (IPC_PRIVATE)
  const get = () => sysTry('shmget', [key, img.entry.size, (d.mode & 0o777) | IPC_CREAT | IPC_EXCL]);
  let r = { ret: -1, errno: E.ENOSPC };
  try {
    writeFileSync('/proc/sys/kernel/shm_next_id', String(d.id));
    r = get();
  } catch {
    /* not settable here */
  }
  // The old id is taken by another segment: under another id the program's shmctl(id) and the
  // ids it handed to others would name something else, so the restore refuses.
  if (r.ret < 0 && r.errno === E.ENOSPC) throw new UserError(`SysV shared memory id ${d.id} is taken by another segment — cannot restore segment ${d.id} with its id`);
  if (r.ret < 0) {
    if (r.errno === E.EEXIST) throw new UserError(`SysV shared memory key ${d.key} is taken by another segment (still attached?) — cannot restore segment ${d.id}`);
    throw new UserError(`cannot create SysV shared memory segment ${d.id}: errno ${r.errno}`);
  }
  try {
    fill(r.ret, img);
  } catch (e) {
    removeSegment(r.ret);
    throw e;
  }
  return { id: r.ret, created: true };
}

/** Writes the saved contents into segment `id` (attached here for the purpose) and its owner. */
function fill(id: number, img: ShmImage): void {
  const d = img.entry.desc;
  const addr = BigInt.asUintN(64, BigInt(sys('shmat', [id, 0, 0], `segment ${id}`)));
  try {
    const mem = openSync('/proc/self/mem', 'r+');
    try {
      writeSync(mem, img.data, 0, Number(img.entry.size), Number(addr));
    } finally {
      closeSync(mem);
    }
  } finally {
    sys('shmdt', [addr]);
  }
  const ds = Buffer.alloc(112); // struct shmid64_ds: perm.uid at 4, perm.gid at 8, perm.mode at 20
  sys('shmctl', [id, 2 /* IPC_STAT */, ds]);
  ds.writeUInt32LE(d.uid, 4);
  ds.writeUInt32LE(d.gid, 8);
  ds.writeUInt32LE(d.mode & 0o777, 20);
  sys('shmctl', [id, 1 /* IPC_SET */, ds], `segment ${id} owner`);
}

/** Attaches segment `id` in the task at the VMA's address. */
export function attachArgs(id: number, start: bigint, writable: boolean): [number, bigint, number] {
  return [id, start, writable ? 0 : SHM_RDONLY];
}

/** Removes a segment (a failed restore's, or one that was removed before the dump). */
export function removeSegment(id: number): void {
  sysTry('shmctl', [id, IPC_RMID, 0]);
}

export function wasRemoved(img: ShmImage): boolean {
  return (img.entry.desc.mode & SHM_DEST) !== 0;
}
