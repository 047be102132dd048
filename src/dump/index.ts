// `cryo dump`: check, freeze, collect, write, then release or kill. Any failure before the images
// are complete puts every task back as it was and removes the partial image directory. The
// steps live in their own modules (freeze.ts, tasks.ts, pages.ts, write*.ts); this is the order.
import { closeFd, checkInterrupt } from '../sys/index.js';
import type { Tracee } from '../ptrace/index.js';
import { ImageDirWriter } from '../image/dir.js';
import { saveSeccomp } from '../resources/task/seccomp.js';
import { FileTable } from '../resources/files/table.js';
import { scanFiles } from '../resources/files/scan.js';
import type { DumpTask } from '../resources/context.js';
import { UnsupportedError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';
import type { ProgressSink } from '../util/progress.js';
import { ProgressMeter } from '../util/progress-meter.js';
import { collectTree, treeBlockers, type TaskPlan } from './collect.js';
import { freezeTree, restop } from './freeze.js';
import { collectTasks } from './tasks.js';
import { plannedBytes, writePages } from './pages.js';
import { writeFileImages } from './write-files.js';
import { writeTreeImages, writeStats, writeInventory } from './write.js';
import { closeTask } from './task.js';
import { provenUnchanged } from './unchanged.js';
import { cpuinfoImage } from '../resources/task/cpu.js';
import { dumpTreeNamespaces, writeNsImages } from '../resources/ns/index.js';

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
  // --leave-running proves it: the same observable state before the freeze and after the release.
  return opts.leaveRunning ? provenUnchanged(opts.pid, opts.log, () => dumpAndRelease(opts)) : dumpAndRelease(opts);
}

function dumpAndRelease(opts: DumpOptions): DumpResult {
  const { log } = opts;
  const t0 = performance.now();
  const since = () => performance.now() - t0;
  const { tasks } = log.step('check', () => {
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
  let files: FileTable | null = null;
  try {
    failpoint('dump:seize');
    const tree = log.step('freeze', () => freezeTree(tasks, frozen));
    const frozenAt = since();
    log.info(`frozen ${tasks.length} tasks in ${frozenAt.toFixed(1)} ms`);
    const collected = log.step('collect', () => {
      // Re-check under freeze: the tree may have changed between the check and the seize.
      const scan = scanFiles(tasks.map((t) => t.pid), opts);
      const again = treeBlockers(tasks, true, scan);
      if (again.length) throw new UnsupportedError(again);
      files = new FileTable(scan);
      meter.plan(0, tree.live.length);
      return collectTasks(tree, files, open, log, meter);
    });
    // The root's own UTS and IPC namespaces (a container's), read from inside them.
    const namespaces = log.step('namespaces', () => {
      failpoint('dump:namespaces');
      return dumpTreeNamespaces(opts.pid);
    });
    const table = files!;
    const { images, threadCores } = collected;
    failpoint('dump:pages');
    meter.plan(plannedBytes(images, table), tree.live.length);
    const pagesWritten = log.step('pages', () => writePages(writer, images, table, meter));
    const memDoneAt = since();
    checkInterrupt();
    log.step('write', () => {
      // Before the cores are written: it sets their seccomp fields.
      const seccompFilters = saveSeccomp(frozen, [...images.map((i) => ({ tid: i.pid, core: i.core })), ...threadCores]);
      failpoint('dump:write');
      writeTreeImages(writer, { tasks, images, threadCores, seccompFilters, ownIpcNs: namespaces.own.has('ipc') });
      writeNsImages(writer, images[0]!.ids, namespaces.state);
      writeFileImages(writer, table);
      writer.writeImage('cpuinfo.img', 'CPUINFO', [cpuinfoImage()]); // what the restore's CPU must have
      for (const w of table.warnings) log.warn(w);
      writeStats(writer, { frozenAt, memDoneAt, endAt: since(), pagesWritten });
      checkInterrupt();
      failpoint('dump:inventory');
      writeInventory(writer, tasks, images[0]!, collected.rootIds);
    });
    done = true;
    const frozenMs = since() - frozenAt;
    // The images are complete: now the tasks may go on, or go away.
    log.step('release', () => release(tasks, frozen, open, opts.leaveRunning));
    const totalMs = since();
    log.info(`dump done in ${totalMs.toFixed(1)} ms, ${pagesWritten} pages`);
    return { pids: tasks.map((t) => t.pid), pagesWritten, frozenMs, totalMs };
  } catch (e) {
    log.info(`dump failed: ${(e as Error).message}; putting the tasks back`);
    putBack(tasks, frozen, open, log);
    if (!done) writer.abort();
    throw e;
  } finally {
    for (const fd of (files as FileTable | null)?.keepOpen ?? []) closeFd(fd);
  }
}

/** After a complete dump: the tasks go on (--leave-running) or are killed. */
function release(tasks: TaskPlan[], frozen: Tracee[], open: DumpTask[], leaveRunning: boolean): void {
  for (const t of open.splice(0).reverse()) closeTask(t);
  if (leaveRunning) {
    restop(tasks);
    for (const tr of frozen) tr.release();
    return;
  }
  for (const tr of frozen) tr.kill();
  // A dead thread we trace stays a zombie until we wait for it, and its leader cannot be
  // reaped by its parent before that: wait for every non-leader thread.
  for (const tr of frozen) if (tr.tid !== tr.tgid) tr.waitGone();
  for (const tr of frozen) tr.release();
}

/** After a failure: every task as it was when we came, running (or stopped) again. */
function putBack(tasks: TaskPlan[], frozen: Tracee[], open: DumpTask[], log: Log): void {
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
