// cgroups for tests: every cgroup a test makes is below one parent of this test process's own
// (`cryo-test-<pid>` at the top of the v2 hierarchy, wherever this machine mounts it), made
// on first use and removed, bottom-up, by removeTestCgroups(); nothing else is ever touched.
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

const made: string[] = [];
let parent: string | null = null;

/** A new cgroup below the test's own parent, named NAME-<n>: its directory. */
export function makeCgroup(name: string, under?: string): string {
  if (!parent) {
    parent = path.join(v2Mount(), `cryo-test-${process.pid}`);
    fs.mkdirSync(parent);
    made.push(parent);
  }
  const dir = path.join(under ?? parent, `${name}-${made.length}`);
  fs.mkdirSync(dir);
  made.push(dir);
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
  const all = parent && fs.existsSync(parent) ? below(parent) : [];
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
  made.length = 0;
  parent = null;
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
