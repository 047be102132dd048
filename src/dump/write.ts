// The images of the tree itself: pstree, per task core/ids/mm/fs/fdinfo (an fd table shared by
// CLONE_FILES once), the threads' cores, SysV segments, cgroup sets, seccomp filters, the clocks
// for the time namespace, the dump's statistics, and the inventory, written last.
import { create } from '@bufbuild/protobuf';
import type { ImageDirWriter } from '../image/dir.js';
import { pstree_entrySchema } from '../image/gen/pstree_pb.js';
import { inventory_entrySchema, lsmtype } from '../image/gen/inventory_pb.js';
import { seccomp_entrySchema } from '../image/gen/seccomp_pb.js';
import { cgroup_entrySchema, type cg_controller_entry } from '../image/gen/cgroup_pb.js';
import { stats_entrySchema } from '../image/gen/stats_pb.js';
import { task_kobj_ids_entrySchema, type core_entry } from '../image/gen/core_pb.js';
import { ipc_shm_entrySchema } from '../image/gen/ipc-shm_pb.js';
import type { CgroupMember } from '../resources/task/cgroup.js';
import type { saveSeccomp } from '../resources/task/seccomp.js';
import { sysvSegments, dumpSegment, type ShmImage } from '../resources/mm/sysv-shm.js';
import { zombieCore, type TaskImages } from './task.js';
import { nsPidsBelow, timensEntry, hostClocks, bootId, dumpLastPid } from '../resources/ns/index.js';
import type { TaskPlan } from './collect.js';

export interface TreeImages {
  tasks: TaskPlan[];
  images: TaskImages[];
  threadCores: { tid: number; core: core_entry }[];
  seccompFilters: ReturnType<typeof saveSeccomp>;
  /** The root has an IPC namespace of its own: its segments are saved whole with it (resources/ns). */
  ownIpcNs: boolean;
  /** --manage-cgroups: the tree's cgroups with their settings (resources/cgroup/manage.ts). */
  cgroupDirs?: cg_controller_entry[];
  /** A PID namespace's last PID read before the dump's snapshots took PIDs in it (dump/snapshot.ts), by task. */
  lastPidOf?: (pid: number) => number | undefined;
}

export function writeTreeImages(writer: ImageDirWriter, t: TreeImages): void {
  const { tasks, images } = t;
  writer.writeImage('pstree.img', 'PSTREE', tasks.map((k) => {
    // The PIDs below cryo's level of a tree in a PID namespace of its own.
    const { nsPid, nsThreads } = nsPidsBelow(k.pid, k.zombie ? [] : k.threads);
    const e = create(pstree_entrySchema, { pid: k.pid, ppid: k.ppid, pgid: k.pgid, sid: k.sid, threads: k.threads, cryoNsPid: nsPid, cryoNsThreads: nsThreads });
    // A PID namespace's init (the tree frozen): the PID its next fork takes (resources/ns/last-pid.ts).
    if (!k.zombie && nsPid.at(-1) === 1) e.cryoNsLastPid = t.lastPidOf?.(k.pid) ?? dumpLastPid(k.pid);
    return e;
  }));
  for (const z of tasks.filter((k) => k.zombie)) writer.writeImage(`core-${z.pid}.img`, 'CORE', [zombieCore(z)]);
  const tables = new Set<number>();
  for (const img of images) {
    writer.writeImage(`core-${img.pid}.img`, 'CORE', [img.core]);
    writer.writeImage(`ids-${img.pid}.img`, 'IDS', [create(task_kobj_ids_entrySchema, img.ids)]);
    writer.writeImage(`mm-${img.pid}.img`, 'MM', [img.mm]);
    writer.writeImage(`fs-${img.pid}.img`, 'FS', [img.fs]);
    if (!tables.has(img.ids.filesId)) writer.writeImage(`fdinfo-${img.ids.filesId}.img`, 'FDINFO', img.fdinfo);
    tables.add(img.ids.filesId);
  }
  for (const th of t.threadCores) writer.writeImage(`core-${th.tid}.img`, 'CORE', [th.core]);
  // SysV segments the tree attaches, each once (read while the tree is frozen).
  const segs = new Map<number, ShmImage>();
  const known = images.some((i) => i.sysvShm.length) && !t.ownIpcNs ? sysvSegments() : new Map();
  for (const a of t.ownIpcNs ? [] : images.flatMap((i) => i.sysvShm)) {
    if (!segs.has(a.shmid)) segs.set(a.shmid, dumpSegment(known.get(a.shmid)!, a.source));
  }
  if (segs.size) {
    writer.writeImage(`ipcns-shm-${images[0]!.ids.ipcNsId}.img`, 'IPCNS_SHM', [...segs.values()].map((g) => ({ msg: create(ipc_shm_entrySchema, g.entry), payload: g.data })));
  }
  // Each distinct set of cgroups once; tasks name theirs by id (core.tc.cg_set).
  const cgSets = new Map<number, CgroupMember[]>();
  for (const img of images) cgSets.set(img.core.tc!.cgSet, img.cgroups);
  writer.writeImage('cgroup.img', 'CGROUP', [create(cgroup_entrySchema, { sets: [...cgSets].map(([id, ctls]) => ({ id, ctls })), controllers: t.cgroupDirs ?? [] })]);
  writer.writeImage('seccomp.img', 'SECCOMP', [create(seccomp_entrySchema, { seccompFilters: t.seccompFilters })]);
  // The host's clocks (CRIU writes them for a tree without a time namespace of its own), with the
  // boot they belong to: a restore on a later boot whose clocks are behind keeps them going.
  writer.writeImage('timens-0.img', 'TIMENS', [timensEntry({ clocks: hostClocks(), bootId: bootId() })]);
}

