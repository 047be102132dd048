// Files deleted while a task still has them open or mapped ("ghost files" in CRIU's images): the
// contents go into ghost-file-N.img, up to a size limit. Removed directories (cwd or open) are
// ghosts without contents. A sparse file keeps its holes: only its data is saved, as CRIU's
// chunks (ghost_chunk_entry: offset, length, bytes), and the limit counts that data. On restore the file is created again at
// its old path, every fd and mapping is opened from it, and it is unlinked once the tree is back,
// so the tasks see a deleted file again, shared as before.
import { dirname } from 'node:path';
import { chownSync, chmodSync, utimesSync, existsSync, statSync, openSync, readSync, writeSync, closeSync, ftruncateSync, fchownSync, fchmodSync, futimesSync, unlinkSync, mkdirSync, rmdirSync } from 'node:fs';
import { O, sys, S_IF, dataExtents } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { blockerAt, type Blocker, type BlockerPlace } from '../../util/blocker.js';

export interface GhostData {
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtimSec: bigint;
  mtimUsec: bigint;
  /** The contents: the whole file, or its chunks one after the other. */
  data: Buffer;
  /** A file with holes: where each piece of `data` goes (CRIU's chunks), in order. */
  chunks?: { off: bigint; len: number }[];
  /** The device of a character device node (major << 8 | minor, as CRIU's old encoding). */
  rdev?: number;
}

/** Character devices without state of their own (mem major 1: null, zero, full, random, urandom). */
const STATELESS_RDEVS = new Set([0x103, 0x105, 0x107, 0x108, 0x109]);

