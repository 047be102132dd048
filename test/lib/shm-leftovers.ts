// What SIGKILLed targets leave in /dev/shm: Python multiprocessing's named semaphores (its
// resource tracker unlinks them at exit, which a kill skips) and PostgreSQL's dynamic shared
// memory segments. cleanup() and cleanupTrees() note the entries of those two shapes that the
// processes they are about to kill (and their descendants) have open or mapped, and cleanup()
// removes them once no live process uses them. Only its own victims' entries: another test
// run's, or a dumped tree's waiting for its restore, are never touched.
import * as fs from 'node:fs';
import { descendantPids } from './proc.js';

const SHM = '/dev/shm/';
const LEFTOVER = /^\/dev\/shm\/(sem\.mp-|PostgreSQL\.)/;

/** The /dev/shm paths `pid` has open or mapped. */
function shmOf(pid: number): string[] {
  const out: string[] = [];
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      const at = line.indexOf(SHM);
      if (at >= 0) out.push(line.slice(at).replace(/ \(deleted\)$/, ''));
    }
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith(SHM)) out.push(link);
    }
  } catch {
    /* gone, or not ours to read */
  }
  return out;
}

const noted = new Set<string>();

/** Notes the leftover-shaped entries the processes `pids` (and theirs) use: call before killing them. */
export function noteShmOf(pids: number[]): void {
  for (const pid of pids) for (const p of descendantPids(pid)) for (const path of shmOf(p)) if (LEFTOVER.test(path)) noted.add(path);
}

/** Removes the noted entries no live process has open or mapped any more. */
export function removeShmLeftovers(): void {
  if (!noted.size) return;
  const live = new Set<string>();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) for (const path of shmOf(Number(pid))) live.add(path);
  for (const path of noted) if (!live.has(path)) fs.rmSync(path, { force: true });
  noted.clear();
}
