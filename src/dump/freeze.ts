// Freezing a tree: every thread of every task seized and interrupted, top-down, with threads and
// children born meanwhile taken too and tasks that ended meanwhile dropped. Undone (by the
// caller) with release(), or kill() once the images are complete. With --freeze-cgroup the
// tree's cgroup is frozen first (resources/cgroup/freeze.ts), so the tree stands still meanwhile.
import { existsSync } from 'node:fs';
import { kill, SIG, PTRACE_O, checkInterrupt } from '../sys/index.js';
import { Tracee } from '../ptrace/index.js';
import { seccompMode } from '../resources/task/seccomp.js';
import { restartedCall } from '../resources/task/regs.js';
import { threadsOf, endedMeanwhile, tryPlan, type TaskPlan } from './collect.js';
import { childrenOf } from '../resources/task/children.js';
import { CgroupFreeze, outsideBlocker, type FreezeTarget } from '../resources/cgroup/freeze.js';
import { FreezeGuard } from '../resources/cgroup/freeze-guard.js';
import { cgroupsBelow, procsOf } from '../resources/cgroup/hierarchy.js';
import { UnsupportedError } from '../util/errors.js';
import type { Log } from '../util/log.js';

export interface FrozenTree {
  /** Every thread we hold, in seize order. */
  frozen: Tracee[];
  /** The live tasks of the tree (zombies are in `tasks` only). */
  live: TaskPlan[];
  /** Each thread's interrupted system call to restart, by TID (see restartedCall). */
  restarted: Map<number, number | null>;
}

/**
 * Seizes `tasks` (parents before children; children found meanwhile are appended, tasks that
 * are gone are removed) into `frozen`, which the caller owns: on a throw it releases what is in
 * it. Top-down: once a task is frozen it cannot fork, so its children listed then are final.
 * Generation by generation: every task listed so far is told to stop at once and they come to
 * their stops side by side (one after the other, each seize waited for the scheduler to run the
 * task into its stop); then each one's children found since the listing are the next generation.
 */
export function freezeTree(tasks: TaskPlan[], frozen: Tracee[]): FrozenTree {
  const live: TaskPlan[] = [];
  const restarted = new Map<number, number | null>();
  const held = new Set(frozen.map((f) => f.tid));
  for (let from = 0; from < tasks.length; ) {
    const generation = tasks.slice(from).filter((t) => !t.zombie);
    from = tasks.length;
    seizeThreads(generation, tasks[0]!.pid, frozen, held, restarted);
    for (const t of generation) {
      if (!held.has(t.pid)) {
        // The task ended before we held it: gone (dropped below), or now a zombie of the tree.
        const again = tryPlan(t.pid, t.ppid);
        if (again?.zombie) Object.assign(t, again);
        continue;
      }
      // A task in group stop would stop again at every step we make it take: continue it. The
      // SIGCONT stays blocked and pending while we work; the task is stopped again on release.
      if (t.stopped) kill(t.pid, SIG.CONT);
      live.push(t);
      const listed = new Set(tasks.map((k) => k.pid));
      for (const kid of childrenOf(t.pid)) {
        if (listed.has(kid)) continue;
        const plan = tryPlan(kid, t.pid);
        if (plan) tasks.push(plan);
      }
    }
  }
  for (let i = tasks.length - 1; i >= 0; i--) {
    // A child listed before the freeze may have been reaped since.
    if (!tasks[i]!.zombie && !held.has(tasks[i]!.pid)) tasks.splice(i, 1);
    // A zombie listed then may have been reaped before its parent was frozen.
    else if (tasks[i]!.zombie && tryPlan(tasks[i]!.pid, tasks[i]!.ppid)?.zombie !== true) tasks.splice(i, 1);
  }
  return { frozen, live, restarted };
}

