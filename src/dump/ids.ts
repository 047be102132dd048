// The kernel-object ids of the dumping engine itself: `inventory.img`'s root_ids.
//
// CRIU's restore compares the root task's ids (ids-PID.img) with root_ids, which stand for the
// process that dumped it, and reads an equal id as an object the root shares with its dumper
// (an equal files_id is refused as image corruption, an unequal namespace id means "restore in a
// new namespace of that kind"). So cryo's own objects get ids of their own, numbered first as
// CRIU numbers them (per-kind counters starting at 1; namespace ids from one counter in the order
// pid, net, ipc, uts, time, mnt, user, cgroup), and a task's object gets the dumper's id only
// when kcmp (or the namespace inode) says it is the very same object.
import { readlinkSync } from 'node:fs';
import { kcmp, KCMP } from '../sys/index.js';
import type { IdAllocator } from '../resources/context.js';

/** The IdAllocator key that stands for cryo itself. */
export const DUMPER_KEY = 'dumper';

/** Namespace kinds in the order CRIU gives them ids when it reads its own. */
const NS_ORDER = ['pid', 'net', 'ipc', 'uts', 'time', 'mnt', 'user', 'cgroup'] as const;

const KINDS = { vm: KCMP.VM, files: KCMP.FILES, fs: KCMP.FS, sighand: KCMP.SIGHAND } as const;

export interface KobjIds {
  vmId: number;
  filesId: number;
  fsId: number;
  sighandId: number;
  pidNsId: number;
  netNsId: number;
  ipcNsId: number;
  utsNsId: number;
  mntNsId: number;
  userNsId: number;
  cgroupNsId: number;
  timeNsId: number;
}

/**
 * Registers cryo's own objects in `ids` (call before any task is seen) and returns them as
 * root_ids. Namespace ids are keyed by the /proc/PID/ns link, as taskIds does for tasks.
 */
export function dumperIds(ids: IdAllocator): KobjIds {
  const own = Object.fromEntries(Object.keys(KINDS).map((k) => [k, ids.id(k, DUMPER_KEY)])) as Record<keyof typeof KINDS, number>;
  const ns = Object.fromEntries(NS_ORDER.map((n) => [n, ids.id('ns', readlinkSync(`/proc/self/ns/${n}`))])) as Record<(typeof NS_ORDER)[number], number>;
  return {
    vmId: own.vm,
    filesId: own.files,
    fsId: own.fs,
    sighandId: own.sighand,
    pidNsId: ns.pid,
    netNsId: ns.net,
    ipcNsId: ns.ipc,
    utsNsId: ns.uts,
    mntNsId: ns.mnt,
    userNsId: ns.user,
    cgroupNsId: ns.cgroup,
    timeNsId: ns.time,
  };
}

/** Whether task `pid` really shares `kind` (vm, files, fs, sighand) with cryo (kcmp equal). */
export function sharesWithDumper(ids: IdAllocator, kind: string, pid: number): boolean {
  const type = KINDS[kind as keyof typeof KINDS];
  if (type === undefined || !ids.has(kind, DUMPER_KEY)) return false;
  return kcmp(process.pid, pid, type) === 0;
}
