// `cryo dump`: check, freeze, collect, write, then release or kill. Any failure before the images
// are complete puts every task back as it was and removes the partial image directory. The
// steps live in their own modules (freeze.ts, tasks.ts, pages.ts, write*.ts); this is the order.
import { closeFd, checkInterrupt } from '../sys/index.js';
import type { Tracee } from '../ptrace/index.js';
import { ImageDirWriter } from '../image/dir.js';
import { saveSeccomp } from '../resources/task/seccomp.js';
import { FileTable } from '../resources/files/table.js';
import { dumpFd } from '../resources/files/fds.js';
import { scanFiles } from '../resources/files/scan.js';
import type { DumpTask } from '../resources/context.js';
import { UnsupportedError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';
import type { ProgressSink } from '../util/progress.js';
import { ProgressMeter } from '../util/progress-meter.js';
import { collectTree, treeBlockers, type TaskPlan } from './collect.js';
import { freezeTree, restop, holdingCgroup } from './freeze.js';
import { dumpCgroupDirs, type CgroupMode } from '../resources/cgroup/manage.js';
import { collectTasks } from './tasks.js';
import { plannedBytes, writePages } from './pages.js';
import { Snapshots, worthSnapshots } from './snapshot.js';
import { SnapshotGuard } from './snapshot-guard.js';
import { writeFileImages } from './write-files.js';
import { writeTreeImages, writeStats, writeInventory } from './write.js';
import { closeTask } from './task.js';
import { LeaveRunningProof } from './unchanged.js';
import { cpuinfoImage } from '../resources/task/cpu.js';
import { TcpDump } from '../resources/net/tcp-dump.js';
import type { NetworkLockMode } from '../resources/net/netlock.js';
import { dumpTreeNamespaces, writeNsImages, writeTimensImage, withCgnsPrefix, writeUsernsImage, credsInside } from '../resources/ns/index.js';
import { writeNetnsImages } from '../resources/netns/index.js';
import { dumpTreeMounts, writeMntImages } from '../resources/mnt/index.js';

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
  /** A terminal from outside the tree (the caller's) is allowed: the restore attaches its own (--shell-job). */
  shellJob?: boolean;
  /** Checksum the page images in the manifest too (a restore then reads them once more). */
  verifyPages?: boolean;
  /** Dump TCP connections in repair mode (--tcp-established), the network locked meanwhile. */
  tcpEstablished?: boolean;
  /**
   * Dump them as closed sockets instead (--tcp-close, over --tcp-established as in CRIU): no
   * repair mode, no lock; inventory.img says so and the restore makes them closed.
   */
  tcpClose?: boolean;
  /** --skip-in-flight: a TCP listener's connections not yet accepted are dropped, not refused. */
  skipInFlight?: boolean;
  /** How the network is locked for them (--network-lock; default nftables). */
  networkLock?: NetworkLockMode;
  /** --external mnt[MOUNTPOINT]:KEY: mounts of a container's namespace that come from the host. */
  externalMounts?: Map<string, string>;
  /** --external tty[RDEV:DEV]: terminals from outside, recorded as CRIU's EXT_TTY (resources/tty/external.ts). */
  externalTtys?: ReadonlySet<string>;
  /** --manage-cgroups: save the tree's cgroups with their settings (not with 'ignore'). */
  manageCgroups?: CgroupMode;
  /**
   * --frozen-copy: with --leave-running, the tree stays frozen until its memory is on disk (no
   * copy-on-write snapshot, dump/snapshot.ts).
   */
  frozenCopy?: boolean;
  /** --freeze-cgroup: freeze this cgroup directory ('' for the root's own v2 cgroup) while the tree is seized. */
  freezeCgroup?: string;
  log: Log;
  /** Told as pages are written and tasks done (at most every 16 MiB, every task). */
  onProgress?: ProgressSink;
}

export interface DumpResult {
  pids: number[];
  pagesWritten: number;
  frozenMs: number;
  totalMs: number;
}

