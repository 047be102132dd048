// A thread that left its process's fd table or filesystem context (unshare(CLONE_FILES) or
// unshare(CLONE_FS) called in the thread: an fd table, cwd, root or umask of its own). The
// images keep one of each per process (ids-PID.img is per task), and the restore makes every
// thread share its leader's, so such a thread would come back with the leader's fds and cwd —
// silently. Refused, named, until threads get tables of their own.
import { readdirSync, readFileSync } from 'node:fs';
import { parseStat, isEnding } from '../../proc/index.js';
import { kcmp, KCMP } from '../../sys/index.js';
import type { Blocker } from '../../util/blocker.js';

export function threadSharingBlockers(pid: number): Blocker[] {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number).filter((tid) => tid !== pid);
  } catch {
    return []; // gone: not part of the tree
  }
  const out: Blocker[] = [];
  for (const tid of tids) {
    const differs = (type: number) => {
      try {
        return kcmp(pid, tid, type) !== 0 && !exiting(pid, tid);
      } catch {
        return false; // the thread ended meanwhile
      }
    };
    if (differs(KCMP.FILES)) out.push({ pid, kind: 'task', reason: `thread ${tid} has an fd table of its own (unshare(CLONE_FILES) in the thread) — not supported yet` });
    if (differs(KCMP.FS)) out.push({ pid, kind: 'task', reason: `thread ${tid} has a cwd, root and umask of its own (unshare(CLONE_FS) in the thread) — not supported yet` });
  }
  return out;
}

/**
 * The thread is ending: do_exit lets go of its fd table and fs context (exit_files, exit_fs)
 * before it is a zombie, so kcmp finds them unlike its leader's while it has none of its own (a
 * tree whose threads come and go was refused now and then, "an fd table of its own").
 */
function exiting(pid: number, tid: number): boolean {
  try {
    return isEnding(parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
  } catch {
    return true; // gone
  }
}
