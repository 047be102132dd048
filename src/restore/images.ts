// Reading and cross-checking the images one task's restore needs, with errors that say which
// file is missing or wrong.
import { readRootNamespaces } from '../resources/ns/restore.js';
import { composeWithParents } from './parent-pages.js';
import { planVdso } from '../resources/mm/vdso-image.js';
import { withFileOffsets } from '../resources/mm/layout.js';
import { ImageDirReader, INVENTORY_FILE } from '../image/dir.js';
import { verifyManifest } from '../image/manifest.js';
import type { inventory_entry } from '../image/gen/inventory_pb.js';
import type { pstree_entry } from '../image/gen/pstree_pb.js';
import type { core_entry } from '../image/gen/core_pb.js';
import type { mm_entry } from '../image/gen/mm_pb.js';
import type { fs_entry } from '../image/gen/fs_pb.js';
import type { fdinfo_entry, file_entry } from '../image/gen/fdinfo_pb.js';
import type { pagemap_head, pagemap_entry } from '../image/gen/pagemap_pb.js';
import { pagemapEntryFlags, PE_AS_PARENT, PE_NOT_PARENT, PE_PRESENT, PE_PARENT } from '../image/pagemap.js';
import { validateCheckpoint, validatePstree, checkPageImage } from './validate.js';
import type { reg_file_entry } from '../image/gen/regfile_pb.js';
import { cg_member_entrySchema, type cgroup_entry } from '../image/gen/cgroup_pb.js';
import type { seccomp_entry } from '../image/gen/seccomp_pb.js';
import type { CgroupMember } from '../resources/task/cgroup.js';
import type { FownData } from '../resources/files/fown.js';
import type { FileLockData } from '../resources/files/locks.js';
import type { ShmImage, ShmEntry } from '../resources/mm/sysv-shm.js';
import { UserError } from '../util/errors.js';
import type { PageRange, VmaData } from '../resources/mm/dump.js';
import { vma_entrySchema, type vma_entry } from '../image/gen/vma_pb.js';
import { hasField } from '../image/presence.js';
import { VMA } from '../resources/mm/vma-kind.js';
import { TASK_STATE } from '../image/task-state.js';
import { FD_KINDS, recordsOf, registeredKindOfEntry } from '../resources/files/registry.js';
import { newKindState, type AnyFdKind, type KindImages } from '../resources/files/fd-kind.js';
import { tcpImagesOf } from '../resources/net/tcp-restore.js';

import type { TaskImage, ZombieImage, CheckpointImage } from './checkpoint.js';

export type { TaskImage, ZombieImage, CheckpointImage } from './checkpoint.js';



function one<T>(list: T[], name: string): T {
  if (list.length !== 1) throw new UserError(`${name}: expected one entry, found ${list.length}`);
  return list[0]!;
}

/** cryo's hint on pages a forked child shares with its parent (undefined: no hint, compare). */
function asParent(flags: number): { asParent?: boolean } {
  if (flags & PE_AS_PARENT) return { asParent: true };
  if (flags & PE_NOT_PARENT) return { asParent: false };
  return {};
}

function pagemapOf(r: ImageDirReader, name: string): { pages: PageRange[]; pagesFile: string } {
  const entries = r.read(name) as unknown[];
  if (!entries.length) throw new UserError(`${name}: empty pagemap`);
  const head = entries[0] as pagemap_head;
  let inParent = false;
  const pages = (entries.slice(1) as pagemap_entry[]).map((e) => {
    const flags = pagemapEntryFlags(e);
    // PE_LAZY only says they may be served lazily: CRIU sets it on present anonymous pages.
    if (!(flags & (PE_PARENT | PE_PRESENT))) {
      throw new UserError(`${name}: pages at 0x${e.vaddr.toString(16)} have flags 0x${flags.toString(16)} (absent: served by a page server) — not supported`);
    }
    if (flags & PE_PARENT) inParent = true;
    return { vaddr: e.vaddr, nrPages: e.nrPages ? Number(e.nrPages) : e.compatNrPages, ...(flags & PE_PARENT ? {} : asParent(flags)) };
  });
  // Pages in a parent image (incremental dumps): one file of the whole chain's pages, in order.
  return { pages, pagesFile: inParent ? composeWithParents(r.dir, name) : r.path(`pages-${head.pagesId}.img`) };
}