export function dump(opts: DumpOptions): DumpResult {
  const { log } = opts;
  // --leave-running proves it: the same observable state under the freeze, before and after.
  const proof = opts.leaveRunning ? new LeaveRunningProof(log) : null;
  const t0 = performance.now();
  const since = () => performance.now() - t0;
  const { tasks, scan: checkScan, cgroup } = log.step('check', () => {
    failpoint('dump:collect');
    const c = collectTree(opts.pid, opts);
    if (c.blockers.length) throw new UnsupportedError(c.blockers);
    return c;
  });
  // SIGINT/SIGTERM/SIGHUP (armed by the caller, see sys/interrupt.ts) are polled between steps:
  // each task, each injected syscall, each chunk of pages; they unwind through the rollback below.
  checkInterrupt();
  log.info(`dumping ${tasks.map((t) => t.pid).join(', ')} into ${opts.dir}`);
  const writer = ImageDirWriter.create(opts.dir, { hashRaw: opts.verifyPages ?? false });
  const meter = new ProgressMeter('dump', opts.onProgress);
  const frozen: Tracee[] = [];
  const open: DumpTask[] = [];
  let done = false;
  let released = false;
  let snapshots: Snapshots | null = null;
  let guard: SnapshotGuard | null = null;
  let files: FileTable | null = null;
  let result: DumpResult;
  let tcp: TcpDump | null = null;
  try {
    const live = tasks.filter((t) => !t.zombie).map((t) => t.pid);
    if (opts.tcpEstablished && !opts.tcpClose) {
      tcp = log.step('tcp guard', () => TcpDump.start(opts.networkLock ?? 'nftables', live, checkScan));
      // Their tcp-stream images created now, empty: under the freeze only written (dir.ts reserve).
      log.step('reserve images', () => writer.reserve(tcp!.expectedImages));
    }
    // --leave-running: the guard of the snapshots to come, listening before anything is frozen
    // (no snapshots for a tree of little memory: written frozen in less time than the guard takes).
    const snapshotting = proof && !opts.frozenCopy && worthSnapshots(live);
    if (snapshotting) {
      guard = SnapshotGuard.start();
      log.step('snapshot guard', () => guard!.ready());
    }
    const tree = log.step('freeze', () => holdingCgroup(cgroup, tasks, log, () => {
      failpoint('dump:seize');
      return freezeTree(tasks, frozen);
    }));
    proof?.frozen(tree.live.map((t) => t.pid));
    const frozenAt = since();
    log.info(`frozen ${tasks.length} tasks in ${frozenAt.toFixed(1)} ms`);
    const collected = log.step('collect', () => {
      // Re-check under freeze: the tree may have changed between the check and the seize.
      const scan = scanFiles(tasks.map((t) => t.pid), opts);
      const again = treeBlockers(tasks, true, scan);
      if (again.length) throw new UnsupportedError(again);
      files = new FileTable(scan, (fd, table) => dumpFd(process.pid, fd, table).id);
      if (tcp) {
        // Right after the freeze, before any socket is read: the tree's connections locked.
        files.tcp = tcp;
        const n = log.step('lock network', () => tcp!.lockTree(live, scan, !opts.leaveRunning));
        if (n) log.info(`network locked for ${n} TCP connection(s)`);
      }
      meter.plan(0, tree.live.length);
      return collectTasks(tree, files, open, log, meter);
    });
    // The root's own UTS, IPC, network and time namespaces (a container's).
    const namespaces = log.step('namespaces', () => {
      failpoint('dump:namespaces');
      return dumpTreeNamespaces(opts.pid);
    });
    // The root's own mount namespace: its mounts and its tmpfs contents (resources/mnt).
    const mounts = log.step('mounts', () => {
      failpoint('dump:mounts');
      return dumpTreeMounts(opts.pid, opts.externalMounts ?? new Map());
    });
    const table = files!;
    const { images, threadCores } = collected;
    // In the root's cgroup namespace every task's cgroups carry its root (cg_member_entry cgns_prefix).
    if (namespaces.cgns) for (const i of images) i.cgroups = withCgnsPrefix(i.pid, i.cgroups, namespaces.cgns);
    // In the root's user namespace the credentials are kept as its tasks see them (CRIU's rule).
    if (namespaces.user) {
      for (const i of images) {
        const tc = i.core.threadCore;
        if (i.ids.userNsId === images[0]!.ids.userNsId && tc?.creds) tc.creds = credsInside(tc.creds, namespaces.user, `pid ${i.pid}`);
      }
    }
    failpoint('dump:pages');
    meter.plan(plannedBytes(images, table), tree.live.length);
    // --leave-running: the tasks' private memory is written from copy-on-write snapshots once the tree runs again.
    if (snapshotting) {
      const stopped = new Set(tasks.filter((t) => t.stopped).map((t) => t.pid));
      snapshots = log.step('snapshot', () => Snapshots.take(images, stopped, log, guard!));
    }
    const pages = log.step('pages', () => writePages(writer, images, table, meter, snapshots?.pids));
    let memDoneAt = since();
    const later = snapshots?.pids.size ? snapshots : null;
    // Last: the stats and inventory.img, which makes the directory a complete checkpoint.
    const finishImages = () => {
      writeStats(writer, { frozenAt, memDoneAt, endAt: since(), pagesWritten: pages.pagesWritten });
      checkInterrupt();
      failpoint('dump:inventory');
      writeInventory(writer, tasks, images[0]!, collected.rootIds, { netLock: tcp?.lockInfo ?? undefined, tcpClose: !!opts.tcpClose });
    };
    checkInterrupt();
    log.step('write', () => {
      // Before the cores are written: it sets their seccomp fields.
      const seccompFilters = saveSeccomp(frozen, [...images.map((i) => ({ tid: i.pid, core: i.core })), ...threadCores]);
      failpoint('dump:write');
      const cgroupDirs = opts.manageCgroups && opts.manageCgroups !== 'ignore' ? dumpCgroupDirs(images.map((i) => i.cgroups)) : [];
      writeTreeImages(writer, { tasks, images, threadCores, seccompFilters, ownIpcNs: namespaces.own.has('ipc'), cgroupDirs, lastPidOf: (pid) => snapshots?.lastPidOf(pid) });
      writeNsImages(writer, images[0]!.ids, namespaces.state);
      if (namespaces.net) writeNetnsImages(writer, images[0]!.ids.netNsId, namespaces.net);
      if (namespaces.time) writeTimensImage(writer, images[0]!.ids.timeNsId, namespaces.time);
      if (namespaces.user) writeUsernsImage(writer, images[0]!.ids.userNsId, namespaces.user);
      if (mounts) writeMntImages(writer, images[0]!.ids.mntNsId, mounts.mounts, mounts.tars);
      writeFileImages(writer, table);
      writer.writeImage('cpuinfo.img', 'CPUINFO', [cpuinfoImage()]); // what the restore's CPU must have
      for (const w of table.warnings) log.warn(w);
      if (!later) finishImages();
      tcp?.complete();
    });
    // The images are complete (but for the snapshots' pages and inventory.img): the tasks may go on, or go away.
    done = !later;
    const frozenMs = since() - frozenAt;
    log.step('release', () => release(tasks, frozen, open, proof, tcp, log));
    released = true;
    if (later) {
      log.step('snapshot pages', () => later.write(pages));
      memDoneAt = since();
      log.step('snapshot end', () => later.end());
      log.step('inventory', finishImages);
      done = true;
    }
    guard?.done();
    const totalMs = since();
    log.info(`dump done in ${totalMs.toFixed(1)} ms, ${pages.pagesWritten} pages`);
    result = { pids: tasks.map((t) => t.pid), pagesWritten: pages.pagesWritten, frozenMs, totalMs };
  } catch (e) {
    const snaps = snapshots as Snapshots | null;
    if (released) {
      log.info(`dump failed after the release: ${(e as Error).message}; the tasks run on`);
      snaps?.end();
    } else {
      log.info(`dump failed: ${(e as Error).message}; putting the tasks back`);
      snaps?.dropFrozen(); // while their remotes are open
      putBack(tasks, frozen, open, log, tcp);
    }
    (guard as SnapshotGuard | null)?.done();
    if (!done) writer.abort();
    throw e;
  } finally {
    for (const fd of (files as FileTable | null)?.keepOpen ?? []) closeFd(fd);
  }
  // Released: a task the dump changed runs changed all the same, and the error says how.
  proof?.verdict(tasks.filter((t) => t.stopped && !t.zombie).map((t) => t.pid));
  return result;
}