/** Old-style dev_t (major << 8 | minor) of a Linux dev_t as stat reports it. */
function oldDev(rdev: number): number {
  const major = (rdev >>> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  return (major << 8) | minor;
}

const DELETED = ' (deleted)';

/** The path of a `(deleted)` link without the suffix, or null for a file that still exists. */
export function deletedPath(link: string): string | null {
  return link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : null;
}

/**
 * Why a deleted file cannot be saved (null if it can). `source`: a /proc path that opens it
 * (fd or map_files link).
 */
export function ghostBlocker(place: BlockerPlace, name: string, source: string, limit: number): Blocker | null {
  const refuse = (reason: string, hint?: string) => blockerAt(place, { kind: 'ghost', reason, ...(hint ? { hint } : {}) });
  let st;
  try {
    st = statSync(source);
  } catch (e) {
    return refuse(`deleted file ${name} — cannot inspect: ${(e as Error).message}`);
  }
  if (st.isDirectory()) return null; // an empty directory: created again, removed again
  if (st.isFIFO()) return null; // made again with mknod; its data goes with the FIFO's
  if (st.isCharacterDevice()) return STATELESS_RDEVS.has(oldDev(st.rdev)) ? null : refuse(`deleted device node ${name} of a device with state — not supported`);
  if (!st.isFile()) return refuse(`deleted ${name} is not a regular file — not supported`);
  const bytes = dataBytes(withSource(source, (fd) => [...dataExtents(fd, 0, st.size)]));
  if (bytes > limit) {
    const sparse = bytes < st.size ? ` of data (${st.size} with its holes)` : '';
    return refuse(`file ${name} was deleted while in use and is ${bytes} bytes${sparse}, over the ghost limit of ${limit}`, 'raise it with --ghost-limit');
  }
  return null;
}

type Extent = { start: number; end: number };

/** Runs `fn` on the file opened read-only through its /proc link. */
function withSource<T>(source: string, fn: (fd: number) => T): T {
  const fd = openSync(source, O.RDONLY | O.CLOEXEC);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

function dataBytes(extents: Extent[]): number {
  return extents.reduce((n, e) => n + (e.end - e.start), 0);
}

/** A regular file's contents: whole, or (with holes) its data extents as chunks. */
function readContents(source: string, size: number): Pick<GhostData, 'data' | 'chunks'> {
  return withSource(source, (fd) => {
    const extents = [...dataExtents(fd, 0, size)];
    const data = Buffer.alloc(dataBytes(extents));
    // Read at each extent's offset: the walk moved the file position.
    let at = 0;
    for (const e of extents) {
      for (let got = 0; got < e.end - e.start; ) {
        const n = readSync(fd, data, at + got, e.end - e.start - got, e.start + got);
        if (n === 0) throw new Error(`${source}: shorter than its data extents`);
        got += n;
      }
      at += e.end - e.start;
    }
    if (data.length === size) return { data };
    return { data, chunks: extents.map((e) => ({ off: BigInt(e.start), len: e.end - e.start })) };
  });
}

/** Reads a deleted file's contents and attributes through its /proc link. */
export function readGhost(source: string): GhostData {
  const st = statSync(source, { bigint: true });
  const contents = st.isFile() ? readContents(source, Number(st.size)) : { data: Buffer.alloc(0) };
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: st.size,
    mtimSec: st.mtimeNs / 1_000_000_000n,
    mtimUsec: (st.mtimeNs % 1_000_000_000n) / 1000n,
    ...contents,
    ...(st.isCharacterDevice() ? { rdev: oldDev(Number(st.rdev)) } : {}),
  };
}

function isGhostNode(g: GhostData): boolean {
  const t = g.mode & S_IF.MT;
  return t === S_IF.IFO || t === S_IF.CHR;
}

/** A FIFO or device node again (mknod), with its owner, mode and mtime. */
function makeNode(path: string, g: GhostData): void {
  const rdev = g.rdev ?? 0;
  sys('mknodat', [AT_FDCWD, Buffer.from(path + '\0'), g.mode, ((rdev >>> 8) << 8) | (rdev & 0xff)], `mknod ${path}`);
  chownSync(path, g.uid, g.gid);
  chmodSync(path, g.mode & 0o7777);
  const mtime = Number(g.mtimSec) + Number(g.mtimUsec) / 1e6;
  utimesSync(path, mtime, mtime);
}

const AT_FDCWD = -100;
const AT_SYMLINK_FOLLOW = 0x400;
/** O_TMPFILE as open(2) takes it: __O_TMPFILE | O_DIRECTORY. */
const O_TMPFILE = 0o20200000;

export function isGhostDir(g: GhostData): boolean {
  return (g.mode & S_IF.MT) === S_IF.DIR;
}

/**
 * Creates the file (or directory) again at `path` with its contents, owner, mode and mtime.
 * Directories above it that were removed too are made again (0700); returns them, deepest first,
 * for removeGhost.
 */
export function createGhost(path: string, g: GhostData, tmpfile?: number): { parents: string[]; fd?: number } {
  let fd: number;
  const parents: string[] = [];
  try {
    for (let dir = dirname(path); !existsSync(dir); dir = dirname(dir)) parents.push(dir);
    for (const dir of [...parents].reverse()) mkdirSync(dir, 0o700);
    if (isGhostNode(g)) {
      makeNode(path, g);
      return { parents };
    }
    if (isGhostDir(g)) mkdirSync(path, g.mode & 0o7777);
    if (tmpfile !== undefined) {
      // Made the way it was (O_TMPFILE: its description keeps the creation bits), then given its
      // old name for the restore, so that mappings and other opens reach the same inode.
      const acc = (tmpfile & O.ACCMODE) === O.RDONLY ? O.RDWR : tmpfile & O.ACCMODE;
      fd = openSync(dirname(path), O_TMPFILE | acc | O.CLOEXEC, g.mode & 0o7777);
      sys('linkat', [AT_FDCWD, Buffer.from(`/proc/self/fd/${fd}\0`), AT_FDCWD, Buffer.from(path + '\0'), AT_SYMLINK_FOLLOW], `link ${path}`);
    } else {
      fd = openSync(path, isGhostDir(g) ? O.RDONLY | O.DIRECTORY | O.CLOEXEC : O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, g.mode & 0o7777);
    }
  } catch (e) {
    removeDirs(parents);
    throw new UserError(`cannot re-create deleted file ${path}: ${(e as Error).message}`);
  }
  try {
    writeContents(fd, g);
    fchownSync(fd, g.uid, g.gid);
    fchmodSync(fd, g.mode & 0o7777); // after chown (which drops set-id bits), and without our umask
    const mtime = Number(g.mtimSec) + Number(g.mtimUsec) / 1e6;
    futimesSync(fd, mtime, mtime);
  } catch (e) {
    closeSync(fd);
    removeGhost(path, g, parents);
    throw e;
  }
  if (tmpfile !== undefined) return { parents, fd };
  closeSync(fd);
  return { parents };
}

/** The contents back: the whole file, or its chunks where they were and holes between them. */
function writeContents(fd: number, g: GhostData): void {
  if (!g.chunks) {
    for (let off = 0; off < g.data.length; ) off += writeSync(fd, g.data, off, g.data.length - off);
    return;
  }
  let at = 0;
  for (const c of g.chunks) {
    for (let put = 0; put < c.len; ) put += writeSync(fd, g.data, at + put, c.len - put, Number(c.off) + put);
    at += c.len;
  }
  ftruncateSync(fd, Number(g.size)); // a hole at the end
}

function removeDirs(dirs: string[]): void {
  for (const dir of dirs) rmdirSync(dir);
}

/** Removes it (and the directories made for it) again once every task has it open. */
export function removeGhost(path: string, g: GhostData, parents: string[]): void {
  if (isGhostDir(g)) rmdirSync(path);
  else unlinkSync(path);
  removeDirs(parents);
}
