// Control groups: which cgroup a process is in, in every hierarchy (v1 controllers, named
// hierarchies and the v2 unified one), from /proc/PID/cgroup. A restored process starts in the
// restorer's; where the image says otherwise it is moved (the cgroup made if it is gone), right
// after it is created and before its memory comes back, so its pages are charged where they were.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { UserError } from '../../util/errors.js';

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

/** Where each hierarchy is mounted here: controllers ('' for v2) -> mount point and root. */
function hierarchies(): Map<string, { dir: string; root: string }> {
  const out = new Map<string, { dir: string; root: string }>();
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

/** Moves the (just created) process `pid` into the cgroups of `want` that the restorer is not in. */
export function restoreCgroups(pid: number, want: CgroupMember[]): void {
  const mine = new Map(dumpCgroups(process.pid).map((m) => [m.name, m.path]));
  const mounts = hierarchies();
  for (const m of want) {
    if (mine.get(m.name) === m.path) continue;
    const key = m.name.split(',').sort().join(',');
    const h = mounts.get(key);
    const what = `pid ${pid}: cgroup ${m.name || '(v2)'}:${m.path}`;
    if (!h) throw new UserError(`${what}: that hierarchy is not mounted here`);
    if (!m.path.startsWith(h.root)) throw new UserError(`${what}: outside this machine's view of the hierarchy (${h.root})`);
    const dir = `${h.dir}${m.path.slice(h.root === '/' ? 0 : h.root.length)}`.replace(/\/+$/, '') || h.dir;
    try {
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}/cgroup.procs`, String(pid));
    } catch (e) {
      throw new UserError(`${what}: cannot move it there: ${(e as Error).message}`);
    }
  }
}