/** `shellJob`: the root may be in a session or group led from outside (CRIU's --shell-job). */
/** `tcpClose`: restore --tcp-close (the TCP connections come back closed, no stream is read). */
export function readCheckpoint(dir: string, opts: { shellJob?: boolean; tcpClose?: boolean } = {}): CheckpointImage {
  const r = ImageDirReader.open(dir);
  // Every file as the dump wrote it, before anything is decoded (CRIU's images have no manifest).
  const manifest = verifyManifest(r.dir, INVENTORY_FILE);
  const inventory = one(r.read('inventory.img'), 'inventory.img') as inventory_entry;
  const trees = r.read('pstree.img') as pstree_entry[];
  if (!trees.length) throw new UserError(`${dir}/pstree.img: no tasks`);
  if (trees[0]!.ppid !== 0) throw new UserError(`${dir}/pstree.img: the first task (${trees[0]!.pid}) is not the root`);
  validatePstree(trees);
  const known = new Set<number>();
  for (const t of trees) {
    if (t.ppid !== 0 && !known.has(t.ppid)) throw new UserError(`pstree.img: pid ${t.pid} comes before its parent ${t.ppid}`);
    known.add(t.pid);
  }
  const owners = new Map<number, FownData>();
  const fileIds = new Set<number>();
  const kindFiles: CheckpointImage['kindFiles'] = new Map();
  const fileEntries = r.read('files.img') as file_entry[];
  // The REG entries: the paths fds, mappings, exe, cwd and root name.
  const files = new Map(fileEntries.flatMap((f) => (f.reg ? [[f.id, f.reg] as const] : [])));
  const kindImages = kindImagesOf(r, files, fileIds, inventory, { shellJob: opts.shellJob ?? false, tcpClose: opts.tcpClose ?? false });
  for (const f of fileEntries) {
    if (fileIds.has(f.id)) throw new UserError(`files.img: file id ${f.id} appears twice`);
    fileIds.add(f.id);
    const registered = registeredKindOfEntry(f);
    if (!registered) throw new UserError(`files.img: file id ${f.id} of type ${f.type} — not supported yet`);
    const record = registered.kind.read(registered.payload, f.id, kindImages);
    kindFiles.set(f.id, { kind: registered.kind, record });
    if (record.fown) owners.set(f.id, record.fown);
  }
  for (const kind of FD_KINDS as readonly AnyFdKind[]) kind.validate?.(recordsOf(kind, kindFiles.values()), kindImages);
  const zombies: ZombieImage[] = [];
  const tasks: TaskImage[] = [];
  // What each mapped file id opens: one map for every task, filled once the kinds have made
  // their objects (restore/files.ts prepareKinds: a memfd's is our fd of it).
  const mapped: CheckpointImage['mappedFiles'] = new Map();
  for (const pstree of trees) {
    const pid = pstree.pid;
    const core = one(r.read(`core-${pid}.img`), `core-${pid}.img`) as core_entry;
    if (core.tc?.taskState === TASK_STATE.DEAD) {
      zombies.push({ pid, ppid: pstree.ppid, pgid: pstree.pgid, sid: pstree.sid, exitStatus: core.tc.exitCode, comm: core.tc.comm, nsPid: pstree.cryoNsPid });
      continue;
    }
    if (!core.threadInfo?.gpregs || !core.tc) throw new UserError(`core-${pid}.img: no x86_64 registers or task state`);
    const mm = one(r.read(`mm-${pid}.img`), `mm-${pid}.img`) as mm_entry;
    const fs = one(r.read(`fs-${pid}.img`), `fs-${pid}.img`) as fs_entry;
    const ids = core.ids ?? (one(r.read(`ids-${pid}.img`), `ids-${pid}.img`) as NonNullable<core_entry['ids']>);
    const fdinfo = r.read(`fdinfo-${ids.filesId}.img`) as fdinfo_entry[];
    const priv = pagemapOf(r, `pagemap-${pid}.img`);
    const vmas = mm.vmas.map(vmaData);
    const shmem = new Map<bigint, { pages: PageRange[]; pagesFile: string }>();
    for (const v of vmas) {
      if (v.status & VMA.ANON_SHARED && !shmem.has(v.shmid)) {
        const name = `pagemap-shmem-${v.shmid}.img`;
        shmem.set(v.shmid, r.exists(name) ? pagemapOf(r, name) : { pages: [], pagesFile: '' });
      }
    }
    const threads = pstree.threads
      .filter((tid) => tid !== pid)
      .map((tid) => {
        const c = one(r.read(`core-${tid}.img`), `core-${tid}.img`) as core_entry;
        if (!c.threadInfo?.gpregs) throw new UserError(`core-${tid}.img: no x86_64 registers`);
        return { tid, core: c };
      });
    tasks.push({ pid, threads, pstree, core, mm, fs, fdinfo, ids, memory: { vmas, pages: priv.pages, pagesFile: priv.pagesFile, shmem, files: mapped } });
  }
  const locks = new Map<number, FileLockData[]>();
  if (r.exists('filelocks.img')) {
    for (const l of r.read('filelocks.img') as FileLockData[]) locks.set(l.pid, [...(locks.get(l.pid) ?? []), l]);
  }
  const sysvShm: ShmImage[] = [];
  const shmName = tasks.length ? `ipcns-shm-${tasks[0]!.ids.ipcNsId}.img` : '';
  if (shmName && r.exists(shmName)) {
    for (const e of r.readImage(shmName).entries) {
      const entry = e.msg as ShmEntry;
      sysvShm.push({ entry, data: Buffer.from(e.payload ?? Buffer.alloc(0)) });
    }
  }
  // The inet kind's validate read them: the restore locks the network for them first of all.
  const tcp = tcpImagesOf(kindImages);
  const cgroups = readCgroups(r);
  const namespaces = tasks.length && inventory.rootIds ? readRootNamespaces(r, inventory.rootIds, tasks, cgroups.get(tasks[0]!.core.tc?.cgSet ?? 0)) : { own: new Set<string>(), state: {} };
  const ckpt = { dir: r.dir, inventory, namespaces, tasks, zombies, files, sysvShm, kindFiles, kindImages, mappedFiles: mapped, owners, cgroups, cgroupDirs: r.exists('cgroup.img') ? (r.read('cgroup.img') as cgroup_entry[]).flatMap((e) => e.controllers) : [], seccompFilters: readSeccomp(r), locks, tcpConnections: tcp.connections, tcpClosed: tcp.closed };
  validateCheckpoint(ckpt, r.list(), fileIds, manifest, opts.shellJob ?? false);
  // Once the VMAs are known sane: how each task's vdso comes back (refused here if it cannot).
  for (const t of tasks) {
    const vdso = planVdso(t.pid, t.memory.vmas, withFileOffsets(t.memory.pages), t.memory.pagesFile);
    if (vdso) t.memory.vdso = vdso;
  }
  return ckpt;
}

