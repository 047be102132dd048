// --manage-cgroups: the cgroups the tree lives in, with their settings, saved in cgroup.img's
// controllers (CRIU's cg_controller_entry: per hierarchy, a tree of cgroup_dir_entry from the
// hierarchy's root down to each task's cgroup, each with its properties and its mode and owner)
// and made again at restore at the same paths before any task exists, so that each task is put
// in its cgroup before it runs and its memory is charged there under the same limits.
//
// Modes (CRIU's): soft (the default) writes the settings only into cgroups the restore made;
// full writes them into every cgroup of the image, existing ones too, and fails on one it cannot
// write; ignore leaves cgroups alone (the tasks stay in the restorer's). A cgroup cryo itself is
// in, and the hierarchy's root, are never saved or changed. Cgroups the restore made are removed
// again if it fails.
import { readFileSync, writeFileSync, mkdirSync, existsSync, statSync, chmodSync, chownSync, rmdirSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { cg_controller_entrySchema, cgroup_dir_entrySchema, cgroup_prop_entrySchema, cgroup_permsSchema, type cg_controller_entry, type cgroup_dir_entry } from '../../image/gen/cgroup_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';
import type { Log } from '../../util/log.js';
import { sleepMs } from '../../util/sleep.js';
import { dumpCgroups, type CgroupMember } from '../task/cgroup.js';
import { cgroupMounts, cgroupDir, type CgroupMount } from './hierarchy.js';
import { propertyFiles, writableValue } from './props.js';

import type { CgroupMode } from '../../util/option-defaults.js';
export type { CgroupMode };

const keyOf = (name: string) => name.split(',').sort().join(',');

/** The restorer's (or dumper's) own path in each hierarchy. */
function ownPaths(): Map<string, string> {
  return new Map(dumpCgroups(process.pid).map((m) => [keyOf(m.name), m.path]));
}

/** The task cgroups worth saving in each hierarchy: not the root, not cryo's own. */
function taskPaths(sets: CgroupMember[][]): Map<string, { name: string; paths: Set<string> }> {
  const own = ownPaths();
  const out = new Map<string, { name: string; paths: Set<string> }>();
  for (const m of sets.flat()) {
    const key = keyOf(m.name);
    if (m.path === '/' || own.get(key) === m.path) continue;
    if (!out.has(key)) out.set(key, { name: m.name, paths: new Set() });
    out.get(key)!.paths.add(m.path);
  }
  return out;
}

function readDir(name: string, m: CgroupMount, path: string, component: string): cgroup_dir_entry {
  const dir = cgroupDir(m, path)!;
  const st = statSync(dir);
  const properties = propertyFiles(name, dir).flatMap((file) => {
    try {
      return [create(cgroup_prop_entrySchema, { name: file, value: readFileSync(`${dir}/${file}`, 'utf8').trim() })];
    } catch {
      return []; // not offered here (a controller the parent does not enable)
    }
  });
  return create(cgroup_dir_entrySchema, { dirName: component, properties, dirPerms: create(cgroup_permsSchema, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }) });
}

/**
 * The controllers of cgroup.img for the tasks' memberships `sets`: per hierarchy, every cgroup
 * from the root's first level down to each task's, with its settings. Read with the tree frozen.
 */
export function dumpCgroupDirs(sets: CgroupMember[][]): cg_controller_entry[] {
  const mounts = cgroupMounts();
  const out: cg_controller_entry[] = [];
  for (const [key, { name, paths }] of taskPaths(sets)) {
    const m = mounts.get(key);
    if (!m) continue; // not mounted here: nothing to read (the restore moves the task only)
    const top: cgroup_dir_entry[] = [];
    let threaded = false;
    for (const path of [...paths].sort()) {
      if (cgroupDir(m, path) === null) continue;
      let level = top;
      let at = '';
      for (const component of path.split('/').filter(Boolean)) {
        at += `/${component}`;
        let e = level.find((d) => d.dirName === component);
        if (!e) {
          e = readDir(name, m, at, component);
          level.push(e);
          if (name === '' && existsSync(`${cgroupDir(m, at)}/cgroup.type`) && readFileSync(`${cgroupDir(m, at)}/cgroup.type`, 'utf8').trim() !== 'domain') threaded = true;
        }
        level = e.children;
      }
    }
    if (top.length) out.push(create(cg_controller_entrySchema, { cnames: name.split(','), dirs: top, isThreaded: threaded }));
  }
  return out;
}

