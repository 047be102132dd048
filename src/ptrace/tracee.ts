// A task under our ptrace control. All calls must come from the thread that attached (Node's
// main thread): ptrace is per-thread on the tracer side.
import {
  PTRACE, PTRACE_EVENT, PTRACE_O, SIG, ptrace, ptraceTry, wait4, tgkill, getRegs, setRegs, Regs,
  type WaitStatus, SysError, E,
} from '../sys/index.js';

import { readFileSync } from 'node:fs';

export class TraceeError extends Error {
  constructor(readonly tid: number, message: string) {
    super(`tid ${tid}: ${message}`);
    this.name = 'TraceeError';
  }
}

export class Tracee {
  /** Signals dequeued by a signal-delivery-stop while we froze the task; re-sent on release. */
  readonly deferredSignals: number[] = [];
  attached = true;
  /** The PTRACE_O_* options in force (PTRACE_SETOPTIONS replaces them all: add to these). */
  options = 0;

  private constructor(readonly tid: number, readonly tgid: number) {}

  private own?: { tgid: number; tid: number };
  /**
   * The task's TGID and TID as it sees them itself, in its own (innermost) PID namespace: what a
   * syscall injected into it (tgkill, rt_sigqueueinfo) must name. tgid/tid are cryo's view.
   */
  ownIds(): { tgid: number; tid: number } {
    if (!this.own) {
      const status = readFileSync(`/proc/${this.tgid}/task/${this.tid}/status`, 'utf8');
      const last = (key: string, dflt: number) => Number(new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim().split(/\s+/).pop() ?? dflt);
      this.own = { tgid: last('NStgid', this.tgid), tid: last('NSpid', this.tid) };
    }
    return this.own;
  }

  /**
   * PTRACE_SEIZE + PTRACE_INTERRUPT, then wait until the task sits in a ptrace stop.
   * A signal caught on the way is held back and re-sent by release().
   */
  static seize(tid: number, tgid: number, options = 0): Tracee {
    const t = Tracee.attach(tid, tgid, options);
    t.awaitInterrupt();
    return t;
  }

  /**
   * The first half of seize(): PTRACE_SEIZE + PTRACE_INTERRUPT, without waiting, so that many
   * tasks can be told to stop at once and come to their stops side by side (awaitInterrupt).
   * Until then the task is ours but may still run: nothing may be done to it but wait.
   */
  static attach(tid: number, tgid: number, options = 0): Tracee {
    ptrace(PTRACE.SEIZE, tid, 0, options, `seize tid ${tid}`);
    const t = new Tracee(tid, tgid);
    t.options = options;
    try {
      ptrace(PTRACE.INTERRUPT, tid);
    } catch (e) {
      ptraceTry(PTRACE.DETACH, tid, 0, 0);
      t.attached = false;
      throw e;
    }
    return t;
  }

  /** The second half of seize(): waits for the interrupt stop; on failure the task is let go. */
  awaitInterrupt(): void {
    try {
      this.waitForInterrupt();
    } catch (e) {
      ptraceTry(PTRACE.DETACH, this.tid, 0, 0);
      this.attached = false;
      throw e;
    }
  }

  /**
   * Wraps a task that became traced by itself (auto-attach on fork/clone); waits its first stop.
   * `options`: its parent's, which the kernel copied into it at the fork (kept here, so that a
   * later PTRACE_SETOPTIONS adds to them instead of dropping EXITKILL or SUSPEND_SECCOMP).
   */
  static adopt(tid: number, tgid: number, options: number): Tracee {
    const t = new Tracee(tid, tgid);
    t.options = options;
    const st = t.wait();
    if (!st.stopped) throw new TraceeError(tid, `new task did not stop (status 0x${st.raw.toString(16)})`);
    return t;
  }

  private waitForInterrupt(): void {
    for (;;) {
      const st = this.wait();
      if (!st.stopped) throw new TraceeError(this.tid, 'exited while being frozen');
      if (st.event === PTRACE_EVENT.STOP) return;
      if (st.event !== 0) {
        // Another ptrace event (fork, exec...) raced with the interrupt: let it go on.
        ptrace(PTRACE.CONT, this.tid, 0, 0);
        continue;
      }
      // A signal-delivery-stop: hold the signal back, keep waiting for the interrupt stop.
      this.deferredSignals.push(st.stopSig);
      ptrace(PTRACE.CONT, this.tid, 0, 0);
    }
  }

  wait(): WaitStatus {
    const st = wait4(this.tid);
    traceeStops++;
    if (stopSites) tallySite(stopSites);
    if (!st) throw new TraceeError(this.tid, 'wait returned nothing');
    if (st.exited || st.signaled) this.attached = false;
    return st;
  }

  regs(): Regs {
    return getRegs(this.tid);
  }

  setRegs(r: Regs): void {
    setRegs(this.tid, r);
  }

  step(): WaitStatus {
    ptrace(PTRACE.SINGLESTEP, this.tid, 0, 0);
    return this.wait();
  }

