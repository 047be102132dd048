// Nested PID namespaces: below the tree root's own, a task of the tree may be the init (PID 1) of
// a further PID namespace, made by its parent with clone(CLONE_NEWPID) or as the first child
// after unshare(CLONE_NEWPID) (`unshare --pid --fork` inside a container); its descendants are
// in it too. Each task's PID at every level is kept anyway (pid.ts, pstree cryo_ns_pid); what
// this module adds is which tasks start a namespace, which parent's children go into one
// (task_kobj_ids_entry cryo_pid_for_children_ns_id), and the refusals: a task in a namespace it
// was not forked into by a task of that namespace (setns, or a second fork after the unshare:
// its init would have to exist first, which the restore's order does not promise), a zombie that
// was a namespace's init, a parent whose pid_for_children names a namespace none of its children
// is the init of. The restore clones every nested init with CLONE_NEWPID and set_tid [1, ...];
// a parent that had unshared then joins its child's namespace for its later children (setns on a
// pidfd of the child with CLONE_NEWPID), once its children and zombies exist.
import { readFileSync } from 'node:fs';
import { nsLink } from './link.js';
import { nsPidOf } from './pid.js';
import { UserError } from '../../util/errors.js';
import { hasField } from '../../image/presence.js';
import { CLONE, nsInode, nsOwnerInode } from '../../sys/index.js';
import { childrenOf } from '../task/children.js';
import type { Remote } from '../../ptrace/index.js';
import { task_kobj_ids_entrySchema, type task_kobj_ids_entry } from '../../image/gen/core_pb.js';


