// Control groups: which cgroup a process is in, in every hierarchy (v1 controllers, named
// hierarchies and the v2 unified one), from /proc/PID/cgroup. A restored process starts in the
// restorer's; where the image says otherwise it is moved (the cgroup made if it is gone), right
// after it is created and before its memory comes back, so its pages are charged where they were.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import type { Blocker } from '../../util/blocker.js';
import { UserError } from '../../util/errors.js';
import { isEnding, parseStat } from '../../proc/index.js';
import { cgroupMounts, cgroupDir } from '../cgroup/hierarchy.js';

/** One line of /proc/PID/cgroup: the hierarchy's controllers ('' for v2) and the path in it. */
export interface CgroupMember {
  name: string;
  path: string;
  /** In a cgroup namespace of the tree's: the length of the leading part of `path` that is its root (resources/ns/cgroup.ts). */
  cgnsPrefix?: number;
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

/** Moves the (just created) process `pid` into the cgroups of `want` it is not in (it starts in its creator's). */
export function restoreCgroups(pid: number, want: CgroupMember[]): void {
  const mine = new Map(dumpCgroups(pid).map((m) => [m.name, m.path]));
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

/** An exiting thread shows the root cgroup (it left its own in do_exit): it is not dumped, so it judges nothing. */
function threadEnding(pid: number, tid: string): boolean {
  try {
    return isEnding(parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
  } catch {
    return true; // ended since
  }
}

/**
 * A thread in another cgroup than its process (a threaded cgroup v2, or a v1 hierarchy's
 * tasks file): only the process's membership is saved, so that thread would come back elsewhere.
 */
export function threadCgroupBlocker(pid: number): Blocker | null {
  let own: string;
  let tids: string[];
  try {
    own = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null; // gone: not part of the tree
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/cgroup`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    if (text === own || threadEnding(pid, tid)) continue;
    const other = parseCgroups(text).find((m, i) => m.path !== parseCgroups(own)[i]?.path);
    return { pid, kind: 'cgroup', reason: `thread ${tid} is in cgroup ${other ? `${other.name || '(v2)'}:${other.path}` : 'another'} than its process — threads in cgroups of their own are not supported` };
  }
  return null;
}