  /**
   * Runs the task (whose registers are set to a syscall instruction) to the call's syscall-exit
   * stop: PTRACE_SYSCALL to the entry stop, then to the exit stop. Job-control stops on the
   * way are passed; reports the stops as SIGTRAP|0x80 (TRACESYSGOOD) so that no real SIGTRAP
   * can pass for one.
   */
  syscallStops(nr: number): void {
    if (!(this.options & PTRACE_O.TRACESYSGOOD)) {
      this.options |= PTRACE_O.TRACESYSGOOD;
      ptrace(PTRACE.SETOPTIONS, this.tid, 0, this.options);
    }
    for (let stops = 0; stops < 2; ) {
      ptrace(PTRACE.SYSCALL, this.tid, 0, 0);
      const st = this.wait();
      if (!st.stopped) throw new TraceeError(this.tid, `died during injected syscall ${nr}`);
      if (st.event === PTRACE_EVENT.STOP) continue;
      if (st.stopSig !== (SIG.TRAP | 0x80) || st.event !== 0) {
        throw new TraceeError(this.tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in injected syscall ${nr}`);
      }
      stops++;
    }
  }

  /**
   * Moves the task from a syscall-exit stop into an interrupt stop. The kernel restarts a system
   * call the freeze interrupted (rax -ERESTART*) only on the signal path of the return to user
   * mode, which a syscall-exit stop has already passed; an interrupt stop is on it. No user
   * instruction runs in between: the stop comes on the way out of the kernel. A signal dequeued
   * first is held back (re-sent on release).
   */
  interruptStop(): void {
    ptrace(PTRACE.INTERRUPT, this.tid);
    ptrace(PTRACE.CONT, this.tid, 0, 0);
    for (;;) {
      const st = this.wait();
      if (!st.stopped) throw new TraceeError(this.tid, 'died while being put back');
      if (st.event === PTRACE_EVENT.STOP) break;
      if (st.event === 0 && st.stopSig !== (SIG.TRAP | 0x80) && !this.deferredSignals.includes(st.stopSig)) this.deferredSignals.push(st.stopSig);
      ptrace(PTRACE.CONT, this.tid, 0, 0);
    }
  }

  /** Lets the task run again and forget us; held-back signals are sent back to it. */
  release(): void {
    if (!this.attached) return;
    const errno = ptraceTry(PTRACE.DETACH, this.tid, 0, 0);
    this.attached = false;
    if (errno !== 0 && errno !== E.ESRCH) throw new SysError('ptrace(DETACH)', errno, `tid ${this.tid}`);
    for (const sig of this.deferredSignals) {
      try {
        tgkill(this.tgid, this.tid, sig);
      } catch {
        /* the task is gone: nothing left to deliver to */
      }
    }
    this.deferredSignals.length = 0;
  }

  /** Waits (as its tracer) until a killed task is dead. */
  waitGone(): void {
    for (let i = 0; i < 100; i++) {
      let st;
      try {
        st = wait4(this.tid);
      } catch {
        return; // already reaped
      }
      if (!st || st.exited || st.signaled) return;
    }
  }

  /** Kills the task (it is traced, so SIGKILL goes through at once) and reaps it if it is ours. */
  kill(): void {
    try {
      tgkill(this.tgid, this.tid, SIG.KILL);
    } catch {
      /* already gone */
    }
    this.attached = false;
  }
}

let traceeStops = 0;

/**
 * How many times a tracee stopped for us (each a round trip through the scheduler, the cost the
 * batching of injected calls cuts), since this process started: the log and the benchmarks
 * report it, a figure that does not depend on how busy the machine is.
 */
export function traceeStopCount(): number {
  return traceeStops;
}

/**
 * CRYO_STOP_SITES=1: every stop is also counted by where cryo waited for it (the first frames
 * outside ptrace/), and traceeStopSites() gives the tally: which step's stops a tree or a thread
 * multiplies. A figure for the benchmarks only (a stack per stop is not free).
 */
const stopSites: Map<string, number> | null = process.env.CRYO_STOP_SITES ? new Map() : null;

function tallySite(sites: Map<string, number>): void {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 24;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const frames = stack.split('\n').slice(2).map((l) => /at (?:(\S+) \()?.*\/(src\/[^:)]+):(\d+)/.exec(l)).filter((m) => m !== null);
  const outside = frames.findIndex((m) => !m[2]!.startsWith('src/ptrace/'));
  const key = frames.slice(Math.max(0, outside - 1), outside + 2).map((m) => `${m[1] ?? '?'}@${m[2]!.replace(/^src\//, '')}:${m[3]}`).join(' < ');
  sites.set(key, (sites.get(key) ?? 0) + 1);
}

/** The stops by site since start (CRYO_STOP_SITES set), most first; empty otherwise. */
export function traceeStopSites(): [string, number][] {
  return stopSites ? [...stopSites].sort((a, b) => b[1] - a[1]) : [];
}
