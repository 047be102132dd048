// A tree root's own cgroup namespace (`unshare --cgroup`): its root is, in every hierarchy, the
// cgroup the unsharer was in, and /proc/PID/cgroup inside shows paths below it ("0::/").
//
// Dump: the root's paths as the namespace shows them (read by the ns helper from inside it) are
// the ends of cryo's; what is left is the namespace's root, kept as CRIU keeps it: cg_member_entry
// `cgns_prefix`, the length of the path's leading part that is the root, in every member of every
// task's set. A task whose cgroup is outside the namespace's root (moved above it: "/.." inside)
// is refused, named.
//
// Restore: a new cgroup namespace's root is the cgroups of the task that makes it. So the stub
// is moved into the namespace's roots and clones the root with CLONE_NEWCGROUP; the root is then
// moved into its own cgroups below (resources/task/cgroup.ts), as every task is.
import { readFileSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { parseCgroups, type CgroupMember } from '../task/cgroup.js';
import { runNsHelper } from './state.js';

const label = (name: string) => name || '(v2)';

/** The namespace's root in each hierarchy (by its /proc/PID/cgroup name), cryo's paths. */
export function cgnsRoots(pid: number): Map<string, string> {
  const outside = parseCgroups(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  const inside = new Map(parseCgroups(runNsHelper(['cgroup', String(pid)])).map((m) => [m.name, m.path]));
  const out = new Map<string, string>();
  for (const m of outside) {
    const rel = inside.get(m.name);
    if (rel === undefined) throw new UserError(`pid ${pid}: its cgroup namespace shows no ${label(m.name)} hierarchy`);
    if (rel === '/..' || rel.startsWith('/../')) throw new UserError(`pid ${pid}: its ${label(m.name)} cgroup ${m.path} is outside its cgroup namespace's root (${rel} inside)`);
    if (rel !== '/' && !m.path.endsWith(rel)) throw new UserError(`pid ${pid}: its ${label(m.name)} cgroup ${m.path} does not end with ${rel}, its path inside its cgroup namespace`);
    out.set(m.name, rel === '/' ? m.path : m.path.slice(0, m.path.length - rel.length) || '/');
  }
  return out;
}

const under = (path: string, root: string) => root === '/' || path === root || path.startsWith(`${root}/`);

/** Why a task of the root's cgroup namespace in these cgroups cannot be saved with it, or null. */
export function cgnsMemberProblem(members: CgroupMember[], roots: Map<string, string>): string | null {
  for (const m of members) {
    const root = roots.get(m.name);
    if (root === undefined) return `its ${label(m.name)} hierarchy is not in the tree root's cgroup namespace`;
    if (!under(m.path, root)) return `its ${label(m.name)} cgroup ${m.path} is outside the tree's cgroup namespace (root ${root}) — not supported`;
  }
  return null;
}

/** `members` of a task in the root's cgroup namespace, each with its root's length (cgns_prefix). */
export function withCgnsPrefix(pid: number, members: CgroupMember[], roots: Map<string, string>): CgroupMember[] {
  const problem = cgnsMemberProblem(members, roots);
  if (problem) throw new UserError(`pid ${pid}: ${problem}`);
  return members.map((m) => ({ ...m, cgnsPrefix: roots.get(m.name)!.length }));
}

/** The namespace's roots back from a set's members (CRIU writes 0 for a root at the top). */
export function cgnsRootMembers(members: CgroupMember[]): CgroupMember[] {
  return members.filter((m) => m.cgnsPrefix !== undefined).map((m) => ({ name: m.name, path: m.path.slice(0, m.cgnsPrefix) || '/' }));
}
