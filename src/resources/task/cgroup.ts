// Control groups: which cgroup a process is in, in every hierarchy (v1 controllers, named
// hierarchies and the v2 unified one), from /proc/PID/cgroup. A restored process starts in the
// restorer's; where the image says otherwise it is moved (the cgroup made if it is gone), right
// after it is created and before its memory comes back, so its pages are charged where they were.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { cgroupMounts, cgroupDir } from '../cgroup/hierarchy.js';

/** One line of /proc/PID/cgroup: the hierarchy's controllers ('' for v2) and the path in it. */
export interface CgroupMember {
  name: string;
  path: string;
}

export function parseCgroups(text: string): CgroupMember[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\d+:([^:]*):(.*)$/.exec(l);
      if (!m) throw new Error(`/proc cgroup line not understood: ${l}`);
      return { name: m[1]!, path: m[2]! };
    });
}

export function dumpCgroups(pid: number): CgroupMember[] {
  return parseCgroups(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
}

/** Moves the (just created) process `pid` into the cgroups of `want` that the restorer is not in. */
export function restoreCgroups(pid: number, want: CgroupMember[]): void {
  const mine = new Map(dumpCgroups(process.pid).map((m) => [m.name, m.path]));
  const mounts = cgroupMounts();
  for (const m of want) {
    if (mine.get(m.name) === m.path) continue;
    const key = m.name.split(',').sort().join(',');
    const h = mounts.get(key);
    const what = `pid ${pid}: cgroup ${m.name || '(v2)'}:${m.path}`;
    if (!h) throw new UserError(`${what}: that hierarchy is not mounted here`);
    const dir = cgroupDir(h, m.path);
    if (dir === null) throw new UserError(`${what}: outside this machine's view of the hierarchy (${h.root})`);
    try {
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}/cgroup.procs`, String(pid));
    } catch (e) {
      throw new UserError(`${what}: cannot move it there: ${(e as Error).message}`);
    }
  }
}