/** After a complete dump: the tasks go on (--leave-running) or are killed. */
function release(tasks: TaskPlan[], frozen: Tracee[], open: DumpTask[], proof: LeaveRunningProof | null, tcp: TcpDump | null, log: Log): void {
  for (const t of open.splice(0).reverse()) closeTask(t);
  if (proof) {
    proof.putBack();
    // Connections out of repair mode and the lock gone before the tasks run again.
    for (const e of tcp?.release() ?? []) log.error(e);
    restop(tasks);
    for (const tr of frozen) tr.release();
    return;
  }
  for (const tr of frozen) tr.kill();
  // A dead thread we trace stays a zombie until we wait for it, and its leader cannot be
  // reaped by its parent before that: wait for every non-leader thread.
  for (const tr of frozen) if (tr.tid !== tr.tgid) tr.waitGone();
  for (const tr of frozen) tr.release();
  // The tasks are dead: our copies of their sockets close silently, the lock waits for the restore.
  tcp?.keepForRestore();
}

/** After a failure: every task as it was when we came, running (or stopped) again. */
function putBack(tasks: TaskPlan[], frozen: Tracee[], open: DumpTask[], log: Log, tcp: TcpDump | null): void {
  for (const e of tcp?.release() ?? []) log.error(e);
  for (const t of open.reverse()) {
    try {
      closeTask(t);
    } catch (e) {
      log.error(`pid ${t.pid}: could not restore its state: ${(e as Error).message}`);
    }
  }
  restop(tasks);
  for (const tr of frozen) {
    try {
      tr.release();
    } catch (e) {
      log.error(`tid ${tr.tid}: detach failed: ${(e as Error).message}`);
    }
  }
}
