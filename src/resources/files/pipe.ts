// Pipes (the kind 'pipe') and the bytes buffered in pipes and FIFOs. Each end is an open file
// description (a PIPE entry in files.img, sharing the pipe's inode as pipe_id); the bytes
// buffered in the pipe go to pipes-data.img, read without consuming them (tee into a pipe of
// ours). Restored by the restorer: one pipe2() per pipe, the data written back, each end handed
// to the tasks like any other open file. A pipe whose other end was held outside the tree comes
// from --inherit-fd. FIFOs (fifo.ts) keep their bytes in fifo-data.img, of the same shape.
import { openSync, readSync, writeSync, closeSync, constants } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { sys, sysTry, E, SysError, O, F } from '../../sys/index.js';
import { skipBits } from '../../util/skip.js';
import { UserError } from '../../util/errors.js';
import { pipe_data_entrySchema, type pipe_data_entry } from '../../image/gen/pipe-data_pb.js';
import type { pipe_entry } from '../../image/gen/pipe_pb.js';
import type { FdKind, FdSeen, FdDumpContext, FdOpenContext, KindImage, KindImages, KindState } from './fd-kind.js';
import type { FownData } from './fown.js';
import { pipeInode } from './our-copy.js';

const SPLICE_F_NONBLOCK = 2;

export interface PipeData {
  pipeId: number;
  /** Capacity of the pipe (F_GETPIPE_SZ), restored with F_SETPIPE_SZ. */
  size: number;
  data: Buffer;
  /** A packet-mode pipe's (O_DIRECT writers): the lengths of the packets `data` holds, in order. */
  packets?: number[];
}

/** A packet is at most a page (a longer write is cut into pages). */
const PACKET_MAX = 4096;