/** Times of the dump (ms since its start) and pages, as CRIU's stats-dump has them (in µs). */
export function writeStats(writer: ImageDirWriter, s: { frozenAt: number; memDoneAt: number; endAt: number; pagesWritten: number }): void {
  const us = (ms: number) => Math.round(ms * 1000);
  writer.writeImage('stats-dump', 'STATS', [
    create(stats_entrySchema, {
      dump: {
        freezingTime: us(s.frozenAt),
        frozenTime: us(s.endAt - s.frozenAt),
        memdumpTime: us(s.memDoneAt - s.frozenAt),
        memwriteTime: us(s.memDoneAt - s.frozenAt),
        pagesScanned: BigInt(s.pagesWritten),
        pagesSkippedParent: 0n,
        pagesWritten: BigInt(s.pagesWritten),
        pagesLazy: 0n,
        irmapResolve: 0,
        pagePipes: 0n,
        pagePipeBufs: 0n,
        shpagesScanned: 0n,
        shpagesSkippedParent: 0n,
        shpagesWritten: 0n,
      },
    }),
  ]);
}

/** The inventory, last: a directory without it is not a checkpoint. */
/** inventory.img, last. `rootIds`: cryo's own kernel objects' ids (CRIU's root_ids stand for the dumper). */
/** `netLock`: the network lock a kill-dump keeps for the restore (CRIU's fields: method, run id). */
/** `netLock`: the lock a kill-dump keeps for the restore; `tcpClose`: connections were dumped to be restored closed (CRIU's field). */
export function writeInventory(writer: ImageDirWriter, tasks: TaskPlan[], root: TaskImages, rootIds: TaskImages['ids'], tcp: { netLock?: { method: number; name: string }; tcpClose: boolean }): void {
  const { netLock } = tcp;
  const ledInside = (id: number) => tasks.some((t) => t.pid === id);
  writer.noteExternal({ sessions: tasks.map((t) => t.sid).filter((s) => !ledInside(s)), groups: tasks.map((t) => t.pgid).filter((g) => !ledInside(g)) });
  writer.finish(
    create(inventory_entrySchema, {
      imgVersion: 2,
      fdinfoPerId: true,
      rootIds,
      nsPerId: true,
      rootCgSet: root.core.tc!.cgSet,
      lsmtype: lsmtype.NO_LSM,
      networkLockMethod: netLock?.method ?? 0,
      ...(netLock ? { dumpCriuRunId: netLock.name } : {}),
      ...(tcp.tcpClose ? { tcpClose: true } : {}),
    }),
  );
}