function ppidOf(pid: number): number {
  return Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/**
 * A nested PID namespace owned by another user namespace than cryo's (made inside the tree's own
 * user namespace): the restore forks in cryo's, so it would come back owned by the wrong one,
 * and a task inside is refused the init's host PID by set_tid (the root's own PID namespace avoids it: user-restore.ts).
 */
function userOwnerProblem(path: string, link: string): string | null {
  return nsOwnerInode(path) === nsInode('/proc/self/ns/user') ? null
    : `PID namespace ${link} is owned by a user namespace of the tree's (not cryo's) — not supported yet: its init can only be forked by a task inside that user namespace, which clone3 refuses the init's host PID (set_tid needs CAP_CHECKPOINT_RESTORE in the host's user namespace)`;
}

/** The innermost PID (the task's own namespace's) is 1: it is that namespace's init. */
const isInit = (levels: readonly number[]) => levels[levels.length - 1] === 1;

/**
 * Why a task of the tree (not the root) in another PID namespace than the root's cannot be
 * checkpointed, or null: it must be that namespace's init, one level below its parent, or be
 * forked by a task of the same namespace.
 */
export function nestedPidProblem(pid: number, link: string): string | null {
  const owner = userOwnerProblem(`/proc/${pid}/ns/pid`, link);
  if (owner) return owner;
  const levels = nsPidOf(pid);
  const ppid = ppidOf(pid);
  const parentLevels = nsPidOf(ppid);
  if (isInit(levels)) {
    return levels.length === parentLevels.length + 1 ? null
      : `the init of PID namespace ${link}, ${levels.length - parentLevels.length} levels below its parent ${ppid}'s — not supported`;
  }
  return nsLink(ppid, 'pid') === link ? null
    : `PID ${levels[levels.length - 1]} in PID namespace ${link} but forked by ${ppid} outside it (setns, or a second fork after unshare(CLONE_NEWPID)) — only the namespace's init and its descendants are supported`;
}

/**
 * A task whose children go into another PID namespace than its own (unshare(CLONE_NEWPID)):
 * supported when one of its children is the init of that namespace; null then.
 */
export function pidForChildrenProblem(pid: number, forKids: string): string | null {
  const owner = userOwnerProblem(`/proc/${pid}/ns/pid_for_children`, forKids);
  if (owner) return owner;
  const kid = childrenOf(pid).find((k) => nsLink(k, 'pid') === forKids && isInit(nsPidOf(k)));
  return kid ? null : `its children go into another PID namespace (${forKids}, unshare(CLONE_NEWPID)) of which none of its children is the init — not supported`;
}

/**
 * A zombie that was the init of a PID namespace (its levels deeper than its parent's): refused.
 * A zombie reaped (or a parent gone) since the tree was listed is no blocker: the freeze lists again.
 */
export function nestedZombieProblem(zombie: number, parent: number): string | null {
  let levels: number[], parentLevels: number[];
  try {
    levels = nsPidOf(zombie);
    parentLevels = nsPidOf(parent);
  } catch {
    return null;
  }
  return levels.length > parentLevels.length
    ? `zombie that was the init of a PID namespace of its own (NSpid ${levels.join(' ')}) — not supported`
    : null;
}

/** The pid_for_children link of a task when it is not its own PID namespace (for the ids image). */
export function pidForChildrenLink(pid: number): string | null {
  const forKids = nsLink(pid, 'pid_for_children');
  return forKids && forKids !== nsLink(pid, 'pid') ? forKids : null;
}

export interface NestedTask {
  pid: number;
  ppid: number;
  nsPid: readonly number[];
  pidNsId: number;
  pidForChildrenNsId?: number;
}

/** A task image's PID levels and PID namespace ids, as this module reads them. */
export function nestedOf(t: { pid: number; pstree: { ppid: number; cryoNsPid: number[] }; ids: task_kobj_ids_entry }): NestedTask {
  return {
    pid: t.pid, ppid: t.pstree.ppid, nsPid: t.pstree.cryoNsPid, pidNsId: t.ids.pidNsId,
    ...(hasField(task_kobj_ids_entrySchema, t.ids, 'cryoPidForChildrenNsId') ? { pidForChildrenNsId: t.ids.cryoPidForChildrenNsId } : {}),
  };
}

/**
 * Checks the images' nested PID namespaces before any task exists (CRIU's own images or ones
 * changed since the dump): a task in another PID namespace than its parent is that namespace's
 * init one level deeper, a task in its parent's has as many levels, and a parent's
 * pid_for_children is the namespace of one of its children that is its init.
 */
export function validateNestedPids(tasks: readonly NestedTask[], zombies: readonly { pid: number; ppid: number; nsPid: readonly number[] }[]): void {
  const byPid = new Map(tasks.map((t) => [t.pid, t]));
  for (const t of tasks.slice(1)) {
    const p = byPid.get(t.ppid);
    if (!p) continue;
    if (t.pidNsId !== p.pidNsId) {
      if (!isInit(t.nsPid) || t.nsPid.length !== p.nsPid.length + 1) throw new UserError(`pid ${t.pid}: pid_ns_id ${t.pidNsId} is not its parent's (${p.pidNsId}) but it is not that namespace's init one level below it (cryo_ns_pid ${t.nsPid.join(' ') || 'none'})`);
      if (tasks.some((o) => o !== t && o.pidNsId === t.pidNsId && byPid.get(o.ppid)?.pidNsId !== t.pidNsId)) throw new UserError(`pid ${t.pid}: PID namespace ${t.pidNsId} has another task forked from outside it`);
    } else if (t.nsPid.length !== p.nsPid.length) {
      throw new UserError(`pid ${t.pid}: in its parent's PID namespace with ${t.nsPid.length} levels of PIDs, its parent ${p.pid} with ${p.nsPid.length}`);
    }
  }
  for (const t of tasks) {
    if (t.pidForChildrenNsId === undefined) continue;
    if (!tasks.some((k) => k.ppid === t.pid && k.pidNsId === t.pidForChildrenNsId && isInit(k.nsPid) && k.nsPid.length === t.nsPid.length + 1)) {
      throw new UserError(`pid ${t.pid}: cryo_pid_for_children_ns_id ${t.pidForChildrenNsId} is not the namespace of one of its children that is its init`);
    }
  }
  for (const z of zombies) {
    const p = byPid.get(z.ppid);
    if (p && z.nsPid.length !== p.nsPid.length) throw new UserError(`zombie ${z.pid}: ${z.nsPid.length} levels of PIDs, its parent ${p.pid} ${p.nsPid.length}`);
  }
}

/**
 * Whether `child` starts a PID namespace of its own (clone3 CLONE_NEWPID): it is the init of a
 * namespace that its parent is not in.
 */
export function startsPidNamespace(child: { nsPid: readonly number[]; pidNsId: number }, parent: { nsPid: readonly number[]; pidNsId: number }): boolean {
  return child.pidNsId !== parent.pidNsId && child.nsPid.length === parent.nsPid.length + 1;
}

/**
 * The child of `parent` whose namespace the parent's later children go into, with its PID as the
 * parent sees it (the parent's level of its PIDs; its host PID when the parent is in cryo's
 * namespace): the parent joins it with setns on a pidfd of it.
 */
export function pidForChildrenTarget(parent: NestedTask, tasks: readonly NestedTask[]): number | null {
  if (parent.pidForChildrenNsId === undefined) return null;
  const kid = tasks.find((k) => k.ppid === parent.pid && k.pidNsId === parent.pidForChildrenNsId);
  if (!kid) throw new UserError(`pid ${parent.pid}: no child in PID namespace ${parent.pidForChildrenNsId}`);
  return parent.nsPid.length ? kid.nsPid[parent.nsPid.length - 1]! : kid.pid;
}

/**
 * A parent that had unshared CLONE_NEWPID: once its children and zombies exist (its children of
 * its own namespace are made first), it joins its child's namespace for the children it forks
 * later — setns(pidfd of the child, CLONE_NEWPID) sets pid_for_children only.
 */
export function restorePidForChildren(remote: Remote, parent: NestedTask, tasks: readonly NestedTask[]): void {
  const kid = pidForChildrenTarget(parent, tasks);
  if (kid === null) return;
  const fd = remote.call('pidfd_open', [kid, 0], `pidfd of child ${kid} (its PID namespace is pid_for_children)`);
  try {
    remote.call('setns', [fd, CLONE.NEWPID], `pid_for_children: the namespace of child ${kid}`);
  } finally {
    remote.call('close', [fd], 'the pidfd for pid_for_children');
  }
}
