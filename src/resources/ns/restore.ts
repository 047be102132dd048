// The restore side of a tree's own namespaces. Which ones the root had of its own comes from its
// ids against inventory root_ids (CRIU's rule: a namespace id unequal to the dumper's is a new
// namespace of that kind). The root is cloned straight into new PID, UTS and IPC namespaces
// (clone3 CLONE_NEWPID|NEWUTS|NEWIPC, set_tid [1, host PID]); before anything else of it is
// restored, the ns helper enters its UTS and IPC namespaces and makes the hostname, the limits,
// the semaphore sets, message queues and shm segments again, with their ids.
import { CLONE } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { ImageDirReader } from '../../image/dir.js';
import { readNsImages } from './images.js';
import { restoreNsState, removeNsSegments, type NsState, type NsHelperKind } from './state.js';
import { OWN_NS_KINDS } from './judge.js';
import { readNetnsImages, type NetnsState } from '../netns/index.js';
import { readSavedMounts, type SavedMounts } from '../mnt/restore.js';
import { readTimensImage, readHostClocks, carriedClocks, hostClocks, bootId, timensForStub, offsetsText, type TimensState } from './time.js';
import { cgnsRootMembers } from './cgroup.js';
import { restoreCgroups, type CgroupMember } from '../task/cgroup.js';
import type { Remote } from '../../ptrace/index.js';
import { failpoint } from '../../util/failpoint.js';
import { readUsernsImage, usernsText, type UsernsState } from './user.js';
import { makeUserns, type MadeUserns } from './user-restore.js';

type Ids = Partial<Record<`${'pid' | 'net' | 'ipc' | 'uts' | 'mnt' | 'user' | 'cgroup' | 'time'}NsId`, number>>;

export interface RootNamespaces {
  /** The kinds (pid, uts, ipc) the root had of its own. */
  own: Set<string>;
  state: NsState;
  /** The root's own network namespace, made before any task (resources/netns). */
  net?: NetnsState;
  /** The root's own mount namespace (resources/mnt), made by buildMounts once it exists. */
  mounts?: SavedMounts;
  /**
   * The root's own time namespace (time.ts), made in the stub before it clones the root; or,
   * `carried`, one made for a tree of the host's whose clocks would otherwise go back.
   */
  time?: TimensState;
  /** The root's own user namespace (user.ts), made with the others by a maker (user-restore.ts). */
  user?: UsernsState;
}

const ALL = ['pid', 'net', 'ipc', 'uts', 'mnt', 'user', 'cgroup', 'time'] as const;

/**
 * The root's own namespaces, read from their images; refuses a kind cryo cannot make (user)
 * and a task whose namespace is neither the dumper's nor the root's.
 */
export function readRootNamespaces(r: ImageDirReader, dumper: Ids, tasks: { pid: number; ids: Ids & { utsNsId: number; ipcNsId: number; netNsId: number }; threads: unknown[] }[], rootCgroups?: CgroupMember[]): RootNamespaces {
  const root = tasks[0]!;
  const own = new Set<string>();
  for (const kind of ALL) {
    const key = `${kind}NsId` as const;
    const mine = root.ids[key];
    // Old images may leave the newer namespace kinds out: nothing to compare then.
    if (!mine || !dumper[key] || mine === dumper[key]) continue;
    if (!(OWN_NS_KINDS as readonly string[]).includes(kind)) {
      throw new UserError(`pid ${root.pid}: ids-${root.pid}.img ${kind}_ns_id ${mine} differs from the dumper's (${dumper[key]}): the task had a ${kind} namespace of its own — restoring it is not supported yet`);
    }
    own.add(kind);
  }
  for (const t of tasks.slice(1)) {
    // PID namespaces nested below the root's are checked task by task (pid-nested.ts).
    for (const kind of ALL.filter((k) => k !== 'pid')) {
      const key = `${kind}NsId` as const;
      const mine = t.ids[key];
      if (!mine || !dumper[key] || mine === dumper[key] || mine === root.ids[key]) continue;
      throw new UserError(`pid ${t.pid}: ids-${t.pid}.img ${kind}_ns_id ${mine} is neither the dumper's (${dumper[key]}) nor the root's (${root.ids[key]}) — not supported`);
    }
  }
  if (own.has('user')) {
    // Each task joins the user namespace with setns, which the kernel refuses to several threads (user-restore.ts).
    const many = tasks.find((t) => t.ids.userNsId === root.ids.userNsId && t.threads.length);
    if (many) throw new UserError(`pid ${many.pid}: ${many.threads.length + 1} threads in the tree's own user namespace — not supported (a restored task joins it with setns, refused to a process of several threads)`);
    const nested = tasks.find((t) => t.ids.pidNsId !== root.ids.pidNsId);
    if (nested) throw new UserError(`pid ${nested.pid}: in a nested PID namespace (pid_ns_id ${nested.ids.pidNsId}) in a tree with a user namespace of its own — not supported yet: its init would be forked by a task in the host's user namespace, and the namespace owned by it`);
  }
  const state = readNsImages(r, root.ids, { uts: own.has('uts'), ipc: own.has('ipc') });
  return {
    own, state,
    ...(own.has('net') ? { net: readNetnsImages(r, root.ids.netNsId) } : {}),
    // A cgroup2 mounted inside the root's own cgroup namespace has its v2 root, and gets it again.
    ...(own.has('mnt') ? { mounts: readSavedMounts(r, root.ids.mntNsId!, own.has('cgroup') ? cgnsRootMembers(rootCgroups ?? []).find((m) => m.name === '')?.path : undefined) } : {}),
    ...timeOf(r, own.has('time') ? root.ids.timeNsId! : null),
    ...(own.has('user') ? { user: readUsernsImage(r, root.ids.userNsId!) } : {}),
  };
}

