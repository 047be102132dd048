// Whether an image directory may be restored as it is. A restore as root does whatever the images
// say: it opens and creates the paths they name with their flags, maps files, sets any uid and
// capability, binds sockets. So images must come from someone the restoring user trusts: the
// directory and every file in it are owned by the restoring user, writable by nobody else, and
// are what they seem (no symlink pointing elsewhere, no device or FIFO). `--trust-image` skips
// this for a directory checked some other way.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageError } from './errors.js';

function ownerProblem(st: fs.Stats, uid: number): string | null {
  if (st.uid !== uid) return `owned by uid ${st.uid}, not by the restoring user (uid ${uid})`;
  if (st.mode & 0o022) return `writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode 0${(st.mode & 0o7777).toString(8)})`;
  return null;
}

/** Throws an ImageError naming the first file that cannot be trusted. */
export function checkImageDirTrust(dir: string, uid = process.geteuid?.() ?? 0, depth = 0): void {
  const refuse = (file: string, why: string) =>
    new ImageError('DIR', file, `${why} — an image can make a restore open any file and grant any credentials; refusing (check where it came from, then use --trust-image)`);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImageError('DIR', dir, 'no such image directory', undefined, { cause: e });
    if (code === 'EACCES') throw new ImageError('IO', dir, 'permission denied (cannot look at the image directory)', undefined, { cause: e });
    throw new ImageError('IO', dir, `cannot stat the image directory: ${code ?? String(e)}`, undefined, { cause: e });
  }
  if (st.isSymbolicLink()) st = fs.statSync(dir);
  if (!st.isDirectory()) throw new ImageError('DIR', dir, 'not a directory');
  const bad = ownerProblem(st, uid);
  if (bad) throw refuse(dir, `the image directory is ${bad}`);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageError('IO', dir, code === 'EACCES' ? 'permission denied (cannot list the image directory)' : `cannot list the image directory: ${code}`, undefined, { cause: e });
  }
  for (const name of names.sort()) {
    const file = path.join(dir, name);
    const fst = fs.lstatSync(file);
    if (fst.isSymbolicLink()) {
      // The link to the previous dump of an incremental chain (CRIU's): trusted as its target is.
      if (name === 'parent' && depth < 64) {
        checkImageDirTrust(fs.realpathSync(file), uid, depth + 1);
        continue;
      }
      throw refuse(file, 'is a symlink');
    }
    if (!fst.isFile() && !fst.isDirectory()) throw refuse(file, 'is not a regular file');
    const why = ownerProblem(fst, uid);
    if (why) throw refuse(file, `is ${why}`);
  }
}