function pipe2(flags: number): [number, number] {
  const fds = Buffer.alloc(8);
  sys('pipe2', [fds, flags]);
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/**
 * The bytes buffered in the pipe behind the task's `fd`, left in place: a new read end is opened
 * through /proc (works whichever end the task holds) and tee'd into a pipe of ours.
 */
export function peekPipe(pid: number, fd: number, pipeId: number): PipeData {
  const src = openSync(`/proc/${pid}/fd/${fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
  const [r, w] = pipe2(O.CLOEXEC | O.NONBLOCK);
  try {
    const size = sys('fcntl', [src, F.GETPIPE_SZ], `pid ${pid} fd ${fd}`);
    sys('fcntl', [w, F.SETPIPE_SZ, size]);
    const t = sysTry('tee', [src, w, size, SPLICE_F_NONBLOCK]);
    if (t.ret < 0 && t.errno !== E.EAGAIN) throw new SysError('tee', t.errno, `pid ${pid} fd ${fd}`);
    const n = Math.max(0, t.ret);
    const data = Buffer.alloc(n);
    // A read takes every byte there is, but never more than one packet: more reads than one
    // tell packets apart (tee keeps them packets).
    const reads: number[] = [];
    for (let got = 0; got < n; ) {
      const k = readSync(r, data, got, n - got, null);
      reads.push(k);
      got += k;
    }
    const packets = reads.length > 1 || (n > 1 && onePacket(src, n)) ? { packets: reads } : {};
    return { pipeId, size, data, ...packets };
  } finally {
    closeSync(src);
    closeSync(r);
    closeSync(w);
  }
}

/**
 * Whether the `n` bytes in the pipe behind `src` are one packet: a read of all but one of them
 * (from another copy) drops the last byte of a packet, and leaves it of a byte stream.
 */
function onePacket(src: number, n: number): boolean {
  const [r, w] = pipe2(O.CLOEXEC | O.NONBLOCK);
  try {
    if (sysTry('tee', [src, w, n, SPLICE_F_NONBLOCK]).ret !== n) return false;
    readSync(r, Buffer.alloc(n - 1), 0, n - 1, null);
    return sysTry('read', [r, Buffer.alloc(1), 1]).errno === E.EAGAIN;
  } finally {
    closeSync(r);
    closeSync(w);
  }
}

/** A restored pipe: our two ends, the data already back in it. */
export interface PipeEnds {
  r: number;
  w: number;
  /** Ends handed out already: a second description of the same end is opened anew. */
  used?: { r: boolean; w: boolean };
}

export function createPipe(d: PipeData | undefined): PipeEnds {
  const [r, w] = pipe2(O.CLOEXEC);
  fillPipe(w, d, `pipe ${d?.pipeId}`);
  return { r, w };
}

/** Gives a new pipe or FIFO (our writable fd on it) its size and buffered bytes back. */
export function fillPipe(w: number, d: PipeData | undefined, what: string): void {
  if (!d) return;
  if (d.size) sys('fcntl', [w, F.SETPIPE_SZ, d.size], `${what} size`);
  if (!d.packets?.length) {
    for (let off = 0; off < d.data.length; ) off += writeSync(w, d.data, off, d.data.length - off);
    return;
  }
  // Packets are written as packets: through an end in packet mode, one write each.
  const flags = sys('fcntl', [w, F.GETFL], what);
  sys('fcntl', [w, F.SETFL, flags | O.DIRECT], `${what}: packet mode`);
  let off = 0;
  for (const len of d.packets) {
    if (writeSync(w, d.data, off, len) !== len) throw new Error(`${what}: a packet of ${len} bytes did not go in whole`);
    off += len;
  }
  sys('fcntl', [w, F.SETFL, flags], what);
}

/**
 * Our fd for one open file description of an end, with its status flags (O_NONBLOCK ...). The
 * first description of each end is the pipe2() one; one that a task reopened through
 * /proc/self/fd/N (it has flags of its own) is a new open of that end.
 */
export function pipeEnd(ends: PipeEnds, flags: number): number {
  const end = (flags & O.ACCMODE) === O.WRONLY ? 'w' : 'r';
  const used = (ends.used ??= { r: false, w: false });
  let fd = ends[end];
  // O_LARGEFILE (which F_SETFL cannot change) tells them apart: open() sets it, pipe() does not.
  if (used[end] || flags & O.LARGEFILE) fd = openSync(`/proc/self/fd/${fd}`, (end === 'w' ? O.WRONLY : O.RDONLY) | O.NONBLOCK | O.CLOEXEC);
  else used[end] = true;
  sys('fcntl', [fd, F.SETFL, flags & ~(O.ACCMODE | O.CLOEXEC) & ~skipBits('pipe-nonblock', flags, O.NONBLOCK)]);
  return fd;
}

/** An image of buffered bytes: pipes-data.img (pipes) or fifo-data.img (FIFOs). */
export interface PipeDataImage {
  file: 'pipes-data.img' | 'fifo-data.img';
  kind: 'PIPES_DATA' | 'FIFO_DATA';
  /** What the bytes are in, for errors. */
  what: string;
}

export const PIPES_DATA: PipeDataImage = { file: 'pipes-data.img', kind: 'PIPES_DATA', what: 'pipe' };

/** The bytes saved so far (dump) or read from the image (restore), by pipe id. */
export function bufferedData(state: KindState, image: PipeDataImage): Map<number, PipeData> {
  return state.memo(image.file, () => new Map<number, PipeData>());
}

/** The image of the bytes the dump saved (none when there are none). */
export function dataImages(state: KindState, image: PipeDataImage): KindImage[] {
  const data = bufferedData(state, image);
  if (!data.size) return [];
  const entries = [...data.values()].map((d) => ({ msg: create(pipe_data_entrySchema, { pipeId: d.pipeId, bytes: d.data.length, size: d.size, cryoPackets: d.packets ?? [] }), payload: d.data }));
  return [{ file: image.file, kind: image.kind, entries }];
}

/** The bytes of the image, by pipe id, read once for the restore. */
export function readData(images: KindImages, image: PipeDataImage): Map<number, PipeData> {
  return images.memo(`${image.file} read`, () => {
    const out = new Map<number, PipeData>();
    for (const e of images.readWithPayloads(image.file) ?? []) {
      const d = e.msg as pipe_data_entry;
      const packets = d.cryoPackets.length ? { packets: [...d.cryoPackets] } : {};
      if (packets.packets && (packets.packets.some((p) => p < 1 || p > PACKET_MAX) || packets.packets.reduce((a, b) => a + b, 0) !== d.bytes))
        throw new UserError(`${image.file}: ${image.what} ${d.pipeId}: packets of ${packets.packets.join(', ')} bytes, for ${d.bytes} bytes of data`);
      out.set(d.pipeId, { pipeId: d.pipeId, size: d.size, data: Buffer.from(e.payload.subarray(0, d.bytes)), ...packets });
    }
    return out;
  });
}

/** Every pipe id of the image must be one a record opens. */
export function checkDataOwners(images: KindImages, image: PipeDataImage, pipeIds: number[]): void {
  const known = new Set(pipeIds);
  for (const id of readData(images, image).keys()) if (!known.has(id)) throw new UserError(`${image.file}: data for ${image.what} ${id}, which no file of the tree opens`);
}

export interface PipeRecord {
  id: number;
  pipeId: number;
  flags: number;
  fown: FownData;
  /** cryo's own: the other end was held outside the dumped tree (restored from --inherit-fd). */
  cryoExternal?: boolean;
}

const inheritKey = (rec: PipeRecord) => `pipe:[${rec.pipeId}]`;

/** The pipes made for the restore, by pipe id. */
const madePipes = (images: KindImages) => images.memo('pipes made', () => new Map<number, PipeEnds>());

export const pipeKind = {
  name: 'pipe' as const,
  type: 'PIPE',
  field: 'pipe',
  phase: 'table',
  object: false,
  recognise: (link: string) => pipeInode(link) !== null,
  blocker: () => null,
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): PipeRecord {
    const pipeId = pipeInode(f.link)!;
    const peer = ctx.scan.pipePeers.get(pipeId);
    if (peer) ctx.warn(`pid ${f.pid} fd ${f.fd}: ${peer} — restore it with --inherit-fd fd[N]:pipe:[${pipeId}] (N: an fd of cryo restore's for the other side)`);
    // The bytes in a pipe that leads outside stay there for the other side: not saved.
    const data = bufferedData(ctx, PIPES_DATA);
    if (!data.has(pipeId) && !peer) data.set(pipeId, peekPipe(f.pid, f.fd, pipeId));
    return { id, pipeId, flags, fown, ...(peer ? { cryoExternal: true } : {}) };
  },
  images: (_records: PipeRecord[], state: KindState) => dataImages(state, PIPES_DATA),
  read(entry: unknown, id: number): PipeRecord {
    const e = entry as pipe_entry;
    return { id, pipeId: e.pipeId, flags: e.flags, fown: e.fown!, cryoExternal: e.cryoExternal };
  },
  validate: (records: PipeRecord[], images: KindImages) => checkDataOwners(images, PIPES_DATA, records.map((r) => r.pipeId)),
  /**
   * CRIU's images do not say which pipes led outside the dumped tree (its inherited fds): a pipe
   * given with --inherit-fd is taken as such (restored from the fd given, which is whatever the
   * caller has: a pipe, a FIFO, a socket). One that led outside without a stand-in is refused.
   */
  plan(records: PipeRecord[], inherit: Map<string, number>): void {
    for (const p of records) if (inherit.has(inheritKey(p))) p.cryoExternal = true;
    const missing = new Set(records.filter((p) => p.cryoExternal && !inherit.has(inheritKey(p))).map(inheritKey));
    if (!missing.size) return;
    const args = [...missing].map((k) => `--inherit-fd 'fd[N]:${k}'`).join(' ');
    throw new UserError(`the image has ${missing.size} pipe(s) whose other end was outside the dumped tree; give cryo an fd for each: ${args}`);
  },
  open(rec: PipeRecord, ctx: FdOpenContext): number {
    const given = ctx.inherit.get(inheritKey(rec));
    if (given !== undefined) {
      const fd = sys('fcntl', [given, F.DUPFD_CLOEXEC, 0], `--inherit-fd for ${inheritKey(rec)}`);
      sys('fcntl', [fd, F.SETFL, rec.flags & ~(O.ACCMODE | O.CLOEXEC)]);
      return fd;
    }
    const made = madePipes(ctx.images);
    let ends = made.get(rec.pipeId);
    if (!ends) made.set(rec.pipeId, (ends = createPipe(readData(ctx.images, PIPES_DATA).get(rec.pipeId))));
    return pipeEnd(ends, rec.flags);
  },
  release(images: KindImages): number[] {
    const made = madePipes(images);
    const fds = [...made.values()].flatMap((p) => [p.r, p.w]);
    made.clear();
    return fds;
  },
  // The verification expects nothing of what --inherit-fd gave in its place.
  inherited: (rec: PipeRecord) => rec.cryoExternal === true,
} satisfies FdKind<PipeRecord>;
