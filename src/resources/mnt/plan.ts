// What each mount of a container's mount namespace is, for the dump and `check`: the root (a
// bind of a host directory, bound again at restore: --root or the path it had), a filesystem
// cryo makes anew (proc, sysfs, tmpfs with its contents, devpts, mqueue, cgroup2), a bind of a
// directory or file of an earlier mount of the tree, or a mount from the host named with
// --external mnt[MOUNTPOINT]:KEY; and its propagation (propagation.ts). Everything else is
// refused, naming the mount.
import type { MountInfo } from '../../proc/mountinfo.js';
import { planPropagation, propOfInfo, under } from './propagation.js';

/** The filesystems a restore mounts anew (tmpfs with its saved contents). */
export const MADE_FS = new Set(['proc', 'sysfs', 'tmpfs', 'devpts', 'mqueue', 'cgroup2']);
/** Made anew, but an instance shared with the host would then be a private one: refused. */
const PRIVATE_INSTANCE_FS = new Set(['tmpfs', 'devpts', 'proc']);

export type PlannedMount =
  | { kind: 'root'; info: MountInfo; hostPath?: string }
  | { kind: 'fs'; info: MountInfo }
  | { kind: 'bind'; info: MountInfo; from: number; rel: string }
  | { kind: 'external'; info: MountInfo; key: string };

export interface MountPlan {
  mounts: PlannedMount[];
  /** Why a mount cannot be checkpointed, each naming it. */
  problems: string[];
}

const rest = (path: string, dir: string) => (dir === '/' ? path : path.slice(dir.length)) || '/';
const sameSb = (a: MountInfo, b: MountInfo) => a.major === b.major && a.minor === b.minor;
const named = (m: MountInfo) => `mount ${m.mountPoint} (${m.fsType} ${m.source}${m.root !== '/' ? ` ${m.root}` : ''})`;

/** Where on the host the directory bound as the container's root is (null if not visible). */
export function hostPathOf(m: MountInfo, host: MountInfo[]): string | undefined {
  let best: MountInfo | undefined;
  for (const h of host) if (sameSb(h, m) && under(m.root, h.root) && (!best || h.root.length > best.root.length)) best = h;
  if (!best) return undefined;
  const r = rest(m.root, best.root);
  return best.mountPoint === '/' ? r : r === '/' ? best.mountPoint : best.mountPoint + r;
}

/**
 * Judges the mounts of a task's namespace (`tree`, its mountinfo, in order) against cryo's own
 * (`host`). `external`: mount point -> key (--external mnt[MOUNTPOINT]:KEY). `cgroupRoot`: the
 * v2 root of the tree's own cgroup namespace (cryo's path): a cgroup2 mounted inside it shows
 * that root, and mounted anew inside the restored namespace it has it again.
 */
export function planMounts(tree: MountInfo[], host: MountInfo[], external: Map<string, string>, cgroupRoot?: string): MountPlan {
  const problems: string[] = [];
  const mounts: PlannedMount[] = [];
  const ids = new Set(tree.map((m) => m.mountId));
  tree.forEach((m, i) => {
    if (i === 0) {
      if (ids.has(m.parentId) || m.mountPoint !== '/') problems.push(`${named(m)}: the namespace's first mount is not its root — not supported`);
      mounts.push({ kind: 'root', info: m, ...(hostPathOf(m, host) !== undefined ? { hostPath: hostPathOf(m, host)! } : {}) });
    } else if (!ids.has(m.parentId)) {
      problems.push(`${named(m)}: its parent mount ${m.parentId} is not in the namespace's tree — not supported`);
      return;
    } else {
      const p = classify(m);
      if (typeof p === 'string') problems.push(`${named(m)}: ${p}`);
      else mounts.push(p);
    }
  });
  // Peer groups, slaves and unbindable mounts: made again at restore (propagation.ts).
  for (const p of planPropagation(tree.map(propOfInfo), host, true).problems) problems.push(`${named(tree[p.index]!)}: ${p.reason}`);
  // A tmpfs hidden by a later mount at its place or above it (not one of its own): cryo reads
  // contents through the paths, which lead to what covers it.
  const byId = new Map(tree.map((m) => [m.mountId, m]));
  const below = (o: MountInfo, m: MountInfo) => {
    for (let p: MountInfo | undefined = o; p; p = p.parentId === p.mountId ? undefined : byId.get(p.parentId)) if (p === m) return true;
    return false;
  };
  tree.forEach((m, i) => {
    if (m.fsType !== 'tmpfs') return;
    const over = tree.find((o, j) => j > i && under(m.mountPoint, o.mountPoint) && !below(o, m));
    if (over) problems.push(`${named(m)}: covered by mount ${over.mountPoint} (${over.fsType}) — its contents cannot be read`);
  });
  return { mounts, problems };

  function classify(m: MountInfo): PlannedMount | string {
    const key = external.get(m.mountPoint);
    if (key !== undefined) return { kind: 'external', info: m, key };
    // A bind of a directory or file of an earlier mount of the tree (same superblock, under its root).
    for (let j = mounts.length - 1; j >= 0; j--) {
      const e = mounts[j]!;
      if (e.kind === 'external' || !sameSb(e.info, m) || !under(m.root, e.info.root)) continue;
      if (e.kind === 'fs' && !MADE_FS.has(m.fsType)) continue;
      return { kind: 'bind', info: m, from: j, rel: rest(m.root, e.info.root) };
    }
    if (!MADE_FS.has(m.fsType)) {
      const fuse = m.fsType === 'fuse' || m.fsType.startsWith('fuse.');
      return fuse ? `a FUSE filesystem (${m.fsType}) — its server is outside the dump: not supported`
        : `a ${m.fsType} filesystem, which cryo does not make again — if it comes from the host, name it with --external mnt[${m.mountPoint}]:KEY (bound from the host at restore)`;
    }
    if (m.root !== '/' && !(m.fsType === 'cgroup2' && m.root === cgroupRoot)) return `a bind of ${m.root} of a ${m.fsType} that is not mounted whole in the container — not supported`;
    const shared = PRIVATE_INSTANCE_FS.has(m.fsType) ? host.find((h) => sameSb(h, m)) : undefined;
    if (shared) return `the host's own ${m.fsType} (mounted at ${shared.mountPoint} here) — name it with --external mnt[${m.mountPoint}]:KEY`;
    return { kind: 'fs', info: m };
  }
}
