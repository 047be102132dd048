// How much more memory a task may be given before something gives way: the system's
// MemAvailable, and below every memory.max of its cgroup v2 ancestors what that level has left.
// A --leave-running snapshot (dump/snapshot.ts) costs the task one page copy per page it writes
// while the snapshot lasts, charged to it: at worst the whole of what the snapshot holds.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { unifiedMount, cgroupDir, v2PathOf } from '../cgroup/hierarchy.js';

function readNumber(file: string): number | null {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return text === 'max' ? null : Number(text);
  } catch {
    return null;
  }
}

/** Bytes task `pid` could still be charged; 0 when it cannot be told. */
export function memoryHeadroom(pid: number): number {
  const avail = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  let room = avail ? Number(avail[1]) * 1024 : 0;
  const m = unifiedMount();
  const path = v2PathOf(pid);
  if (!m || path === null) return room;
  let dir = cgroupDir(m, path);
  while (dir && dir.startsWith(m.dir) && dir.length > m.dir.length) {
    const max = readNumber(`${dir}/memory.max`);
    const current = readNumber(`${dir}/memory.current`);
    if (max !== null && current !== null) room = Math.min(room, Math.max(0, max - current));
    dir = dirname(dir);
  }
  return room;
}
