// `cryo dump`: check, freeze, collect, write, then release or kill. Any failure before the images
// are complete puts every task back as it was and removes the partial image directory. The
// steps live in their own modules (freeze.ts, tasks.ts, pages.ts, write*.ts); this is the order.
import { closeFd, checkInterrupt } from '../sys/index.js';
import type { Tracee } from '../ptrace/index.js';
import { ImageDirWriter } from '../image/dir.js';
import { saveSeccomp } from '../resources/task/seccomp.js';
import { FileTable } from '../resources/files/table.js';
import { dumpFd } from '../resources/files/fds.js';
import { scanFiles, type FileScan } from '../resources/files/scan.js';
import type { DumpTask } from '../resources/context.js';
import { UnsupportedError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';
import type { ProgressSink } from '../util/progress.js';
import { ProgressMeter } from '../util/progress-meter.js';
import { collectTree, treeBlockers, type TaskPlan } from './collect.js';
import { freezeTree, restop, holdingCgroup, type FrozenTree } from './freeze.js';
import { dumpCgroupDirs, type CgroupMode } from '../resources/cgroup/manage.js';
import { collectTasks, type CollectedTree } from './tasks.js';
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
import { dumpTreeNamespaces, type TreeNamespaces, writeNsImages, writeTimensImage, withCgnsPrefix, writeUsernsImage, credsInside } from '../resources/ns/index.js';
import { writeNetnsImages } from '../resources/netns/index.js';
import { dumpTreeMounts, writeMntImages, type TreeMounts } from '../resources/mnt/index.js';

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
  const { tasks, scan: checkScan, cgroup } = log.step('check', () => checkedTree(opts));
  // SIGINT/SIGTERM/SIGHUP (armed by the caller, see sys/interrupt.ts) are polled between steps:
  // each task, each injected syscall, each chunk of pages; they unwind through the rollback below.
  checkInterrupt();
  log.info(`dumping ${tasks.map((t) => t.pid).join(', ')} into ${opts.dir}`);
  const writer = ImageDirWriter.create(opts.dir, { hashRaw: opts.verifyPages ?? false });
  const meter = new ProgressMeter('dump', opts.onProgress);
  const held: Held = { frozen: [], open: [], files: null, tcp: null, snapshots: null, guard: null };
  let done = false;
  let released = false;
  let result: DumpResult;
  try {
    const live = tasks.filter((t) => !t.zombie).map((t) => t.pid);
    // --leave-running: no snapshots for a tree of little memory (written frozen in less time than their guard takes to start).
    const snapshotting = !!proof && !opts.frozenCopy && worthSnapshots(live);
    startGuards(opts, live, checkScan, writer, held, snapshotting);
    const tree = log.step('freeze', () => holdingCgroup(cgroup, tasks, log, () => {
      failpoint('dump:seize');
      return freezeTree(tasks, held.frozen);
    }));
    proof?.frozen(tree.live.map((t) => t.pid));
    const frozenAt = since();
    log.info(`frozen ${tasks.length} tasks in ${frozenAt.toFixed(1)} ms`);
    const got = gather(opts, tree, tasks, live, held, meter);
    const table = held.files!;
    failpoint('dump:pages');
    meter.plan(plannedBytes(got.images, table), tree.live.length);
    // --leave-running: the tasks' private memory is written from copy-on-write snapshots once the tree runs again.
    if (snapshotting) {
      const stopped = new Set(tasks.filter((t) => t.stopped).map((t) => t.pid));
      held.snapshots = log.step('snapshot', () => Snapshots.take(got.images, stopped, log, held.guard!));
    }
    const snapshots = held.snapshots;
    const pages = log.step('pages', () => writePages(writer, got.images, table, meter, snapshots?.pids));
    let memDoneAt = since();
    const later = snapshots?.pids.size ? snapshots : null;
    // Last: the stats and inventory.img, which makes the directory a complete checkpoint.
    const finishImages = () => {
      writeStats(writer, { frozenAt, memDoneAt, endAt: since(), pagesWritten: pages.pagesWritten });
      checkInterrupt();
      failpoint('dump:inventory');
      writeInventory(writer, tasks, got.images[0]!, got.rootIds, { netLock: held.tcp?.lockInfo ?? undefined, tcpClose: !!opts.tcpClose });
    };
    checkInterrupt();
    log.step('write', () => {
      writeImages(writer, opts, tasks, got, held);
      if (!later) finishImages();
      held.tcp?.complete();
    });
    // The images are complete (but for the snapshots' pages and inventory.img): the tasks may go on, or go away.
    done = !later;
    const frozenMs = since() - frozenAt;
    log.step('release', () => release(tasks, held, proof, log));
    released = true;
    if (later) {
      log.step('snapshot pages', () => later.write(pages));
      memDoneAt = since();
      log.step('snapshot end', () => later.end());
      log.step('inventory', finishImages);
      done = true;
    }
    held.guard?.done();
    const totalMs = since();
    log.info(`dump done in ${totalMs.toFixed(1)} ms, ${pages.pagesWritten} pages`);
    result = { pids: tasks.map((t) => t.pid), pagesWritten: pages.pagesWritten, frozenMs, totalMs };
  } catch (e) {
    if (released) {
      log.info(`dump failed after the release: ${(e as Error).message}; the tasks run on`);
      held.snapshots?.end();
    } else {
      log.info(`dump failed: ${(e as Error).message}; putting the tasks back`);
      putBack(tasks, held, log);
    }
    held.guard?.done();
    if (!done) writer.abort();
    throw e;
  } finally {
    for (const fd of held.files?.keepOpen ?? []) closeFd(fd);
  }
  // Released: a task the dump changed runs changed all the same, and the error says how.
  proof?.verdict(tasks.filter((t) => t.stopped && !t.zombie).map((t) => t.pid));
  return result;
}

