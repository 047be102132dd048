// FIFOs opened by path (the kind 'fifo'): a FIFO entry in files.img naming the REG entry of its
// path and flags (CRIU's regf_id), its buffered bytes in fifo-data.img (read in place, as a
// pipe's). A FIFO removed from its directory is a ghost node: made again there for the restore
// and removed after. On restore each end is opened by its path while a keeper of ours holds the
// FIFO open read-write, so that no open waits for the other side and the bytes stay in it.
import { openSync, statSync } from 'node:fs';
import { O, F, sys, S_IF } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { fifo_entry } from '../../image/gen/fifo_pb.js';
import type { FdKind, FdSeen, FdDumpContext, FdOpenContext, KindImages, KindState } from './fd-kind.js';
import type { FileScan } from './scan.js';
import type { FownData } from './fown.js';
import { deletedPath, ghostBlocker } from './ghost.js';
import { pipeInode } from './our-copy.js';
import { peekPipe, fillPipe, bufferedData, dataImages, readData, checkDataOwners, type PipeDataImage } from './pipe.js';

const FIFO_DATA: PipeDataImage = { file: 'fifo-data.img', kind: 'FIFO_DATA', what: 'FIFO' };

export interface FifoRecord {
  id: number;
  /** The FIFO's inode. */
  pipeId: number;
  regfId: number;
  /** From the REG entry of its path: status flags, owner, path. */
  flags: number;
  fown: FownData;
  name: string;
}

/** Our read-write fd on each FIFO restored so far, by its inode, held until the tree is back. */
const keepers = (images: KindImages) => images.memo('fifo keepers', () => new Map<number, number>());

export const fifoKind = {
  name: 'fifo' as const,
  type: 'FIFO',
  field: 'fifo',
  phase: 'table',
  object: false,
  recognise: (link: string, mode: number | null) => mode !== null && (mode & S_IF.MT) === S_IF.IFO && pipeInode(link) === null,
  blocker(f: FdSeen, scan: FileScan) {
    const gone = deletedPath(f.link);
    return gone === null ? null : ghostBlocker({ pid: f.pid, fd: f.fd }, gone, `/proc/${f.pid}/fd/${f.fd}`, scan.ghostLimit);
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): FifoRecord {
    const source = `/proc/${f.pid}/fd/${f.fd}`;
    const { ino, mode } = statSync(source);
    const name = deletedPath(f.link) ?? f.link;
    const regfId = ctx.addPath(name, flags, mode, { fown, ...(name !== f.link ? { ghostSource: source } : {}) });
    const data = bufferedData(ctx, FIFO_DATA);
    if (!data.has(ino)) data.set(ino, peekPipe(f.pid, f.fd, ino));
    // flags, fown and name are the REG entry's: file_entry.fifo has no field for them.
    return { id, pipeId: ino, regfId, flags, fown, name };
  },
  images: (_records: FifoRecord[], state: KindState) => dataImages(state, FIFO_DATA),
  read(entry: unknown, id: number, images: KindImages): FifoRecord {
    const e = entry as fifo_entry;
    const regfId = e.regfId ?? 0;
    const path = images.pathEntry(regfId);
    if (!path) throw new UserError(`files.img: FIFO file id ${id}: its path (file id ${regfId}) is missing`);
    return { id, pipeId: e.pipeId, regfId, flags: path.flags, fown: path.fown!, name: path.name };
  },
  validate: (records: FifoRecord[], images: KindImages) => checkDataOwners(images, FIFO_DATA, records.map((r) => r.pipeId)),
  open(rec: FifoRecord, ctx: FdOpenContext): number {
    const held = keepers(ctx.images);
    if (!held.has(rec.pipeId)) {
      // Read-write: opens at once whoever else has it, and holds the bytes written back.
      const keeper = openSync(rec.name, O.RDWR | O.NONBLOCK | O.CLOEXEC);
      held.set(rec.pipeId, keeper);
      fillPipe(keeper, readData(ctx.images, FIFO_DATA).get(rec.pipeId), `FIFO ${rec.name}`);
    }
    const fd = openSync(rec.name, (rec.flags & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY)) | O.NONBLOCK | O.CLOEXEC);
    sys('fcntl', [fd, F.SETFL, rec.flags & ~(O.ACCMODE | O.CLOEXEC)]);
    return fd;
  },
  release(images: KindImages): number[] {
    const held = keepers(images);
    const fds = [...held.values()];
    held.clear();
    return fds;
  },
  expect: (rec: FifoRecord, s, key) => s.set(`${key} path`, rec.name),
  observe: (_info, s, key, { link }) => s.set(`${key} path`, deletedPath(link) ?? link),
} satisfies FdKind<FifoRecord>;
