// `cryo restore`: read and check the images, wait for the PID to be free, create the task with
// clone3(set_tid) from a stub, rebuild it, and let it go. On any failure every process created
// for the restore is killed: nothing half-restored is left behind.
import { writeFileSync } from 'node:fs';
import { pidExists, wait4, PTRACE, ptraceTry, SIG } from '../sys/index.js';
import type { Tracee } from '../ptrace/index.js';
import { readCheckpoint } from './images.js';
import { startStub, forkWithPid, killStub, type Stub } from './stub.js';
import { restoreTask } from './task.js';
import { UserError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';

export interface RestoreOptions {
  dir: string;
  /** Leave the restored tree running and return (-d); otherwise wait for it to exit. */
  detach: boolean;
  pidfile?: string;
  log: Log;
  /** How long to wait for a PID still held by the dumped process (ms). */
  pidWaitMs?: number;
}

export interface RestoreResult {
  pid: number;
  ms: number;
  /** Exit status of the restored root when not detached. */
  exitCode?: number;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Waits (bounded) until nothing holds `pid`; a dumped task's PID is free only once reaped. */
export function waitPidFree(pid: number, ms: number): void {
  const deadline = Date.now() + ms;
  while (pidExists(pid)) {
    if (Date.now() > deadline) throw new UserError(`PID ${pid} is still in use after ${ms} ms — cannot restore it with its PID`);
    sleepMs(5);
  }
}

/** After a failed detached restore the killed task is init's to reap: wait until it has. */
function waitPidGone(pid: number, ms: number, log: Log): void {
  const deadline = Date.now() + ms;
  while (pidExists(pid)) {
    if (Date.now() > deadline) {
      log.warn(`pid ${pid}: killed, but not yet reaped by its new parent`);
      return;
    }
    sleepMs(2);
  }
}

export function restore(opts: RestoreOptions): RestoreResult {
  const { log } = opts;
  const t0 = performance.now();
  failpoint('restore:read');
  const ckpt = readCheckpoint(opts.dir);
  const img = ckpt.tasks[0]!;
  waitPidFree(img.pid, opts.pidWaitMs ?? Number(process.env.CRYO_PID_WAIT_MS ?? 5000));

  let stub: Stub | null = null;
  let task: Tracee | null = null;
  let ourChild = true;
  const threads: Tracee[] = [];
  try {
    failpoint('restore:stub');
    stub = startStub(img.memory.vmas, img.pid);
    failpoint('restore:fork');
    // The task is our child (CLONE_PARENT) so that a failure is reaped at once, except in one
    // case: detached with a parent-death signal, which our exit would fire. Then it is the
    // stub's child, orphaned when the stub goes, before that signal is set.
    const pdeath = (img.core.threadCore?.pdeathSig ?? 0) !== 0;
    ourChild = !opts.detach || !pdeath;
    task = forkWithPid(stub, img.pid, ourChild);
    const trampoline = stub.trampoline;
    killStub(stub);
    stub = null;
    const leader = task;
    const all = restoreTask(leader, trampoline, img, ckpt, log, (t) => threads.push(t));
    failpoint('restore:resume');
    if (opts.pidfile) writeFileSync(opts.pidfile, `${img.pid}\n`);
    for (const t of all.slice(1)) t.release();
    leader.release();
  } catch (e) {
    if (stub) killStub(stub);
    if (task) {
      try {
        process.kill(task.tid, 'SIGKILL');
      } catch {
        /* gone */
      }
      // A killed thread group: each traced thread must be waited for before it goes.
      for (const t of threads) reapThread(t.tid);
      ptraceTry(PTRACE.DETACH, task.tid, 0, 0);
      if (ourChild) reap(task.tid);
      else waitPidGone(task.tid, 10_000, log);
    }
    throw e;
  }
  const ms = performance.now() - t0;
  log.info(`restored pid ${img.pid} in ${ms.toFixed(1)} ms`);
  if (opts.detach) return { pid: img.pid, ms };
  const st = reap(img.pid);
  return { pid: img.pid, ms, exitCode: st };
}

function reapThread(tid: number): void {
  for (let i = 0; i < 100; i++) {
    let st;
    try {
      st = wait4(tid);
    } catch {
      return;
    }
    if (!st || st.exited || st.signaled) return;
  }
}

/** Waits for our child `pid` to end; returns its exit code (128+signal when killed). */
function reap(pid: number): number {
  for (;;) {
    let st;
    try {
      st = wait4(pid);
    } catch {
      return -1;
    }
    if (!st) continue;
    if (st.exited) return st.exitCode;
    if (st.signaled) return 128 + st.termSig;
    if (st.stopped && st.stopSig !== SIG.KILL) continue;
  }
}
