// SysV semaphore undo lists (semop with SEM_UNDO): the adjustments the kernel undoes when the
// task exits. cryo does not save them yet, so a task holding one is refused. /proc does not show
// them; kcmp(KCMP_SYSVSEM) compares two tasks' lists, and a child spawned without CLONE_SYSVSEM
// has none: a task whose list differs from that child's has one. (cryo itself cannot be the
// reference: Node's process has a list of its own.)
import { existsSync } from 'node:fs';
import { KCMP, SIG, kcmp, kill, posixSpawn, wait4 } from '../../sys/index.js';

let reference: number | null = null;

/** A process of ours with no undo list, spawned once and ended when cryo exits. */
function referencePid(): number {
  if (reference !== null && existsSync(`/proc/${reference}`)) return reference;
  const pid = posixSpawn('/bin/sleep', ['sleep', '60'], []);
  reference = pid;
  process.once('exit', () => {
    try {
      kill(pid, SIG.KILL);
      wait4(pid);
    } catch {
      /* gone already */
    }
  });
  return pid;
}

/** Whether task `pid` holds a semaphore undo list. */
export function hasSemUndo(pid: number): boolean {
  return kcmp(referencePid(), pid, KCMP.SYSVSEM) !== 0;
}
