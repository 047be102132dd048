// A container's mount namespace, dump side: which mounts it has and whether each can be made
// again (plan.ts), blockers for `check` and the dump, and the dump itself (entries + tmpfs
// contents) while the tree is frozen. The restore side is restore.ts.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { parseMountInfo, type MountInfo } from '../../proc/mountinfo.js';
import type { Blocker } from '../../util/blocker.js';
import { planMounts, type PlannedMount } from './plan.js';
import { packTmpfs } from './tmpfs.js';
import { kdev } from './flags.js';
import { treePath, ownMountNs } from './root-path.js';

export { ownMountNs } from './root-path.js';
import { cgnsRoots } from '../ns/cgroup.js';
import { mappedPathBlockers } from './mapped-paths.js';
import { propagationWords } from './propagation.js';

export { writeMntImages, readMntImages } from './images.js';

function planOf(root: number, external: Map<string, string>) {
  const tree = parseMountInfo(readFileSync(`/proc/${root}/mountinfo`, 'utf8'));
  return planMounts(tree, parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')), external, cgroupRootFor(root, tree));
}

/** The v2 root of the root's own cgroup namespace, asked of it only for a cgroup2 mounted below the top. */
function cgroupRootFor(root: number, tree: MountInfo[]): string | undefined {
  if (!tree.some((m) => m.fsType === 'cgroup2' && m.root !== '/')) return undefined;
  if (readlinkSync(`/proc/${root}/ns/cgroup`) === readlinkSync('/proc/self/ns/cgroup')) return undefined;
  try {
    return cgnsRoots(root).get('');
  } catch {
    return undefined; // the namespace itself is refused, named, by resources/ns
  }
}

/**
 * Why the root's mount namespace cannot be checkpointed, each naming the mount or the object:
 * the mounts plan.ts refuses, POSIX message queues (their messages are not saved), and what the
 * restore would make by a host path outside the namespace (deleted files, memfds, unix sockets
 * bound to a path), and an executable or mapped file its path does not lead to (mapped-paths.ts).
 */
export function mountBlockers(root: number, tree: number[], external: Map<string, string>, unix: Map<number, { name: Buffer }>): Blocker[] {
  if (!ownMountNs(root)) return [];
  const plan = planOf(root, external);
  const out: Blocker[] = plan.problems.map((reason) => ({ pid: root, kind: 'mount', reason }));
  for (const p of plan.mounts) {
    if (p.kind !== 'fs' || p.info.fsType !== 'mqueue') continue;
    const queues = readdirSync(`/proc/${root}/root${p.info.mountPoint}`);
    if (queues.length) out.push({ pid: root, kind: 'mount', reason: `mount ${p.info.mountPoint} (mqueue) holds POSIX message queues (${queues.slice(0, 5).join(', ')}) whose messages are not saved — not supported yet` });
  }
  for (const pid of tree) {
    for (const fd of safeList(`/proc/${pid}/fd`)) {
      const link = safeLink(`/proc/${pid}/fd/${fd}`);
      const sk = /^socket:\[(\d+)\]$/.exec(link);
      const name = sk ? unix.get(Number(sk[1]))?.name : undefined;
      if (name?.length && name[0] !== 0) out.push({ pid, fd: Number(fd), kind: 'mount', reason: `a unix socket bound to ${name.toString().replace(/\0+$/, '')} inside a mount namespace of its own — not supported yet` });
      if (link.startsWith('/memfd:')) out.push({ pid, fd: Number(fd), kind: 'mount', reason: `a memfd inside a mount namespace of its own — not supported yet` });
      else if (link.startsWith('/') && link.endsWith(' (deleted)')) out.push({ pid, fd: Number(fd), kind: 'mount', reason: `a deleted file (${link}) inside a mount namespace of its own — not supported yet` });
    }
    out.push(...mappedPathBlockers(pid));
    for (const line of safeRead(`/proc/${pid}/maps`).split('\n')) {
      if (line.endsWith(' (deleted)') || line.includes(' /memfd:')) out.push({ pid, kind: 'mount', reason: `a mapping of a deleted file or memfd (${line.slice(line.indexOf('/'))}) inside a mount namespace of its own — not supported yet` });
    }
  }
  return out;
}

export interface TreeMounts {
  mounts: PlannedMount[];
  /** tmpfs contents by root_dev. */
  tars: Map<number, Buffer>;
}

/** The root's mounts and the contents of its tmpfs mounts (the tree frozen). */
export function dumpTreeMounts(root: number, external: Map<string, string>): TreeMounts | null {
  if (!ownMountNs(root)) return null;
  const plan = planOf(root, external);
  const tars = new Map<number, Buffer>();
  for (const p of plan.mounts) {
    if (p.kind !== 'fs' || p.info.fsType !== 'tmpfs') continue;
    tars.set(kdev(p.info.major, p.info.minor), packTmpfs(treePath(root, p.info.mountPoint), `tmpfs at ${p.info.mountPoint}`));
  }
  return { mounts: plan.mounts, tars };
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeLink(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

const HOW = { root: 'the root: bound again from its directory (or --root)', fs: 'made anew', bind: 'a bind of a mount above', external: 'from the host: bound again from the path given for its key' } as const;

/** Each mount of the root's own namespace with its verdict, for `check -t`. */
export function mountVerdicts(root: number, external: Map<string, string>): { what: string; blocked: string | null; detail: string }[] {
  if (!ownMountNs(root)) return [];
  const tree = parseMountInfo(readFileSync(`/proc/${root}/mountinfo`, 'utf8'));
  const plan = planMounts(tree, parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')), external, cgroupRootFor(root, tree));
  const words = propagationWords(tree);
  return tree.map((m, i) => {
    const what = `${m.mountPoint} (${m.fsType})`;
    const problem = plan.problems.find((p) => p.startsWith(`mount ${m.mountPoint} (`));
    if (problem) return { what, blocked: problem.slice(problem.indexOf('): ') + 3), detail: '' };
    const p = plan.mounts.find((x) => x.info.mountId === m.mountId);
    const prop = words[i] === 'private' ? '' : `, ${words[i]}`;
    return { what, blocked: null, detail: p ? `${HOW[p.kind]}${p.kind === 'fs' && m.fsType === 'tmpfs' ? ', contents saved' : ''}${prop}` : '' };
  });
}
