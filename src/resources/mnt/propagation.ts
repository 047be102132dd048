// Mount propagation of a container's mount tree (mountinfo's shared:N, master:N, unbindable):
// judged at dump (what a restore could not make again is refused, naming the mount), made
// again at restore once every mount exists, and compared after, modulo the peer group ids.
//
// One plan serves both sides, from the dump's mountinfo and from the images alike: each peer
// group of the tree is one unit, led by the member whose root holds every other member's (the
// kernel joins a mount to a group with move_mount(MOVE_MOUNT_SET_GROUP) only from a mount of
// the same superblock whose root holds its own); each slave outside any group of its own is
// a unit too. A master is a group of the tree (made first: the units are ordered) or a peer
// group of cryo's namespace (the host's: a mount of it on the same filesystem, holding the
// slave's root, must be there at dump and at restore; a mount slave of a group in neither, or
// one sharing a group with the host, is refused).
//
// Restore (in the root task, after pivot_root, on O_PATH fds taken when each mount was made, so
// a mount covered since is reached too): a unit with a master joins the master's group
// (SET_GROUP from its leader, or from the host's mount opened through /proc/CRYO/root) and is
// made a slave of it; a group's leader is then made shared (a new group, its master kept) and
// the other members join it. Unbindable mounts last. Nothing is mounted after that, so no mount
// event of the restore itself propagates anywhere.
import type { Remote, Scratch } from '../../ptrace/index.js';
import type { Difference } from '../observe/snapshot.js';
import type { MountInfo } from '../../proc/mountinfo.js';
import { UserError } from '../../util/errors.js';
import { skip } from '../../util/skip.js';
import { vmWrite } from '../../sys/index.js';
import { MS, MOVE_MOUNT, AT_EMPTY_PATH, kdev } from './flags.js';

const MOUNT_ATTR_SIZE = 32;

/** What the plan needs of a mount, from mountinfo or from its mnt_entry. */
export interface PropMount {
  /** Its mount point, naming it. */
  at: string;
  root: string;
  /** Its superblock's device (mnt_entry.root_dev). */
  dev: number;
  shared: number;
  master: number;
  unbindable: boolean;
}

export interface PropUnit {
  /** The mount made a slave and, for a group, shared: the group's leader. */
  lead: number;
  /** The other members of its peer group (none for a lone slave). */
  peers: number[];
  shared: boolean;
  /** The group it receives from: of the tree (`internal`), else cryo's namespace's. */
  master?: { group: number; internal: boolean };
}

export interface PropPlan {
  /** In the order they are made: a master group before its slaves. */
  units: PropUnit[];
  unbindable: number[];
  /** Each naming its mount, by index. */
  problems: { index: number; reason: string }[];
}

export const under = (path: string, dir: string): boolean => dir === '/' || path === dir || path.startsWith(dir + '/');

export const propOfInfo = (m: MountInfo): PropMount => ({
  at: m.mountPoint, root: m.root, dev: kdev(m.major, m.minor), shared: m.shared, master: m.master, unbindable: m.unbindable,
});

/** cryo's mount of peer group `group` that a mount of `dev` rooted at `root` can be made a slave of. */
export function hostPeer(host: MountInfo[], group: number, dev: number, root: string): MountInfo | undefined {
  return host.find((h) => h.shared === group && kdev(h.major, h.minor) === dev && under(root, h.root));
}

/**
 * The propagation units of `mounts` (one namespace, in mountinfo order). `host`: cryo's
 * mountinfo, where a master that is no group of the tree must have a peer. `dump`: a group of
 * the tree is live and may be the host's too (refused); in images its number is only a name.
 */