/** The root's own time namespace, or one that keeps the host clocks it saw from going back (time.ts). */
function timeOf(r: ImageDirReader, ownId: number | null): { time?: TimensState } {
  if (ownId !== null) return { time: readTimensImage(r, ownId) };
  const host = readHostClocks(r);
  const carried = host && carriedClocks(host, { bootId: bootId(), clocks: hostClocks() });
  return carried ? { time: carried } : {};
}

/** clone3 flags that make the root's new namespaces (none with a user namespace: the stub joined them). */
export function rootCloneFlags(ns: RootNamespaces): number {
  if (ns.user) return 0;
  const flags = { pid: CLONE.NEWPID, uts: CLONE.NEWUTS, ipc: CLONE.NEWIPC, mnt: CLONE.NEWNS, cgroup: CLONE.NEWCGROUP } as const;
  return Object.entries(flags).reduce((f, [kind, flag]) => (ns.own.has(kind) ? f | flag : f), 0);
}

/**
 * What the stub does before it clones the root: it unshares the time namespace and gets its
 * offsets (time.ts), and it is moved into the cgroup namespace's roots, which a new cgroup
 * namespace takes from its maker's cgroups (cgroup.ts; `rootCgroups` are the root's members,
 * none under --manage-cgroups ignore: then the roots are cryo's cgroups). With a user namespace
 * the maker does both instead (`makerNamespaces`), and the stub only joins. Lines for the log.
 */
export function stubNamespaces(stub: Remote, stubPid: number, ns: RootNamespaces, rootCgroups: CgroupMember[] | undefined): string[] {
  return ns.user ? [] : ownTimeAndCgroup(stub, stubPid, ns, rootCgroups, () => []);
}

/**
 * The root's own user namespace and every other one it owns, made by the maker `m` (pid
 * `pid`, a seized process of ours the caller kills once this returns): user-restore.ts.
 */
export function makerNamespaces(m: Remote, pid: number, ns: RootNamespaces, rootCgroups: CgroupMember[] | undefined): { made: MadeUserns; lines: string[] } {
  let made: MadeUserns | undefined;
  const lines = ownTimeAndCgroup(m, pid, ns, rootCgroups, (makeTime) => {
    made = makeUserns(m, pid, ns.user!, ns.own, makeTime);
    return [`user namespace: ${usernsText(ns.user!)}`];
  });
  return { made: made!, lines };
}

/**
 * The cgroup namespace's roots for `pid` (before anything unshares it), then `inside` (which
 * calls the time namespace's maker when its own unshare is done: the maker's user namespace
 * first), or the time namespace at once.
 */
function ownTimeAndCgroup(m: Remote, pid: number, ns: RootNamespaces, rootCgroups: CgroupMember[] | undefined, inside: (makeTime: (() => void) | null) => string[]): string[] {
  const out: string[] = [];
  if (ns.own.has('cgroup') && rootCgroups) {
    const roots = cgnsRootMembers(rootCgroups);
    restoreCgroups(pid, roots);
    out.push(`cgroup namespace rooted at ${roots.map((mm) => `${mm.name || '(v2)'}:${mm.path}`).join(' ')}`);
  }
  failpoint('restore:cgns');
  const time = ns.time;
  const makeTime = time ? () => {
    const offsets = offsetsText(timensForStub(m, pid, time));
    out.push(time.carried ? `time namespace made so the clocks go on from the dumped ones (this boot's are behind them): ${offsets}` : `time namespace: ${offsets}`);
  } : null;
  out.push(...inside(makeTime));
  if (!ns.user) makeTime?.();
  failpoint('restore:timens'); // every restore passes both, as restore:netns
  return out;
}

const helperKinds = (ns: RootNamespaces) => (['uts', 'ipc'] as NsHelperKind[]).filter((k) => ns.own.has(k));

/** Fills the new namespaces of the just-cloned root `pid`; old -> new shm segment ids. */
export function restoreRootNamespaces(pid: number, ns: RootNamespaces): Map<number, number> {
  return restoreNsState(pid, helperKinds(ns), ns.state);
}

/** Segments removed (IPC_RMID) before the dump, removed again inside the root's namespace. */
export function removeRemovedSegments(pid: number, ids: number[]): void {
  removeNsSegments(pid, ids);
}
