// A container's mount namespace, restore side. The root is cloned with CLONE_NEWNS (a copy of
// cryo's namespace, made private at once so nothing propagates back to the host); before any
// other of its state is restored, mount(2) calls injected into it build the tree under the
// directory bound as the new root — each filesystem made anew by a task that is already in the
// container's PID and IPC namespaces (proc and mqueue belong to the mounter's), tmpfs contents
// unpacked into it from outside through /proc/ROOT/root, binds of earlier mounts by their
// path, external mounts from the host path given for their key — then pivot_root into it and
// the old root detached. The namespace dies with its last task, so a failed restore leaves no
// mount behind.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { O, PAGE_SIZE } from '../../sys/index.js';
import { Remote, Scratch, type Tracee } from '../../ptrace/index.js';
import type { ImageDirReader } from '../../image/dir.js';
import { mnt_entrySchema, type mnt_entry } from '../../image/gen/mnt_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';
import { parseMountInfo } from '../../proc/mountinfo.js';
import type { Difference } from '../observe/snapshot.js';
import { MS, MNT_DETACH, PER_MOUNT_FLAGS } from './flags.js';
import { readMntImages, tmpfsImageName } from './images.js';
import { unpackTmpfs } from './tmpfs.js';
import { treePath } from './root-path.js';
import { planPropagation, applyPropagation, mountsNeedingFds, hostPeer, propagationDifferences, refuseProblems, under, type PropMount, type PropPlan, type PropFds } from './propagation.js';

type Step = { e: mnt_entry; kind: 'root' | 'fs' | 'bind' | 'external'; from?: number; rel?: string };

export interface SavedMounts {
  steps: Step[];
  /** tmpfs contents by root_dev. */
  tars: Map<number, Buffer>;
  /** Each step's propagation as the images say (propagation.ts). */
  props: PropMount[];
  /** Set by checkMountTargets: how it is made again, and cryo's mount of each host group a slave joins. */
  propagation?: { plan: PropPlan; hostMounts: Map<number, { mountPoint: string; mountId: number }> };
}

export interface MountTargets {
  /** --root: the directory bound as the namespace's root (default: where it was at dump time). */
  root?: string;
  /** --external mnt[KEY]:PATH / --ext-mount-map KEY:PATH. */
  external: Map<string, string>;
}

const rest = (path: string, dir: string) => (dir === '/' ? path : path.slice(dir.length)) || '/';

/**
 * The mounts of namespace `nsId` from the images, each with how it is made. `cgroupRoot`: the v2
 * root of the tree's own cgroup namespace, which a cgroup2 mounted anew inside it has.
 */
export function readSavedMounts(r: ImageDirReader, nsId: number, cgroupRoot?: string): SavedMounts {
  const entries = readMntImages(r, nsId);
  const steps: Step[] = [];
  const tars = new Map<number, Buffer>();
  entries.forEach((e, i) => {
    if (i === 0) return steps.push({ e, kind: 'root' });
    if (hasField(mnt_entrySchema, e, 'extMount') && e.extMount) return steps.push({ e, kind: 'external' });
    for (let j = steps.length - 1; j >= 0; j--) {
      const s = steps[j]!;
      if (s.kind === 'external' || s.e.rootDev !== e.rootDev || !under(e.root, s.e.root)) continue;
      return steps.push({ e, kind: 'bind', from: j, rel: rest(e.root, s.e.root) });
    }
    if (e.root !== '/' && !(e.fsname === 'cgroup2' && e.root === cgroupRoot)) throw new UserError(`${e.mountpoint}: a bind of ${e.root} of a ${e.fsname} not mounted whole in the images — not supported`);
    if (e.fsname === 'tmpfs') {
      const name = tmpfsImageName(e.rootDev);
      if (!r.exists(name)) throw new UserError(`tmpfs at ${e.mountpoint}: its contents (${name}) are missing`);
      tars.set(e.rootDev, r.readRaw(name));
    }
    return steps.push({ e, kind: 'fs' });
  });
  const props = steps.map(({ e }) => ({
    at: e.mountpoint, root: e.root, dev: e.rootDev, unbindable: (e.flags & MS.UNBINDABLE) !== 0,
    shared: hasField(mnt_entrySchema, e, 'sharedId') ? e.sharedId ?? 0 : 0, master: hasField(mnt_entrySchema, e, 'masterId') ? e.masterId ?? 0 : 0,
  }));
  return { steps, tars, props };
}

/** Refuses, before any task exists, a restore whose root or external mounts have no host path. */
export function checkMountTargets(saved: SavedMounts, t: MountTargets): void {
  const root = rootPathOf(saved, t);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UserError(`the container's root ${root} is not a directory${t.root ? '' : ' (give its new place with --root DIR)'}`);
  for (const s of saved.steps) {
    if (s.kind !== 'external') continue;
    const p = t.external.get(s.e.extKey);
    if (p === undefined) throw new UserError(`mount ${s.e.mountpoint} came from outside the container (key ${s.e.extKey}): give it with --external mnt[${s.e.extKey}]:PATH`);
    if (!existsSync(p)) throw new UserError(`--external mnt[${s.e.extKey}]:${p}: no such file or directory`);
  }
  // A slave of a host peer group is made one of the same group: a mount of it must be here.
  const host = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const plan = planPropagation(saved.props, host, false);
  refuseProblems(saved.props, plan);
  const hostMounts = new Map<number, { mountPoint: string; mountId: number }>();
  for (const u of plan.units) {
    if (!u.master || u.master.internal) continue;
    const m = saved.props[u.lead]!;
    const h = hostPeer(host, u.master.group, m.dev, m.root)!;
    hostMounts.set(u.master.group, { mountPoint: h.mountPoint, mountId: h.mountId });
  }
  saved.propagation = { plan, hostMounts };
}

