// Files deleted while a task still has them open or mapped ("ghost files" in CRIU's images): the
// contents go into ghost-file-N.img, up to a size limit. Removed directories (cwd or open) are
// ghosts without contents. On restore the file is created again at
// its old path, every fd and mapping is opened from it, and it is unlinked once the tree is back,
// so the tasks see a deleted file again, shared as before.
import { dirname } from 'node:path';
import { existsSync, readFileSync, statSync, openSync, writeSync, closeSync, fchownSync, fchmodSync, futimesSync, unlinkSync, mkdirSync, rmdirSync } from 'node:fs';
import { O } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';

export interface GhostData {
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtimSec: bigint;
  mtimUsec: bigint;
  data: Buffer;
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
export function ghostBlocker(where: string, name: string, source: string, limit: number): string | null {
  let st;
  try {
    st = statSync(source);
  } catch (e) {
    return `${where}: deleted file ${name} — cannot inspect: ${(e as Error).message}`;
  }
  if (st.isDirectory()) return null; // an empty directory: created again, removed again
  if (!st.isFile()) return `${where}: deleted ${name} is not a regular file — not supported`;
  if (st.size > limit) {
    return `${where}: file ${name} was deleted while in use and is ${st.size} bytes, over the ghost limit of ${limit} (raise it with --ghost-limit)`;
  }
  return null;
}

/** Reads a deleted file's contents and attributes through its /proc link. */
export function readGhost(source: string): GhostData {
  const st = statSync(source, { bigint: true });
  const data = st.isDirectory() ? Buffer.alloc(0) : readFileSync(source);
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: st.size,
    mtimSec: st.mtimeNs / 1_000_000_000n,
    mtimUsec: (st.mtimeNs % 1_000_000_000n) / 1000n,
    data,
  };
}

export function isGhostDir(g: GhostData): boolean {
  return (g.mode & 0o170000) === 0o040000;
}

/**
 * Creates the file (or directory) again at `path` with its contents, owner, mode and mtime.
 * Directories above it that were removed too are made again (0700); returns them, deepest first,
 * for removeGhost.
 */
export function createGhost(path: string, g: GhostData): string[] {
  let fd: number;
  const parents: string[] = [];
  try {
    for (let dir = dirname(path); !existsSync(dir); dir = dirname(dir)) parents.push(dir);
    for (const dir of [...parents].reverse()) mkdirSync(dir, 0o700);
    if (isGhostDir(g)) mkdirSync(path, g.mode & 0o7777);
    fd = openSync(path, isGhostDir(g) ? O.RDONLY | O.DIRECTORY | O.CLOEXEC : O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, g.mode & 0o7777);
  } catch (e) {
    removeDirs(parents);
    throw new UserError(`cannot re-create deleted file ${path}: ${(e as Error).message}`);
  }
  try {
    for (let off = 0; off < g.data.length; ) off += writeSync(fd, g.data, off, g.data.length - off);
    fchownSync(fd, g.uid, g.gid);
    fchmodSync(fd, g.mode & 0o7777); // after chown (which drops set-id bits), and without our umask
    const mtime = Number(g.mtimSec) + Number(g.mtimUsec) / 1e6;
    futimesSync(fd, mtime, mtime);
  } catch (e) {
    closeSync(fd);
    removeGhost(path, g, parents);
    throw e;
  }
  closeSync(fd);
  return parents;
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
