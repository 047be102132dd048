// A file of cryo's own mount namespace (an image file, a /proc path of another task) handed to a
// task being restored that is in a mount namespace of its own, where the path means nothing or
// something else: cryo opens it and the task takes the open file with pidfd_getfd.
import { openSync, closeSync } from 'node:fs';
import type { RestoreTask } from './context.js';
import { UserError } from '../util/errors.js';

/** The task's new fd on cryo's `path` opened with `flags` (O_CLOEXEC in the task). */
export function hostFdInTask(r: RestoreTask, path: string, flags: number, what: string): bigint {
  let ours: number;
  try {
    ours = openSync(path, flags);
  } catch (e) {
    throw new UserError(`${what}: cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const pidfd = r.restorerPidfd !== undefined ? BigInt(r.restorerPidfd) : r.remote.call('pidfd_open', [r.restorerPid, 0], 'pidfd of the restorer');
    try {
      return r.remote.call('pidfd_getfd', [pidfd, ours, 0], what);
    } finally {
      if (r.restorerPidfd === undefined) r.remote.call('close', [pidfd]);
    }
  } finally {
    closeSync(ours);
  }
}