/**
 * Seizes every thread of `ts`: all told to stop first (Tracee.attach), then each waited for, so
 * that their stops overlap. Threads may be born while we seize: list again until no new one
 * appears. Threads may also end meanwhile: they are simply not part of the checkpoint (but the
 * root's leader must be held). Whatever fails, every thread told to stop has been waited for
 * (held, in `frozen`, or let go) before the error is thrown.
 */
function seizeThreads(ts: TaskPlan[], root: number, frozen: Tracee[], held: Set<number>, restarted: Map<number, number | null>): void {
  const failed = new Set<number>();
  let pending = ts.map((t) => ({ t, more: t.threads }));
  while (pending.length) {
    checkInterrupt();
    let error: unknown = null;
    const fail = (t: TaskPlan, tid: number, e: unknown) => {
      if ((t.pid === root && tid === root) || !endedMeanwhile(t.pid, tid)) error ??= e;
      else failed.add(tid);
    };
    const told: { t: TaskPlan; tr: Tracee }[] = [];
    for (const { t, more } of pending) {
      for (const tid of more) {
        try {
          restarted.set(tid, restartedCall(t.pid, tid));
          // A filter must not judge (or kill the task for) the calls we inject.
          told.push({ t, tr: Tracee.attach(tid, t.pid, seccompMode(tid) ? PTRACE_O.SUSPEND_SECCOMP : 0) });
        } catch (e) {
          fail(t, tid, e);
        }
      }
    }
    for (const { t, tr } of told) {
      try {
        tr.awaitInterrupt();
        frozen.push(tr);
        held.add(tr.tid);
      } catch (e) {
        fail(t, tr.tid, e);
      }
    }
    if (error) throw error;
    pending = pending.map(({ t }) => {
      const now = existsSync(`/proc/${t.pid}/task`) ? threadsOf(t.pid) : [];
      t.threads = now.filter((tid) => held.has(tid));
      return { t, more: now.filter((tid) => !failed.has(tid) && !held.has(tid)) };
    }).filter((p) => p.more.length);
  }
}

/**
 * Stops again the tasks that were stopped when we came (we continued them to work in them).
 * Sent while they are still ours, so the stop (which also drops our pending SIGCONT) is the first
 * thing they meet when released.
 */
export function restop(tasks: TaskPlan[]): void {
  for (const t of tasks) {
    if (!t.stopped) continue;
    try {
      kill(t.pid, SIG.STOP);
    } catch {
      /* gone */
    }
  }
}

/**
 * --freeze-cgroup: the cgroup frozen (and its guard started) around `seize`, which seizes the
 * tree while nothing in it runs; thawed once every task is held, or on any failure. Under the
 * freeze the cgroup's processes must be exactly the tree's (one born or moved in since the check
 * would be frozen with it, or left running).
 */
export function holdingCgroup<T>(target: FreezeTarget | null, tasks: TaskPlan[], log: Log, seize: () => T): T {
  if (!target) return seize();
  const guard = FreezeGuard.start(target.dir);
  const cg = new CgroupFreeze(target);
  let thawed = false;
  try {
    const { ms } = cg.freeze();
    log.info(`cgroup ${target.dir} frozen in ${ms.toFixed(1)} ms`);
    const out = seize();
    const held = new Set(tasks.map((t) => t.pid));
    const blockers = cgroupsBelow(target.dir).flatMap((d) => procsOf(d).filter((p) => !held.has(p))
      .map((p) => ({ pid: p, kind: 'cgroup', reason: `--freeze-cgroup: in ${d} but not in the tree — freezing the cgroup froze it too` })));
    for (const t of tasks.filter((k) => !k.zombie)) {
      const b = outsideBlocker(target, t.pid);
      if (b) blockers.push(b);
    }
    if (blockers.length) throw new UnsupportedError(blockers);
    return out;
  } finally {
    try {
      cg.thaw();
      thawed = true;
    } catch (e) {
      log.error(`--freeze-cgroup: could not thaw ${target.dir}: ${(e as Error).message}`);
    }
    // Not thawed: the guard is left to try, once its pipe closes.
    if (thawed) guard.done();
  }
}
