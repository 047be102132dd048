// Pipes and FIFOs. Pipes: each end is an open file description (a PIPE entry in files.img, sharing the pipe's
// inode as pipe_id); the bytes buffered in the pipe go to pipes-data.img, read without consuming
// them (tee into a pipe of ours). Restored by the restorer: one pipe2() per pipe, the data
// written back, each end handed to the tasks like any other open file.
import { openSync, readSync, writeSync, closeSync, constants } from 'node:fs';
import { sys, sysTry, E, SysError, O, F } from '../../sys/index.js';
import { skipBits } from '../../util/skip.js';

const SPLICE_F_NONBLOCK = 2;

export interface PipeData {
  pipeId: number;
  /** Capacity of the pipe (F_GETPIPE_SZ), restored with F_SETPIPE_SZ. */
  size: number;
  data: Buffer;
}

/** The pipe inode of a `pipe:[N]` link. */
export function pipeInode(link: string): number | null {
  const m = /^pipe:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : null;
}

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
    for (let got = 0; got < n; ) got += readSync(r, data, got, n - got, null);
    return { pipeId, size, data };
  } finally {
    closeSync(src);
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
  if (d) {
    if (d.size) sys('fcntl', [w, F.SETPIPE_SZ, d.size], `pipe ${d.pipeId} size`);
    for (let off = 0; off < d.data.length; ) off += writeSync(w, d.data, off, d.data.length - off);
  }
  return { r, w };
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

/**
 * A FIFO end, opened by path. A keeper (read-write, held by the restorer until the tree is back)
 * makes every open succeed at once whatever the mode, and holds the data written back.
 */
export function openFifoEnd(path: string, flags: number, keepers: Map<number, number>, d: PipeData | undefined, pipeId: number): number {
  let keeper = keepers.get(pipeId);
  if (keeper === undefined) {
    keeper = openSync(path, O.RDWR | O.NONBLOCK | O.CLOEXEC);
    keepers.set(pipeId, keeper);
    if (d) {
      if (d.size) sys('fcntl', [keeper, F.SETPIPE_SZ, d.size], `FIFO ${path} size`);
      for (let off = 0; off < d.data.length; ) off += writeSync(keeper, d.data, off, d.data.length - off);
    }
  }
  const fd = openSync(path, (flags & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY)) | O.NONBLOCK | O.CLOEXEC);
  sys('fcntl', [fd, F.SETFL, flags & ~(O.ACCMODE | O.CLOEXEC)]);
  return fd;
}
