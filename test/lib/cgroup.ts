// cgroups for tests: every cgroup a test makes is below one parent of this test process's own
// (`cryo-test-<pid>` at the top of the v2 hierarchy, or of a v1 one, wherever this machine
// mounts them), made on first use and removed, bottom-up, by removeTestCgroups(); nothing else
// is ever touched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep } from './proc.js';

/** The v2 hierarchy's mount point here (hybrid machines mount it at /sys/fs/cgroup/unified). */
export function v2Mount(): string {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre!.split(' ')[4]!;
  }
  throw new Error('no cgroup2 mount here');
}

/** The mount point of the v1 hierarchy carrying `controller`, or null. */
export function v1Mount(controller: string): string | null {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    const f = post?.split(' ');
    if (f?.[0] === 'cgroup' && f[2]?.split(',').includes(controller)) return pre!.split(' ')[4]!;
  }
  return null;
}

/** The test's own parent in each hierarchy it used (by mount point). */
const parents = new Map<string, string>();
let counter = 0;

function parentIn(mount: string): string {
  let p = parents.get(mount);
  if (!p) {
    p = path.join(mount, `cryo-test-${process.pid}`);
    fs.mkdirSync(p);
    parents.set(mount, p);
  }
  return p;
}

/** A new cgroup NAME-<n> below the test's own parent (of the v2 hierarchy, or `under`): its directory. */
export function makeCgroup(name: string, under?: string): string {
  const dir = path.join(under ?? parentIn(v2Mount()), `${name}-${++counter}`);
  fs.mkdirSync(dir);
  return dir;
}

/** The same in the v1 hierarchy of `controller` (this machine may be hybrid); null when there is none. */
export function makeV1Cgroup(controller: string, name: string): string | null {
  const mount = v1Mount(controller);
  if (!mount) return null;
  const dir = path.join(parentIn(mount), `${name}-${++counter}`);
  fs.mkdirSync(dir);
  return dir;
}

/** A cgroup's processes (cgroup.procs). */
export function cgroupProcs(dir: string): number[] {
  return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

export function cgroupFile(dir: string, file: string): string {
  return fs.readFileSync(path.join(dir, file), 'utf8').trim();
}

/** `frozen` of cgroup.events: '1' once every task of it is frozen. */
export function cgroupFrozen(dir: string): string {
  return /^frozen (\d)$/m.exec(cgroupFile(dir, 'cgroup.events'))?.[1] ?? '?';
}

/** Task `pid`'s v2 cgroup directory. */
export function cgroupOf(pid: number): string {
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))!;
  return path.join(v2Mount(), line.slice(3)).replace(/\/+$/, '');
}

/**
 * Removes every cgroup made here, deepest first: thawed if left frozen, its processes (the
 * tests' own targets and their children, restored ones too) killed by PID, then rmdir. Returns
 * what could not be removed (a leftover, which the caller's assertion names).
 */
export async function removeTestCgroups(): Promise<string[]> {
  const left: string[] = [];
  // Also the cgroups a restore made again below ours (a test's own, recreated from its images).
  const all = [...parents.values()].filter((p) => fs.existsSync(p)).flatMap(below);
  for (const dir of all.reverse()) {
    try {
      if (fs.existsSync(path.join(dir, 'cgroup.freeze'))) fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '0');
    } catch {
      /* gone */
    }
    // Only the tests' targets (and what they forked) are in these cgroups: killed by PID.
    for (let i = 0; i < 50 && cgroupProcsSafe(dir).length; i++) {
      for (const pid of cgroupProcsSafe(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(10);
    }
    let ok = false;
    for (let i = 0; i < 300 && !ok; i++) {
      try {
        fs.rmdirSync(dir);
        ok = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') ok = true;
        else await sleep(10);
      }
    }
    if (!ok) left.push(`${dir} (procs: ${cgroupProcsSafe(dir).join(' ') || 'none'})`);
  }
  parents.clear();
  return left;
}

function below(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    for (const e of fs.readdirSync(out[i]!, { withFileTypes: true })) if (e.isDirectory()) out.push(path.join(out[i]!, e.name));
  }
  return out;
}

function cgroupProcsSafe(dir: string): number[] {
  try {
    return cgroupProcs(dir);
  } catch {
    return [];
  }
}

/** Task `pid`'s cgroup directory in the v1 hierarchy of `controller`. */
export function v1CgroupOf(pid: number, controller: string): string {
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(controller))!;
  return path.join(v1Mount(controller)!, line.split(':')[2]!).replace(/\/+$/, '');
}
