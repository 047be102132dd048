// Which namespaces of a task cryo can checkpoint. Shared with cryo (the host's, the usual case):
// nothing to save. The tree's root's own PID, UTS, IPC, network, mount and time namespaces (a
// container made with `unshare --fork --pid --uts --ipc --net --mount --time`, the root being its
// init), and its cgroup namespace: saved and made again (a network namespace only with links
// resources/netns supports, a mount namespace only with mounts resources/mnt supports, a cgroup
// namespace only with every task's cgroups below its root), and its user namespace (user.ts: one
// level below cryo's, owning the root's other namespaces, its tasks single-threaded with mapped
// ids). PID namespaces nested below the root's, each with its init in the tree, are made again
// too (pid-nested.ts). Anything else — a task of the tree in a namespace that is neither cryo's
// nor its root's (it setns'd elsewhere), a PID namespace whose init is not the root, children
// going into another time namespace than the task's own (unshare without a fork) — is refused,
// named.
import { readFileSync } from 'node:fs';
import { nsLink } from './link.js';
import { nestedPidProblem, pidForChildrenProblem } from './pid-nested.js';
import { rootUsernsProblem, usernsMemberProblem } from './user.js';
import type { Blocker } from '../../util/blocker.js';
import { nsPidOf, dumperLevels } from './pid.js';
import { netnsProblems } from '../netns/index.js';
import { cgnsRoots, cgnsMemberProblem } from './cgroup.js';
import { parseCgroups } from '../task/cgroup.js';

export const NS_KINDS = ['pid', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;
/** The kinds a tree's root may have of its own. */
export const OWN_NS_KINDS = ['pid', 'uts', 'ipc', 'net', 'mnt', 'time', 'cgroup', 'user'] as const;

export { nsLink };

export interface NsVerdict {
  kind: string;
  link: string;
  /**
   * 'host': cryo's own; 'own': the root's, saved; 'tree': the root's, shared by this task;
   * 'nested': a PID namespace below the root's (pid-nested.ts), made again by the restore.
   */
  owner: 'host' | 'own' | 'tree' | 'nested' | 'other';
  /** Why it cannot be checkpointed; null when it can. */
  blocked: string | null;
}

/** Each namespace of task `pid` of the tree under `root`, judged. */
export function judgeNamespaces(pid: number, root: number): NsVerdict[] {
  const out: NsVerdict[] = [];
  for (const kind of NS_KINDS) {
    const link = nsLink(pid, kind);
    if (!link) continue;
    if (link === nsLink('self', kind)) {
      out.push({ kind, link, owner: 'host', blocked: null });
      continue;
    }
    const ownable = (OWN_NS_KINDS as readonly string[]).includes(kind);
    if (!ownable) {
      out.push({ kind, link, owner: 'other', blocked: `in its own ${kind} namespace (${link}) — not supported yet` });
    } else if (pid !== root) {
      const rootLink = nsLink(root, kind);
      if (link === rootLink) out.push({ kind, link, owner: 'tree', blocked: kind === 'cgroup' ? cgroupMemberProblem(pid, root) : kind === 'user' ? usernsMemberProblem(pid, root) : null });
      else if (kind === 'pid') out.push({ kind, link, owner: 'nested', blocked: nestedPidProblem(pid, link) });
      else out.push({ kind, link, owner: 'other', blocked: `in a ${kind} namespace (${link}) that is neither cryo's nor the tree root's (${rootLink}) — not supported` });
    } else {
      out.push({ kind, link, owner: 'own', blocked: kind === 'pid' ? pidNsProblem(pid) : kind === 'net' ? netProblem(pid) : kind === 'cgroup' ? cgroupNsProblem(pid) : kind === 'user' ? userProblem(pid) : null });
    }
  }
  // unshare(CLONE_NEWPID or CLONE_NEWTIME): the task's children go into another namespace. For
  // PID that is supported once the first of them, the namespace's init, exists (pid-nested.ts);
  // a time namespace's first child would start it.
  const pidKids = nsLink(pid, 'pid_for_children');
  const pidOwn = nsLink(pid, 'pid');
  if (pidKids && pidKids !== pidOwn) out.push({ kind: 'pid_for_children', link: pidKids, owner: 'nested', blocked: pidForChildrenProblem(pid, pidKids) });
  // The kernel shows no pid_for_children link for a namespace without an init yet, nor for an
  // exiting task (its nsproxy gone, not a blocker): a uts link read after it tells them apart
  // (a task's nsproxy never comes back).
  else if (!pidKids && pidOwn && nsLink(pid, 'uts')) out.push({ kind: 'pid_for_children', link: '(none)', owner: 'other', blocked: 'its next child would start a PID namespace it unshared (unshare(CLONE_NEWPID), no fork since) — not supported' });
  const timeKids = nsLink(pid, 'time_for_children');
  if (timeKids && timeKids !== nsLink(pid, 'time')) {
    out.push({ kind: 'time_for_children', link: timeKids, owner: 'other', blocked: `its children go into another time namespace (${timeKids}, unshare(CLONE_NEWTIME)) — not supported` });
  }
  return out;
}

/** The root's own network namespace: its links (loopback, veth) and no TCP connection. */
function netProblem(pid: number): string | null {
  const p = netnsProblems(pid);
  return p.length ? `its own network namespace (${nsLink(pid, 'net')}): ${p.join('; ')}` : null;
}

/** The root's own user namespace, owning its other own namespaces; the root itself a member that can join it. */
function userProblem(root: number): string | null {
  const own = OWN_NS_KINDS.filter((k) => k !== 'user' && nsLink(root, k) !== nsLink('self', k));
  return rootUsernsProblem(root, own) ?? usernsMemberProblem(root, root);
}

/** The root's own cgroup namespace: each of its cgroups at or below the namespace's root. */
function cgroupNsProblem(pid: number): string | null {
  try {
    cgnsRoots(pid);
    return null;
  } catch (e) {
    return `its own cgroup namespace (${nsLink(pid, 'cgroup')}): ${(e as Error).message}`;
  }
}

/** A task in the root's cgroup namespace, in other cgroups than the root: they must be below its roots. */
function cgroupMemberProblem(pid: number, root: number): string | null {
  try {
    const mine = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    if (mine === readFileSync(`/proc/${root}/cgroup`, 'utf8')) return null;
    return cgnsMemberProblem(parseCgroups(mine), cgnsRoots(root));
  } catch (e) {
    return `its cgroups in the tree's cgroup namespace: ${(e as Error).message}`;
  }
}

/** The root's own PID namespace must be one level below cryo's, with the root as its init. */
function pidNsProblem(pid: number): string | null {
  const levels = nsPidOf(pid);
  if (levels.length !== dumperLevels() + 1) return `in a PID namespace ${levels.length - dumperLevels()} levels below cryo's — only one level is supported`;
  if (levels[levels.length - 1] !== 1) return `PID ${levels[levels.length - 1]} in its PID namespace, not its init — checkpoint the namespace's init (PID 1 inside) instead`;
  return null;
}

export function namespaceBlockers(pid: number, root: number): Blocker[] {
  return judgeNamespaces(pid, root).flatMap((n) => (n.blocked ? [{ pid, kind: 'namespace', reason: n.blocked }] : []));
}

/** The kinds (of OWN_NS_KINDS) the root has of its own, and so must be saved. */
export function ownNamespaces(root: number): Set<string> {
  return new Set(judgeNamespaces(root, root).filter((n) => n.owner === 'own').map((n) => n.kind));
}
