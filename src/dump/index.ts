// `cryo dump`: check, freeze, collect, write, then release or kill. Any failure before the images
// are complete puts every task back as it was and removes the partial image directory.
import { existsSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { sys, kill, closeFd, kcmp, KCMP, SIG, PAGE_SIZE, PTRACE_O, checkInterrupt } from '../sys/index.js';
import { Tracee } from '../ptrace/index.js';
import { ImageDirWriter } from '../image/dir.js';
import { pstree_entrySchema } from '../image/gen/pstree_pb.js';
import { inventory_entrySchema, lsmtype } from '../image/gen/inventory_pb.js';
import { file_entrySchema, fd_types } from '../image/gen/fdinfo_pb.js';
import { pagemap_headSchema, pagemap_entrySchema } from '../image/gen/pagemap_pb.js';
import { PE_PRESENT, PE_AS_PARENT, PE_NOT_PARENT } from '../image/pagemap.js';
import { seccomp_entrySchema } from '../image/gen/seccomp_pb.js';
import { cgroup_entrySchema } from '../image/gen/cgroup_pb.js';
import type { CgroupMember } from '../resources/task/cgroup.js';
import { saveSeccomp, seccompMode } from '../resources/task/seccomp.js';
import { restartedCall } from '../resources/task/regs.js';
import { pipe_data_entrySchema } from '../image/gen/pipe-data_pb.js';
import { timens_entrySchema } from '../image/gen/timens_pb.js';
import { stats_entrySchema } from '../image/gen/stats_pb.js';
import { task_kobj_ids_entrySchema } from '../image/gen/core_pb.js';
import { collectTree, threadsOf, childrenOf, treeBlockers, endedMeanwhile, tryPlan, type TaskPlan } from './collect.js';
import { mergeShmem, uncoveredShmem } from './shmem.js';
import { openTask, closeTask, dumpTask, dumpThreadCore, zombieCore, type TaskImages } from './task.js';
import type { core_entry } from '../image/gen/core_pb.js';
import { copyPages, type PageRange } from '../resources/mm/dump.js';
import { FileTable } from '../resources/files/table.js';
import { scanFiles } from '../resources/files/scan.js';
import { sk_packet_entrySchema } from '../image/gen/sk-packet_pb.js';
import { remap_file_path_entrySchema, remap_type } from '../image/gen/remap-file-path_pb.js';
import { ghost_file_entrySchema } from '../image/gen/ghost-file_pb.js';
import { memfd_inode_entrySchema } from '../image/gen/memfd_pb.js';
import { file_lock_entrySchema } from '../image/gen/file-lock_pb.js';
import { copyMemfdPages } from '../resources/files/memfd.js';
import { sysvSegments, dumpSegment, type ShmImage } from '../resources/mm/sysv-shm.js';
import { ipc_shm_entrySchema } from '../image/gen/ipc-shm_pb.js';
import { IdAllocator, type DumpTask } from '../resources/context.js';
import { UnsupportedError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';
import { provenUnchanged } from './unchanged.js';
import { dumperIds } from './ids.js';
import { cpuinfoImage } from '../resources/task/cpu.js';

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning: boolean;
  /** Unix peers outside the tree are allowed: reconnected by name on restore. */
  extUnixSk?: boolean;
  /** Largest deleted file saved with the images (bytes). */
  ghostLimit?: number;
  /** Save file locks (flock, POSIX, OFD). */
  fileLocks?: boolean;
  /** Checksum the page images in the manifest too (a restore then reads them once more). */
  verifyPages?: boolean;
  log: Log;
}

export interface DumpResult {
  pids: number[];
  pagesWritten: number;
  frozenMs: number;
  totalMs: number;
}

const SCM_RIGHTS = 1;

export function dump(opts: DumpOptions): DumpResult {
  // --leave-running proves it: the same observable state before the freeze and after the release.
  return opts.leaveRunning ? provenUnchanged(opts.pid, opts.log, () => dumpAndRelease(opts)) : dumpAndRelease(opts);
}

function dumpAndRelease(opts: DumpOptions): DumpResult {
  const { log } = opts;
  const t0 = performance.now();
  failpoint('dump:collect');
  const { tasks, blockers } = collectTree(opts.pid, opts);
  if (blockers.length) throw new UnsupportedError(blockers);
  // SIGINT/SIGTERM/SIGHUP (armed by the caller, see sys/interrupt.ts) are polled between steps:
  // each task, each injected syscall, each chunk of pages; they unwind through the rollback below.
  checkInterrupt();
  log.info(`dumping ${tasks.map((t) => t.pid).join(', ')} into ${opts.dir}`);

  const writer = ImageDirWriter.create(opts.dir, { hashRaw: opts.verifyPages ?? false });
  const frozen: Tracee[] = [];
  const open: DumpTask[] = [];
  let tFrozen = 0;
  let done = false;
  let table: FileTable | null = null;
  try {
    failpoint('dump:seize');
    // Top-down: once a task is frozen it cannot fork, so its children listed then are final.
    const live: TaskPlan[] = [];
    const restarted = new Map<number, number | null>();
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]!;
      if (t.zombie) continue;
      // Threads may be born while we seize: list again until no new one appears. Threads and
      // whole tasks may also end meanwhile: they are simply not part of the checkpoint.
      const failed = new Set<number>();
      for (let more = t.threads; more.length; ) {
        for (const tid of more) {
          checkInterrupt();
          try {
            restarted.set(tid, restartedCall(t.pid, tid));
            // A filter must not judge (or kill the task for) the calls we inject.
            frozen.push(Tracee.seize(tid, t.pid, seccompMode(tid) ? PTRACE_O.SUSPEND_SECCOMP : 0));
          } catch (e) {
            if (i === 0 && tid === t.pid) throw e;
            if (!endedMeanwhile(t.pid, tid)) throw e;
            failed.add(tid);
          }
        }
        const now = existsSync(`/proc/${t.pid}/task`) ? threadsOf(t.pid) : [];
        more = now.filter((tid) => !failed.has(tid) && !frozen.some((f) => f.tid === tid));
        t.threads = now.filter((tid) => frozen.some((f) => f.tid === tid));
      }
      if (!frozen.some((f) => f.tid === t.pid)) {
        // The task ended before we held it: gone (dropped below), or now a zombie of the tree.
        const again = tryPlan(t.pid, t.ppid);
        if (again?.zombie) Object.assign(t, again);
        continue;
      }
      // A task in group stop would stop again at every step we make it take: continue it. The
      // SIGCONT stays blocked and pending while we work; the task is stopped again on release.
      if (t.stopped) kill(t.pid, SIG.CONT);
      live.push(t);
      for (const kid of childrenOf(t.pid)) {
        if (tasks.some((k) => k.pid === kid)) continue;
        const plan = tryPlan(kid, t.pid);
        if (plan) tasks.push(plan);
      }
    }
    for (let i = tasks.length - 1; i >= 0; i--) {
      // A child listed before the freeze may have been reaped since.
      if (!tasks[i]!.zombie && !frozen.some((f) => f.tgid === tasks[i]!.pid)) tasks.splice(i, 1);
      // A zombie listed then may have been reaped before its parent was frozen.
      else if (tasks[i]!.zombie && tryPlan(tasks[i]!.pid, tasks[i]!.ppid)?.zombie !== true) tasks.splice(i, 1);
    }
    tFrozen = performance.now();
    log.info(`frozen ${tasks.length} tasks in ${(tFrozen - t0).toFixed(1)} ms`);

    // Re-check under freeze: the tree may have changed between the check and the seize.
    const scan = scanFiles(tasks.map((t) => t.pid), opts);
    const again = treeBlockers(tasks, true, scan);
    if (again.length) throw new UnsupportedError(again);

    const ids = new IdAllocator();
    const rootIds = dumperIds(ids); // first: cryo's own objects take CRIU's first ids
    const files = (table = new FileTable(scan));
    const images: TaskImages[] = [];
    const threadCores: { tid: number; core: core_entry }[] = [];
    for (const t of live) {
      const leaderTracee = frozen.find((tr) => tr.tid === t.pid)!;
      // A task sharing its parent's memory (CLONE_VM) works in the parent's scratch area; its
      // memory is the parent's and is saved with it.
      const vmParent = t.ppid ? open.find((o) => o.pid === t.ppid && kcmp(t.ppid, t.pid, KCMP.VM) === 0) : undefined;
      checkInterrupt();
      const leader = openTask(leaderTracee, log, ids, vmParent, t.threads.length);
      leader.restartedCall = restarted.get(leader.pid);
      open.push(leader);
      const others: DumpTask[] = [];
      for (const tr of frozen.filter((f) => f.tgid === t.pid && f.tid !== t.pid)) {
        checkInterrupt();
        const th = openTask(tr, log, ids, leader);
        th.restartedCall = restarted.get(th.pid);
        open.push(th);
        others.push(th);
      }
      images.push(dumpTask(leader, files, t.stopped, t.ppid || undefined));
      for (const th of others) threadCores.push({ tid: th.pid, core: dumpThreadCore(th) });
    }

    failpoint('dump:pages');
    let pagesId = 0;
    let pagesWritten = 0;
    // One pagemap + pages pair: `at` is what the pagemap records (the address in the task, or
    // the offset in a shared object); the bytes are read from `pid` at `vaddr`.
    const writePages = (pagemapName: string, runs: (PageRange & { pid: number; at: bigint })[]) => {
      pagesId++;
      const sink = writer.openRaw(`pages-${pagesId}.img`, { direct: true });
      for (let i = 0; i < runs.length; ) {
        let j = i;
        while (j < runs.length && runs[j]!.pid === runs[i]!.pid) j++;
        pagesWritten += copyPages(runs[i]!.pid, runs.slice(i, j), polled(sink)) / PAGE_SIZE;
        i = j;
      }
      sink.close();
      writePagemap(pagemapName, runs);
    };
    // The pagemap of the last pages file written: each run at `at`, with cryo's parent hint.
    const writePagemap = (name: string, runs: (PageRange & { at: bigint })[]) => {
      writer.writeImage(name, 'PAGEMAP', [
        create(pagemap_headSchema, { pagesId }),
        ...runs.map((r) =>
          create(pagemap_entrySchema, { vaddr: r.at, compatNrPages: r.nrPages, nrPages: BigInt(r.nrPages), flags: PE_PRESENT | (r.asParent === undefined ? 0 : r.asParent ? PE_AS_PARENT : PE_NOT_PARENT) }),
        ),
      ]);
    };
    for (const img of images) writePages(`pagemap-${img.pid}.img`, img.privatePages.map((r) => ({ ...r, pid: img.pid, at: r.vaddr })));
    // A shared anonymous object is saved once, from whichever tasks have its pages.
    const shmem = mergeShmem(images.flatMap((i) => i.shmemPages.map((s) => ({ ...s, pid: i.pid }))));
    const uncovered = uncoveredShmem(images, shmem);
    if (uncovered.length) throw new UnsupportedError(uncovered);
    for (const [shmid, runs] of shmem) writePages(`pagemap-shmem-${shmid}.img`, runs.map((r) => ({ ...r, at: r.offset })));
    // memfd contents: one shmem pagemap per inode, read from the file itself.
    for (const m of files.memfds.values()) {
      pagesId++;
      const sink = writer.openRaw(`pages-${pagesId}.img`);
      const runs = copyMemfdPages(m.source, m.size, polled(sink));
      sink.close();
      pagesWritten += runs.reduce((n, r) => n + r.nrPages, 0);
      writePagemap(`pagemap-shmem-${m.shmid}.img`, runs.map((r) => ({ ...r, at: r.vaddr })));
    }
    const tMem = performance.now();

    checkInterrupt();
    // Before the cores are written: it sets their seccomp fields.
    const seccompFilters = saveSeccomp(frozen, [...images.map((i) => ({ tid: i.pid, core: i.core })), ...threadCores]);
    failpoint('dump:write');
    const root = images[0]!;
    writer.writeImage(
      'pstree.img',
      'PSTREE',
      tasks.map((t) => create(pstree_entrySchema, { pid: t.pid, ppid: t.ppid, pgid: t.pgid, sid: t.sid, threads: t.threads })),
    );
    for (const t of tasks.filter((k) => k.zombie)) writer.writeImage(`core-${t.pid}.img`, 'CORE', [zombieCore(t)]);
    const tables = new Set<number>();
    for (const img of images) {
      writer.writeImage(`core-${img.pid}.img`, 'CORE', [img.core]);
      writer.writeImage(`ids-${img.pid}.img`, 'IDS', [create(task_kobj_ids_entrySchema, img.ids)]);
      writer.writeImage(`mm-${img.pid}.img`, 'MM', [img.mm]);
      writer.writeImage(`fs-${img.pid}.img`, 'FS', [img.fs]);
      if (!tables.has(img.ids.filesId)) writer.writeImage(`fdinfo-${img.ids.filesId}.img`, 'FDINFO', img.fdinfo);
      tables.add(img.ids.filesId);
    }
    for (const th of threadCores) writer.writeImage(`core-${th.tid}.img`, 'CORE', [th.core]);
    writer.writeImage(
      'files.img',
      'FILES',
      // Each record names its payload as file_entry does (reg, pipe, efd, sgfd, tfd, epfd).
      files.entries.map((f) => create(file_entrySchema, { ...f, type: fd_types[f.type] })),
    );
    // Pipes and FIFOs keep their buffered bytes in images of the same shape.
    for (const [name, kind, data] of [['pipes-data.img', 'PIPES_DATA', files.pipeData], ['fifo-data.img', 'FIFO_DATA', files.fifoData]] as const) {
      if (!data.size) continue;
      writer.writeImage(
        name,
        kind,
        [...data.values()].map((d) => ({
          msg: create(pipe_data_entrySchema, { pipeId: d.pipeId, bytes: d.data.length, size: d.size }),
          payload: d.data,
        })),
      );
    }
    if (files.skQueues.length) {
      writer.writeImage(
        'sk-queues.img',
        'SK_QUEUES',
        files.skQueues.map((q) => ({
          msg: create(sk_packet_entrySchema, { idFor: q.idFor, length: q.data.length, scm: q.rights.length ? [{ type: SCM_RIGHTS, rights: q.rights }] : [] }),
          payload: q.data,
        })),
      );
    }
    // SysV segments the tree attaches, each once (read while the tree is frozen).
    const segs = new Map<number, ShmImage>();
    const known = images.some((i) => i.sysvShm.length) ? sysvSegments() : new Map();
    for (const a of images.flatMap((i) => i.sysvShm)) {
      if (!segs.has(a.shmid)) segs.set(a.shmid, dumpSegment(known.get(a.shmid)!, a.source));
    }
    if (segs.size) {
      writer.writeImage(`ipcns-shm-${root.ids.ipcNsId}.img`, 'IPCNS_SHM', [...segs.values()].map((g) => ({ msg: create(ipc_shm_entrySchema, g.entry), payload: g.data })));
    }
    if (files.locks.length) writer.writeImage('filelocks.img', 'FILE_LOCKS', files.locks.map((l) => create(file_lock_entrySchema, l)));
    if (files.memfds.size) {
      writer.writeImage('memfd.img', 'MEMFD_INODE', [...files.memfds.values()].map(({ source: _, ...m }) => create(memfd_inode_entrySchema, m)));
    }
    if (files.remaps.length) {
      writer.writeImage('remap-fpath.img', 'REMAP_FPATH', files.remaps.map((r) => create(remap_file_path_entrySchema, { ...r, remapType: remap_type.GHOST })));
      for (const [id, g] of files.ghosts) {
        const mtim = { tvSec: g.mtimSec, tvUsec: g.mtimUsec };
        writer.writeImage(`ghost-file-${id}.img`, 'GHOST_FILE', [
          { msg: create(ghost_file_entrySchema, { uid: g.uid, gid: g.gid, mode: g.mode, size: g.size, mtim, atim: mtim, ...(g.rdev !== undefined ? { rdev: g.rdev } : {}) }), payload: g.data },
        ]);
      }
    }
    for (const w of files.warnings) log.warn(w);
    // Each distinct set of cgroups once; tasks name theirs by id (core.tc.cg_set).
    const cgSets = new Map<number, CgroupMember[]>();
    for (const img of images) cgSets.set(img.core.tc!.cgSet, img.cgroups);
    writer.writeImage('cgroup.img', 'CGROUP', [create(cgroup_entrySchema, { sets: [...cgSets].map(([id, ctls]) => ({ id, ctls })) })]);
    writer.writeImage('seccomp.img', 'SECCOMP', [create(seccomp_entrySchema, { seccompFilters })]);
    writer.writeImage('cpuinfo.img', 'CPUINFO', [cpuinfoImage()]); // what the restore's CPU must have
    writer.writeImage('timens-0.img', 'TIMENS', [create(timens_entrySchema, { monotonic: clock(1), boottime: clock(7) })]);
    const tEnd = performance.now();
    writer.writeImage('stats-dump', 'STATS', [
      create(stats_entrySchema, {
        dump: {
          freezingTime: Math.round((tFrozen - t0) * 1000),
          frozenTime: Math.round((tEnd - tFrozen) * 1000),
          memdumpTime: Math.round((tMem - tFrozen) * 1000),
          memwriteTime: Math.round((tMem - tFrozen) * 1000),
          pagesScanned: BigInt(pagesWritten),
          pagesSkippedParent: 0n,
          pagesWritten: BigInt(pagesWritten),
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

    checkInterrupt();
    failpoint('dump:inventory');
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
        networkLockMethod: 0,
      }),
    );
    done = true;

    // The images are complete: now the tasks may go on, or go away.
    for (const t of open.splice(0).reverse()) closeTask(t);
    if (opts.leaveRunning) {
      restop(tasks);
      for (const tr of frozen) tr.release();
    } else {
      for (const tr of frozen) tr.kill();
      // A dead thread we trace stays a zombie until we wait for it, and its leader cannot be
      // reaped by its parent before that: wait for every non-leader thread.
      for (const tr of frozen) if (tr.tid !== tr.tgid) tr.waitGone();
      for (const tr of frozen) tr.release();
    }
    const totalMs = performance.now() - t0;
    log.info(`dump done in ${totalMs.toFixed(1)} ms, ${pagesWritten} pages`);
    return { pids: tasks.map((t) => t.pid), pagesWritten, frozenMs: tEnd - tFrozen, totalMs };
  } catch (e) {
    log.info(`dump failed: ${(e as Error).message}; putting the tasks back`);
    for (const t of open.reverse()) {
      try {
        closeTask(t);
      } catch (e2) {
        log.error(`pid ${t.pid}: could not restore its state: ${(e2 as Error).message}`);
      }
    }
    restop(tasks);
    for (const tr of frozen) {
      try {
        tr.release();
      } catch (e2) {
        log.error(`tid ${tr.tid}: detach failed: ${(e2 as Error).message}`);
      }
    }
    if (!done) writer.abort();
    throw e;
  } finally {
    for (const fd of table?.keepOpen ?? []) closeFd(fd);
  }
}

/** A page sink that takes an interrupt between chunks (16 MiB at most). */
const polled = (sink: { write(chunk: Buffer): void }) => (chunk: Buffer) => (checkInterrupt(), sink.write(chunk));

/**
 * Stops again the tasks that were stopped when we came (we continued them to work in them).
 * Sent while they are still ours, so the stop (which also drops our pending SIGCONT) is the first
 * thing they meet when released.
 */
function restop(tasks: TaskPlan[]): void {
  for (const t of tasks) {
    if (!t.stopped) continue;
    try {
      kill(t.pid, SIG.STOP);
    } catch {
      /* gone */
    }
  }
}

/** clock_gettime for the timens image (CLOCK_MONOTONIC = 1, CLOCK_BOOTTIME = 7). */
function clock(id: number): { tvSec: bigint; tvNsec: bigint } {
  const b = Buffer.alloc(16);
  sys('clock_gettime', [id, b]);
  return { tvSec: b.readBigInt64LE(0), tvNsec: b.readBigInt64LE(8) };
}
