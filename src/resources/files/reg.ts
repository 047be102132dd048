// Regular files, directories and stateless character devices: dumped as path + flags + position,
// restored by opening the path in the restorer and handing the open file to the task.
import { openSync, closeSync, statSync } from 'node:fs';
import { reg_file_entrySchema } from '../../image/gen/regfile_pb.js';
import { hasField } from '../../image/presence.js';
import { buildIdWords } from './build-id.js';
import { O, sys } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { hostPath } from '../mnt/root-path.js';

export interface FownData {
  uid: number;
  euid: number;
  signum: number;
  pidType: number;
  pid: number;
}

export interface RegFileData {
  id: number;
  flags: number;
  pos: bigint;
  fown: FownData;
  name: string;
  mode?: number;
  size?: bigint;
  buildId?: number[];
  /** mtime at dump time (ns), cryo's own field: a restore refuses a file changed since. */
  cryoMtimeNs?: bigint;
}

export const NO_FOWN: FownData = { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 };

/** __O_TMPFILE: kept in the status flags of a file made with O_TMPFILE (with O_DIRECTORY). */
export const O_TMPFILE_BIT = 0o20000000;

/**
 * A description's status flags as they matter once it is open: an O_TMPFILE file keeps the
 * creation bits (__O_TMPFILE | O_DIRECTORY), which would make opening it again fail (ENOTDIR).
 */
export function openFlags(flags: number): number {
  return flags & O_TMPFILE_BIT ? flags & ~(O_TMPFILE_BIT | O.DIRECTORY) : flags;
}

/**
 * Opens a file description as the image describes it, in the restorer, with its position set.
 * Returns our fd (O_CLOEXEC on our side; the task's fd flags are set when it is installed).
 */
export function openRegFile(reg: Pick<RegFileData, "name" | "flags" | "pos" | "mode">): number {
  const isDir = reg.mode !== undefined && (reg.mode & 0o170000) === 0o040000;
  const flags = (openFlags(reg.flags) & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY | O.DIRECTORY)) | O.CLOEXEC | (isDir ? O.DIRECTORY : 0);
  let fd: number;
  try {
    fd = openSync(hostPath(reg.name), flags);
  } catch (e) {
    throw new UserError(`cannot open ${reg.name}: ${(e as Error).message}`);
  }
  try {
    if (reg.pos !== 0n) sys('lseek', [fd, reg.pos, 0], reg.name);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** What a file's entry records about it that a restore checks: size, mtime, build-id. */
export type FileStamp = { name: string; size?: bigint; cryoMtimeNs?: bigint; buildId?: number[] };

/**
 * Why the file at the entry's path is not the one that was dumped (null if it is, as far as the
 * image can tell): a different size or mtime, or, for an ELF file, another build-id.
 */
export function changedSince(f: FileStamp): string | null {
  const has = (field: string) => hasField(reg_file_entrySchema, f, field);
  if (!has('size') && !has('cryoMtimeNs') && !f.buildId?.length) return null;
  let st;
  try {
    st = statSync(hostPath(f.name), { bigint: true });
  } catch (e) {
    return `${f.name} is gone: ${(e as Error).message}`;
  }
  if (!st.isFile()) return null;
  if (has('size') && st.size !== f.size) return `${f.name} changed since the dump (size ${st.size}, was ${f.size})`;
  if (has('cryoMtimeNs') && st.mtimeNs !== f.cryoMtimeNs) return `${f.name} changed since the dump (modified after it)`;
  if (f.buildId?.length) {
    const now = buildIdWords(hostPath(f.name));
    if (!now || now.join(',') !== f.buildId.join(',')) return `${f.name} changed since the dump (another build-id: a different binary)`;
  }
  return null;
}

/**
 * The stamp of a regular file for its entry: size, mtime and (with `buildIds`, a per-dump cache
 * by dev:ino, for executables and mapped files) its build-id. `path` may be a /proc link.
 */
export function fileStamp(path: string, buildIds?: Map<string, number[] | undefined>): { size: bigint; cryoMtimeNs: bigint; buildId?: number[] } {
  const st = statSync(path, { bigint: true });
  const stamp = { size: st.size, cryoMtimeNs: st.mtimeNs };
  if (!buildIds) return stamp;
  const key = `${st.dev}:${st.ino}`;
  if (!buildIds.has(key)) buildIds.set(key, buildIdWords(path));
  const id = buildIds.get(key);
  return id ? { ...stamp, buildId: id } : stamp;
}