function rootPathOf(saved: SavedMounts, t: MountTargets): string {
  if (t.root) return t.root;
  const e = saved.steps[0]!.e;
  if (!hasField(mnt_entrySchema, e, 'cryoRootPath')) throw new UserError(`the images do not say where the container's root was: give it with --root DIR`);
  return e.cryoRootPath;
}

/**
 * Builds the namespace in the just-cloned root `tracee` (in its own new mount namespace), using
 * the trampoline's `syscall` and its scratch page; returns with the task's root and cwd at the
 * namespace's root.
 */
export function buildMounts(tracee: Tracee, trampoline: bigint, saved: SavedMounts, t: MountTargets): void {
  const remote = new Remote(tracee, trampoline);
  const scratch = Scratch.at(remote, trampoline + BigInt(PAGE_SIZE), 8 * PAGE_SIZE);
  const pid = tracee.tid;
  const str = (s: string) => scratch.putString(s);
  const mount = (src: string | null, target: string, type: string | null, flags: number, data: string | null, what: string) => {
    scratch.reset();
    remote.call('mount', [src === null ? 0 : str(src), str(target), type === null ? 0 : str(type), flags, data ? str(data) : 0], what);
  };
  const prop = saved.propagation!;
  const needFds = mountsNeedingFds(prop.plan);
  const fds: PropFds = { mounts: new Map(), host: new Map() };
  try {
    mount(null, '/', null, MS.REC | MS.PRIVATE, null, 'making the copied namespace private');
    // cryo's own mounts of the host groups slaves join, reached through cryo's root while the
    // task's /proc is still the host's: the same mount, or refused.
    for (const [group, h] of prop.hostMounts) {
      scratch.reset();
      const fd = remote.call('open', [str(`/proc/${process.pid}/root${h.mountPoint}`), O.PATH | O.CLOEXEC, 0], `the host's mount ${h.mountPoint} of peer group ${group}`);
      fds.host.set(group, fd);
      const got = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
      if (Number(got) !== h.mountId) throw new UserError(`the host's mount ${h.mountPoint} of peer group ${group} is covered by another mount: its slaves cannot be made again`);
    }
    const base = rootPathOf(saved, t).replace(/\/+$/, '') || '/';
    const at = (mp: string) => (base === '/' ? mp : mp === '/' ? base : base + mp);
    saved.steps.forEach((s, i) => {
      const e = s.e;
      const target = at(e.mountpoint);
      const what = `mount ${e.mountpoint} (${e.fsname})`;
      if (s.kind === 'root') mount(base, base, null, MS.BIND, null, `the root ${base}`);
      else {
        const source = s.kind === 'bind' ? at(saved.steps[s.from!]!.e.mountpoint) + (s.rel === '/' ? '' : s.rel!) : s.kind === 'external' ? t.external.get(e.extKey)! : null;
        makeTarget(treePath(pid, target), source !== null ? treePath(pid, source) : null);
        if (source !== null) mount(source, target, null, MS.BIND, null, what);
        else mount(e.source, target, e.fsname, 0, e.options || null, what);
        if (s.kind === 'fs' && e.fsname === 'tmpfs') unpackTmpfs(treePath(pid, target), saved.tars.get(e.rootDev)!, what);
        if (s.kind === 'fs' && e.sbFlags & MS.RDONLY) mount(null, target, null, MS.REMOUNT | MS.RDONLY, e.options || null, `${what} read-only`);
      }
      mount(null, target, null, MS.REMOUNT | MS.BIND | (e.flags & PER_MOUNT_FLAGS), null, `${what} flags`);
      // Held from now on: a later mount may cover it before its propagation is set.
      if (needFds.has(i)) fds.mounts.set(i, remote.call('open', [str(target), O.PATH | O.CLOEXEC, 0], `${what} (O_PATH)`));
    });
    // pivot_root(".", "."): the old root ends on top of the new one, and is detached from there.
    scratch.reset();
    const old = remote.call('open', [str('/'), O.DIRECTORY | O.RDONLY, 0], 'the old root');
    remote.call('chdir', [str(base)], base);
    remote.call('pivot_root', [str('.'), str('.')], `pivot_root into ${base}`);
    remote.call('fchdir', [old]);
    remote.call('umount2', [str('.'), MNT_DETACH], 'detaching the old root');
    remote.call('close', [old]);
    remote.call('chdir', [str('/')]);
    // Propagation last: a shared mount would copy what is mounted below it afterwards.
    applyPropagation(remote, scratch, saved.props, prop.plan, fds);
  } finally {
    try {
      for (const fd of [...fds.host.values(), ...fds.mounts.values()]) remote.call('close', [fd]);
    } finally {
      remote.restore();
    }
  }
}

/** The mount point exists (a directory, or a file for a bind of a file), as mount(2) needs. */
function makeTarget(target: string, source: string | null): void {
  if (existsSync(target)) return;
  const file = source !== null && !statSync(source).isDirectory();
  mkdirSync(file ? dirname(target) : target, { recursive: true, mode: 0o755 });
  if (file) writeFileSync(target, '', { mode: 0o644 });
}

/** The restored namespace of `pid` against the images: its mounts, in order, and their propagation. */
export function restoredMountDifferences(pid: number, saved: SavedMounts): Difference[] {
  return propagationDifferences(pid, saved.props, parseMountInfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8')));
}