/** The images beside files.img the registered kinds read, and their state for one restore. */
function kindImagesOf(r: ImageDirReader, paths: Map<number, reg_file_entry>, fileIds: Set<number>, inventory: inventory_entry, opts: { shellJob: boolean; tcpClose: boolean }): KindImages {
  return {
    read: (name) => r.tryRead(name),
    readRaw: (name) => (r.exists(name) ? r.readRaw(name) : undefined),
    readWithPayloads: (name) => (r.exists(name) ? r.readImage(name).entries.map((e) => ({ msg: e.msg, payload: e.payload ?? Buffer.alloc(0) })) : undefined),
    pathEntry: (id) => paths.get(id),
    pagemap(name) {
      if (!r.exists(name)) return undefined;
      const p = pagemapOf(r, name);
      checkPageImage(p.pages, p.pagesFile, name);
      return p;
    },
    madePaths: new Set(),
    ...newKindState(),
    ...opts,
    inventory,
    isFile: (id) => fileIds.has(id),
  };
}

function readSeccomp(r: ImageDirReader): CheckpointImage['seccompFilters'] {
  if (!r.exists('seccomp.img')) return [];
  return (r.read('seccomp.img') as seccomp_entry[]).flatMap((e) => e.seccompFilters.map((f) => ({ filter: f.filter, prev: f.prev, flags: f.flags })));
}

function readCgroups(r: ImageDirReader): Map<number, CgroupMember[]> {
  const out = new Map<number, CgroupMember[]>();
  if (!r.exists('cgroup.img')) return out;
  for (const e of r.read('cgroup.img') as cgroup_entry[]) {
    for (const set of e.sets) out.set(set.id, set.ctls.map((c) => ({ name: c.name, path: c.path, ...(hasField(cg_member_entrySchema, c, 'cgnsPrefix') ? { cgnsPrefix: c.cgnsPrefix } : {}) })));
  }
  return out;
}

/**
 * A VMA record as the restore uses it: a plain object whose optional fields exist only when the
 * image has them (a decoded message would read an absent field as 0: fdflags 0 is O_RDONLY).
 */
function vmaData(v: vma_entry): VmaData {
  const out: VmaData = { start: v.start, end: v.end, pgoff: v.pgoff, shmid: v.shmid, prot: v.prot, flags: v.flags, status: v.status, fd: Number(v.fd) };
  if (hasField(vma_entrySchema, v, 'madv')) out.madv = v.madv;
  if (hasField(vma_entrySchema, v, 'fdflags')) out.fdflags = v.fdflags;
  if (hasField(vma_entrySchema, v, 'cryoLockOnfault')) out.cryoLockOnfault = v.cryoLockOnfault;
  if (hasField(vma_entrySchema, v, 'cryoAccount')) out.cryoAccount = v.cryoAccount;
  if (hasField(vma_entrySchema, v, 'cryoSealed')) out.cryoSealed = v.cryoSealed;
  if (v.cryoGuardPages.length) out.cryoGuardPages = v.cryoGuardPages;
  if (hasField(vma_entrySchema, v, 'cryoMaybeGuard')) out.cryoMaybeGuard = v.cryoMaybeGuard;
  return out;
}
