// Where a task named by an fd stands to the fd's holder in the dumped tree. The restore opens
// such an fd (a pidfd, a /proc/PID file) once the holder's children exist, so the task it names
// must be there by then: the holder itself, an ancestor or a descendant (a sibling's branch is
// made later).
import { readFileSync } from 'node:fs';
import { parseStat } from '../../proc/index.js';

/** The thread group `pid` (a process or one of its threads) belongs to, or null when gone. */
export function tgidOf(pid: number): number | null {
  try {
    const m = /^Tgid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function parentOf(pid: number): number | null {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).ppid;
  } catch {
    return null;
  }
}

/** Whether `ancestor` is among the parents of `pid`, going up only through the dumped tree. */
function inLineOf(pid: number, ancestor: number, tree: Set<number>): boolean {
  for (let p = parentOf(pid); p !== null && tree.has(p); p = parentOf(p)) if (p === ancestor) return true;
  return false;
}

/** Whether `tgid` (of the tree) exists once `holder`'s children do at restore. */
export function madeByHolderChildren(holder: number, tgid: number, tree: Set<number>): boolean {
  return tgid === holder || inLineOf(holder, tgid, tree) || inLineOf(tgid, holder, tree);
}
