// A process's children, from every thread's children list (a thread's fork is the process's
// child), sorted; [] for a process gone.
import { readdirSync, readFileSync } from 'node:fs';

export function childrenOf(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tids) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    } catch {
      continue; // the thread exited meanwhile
    }
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out.sort((a, b) => a - b);
}