export function planPropagation(mounts: PropMount[], host: MountInfo[], dump: boolean): PropPlan {
  const problems: PropPlan['problems'] = [];
  const groups = new Map<number, number[]>();
  mounts.forEach((m, i) => {
    if (m.shared) groups.set(m.shared, [...(groups.get(m.shared) ?? []), i]);
  });
  const hostGroups = new Set(dump ? host.flatMap((h) => [h.shared, h.master]).filter((g) => g) : []);
  const pending: PropUnit[] = [];
  const masterOf = (i: number): PropUnit['master'] | string => {
    const m = mounts[i]!;
    if (!m.master) return undefined;
    if (groups.has(m.master)) return { group: m.master, internal: true };
    if (hostPeer(host, m.master, m.dev, m.root)) return { group: m.master, internal: false };
    return `a slave of peer group ${m.master}, which has no mount in the container, nor one of cryo's namespace on its filesystem holding its root (${m.root}) — its propagation cannot be made again`;
  };
  for (const [group, members] of groups) {
    const first = members[0]!;
    if (hostGroups.has(group)) {
      for (const i of members) problems.push({ index: i, reason: `shares mount events with the host (peer group ${group}) — not supported; make it private or slave in the container` });
      continue;
    }
    const lead = members.find((l) => members.every((o) => mounts[o]!.dev === mounts[l]!.dev && under(mounts[o]!.root, mounts[l]!.root)));
    if (lead === undefined) {
      problems.push({ index: first, reason: `in peer group ${group} with ${members.map((o) => mounts[o]!.at).join(', ')}, none of which holds the others' roots (${members.map((o) => mounts[o]!.root).join(', ')}) — not supported` });
      continue;
    }
    const odd = members.find((o) => mounts[o]!.master !== mounts[lead]!.master);
    if (odd !== undefined) {
      problems.push({ index: odd, reason: `in peer group ${group} but receives from peer group ${mounts[odd]!.master || 'none'} where ${mounts[lead]!.at} receives from ${mounts[lead]!.master || 'none'} — not supported` });
      continue;
    }
    const master = masterOf(lead);
    if (typeof master === 'string') problems.push({ index: lead, reason: master });
    else pending.push({ lead, peers: members.filter((o) => o !== lead), shared: true, ...(master ? { master } : {}) });
  }
  mounts.forEach((m, i) => {
    if (m.shared || !m.master) return;
    const master = masterOf(i);
    if (typeof master === 'string') problems.push({ index: i, reason: master });
    else pending.push({ lead: i, peers: [], shared: false, master: master! });
  });
  // A group receiving from another group of the tree is made after it; a cycle is nonsense.
  const units: PropUnit[] = [];
  const made = new Set<number>();
  while (pending.length) {
    const next = pending.findIndex((u) => !u.master?.internal || made.has(u.master.group));
    if (next < 0) {
      for (const u of pending) problems.push({ index: u.lead, reason: `receives mount events from peer group ${u.master!.group} in a cycle of groups — nonsense` });
      break;
    }
    const [u] = pending.splice(next, 1);
    units.push(u!);
    if (u!.shared) made.add(mounts[u!.lead]!.shared);
  }
  const unbindable = mounts.flatMap((m, i) => (m.unbindable ? [i] : []));
  for (const i of unbindable) if (mounts[i]!.shared || mounts[i]!.master) problems.push({ index: i, reason: 'unbindable and shared or slave — nonsense' });
  return { units, unbindable, problems };
}

/** The fds the restore holds in the root task: one per mount that the plan names, one per host group. */
export interface PropFds {
  mounts: Map<number, bigint>;
  host: Map<number, bigint>;
}

/** The mounts whose fds `applyPropagation` needs (taken as each one is made). */
export function mountsNeedingFds(plan: PropPlan): Set<number> {
  return new Set([...plan.units.flatMap((u) => [u.lead, ...u.peers]), ...plan.unbindable]);
}