/** The cgroups a restore made, and their removal should it fail. */
export class CgroupRestore {
  private readonly made: string[] = [];

  private constructor(private readonly log: Log) {}

  /**
   * Before any task exists: the cgroups of `sets` (each task's membership) that are missing are
   * made, and the settings of `controllers` written as `mode` says. Throws (after removing what
   * it made) when a cgroup cannot be made, or with 'full' a setting cannot be written.
   */
  static prepare(sets: CgroupMember[][], controllers: cg_controller_entry[], mode: CgroupMode, log: Log): CgroupRestore {
    const r = new CgroupRestore(log);
    if (mode === 'ignore') return r;
    try {
      const mounts = cgroupMounts();
      const own = ownPaths();
      for (const c of controllers) {
        const name = c.cnames.join(',');
        const m = mounts.get(keyOf(name));
        if (!m) {
          // Settings only: each task's own cgroups are checked below.
          if (mode === 'full') throw new UserError(`cgroup.img: the ${name || 'v2'} hierarchy is not mounted here`);
          log.warn(`cgroup.img: the ${name || 'v2'} hierarchy is not mounted here: its settings are not restored`);
          continue;
        }
        for (const d of c.dirs) r.restoreDir(name, m, '', d, mode, own.get(keyOf(name)));
      }
      for (const [key, { name, paths }] of taskPaths(sets)) {
        const m = mounts.get(key);
        if (!m) throw new UserError(`cgroup ${name || '(v2)'}: that hierarchy is not mounted here`);
        for (const path of paths) r.ensure(name, m, path);
      }
    } catch (e) {
      r.undo();
      throw e;
    }
    return r;
  }

  /** Makes the missing directories of `path`, top-down; true when the last one is new. */
  private ensure(name: string, m: CgroupMount, path: string): boolean {
    const dir = cgroupDir(m, path);
    if (dir === null) throw new UserError(`cgroup ${name || '(v2)'}:${path}: outside this machine's view of the hierarchy (${m.root})`);
    let made = false;
    let at = '';
    for (const component of path.split('/').filter(Boolean)) {
      at += `/${component}`;
      const d = cgroupDir(m, at)!;
      made = !existsSync(d);
      if (!made) continue;
      try {
        mkdirSync(d);
      } catch (e) {
        throw new UserError(`cgroup ${name || '(v2)'}:${at}: cannot make it: ${(e as Error).message}`);
      }
      this.made.push(d);
    }
    return made;
  }

  private restoreDir(name: string, m: CgroupMount, parent: string, d: cgroup_dir_entry, mode: CgroupMode, own: string | undefined): void {
    const path = `${parent}/${d.dirName}`;
    const made = this.ensure(name, m, path);
    const dir = cgroupDir(m, path)!;
    if (made && hasField(cgroup_dir_entrySchema, d, 'dirPerms') && d.dirPerms) {
      chmodSync(dir, d.dirPerms.mode);
      chownSync(dir, d.dirPerms.uid, d.dirPerms.gid);
    }
    // Never the settings of the cgroup cryo runs in, or of one above it: not the tree's.
    const ours = own !== undefined && (own === path || own.startsWith(`${path}/`));
    if ((made || mode === 'full') && !ours) for (const p of d.properties) this.writeProperty(name, path, dir, p.name, p.value, mode);
    for (const child of d.children) this.restoreDir(name, m, path, child, mode, own);
  }

  private writeProperty(name: string, path: string, dir: string, file: string, saved: string, mode: CgroupMode): void {
    const value = writableValue(file, saved);
    if (value === null) return;
    const what = `cgroup ${name || '(v2)'}:${path} ${file}`;
    try {
      if (readFileSync(`${dir}/${file}`, 'utf8').trim() === saved) return; // as it was: nothing to write
      writeFileSync(`${dir}/${file}`, value);
    } catch (e) {
      const msg = `${what}: cannot set ${JSON.stringify(saved)}: ${(e as Error).message}`;
      if (mode === 'full') throw new UserError(msg);
      this.log.warn(msg);
    }
  }

  /** After a failed restore (its tasks killed): the cgroups it made, deepest first. */
  undo(): void {
    for (const dir of this.made.splice(0).reverse()) {
      // A killed task leaves its cgroup a moment after it dies.
      for (let i = 0; ; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          if (i >= 200) {
            this.log.warn(`cgroup ${dir}: made by the restore, could not be removed: ${(e as Error).message}`);
            break;
          }
          sleepMs(10);
        }
      }
    }
  }
}
