// Collecting a frozen tree, task by task: each task taken over for injected syscalls (its
// threads and CLONE_VM children working in its scratch area), then its state, memory plan and
// fd table dumped, and each other thread's core.
import { dumperIds } from './ids.js';
import { kcmp, KCMP, checkInterrupt } from '../sys/index.js';
import type { Tracee } from '../ptrace/index.js';
import type { core_entry } from '../image/gen/core_pb.js';
import { IdAllocator, type DumpTask } from '../resources/context.js';
import type { FileTable } from '../resources/files/table.js';
import type { Log } from '../util/log.js';
import type { ProgressMeter } from '../util/progress-meter.js';
import { openTask, dumpTask, dumpThreadCores, type TaskImages } from './task.js';
import type { FrozenTree } from './freeze.js';

export interface CollectedTree {
  images: TaskImages[];
  threadCores: { tid: number; core: core_entry }[];
  /** cryo's own objects' ids: inventory.img's root_ids. */
  rootIds: TaskImages['ids'];
}

/**
 * Dumps every live task of `tree`. `open`, which the caller owns, gets every task taken over, so
 * that a failure (or the end) closes each: registers, mask and scratch area put back.
 */
export function collectTasks(tree: FrozenTree, files: FileTable, open: DumpTask[], log: Log, meter: ProgressMeter): CollectedTree {
  const ids = new IdAllocator();
  const rootIds = dumperIds(ids); // first: cryo's own objects take CRIU's first ids
  const images: TaskImages[] = [];
  const threadCores: CollectedTree['threadCores'] = [];
  const take = (tr: Tracee, sharer?: DumpTask, threads?: number) => {
    checkInterrupt();
    const t = openTask(tr, log, ids, sharer, threads, tree.restarted.get(tr.tid) ?? null);
    t.restartedCall = tree.restarted.get(t.pid);
    open.push(t);
    return t;
  };
  for (const t of tree.live) {
    // A task sharing its parent's memory (CLONE_VM) works in the parent's scratch area; its
    // memory is the parent's and is saved with it.
    const vmParent = t.ppid ? open.find((o) => o.pid === t.ppid && kcmp(t.ppid, t.pid, KCMP.VM) === 0) : undefined;
    const leader = take(tree.frozen.find((tr) => tr.tid === t.pid)!, vmParent, t.threads.length);
    const others = tree.frozen.filter((f) => f.tgid === t.pid && f.tid !== t.pid).map((tr) => take(tr, leader));
    images.push(dumpTask(leader, files, t.stopped, t.ppid || undefined));
    const cores = dumpThreadCores(others);
    others.forEach((th, i) => threadCores.push({ tid: th.pid, core: cores[i]! }));
    meter.task();
  }
  return { images, threadCores, rootIds };
}
