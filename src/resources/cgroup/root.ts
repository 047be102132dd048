// restore --cgroup-root [CONTROLLER:]/PATH (CRIU's option; runc passes it): the tree goes into
// another cgroup than the one it was dumped in. In each hierarchy a spec names (CONTROLLER: one
// of the hierarchy's controllers, `name=X` for a named one, `unified` for v2; none: every
// hierarchy no other spec names), the root task's cgroup becomes PATH and every saved cgroup
// below it moves along: in the tasks' sets (with their cgroup namespace's root) and in the saved
// cgroup tree of --manage-cgroups, whose settings go with their cgroups. The old cgroup's
// ancestors are not the new one's: their saved settings are left out. A task of the tree in a
// cgroup outside the root task's is refused, naming both, before anything is made.
import { create } from '@bufbuild/protobuf';
import { cgroup_dir_entrySchema, type cg_controller_entry, type cgroup_dir_entry } from '../../image/gen/cgroup_pb.js';
import { UserError } from '../../util/errors.js';
import type { CgroupMember } from '../task/cgroup.js';
import type { CgroupRootSpec } from '../../util/cgroup-root.js';

export type { CgroupRootSpec };

const label = (name: string) => name || '(v2)';
const under = (path: string, root: string) => root === '/' || path === root || path.startsWith(`${root}/`);
const specText = (s: CgroupRootSpec) => `--cgroup-root ${s.controller ? `${s.controller}:` : ''}${s.path}`;

function specFor(name: string, specs: readonly CgroupRootSpec[]): CgroupRootSpec | undefined {
  const names = name === '' ? ['unified'] : name.split(',');
  return specs.find((s) => s.controller !== undefined && names.includes(s.controller)) ?? specs.find((s) => s.controller === undefined);
}

/** `path` (at or below `from`) moved to `to`. */
function moved(path: string, from: string, to: string): string {
  const rest = from === '/' ? (path === '/' ? '' : path) : path.slice(from.length);
  return to === '/' ? rest || '/' : to + rest;
}

/**
 * Moves, in place, every set of `sets` and the saved tree `dirs` as `specs` say, from the root
 * task's cgroups (`rootSet`). Returns a line per hierarchy moved, for the log.
 */
export function rebaseCgroups(sets: Map<number, CgroupMember[]>, dirs: cg_controller_entry[], rootSet: CgroupMember[], specs: readonly CgroupRootSpec[]): string[] {
  if (specs.length && !rootSet.length) throw new UserError(`${specText(specs[0]!)}: the images keep no cgroup of the root task`);
  for (const s of specs) {
    if (s.controller !== undefined && !rootSet.some((m) => (m.name === '' ? ['unified'] : m.name.split(',')).includes(s.controller!))) {
      throw new UserError(`${specText(s)}: the root task was in no ${s.controller} hierarchy (its cgroups: ${rootSet.map((m) => label(m.name)).join(' ')})`);
    }
  }
  const lines: string[] = [];
  for (const r of rootSet) {
    const spec = specFor(r.name, specs);
    if (!spec) continue;
    const from = r.path;
    for (const [id, members] of sets) {
      sets.set(id, members.map((m) => {
        if (m.name !== r.name) return m;
        if (!under(m.path, from)) throw new UserError(`${specText(spec)}: a task of the tree is in ${label(m.name)} cgroup ${m.path}, outside the root task's ${from} that the option moves`);
        const out: CgroupMember = { name: m.name, path: moved(m.path, from, spec.path) };
        if (m.cgnsPrefix === undefined) return out;
        const nsRoot = m.path.slice(0, m.cgnsPrefix) || '/';
        if (!under(nsRoot, from)) throw new UserError(`${specText(spec)}: the tree's cgroup namespace is rooted at ${label(m.name)} cgroup ${nsRoot}, above the root task's ${from} that the option moves`);
        const to = moved(nsRoot, from, spec.path);
        return { ...out, cgnsPrefix: to === '/' ? 0 : to.length };
      }));
    }
    const c = dirs.find((d) => d.cnames.join(',') === r.name);
    if (c) c.dirs = movedTree(c.dirs, from, spec.path);
    lines.push(`cgroup ${label(r.name)}:${from} restored as ${spec.path}`);
  }
  return lines;
}

/** The saved tree (from the hierarchy's first level) with the cgroup at `from` put at `to`. */
function movedTree(top: cgroup_dir_entry[], from: string, to: string): cgroup_dir_entry[] {
  let level = top;
  let node: cgroup_dir_entry | undefined;
  for (const component of from.split('/').filter(Boolean)) {
    node = level.find((d) => d.dirName === component);
    if (!node) return []; // not saved (cryo's own cgroup): nothing of it to write
    level = node.children;
  }
  // The hierarchy's root takes no settings: what was below the moved cgroup comes up.
  const parts = to.split('/').filter(Boolean);
  if (!parts.length) return node ? node.children : top;
  const moved = node ? { ...node, dirName: parts[parts.length - 1]! } : create(cgroup_dir_entrySchema, { dirName: parts[parts.length - 1]!, children: top });
  return [parts.slice(0, -1).reduceRight<cgroup_dir_entry>((child, dirName) => create(cgroup_dir_entrySchema, { dirName, children: [child] }), moved as cgroup_dir_entry)];
}
