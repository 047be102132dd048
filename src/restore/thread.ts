// One thread's own state in the restore: set by the thread itself (alt stack, name, scheduling,
// timer slack, placement, seccomp, creds, rseq and futex lists, its pending signals), then its
// final registers, FPU state, TLS and mask once nothing more is injected.
import { getXstate, setXstate, setSigmask, cpuXsaveLayout } from '../sys/index.js';
import { thread_core_entrySchema, type core_entry } from '../image/gen/core_pb.js';
import { hasField } from '../image/presence.js';
import { xsaveFromFpregs } from '../image/xsave.js';
import { restoreTimerSlack } from '../resources/task/timerslack.js';
import { restorePlacement } from '../resources/task/placement.js';
import { restoreSpeculation } from '../resources/task/speculation.js';
import { restoreThreadState } from '../resources/task/thread.js';
import { restoreSigaltstack } from '../resources/task/signals.js';
import { restoreSeccomp, seccompChain } from '../resources/task/seccomp.js';
import { queuePending } from '../resources/task/pending.js';
import { isTimersOwn } from '../resources/task/posix-timers.js';
import { restoreTls } from '../resources/task/tls.js';
import { restoreCreds } from '../resources/task/creds.js';
import { restoreTaskAttributes } from '../resources/task/attributes.js';
import { restoreMceKill } from '../resources/task/mce-kill.js';
import { registersForResume, regsFromEntry, readTaskCode } from '../resources/task/regs.js';
import { CallQueue, type RestoreTask } from '../resources/context.js';
import type { CheckpointImage } from './images.js';

/** A thread being rebuilt: its tracee, injection context and image. */
export interface ThreadWork {
  r: RestoreTask;
  core: core_entry;
  /** Its groups are set already (before it joined the tree's user namespace). */
  groupsSet?: boolean;
  /**
   * Its batch code and scratch area are its own (a slot of the trampoline), not its leader's:
   * it runs its batches side by side with the leader's and the other such threads'.
   */
  ownArea?: boolean;
}

/**
 * Every thread's own state (restoreThread): the leader and the threads with an area of their own
 * side by side, each batch of theirs started in every thread before any is waited for (a
 * thread's state was two stops one after the other, each waiting for the scheduler: most of a
 * process of many threads' restore on a busy machine); then, one at a time, the threads that
 * share the leader's area.
 */
export function restoreThreads(work: ThreadWork[], ckpt: CheckpointImage, timerSignals: Set<number> = new Set()): void {
  const apart = work.filter((w, i) => i === 0 || w.ownArea);
  runSideBySide(apart.map((w) => restoreThread(w, ckpt, timerSignals)));
  for (const w of work.filter((w, i) => i > 0 && !w.ownArea)) runSideBySide([restoreThread(w, ckpt, timerSignals)]);
}

/** Runs the steps of several threads: at each yield, the queues they handed over are flushed together. */
function runSideBySide(steps: Generator<CallQueue, void, void>[]): void {
  let live = steps.map((g) => ({ g, at: g.next() }));
  for (;;) {
    live = live.filter((s) => !s.at.done);
    if (!live.length) return;
    CallQueue.flushAll(live.map((s) => s.at.value as CallQueue));
    for (const s of live) s.at = s.g.next();
  }
}

/**
 * Per-thread state, set by each thread itself: alt stack, name, creds, rseq, futex lists. Yields
 * its queue whenever the calls queued must have run before it goes on.
 */
/** `timerSignals`: timers whose pending signal the kernel queues again (posix-timers.ts): their siginfo is not queued. */
function* restoreThread({ r, core, groupsSet }: ThreadWork, ckpt: CheckpointImage, timerSignals: Set<number>): Generator<CallQueue, void, void> {
  const tcore = core.threadCore;
  if (!tcore) return;
  // Everything up to the credentials' capget is one batch, the rest of them another: a thread's
  // own state was ten stops or so. The queued calls' buffers share the scratch area until then.
  r.scratch.reset();
  const q = new CallQueue(r);
  restoreSigaltstack(r, tcore.sas, q);
  restoreTaskAttributes(r, {
    comm: tcore.comm || core.tc?.comm,
    pdeathSig: tcore.pdeathSig,
    schedNice: tcore.schedNice,
    schedPolicy: tcore.schedPolicy,
    schedPrio: tcore.schedPrio,
  }, q);
  if (hasField(thread_core_entrySchema, tcore, 'cryoTimerSlackNs')) restoreTimerSlack(q, tcore.cryoTimerSlackNs);
  restorePlacement(r.tracee.tid, {
    affinity: tcore.cryoCpuAffinity.length ? tcore.cryoCpuAffinity : null,
    ioprio: hasField(thread_core_entrySchema, tcore, 'cryoIoprio') ? tcore.cryoIoprio! : 0,
  });
  restoreSpeculation(q, tcore.cryoSpeculation);
  if (hasField(thread_core_entrySchema, tcore, 'cryoMceKill')) restoreMceKill(r, tcore.cryoMceKill!);
  // rseq, robust list and tid address need no privilege, and seccomp is suspended for us: they
  // go before the filters and credentials, in the same batch as the rest.
  restoreThreadState(r, {
    clearTidAddr: core.threadInfo!.clearTidAddr,
    robustHead: tcore.futexRla,
    robustLen: tcore.futexRlaLen,
    rseq: tcore.rseqEntry && tcore.rseqEntry.rseqAbiPointer
      ? { ptr: tcore.rseqEntry.rseqAbiPointer, size: tcore.rseqEntry.rseqAbiSize, signature: tcore.rseqEntry.signature }
      : null,
  }, q);
  // Filters while the task may still install them (root); suspended for us until release.
  if (tcore.seccompMode) {
    yield q;
    restoreSeccomp(r, seccompChain(ckpt.seccompFilters, tcore.seccompMode, tcore.seccompFilter));
    r.scratch.reset();
  }
  yield* restoreCreds(r, tcore.creds, q, groupsSet === true);
  // A periodic timer's own signal is queued by the kernel again (restorePosixTimers).
  const own = (tcore.signalsP?.signals.map((s) => s.siginfo) ?? []).filter((i) => !isTimersOwn(timerSignals, i));
  queuePending(r, own, false);
}

/**
 * Whether a thread's restore fits a trampoline slot of its own (restore/stub.ts THREAD_SLOT):
 * seccomp filters and long group lists take more room than a slot's scratch pages, so such a
 * thread uses its leader's area, one at a time.
 */
export function fitsSlot(core: core_entry): boolean {
  const tcore = core.threadCore;
  return !tcore?.seccompMode && (tcore?.creds?.groups.length ?? 0) <= 256;
}

/** Final registers, FPU state, TLS slots and signal mask of one thread. */
export function finishThread({ r, core }: ThreadWork, sigmask: bigint): void {
  const tid = r.pid;
  const regs = regsFromEntry(core.threadInfo!.gpregs!);
  r.remote.finish();
  r.tracee.setRegs(registersForResume(regs, (ip, n) => readTaskCode(tid, ip - BigInt(n), n)));
  restoreTls(tid, core.threadInfo!.tls);
  const fp = core.threadInfo!.fpregs;
  if (fp) setXstate(tid, xsaveFromFpregs(fp, getXstate(tid).length, undefined, cpuXsaveLayout()));
  setSigmask(tid, sigmask);
}
