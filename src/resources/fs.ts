// The task's filesystem context: cwd, root and umask.
import { readlinkSync } from 'node:fs';
import { statusUmask } from '../proc/index.js';
import type { CallQueue, DumpTask, RestoreTask } from './context.js';
import type { FileTable } from './files/table.js';
import { NO_FOWN } from './files/fown.js';
import { deletedPath } from './files/ghost.js';

export interface FsData {
  cwdId: number;
  rootId: number;
  umask: number;
}

export function dumpFs(t: DumpTask, files: FileTable): FsData {
  const dir = (link: string) => {
    const name = readlinkSync(`/proc/${t.pid}/${link}`);
    const gone = deletedPath(name);
    // A removed cwd is saved as an empty ghost directory, made again for the restore.
    return files.byName({ flags: 0, pos: 0n, fown: NO_FOWN, name: gone ?? name, mode: 0o040755 }, gone !== null ? `/proc/${t.pid}/${link}` : undefined);
  };
  return { cwdId: dir('cwd'), rootId: dir('root'), umask: statusUmask(t.status) };
}

/**
 * Both paths are as cryo sees them (from its own root), so the cwd is entered before the chroot:
 * after it, the cwd's path would be looked up inside the new root (chroot leaves the cwd as it is,
 * as it was for the task).
 */
export function restoreFs(r: RestoreTask, fs: FsData, nameOf: (id: number) => string, q: CallQueue): void {
  const cwd = nameOf(fs.cwdId);
  q.add('chdir', [r.scratch.putString(cwd)], `cwd ${cwd}`);
  const root = nameOf(fs.rootId);
  if (root !== '/') q.add('chroot', [r.scratch.putString(root)], `root ${root}`);
  q.add('umask', [fs.umask]);
}
