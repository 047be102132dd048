// Regular files, directories and stateless character devices: dumped as path + flags + position,
// restored by opening the path in the restorer and handing the open file to the task.
import { openSync, closeSync } from 'node:fs';
import { O, sys } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';

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
}

export const NO_FOWN: FownData = { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 };

/** __O_TMPFILE: kept in the status flags of a file made with O_TMPFILE (with O_DIRECTORY). */
const O_TMPFILE_BIT = 0o20000000;

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
    fd = openSync(reg.name, flags);
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
