// Files cryo creates outside the image directory (the -o log, the --pidfile), often in a
// directory others can write to, such as /tmp. A name there may be a symlink planted by another
// user to make a root cryo overwrite a file of its choice, so nothing is opened by that name:
// the file is made under a fresh temporary name in the same directory (O_EXCL|O_NOFOLLOW: a
// planted name is never followed) with its mode set by fchmod (umask cannot widen or narrow it),
// then renamed over the name. rename replaces a symlink itself, never its target, and never
// truncates an existing file: whatever was there keeps its contents under its other names.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from './errors.js';

/** A new file beside `file`, under a name nobody can have planted; node opens it O_CLOEXEC. */
function tempBeside(file: string, mode: number, what: string): { fd: number; tmp: string } {
  const dir = path.dirname(path.resolve(file));
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  for (let attempt = 0; ; attempt++) {
    const tmp = path.join(dir, `.${path.basename(file)}.cryo-${randomBytes(6).toString('hex')}`);
    try {
      const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
      return { fd, tmp };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 8) continue;
      throw new UserError(`cannot create the ${what} ${file}: ${reason(e)}`);
    }
  }
}

/** Writes `data` (if any) into a temporary file, then gives it its name; returns the open fd. */
function install(file: string, mode: number, what: string, data?: string): number {
  const { fd, tmp } = tempBeside(file, mode, what);
  try {
    fs.fchmodSync(fd, mode);
    if (data !== undefined) fs.writeSync(fd, data);
    fs.renameSync(tmp, file);
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw new UserError(`cannot create the ${what} ${file}: ${reason(e)}`);
  }
}

/** Creates `file` with exactly `mode`, as above; returns its fd, open for writing. */
export function createOutputFile(file: string, mode: number, what: string): number {
  return install(file, mode, what);
}

/** Writes a complete file named `file` (a reader never sees it empty), as above. */
export function writeOutputFile(file: string, data: string, mode: number, what: string): void {
  fs.closeSync(install(file, mode, what, data));
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  if (err.code === 'ENOENT') return 'its directory does not exist';
  if (err.code === 'EISDIR') return 'it is a directory';
  return err.code ?? String(e);
}