/** The tree to dump, or the dump refused with its blockers named. */
function checkedTree(opts: DumpOptions): ReturnType<typeof collectTree> {
  failpoint('dump:collect');
  // Queues are walked under the freeze only (resources/files/queue-walks.ts): a walk now would
  // hide their empty messages from the walks that count.
  const c = collectTree(opts.pid, { ...opts, peekQueues: false });
  if (c.blockers.length) throw new UnsupportedError(c.blockers);
  return c;
}

/**
 * Before the freeze, the processes that undo what a SIGKILL of cryo would leave: the TCP guard
 * (connections in repair mode, the network lock) and the snapshot guard (snapshots to reap).
 */
function startGuards(opts: DumpOptions, live: number[], checkScan: FileScan, writer: ImageDirWriter, held: Held, snapshotting: boolean): void {
  const { log } = opts;
  if (opts.tcpEstablished && !opts.tcpClose) {
    const tcp = held.tcp = log.step('tcp guard', () => TcpDump.start(opts.networkLock ?? 'nftables', live, checkScan));
    // Their tcp-stream images created now, empty: under the freeze only written (dir.ts reserve).
    log.step('reserve images', () => writer.reserve(tcp.expectedImages));
  }
  // Listening before anything is frozen: the freeze never waits for it.
  if (snapshotting) {
    const guard = held.guard = SnapshotGuard.start();
    log.step('snapshot guard', () => guard.ready());
  }
}

/** What a dump holds while it runs: put back, released or closed on every way out. */
interface Held {
  frozen: Tracee[];
  open: DumpTask[];
  files: FileTable | null;
  tcp: TcpDump | null;
  snapshots: Snapshots | null;
  guard: SnapshotGuard | null;
}

type Gathered = CollectedTree & { namespaces: TreeNamespaces; mounts: TreeMounts | null };

/** Under the freeze: the tree checked again, every task's state and fds, the root's namespaces and mounts. */
function gather(opts: DumpOptions, tree: FrozenTree, tasks: TaskPlan[], live: number[], held: Held, meter: ProgressMeter): Gathered {
  const { log } = opts;
  const collected = log.step('collect', () => {
    // Re-check under freeze: the tree may have changed between the check and the seize.
    const scan = scanFiles(tasks.map((t) => t.pid), opts);
    const again = treeBlockers(tasks, true, scan);
    if (again.length) throw new UnsupportedError(again);
    const files = held.files = new FileTable(scan, (fd, table) => dumpFd(process.pid, fd, table).id);
    const tcp = held.tcp;
    if (tcp) {
      // Right after the freeze, before any socket is read: the tree's connections locked.
      files.tcp = tcp;
      const n = log.step('lock network', () => tcp.lockTree(live, scan, !opts.leaveRunning));
      if (n) log.info(`network locked for ${n} TCP connection(s)`);
    }
    meter.plan(0, tree.live.length);
    return collectTasks(tree, files, held.open, log, meter);
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
  const { images } = collected;
  // In the root's cgroup namespace every task's cgroups carry its root (cg_member_entry cgns_prefix).
  if (namespaces.cgns) for (const i of images) i.cgroups = withCgnsPrefix(i.pid, i.cgroups, namespaces.cgns);
  // In the root's user namespace the credentials are kept as its tasks see them (CRIU's rule).
  if (namespaces.user) {
    for (const i of images) {
      const tc = i.core.threadCore;
      if (i.ids.userNsId === images[0]!.ids.userNsId && tc?.creds) tc.creds = credsInside(tc.creds, namespaces.user, `pid ${i.pid}`);
    }
  }
  return { ...collected, namespaces, mounts };
}

/** Every image but the pages, the stats and inventory.img: the tree's, its namespaces', its files'. */
function writeImages(writer: ImageDirWriter, opts: DumpOptions, tasks: TaskPlan[], got: Gathered, held: Held): void {
  const { images, threadCores, namespaces, mounts } = got;
  const ids = images[0]!.ids;
  // Before the cores are written: it sets their seccomp fields.
  const seccompFilters = saveSeccomp(held.frozen, [...images.map((i) => ({ tid: i.pid, core: i.core })), ...threadCores]);
  failpoint('dump:write');
  const cgroupDirs = opts.manageCgroups && opts.manageCgroups !== 'ignore' ? dumpCgroupDirs(images.map((i) => i.cgroups)) : [];
  writeTreeImages(writer, { tasks, images, threadCores, seccompFilters, ownIpcNs: namespaces.own.has('ipc'), cgroupDirs, lastPidOf: (pid) => held.snapshots?.lastPidOf(pid) });
  writeNsImages(writer, ids, namespaces.state);
  if (namespaces.net) writeNetnsImages(writer, ids.netNsId, namespaces.net);
  if (namespaces.time) writeTimensImage(writer, ids.timeNsId, namespaces.time);
  if (namespaces.user) writeUsernsImage(writer, ids.userNsId, namespaces.user);
  if (mounts) writeMntImages(writer, ids.mntNsId, mounts.mounts, mounts.tars);
  writeFileImages(writer, held.files!);
  writer.writeImage('cpuinfo.img', 'CPUINFO', [cpuinfoImage()]); // what the restore's CPU must have
  for (const w of held.files!.warnings) opts.log.warn(w);
}

/** After a complete dump: the tasks go on (--leave-running) or are killed. */
function release(tasks: TaskPlan[], held: Held, proof: LeaveRunningProof | null, log: Log): void {
  const { frozen, open, tcp } = held;
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
function putBack(tasks: TaskPlan[], held: Held, log: Log): void {
  const { frozen, open, tcp } = held;
  held.snapshots?.dropFrozen(); // while their remotes are open
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
