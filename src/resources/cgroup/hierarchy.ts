// Where the cgroup hierarchies are mounted in cryo's mount namespace, and the way between a
// cgroup's path (as /proc/PID/cgroup names it) and its directory. This machine may be hybrid:
// v1 controllers each on their own mount and the v2 hierarchy beside them (often without
// controllers, at /sys/fs/cgroup/unified); both are found from mountinfo, never assumed.
import { readFileSync, readdirSync, existsSync } from 'node:fs';

/** A mounted hierarchy: its mount point and the cgroup path the mount shows as its root. */
export interface CgroupMount {
  dir: string;
  root: string;
}

let known: Map<string, CgroupMount> | null = null;

/**
 * Every hierarchy mounted here, by its controllers ('' for v2, 'cpu,cpuacct', 'name=systemd').
 * Read once per process: asked for every task, and mountinfo is long on a busy machine.
 */
export function cgroupMounts(): Map<string, CgroupMount> {
  known ??= readCgroupMounts();
  return known;
}

function readCgroupMounts(): Map<string, CgroupMount> {
  const out = new Map<string, CgroupMount>();
  const controllers = new Set(readFileSync('/proc/cgroups', 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('\t')[0]!));
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const [type, , opts] = post.split(' ');
    const root = f[3]!;
    const dir = f[4]!.replace(/\\040/g, ' ');
    if (type === 'cgroup2' && !out.has('')) out.set('', { dir, root });
    if (type !== 'cgroup') continue;
    const names = (opts ?? '').split(',').filter((o) => controllers.has(o) || o.startsWith('name='));
    const key = names.sort().join(',');
    if (key && !out.has(key)) out.set(key, { dir, root });
  }
  return out;
}

/** The v2 hierarchy, or null when none is mounted. */
export function unifiedMount(): CgroupMount | null {
  return cgroupMounts().get('') ?? null;
}

/** The directory of cgroup `path` of hierarchy `m`; null when the mount does not show it. */
export function cgroupDir(m: CgroupMount, path: string): string | null {
  if (m.root !== '/' && path !== m.root && !path.startsWith(`${m.root}/`)) return null;
  const rel = m.root === '/' ? path : path.slice(m.root.length);
  return `${m.dir}${rel}`.replace(/\/+$/, '') || m.dir;
}

/** Task `pid`'s v2 cgroup path ('/' for the root cgroup); null without a v2 line, or when it is gone. */
export function v2PathOf(pid: number | 'self'): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  return line === undefined ? null : line.slice(3);
}

/** `dir` and every cgroup below it, parents first. */
export function cgroupsBelow(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    for (const e of readdirSync(out[i]!, { withFileTypes: true })) if (e.isDirectory()) out.push(`${out[i]}/${e.name}`);
  }
  return out;
}

/** The processes of cgroup `dir` itself (cgroup.procs). */
export function procsOf(dir: string): number[] {
  return readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
}

/** One key of a flat-keyed cgroup file (cgroup.events: `frozen 1`); null when absent. */
export function keyedValue(file: string, key: string): string | null {
  if (!existsSync(file)) return null;
  const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${key} `));
  return line === undefined ? null : line.slice(key.length + 1).trim();
}