/** In the root task, in its finished namespace: the plan, on the fds taken while it was built. */
export function applyPropagation(remote: Remote, scratch: Scratch, mounts: PropMount[], plan: PropPlan, fds: PropFds): void {
  scratch.reset();
  const empty = scratch.putString('');
  const fd = (i: number) => fds.mounts.get(i)!;
  const setGroup = (from: bigint, to: number, what: string) =>
    remote.call('move_mount', [from, empty, fd(to), empty, MOVE_MOUNT.SET_GROUP | MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH], `mount ${mounts[to]!.at} into ${what}`);
  const attr = scratch.alloc(MOUNT_ATTR_SIZE);
  const propagation = (i: number, type: number, what: string) => {
    // struct mount_attr: attr_set, attr_clr, propagation, userns_fd (u64 each).
    const b = Buffer.alloc(MOUNT_ATTR_SIZE);
    b.writeBigUInt64LE(BigInt(type), 16);
    vmWrite(scratch.pid, attr, b);
    remote.call('mount_setattr', [fd(i), empty, AT_EMPTY_PATH, attr, MOUNT_ATTR_SIZE], `mount ${mounts[i]!.at} ${what}`);
  };
  const leadOf = new Map<number, number>();
  for (const u of plan.units) {
    const m = mounts[u.lead]!;
    if (u.master) {
      // Left private: the verification must name it (util/skip.ts).
      if (!u.shared && skip('mnt-propagation')) continue;
      const from = u.master.internal ? fd(leadOf.get(u.master.group)!) : fds.host.get(u.master.group)!;
      setGroup(from, u.lead, `peer group ${u.master.group}${u.master.internal ? '' : ' of the host'}`);
      propagation(u.lead, MS.SLAVE, `a slave of peer group ${u.master.group}`);
    }
    if (!u.shared) continue;
    propagation(u.lead, MS.SHARED, 'shared');
    leadOf.set(m.shared, u.lead);
    for (const p of u.peers) setGroup(fd(u.lead), p, `the peer group of ${m.at}`);
  }
  for (const i of plan.unbindable) propagation(i, MS.UNBINDABLE, 'unbindable');
}

/**
 * Each mount's propagation as a word, the tree's own groups numbered by first use (`#1`, ...)
 * and the host's kept as they are (`host:N`: the same group after a restore).
 */
export function propagationWords(mounts: Pick<PropMount, 'shared' | 'master' | 'unbindable'>[]): string[] {
  const own = new Set(mounts.map((m) => m.shared).filter((g) => g));
  const names = new Map<number, string>();
  const name = (g: number) => {
    if (!own.has(g)) return `host:${g}`;
    if (!names.has(g)) names.set(g, `#${names.size + 1}`);
    return names.get(g)!;
  };
  return mounts.map((m) => [m.shared ? `shared:${name(m.shared)}` : '', m.master ? `master:${name(m.master)}` : '', m.unbindable ? 'unbindable' : ''].filter(Boolean).join(' ') || 'private');
}

/** The restored tree (`got`, its mountinfo) against the images' mounts: mount points and propagation. */
export function propagationDifferences(pid: number, want: PropMount[], got: MountInfo[]): Difference[] {
  const out: Difference[] = [];
  if (got.length !== want.length) {
    out.push({ pid, what: 'mounts', expected: want.map((m) => m.at).join(' '), got: got.map((m) => m.mountPoint).join(' ') });
    return out;
  }
  const a = propagationWords(want);
  const b = propagationWords(got);
  want.forEach((m, i) => {
    if (got[i]!.mountPoint !== m.at) out.push({ pid, what: `mount ${i + 1}`, expected: m.at, got: got[i]!.mountPoint });
    else if (a[i] !== b[i]) out.push({ pid, what: `mount ${m.at} propagation`, expected: a[i]!, got: b[i]! });
  });
  return out;
}

/** Throws the plan's first problem (a restore refuses what it cannot make, before any task exists). */
export function refuseProblems(mounts: PropMount[], plan: PropPlan): void {
  const p = plan.problems[0];
  if (p) throw new UserError(`mount ${mounts[p.index]!.at}: ${p.reason}`);
}
