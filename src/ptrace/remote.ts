// Making a stopped task execute system calls for us: set its registers so that rip points at a
// `syscall` instruction, single-step over it, read rax, and finally put the registers back.
import { E, Regs, PTRACE, PTRACE_EVENT, SIG, ptrace, getEventMsg, getSigmask, setSigmask, errnoName, checkInterrupt, vmRead, vmWrite, type SyscallName, NR } from '../sys/index.js';
import { Tracee, TraceeError } from './tracee.js';
import { batchCode, callsThatFit, type CodedCall } from './batch-code.js';

export class RemoteSyscallError extends Error {
  constructor(readonly tid: number, readonly call: string, readonly errno: number, detail?: string) {
    super(`tid ${tid}: ${call}${detail ? ` (${detail})` : ''} failed in the task: ${errnoName(errno)}`);
    this.name = 'RemoteSyscallError';
  }
}

const ALL_SIGNALS = (1n << 64n) - 1n;
/**
 * Every signal but SIGTRAP. A single step ends in a forced SIGTRAP, and the kernel, finding it
 * blocked, would unblock it and reset the task's SIGTRAP handler to SIG_DFL.
 */
export const ALL_BUT_SIGTRAP = ALL_SIGNALS & ~(1n << BigInt(SIG.TRAP - 1));

export type RemoteArg = number | bigint;

/** The syscall argument registers, in order. */
const ARG_REGS = ['di', 'si', 'dx', 'r10', 'r8', 'r9'] as const;

/** One call of a batch: by name, with the text its error names. */
export interface BatchCall {
  name: SyscallName;
  args: RemoteArg[];
  detail?: string;
  /** An error result is the call's answer (a probe), not the end of the batch. */
  mayFail?: boolean;
}

/**
 * Where a batch runs: `codeAt` is executable memory of the task that process_vm_writev can write
 * (the restore's trampoline page past its first bytes), `resultsAt` scratch memory for 8 bytes a call.
 */
export interface BatchArea {
  codeAt: bigint;
  codeSize: number;
  resultsAt: bigint;
}

/**
 * A writable and executable mmap refused with EACCES: the process set PR_SET_MDWE (systemd's
 * MemoryDenyWriteExecute= does). /proc does not show the setting; this is how cryo learns it.
 */
export function deniedWriteExec(e: unknown): boolean {
  return e instanceof RemoteSyscallError && e.call === 'mmap' && e.errno === E.EACCES;
}

/** A call's raw result, or RemoteSyscallError for an error (-4095..-1). */
export function checkedResult(tid: number, name: string, ret: bigint, detail?: string): bigint {
  if (ret < 0n && ret >= -4095n) throw new RemoteSyscallError(tid, name, Number(-ret), detail);
  return ret;
}

/** Calls as batchCode takes them. */
export function codedCalls(calls: readonly BatchCall[]): CodedCall[] {
  return calls.map((c) => ({ nr: NR[c.name], args: c.args.map((a) => BigInt(a)), mayFail: c.mayFail === true }));
}

/** `calls` cut into runs whose code each fits `size` bytes at `codeAt` (one stop each). */
export function batchRuns(calls: BatchCall[], codeAt: bigint, resultsAt: bigint, size: number, endsInJump = false): BatchCall[][] {
  const coded = codedCalls(calls);
  const runs: BatchCall[][] = [];
  for (let i = 0; i < calls.length; ) {
    const n = callsThatFit(coded.slice(i), codeAt, resultsAt, size, endsInJump);
    if (n === 0) throw new Error(`a batch's code area of ${size} bytes holds not even one call`);
    runs.push(calls.slice(i, i + n));
    i += n;
  }
  return runs;
}

/** A batch running in a task (Remote.startBatch), to be waited for (Remote.endBatch). */
export interface RunningBatch {
  calls: BatchCall[];
  resultsAt: bigint;
  trapAt: bigint;
}

/** One task's part of batchesSideBySide: its calls cut into runs (Remote.batchRuns) and where they run. */
export interface SideBySideJob {
  remote: Remote;
  runs: BatchCall[][];
  area: BatchArea;
}

/**
 * Runs several tasks' batches side by side (threads of a process, each with batch code and
 * result memory of its own): each one's next run started in every task before any is waited
 * for, so that their stops overlap instead of each waiting for the scheduler in turn. Returns
 * each job's results. Every batch started is waited for before an error (the first) is thrown:
 * no task is left running.
 */
export function batchesSideBySide(jobs: SideBySideJob[]): bigint[][] {
  const results = jobs.map((): bigint[] => []);
  for (let k = 0; jobs.some((j) => k < j.runs.length); k++) {
    let error: unknown = null;
    const started: { i: number; b: RunningBatch }[] = [];
    for (const [i, j] of jobs.entries()) {
      if (k >= j.runs.length) continue;
      try {
        started.push({ i, b: j.remote.startBatch(j.runs[k]!, j.area) });
      } catch (e) {
        error = e;
        break;
      }
    }
    for (const { i, b } of started) {
      try {
        results[i]!.push(...jobs[i]!.remote.endBatch(b));
      } catch (e) {
        error ??= e;
      }
    }
    if (error) throw error;
  }
  return results;
}

/** A result slot no call wrote: below every error (-4095..-1), never a user address. */
const NOT_RUN = -4096n;

/** The result slots of `calls` before a batch runs: none written. */
export function unwrittenSlots(n: number): Buffer {
  const slots = Buffer.alloc(8 * n);
  for (let i = 0; i < n; i++) slots.writeBigInt64LE(NOT_RUN, 8 * i);
  return slots;
}

/**
 * A batch's results read back from `resultsAt`: each call's rax; throws RemoteSyscallError for the
 * first that failed (the ones after it did not run), as call() would.
 */
export function batchResults(tid: number, calls: readonly BatchCall[], resultsAt: bigint): bigint[] {
  const got = Buffer.alloc(8 * calls.length);
  if (vmRead(tid, got, [{ addr: resultsAt, len: got.length }]) !== got.length) throw new TraceeError(tid, 'short read of batch results');
  const results: bigint[] = [];
  for (let i = 0; i < calls.length; i++) {
    const res = got.readBigInt64LE(8 * i);
    if (res === NOT_RUN) break;
    if (res < 0n && res >= -4095n && !calls[i]!.mayFail) throw new RemoteSyscallError(tid, calls[i]!.name, Number(-res), calls[i]!.detail);
    results.push(res);
  }
  if (results.length !== calls.length) throw new TraceeError(tid, `batch stopped after ${results.length} of ${calls.length} calls`);
  return results;
}

export class Remote {
  protected readonly saved: Regs;
  protected readonly savedMask: bigint;
  protected active = true;
  /** The last call ran to a syscall-exit stop (callWithoutStep): see finish(). */
  private inSyscallStop = false;
  count = 0;

  /**
   * Takes over `t` (which must be in a ptrace stop). `syscallAt` is the address of a `0f 05`
   * (syscall) instruction mapped executable in the task. Signals (but SIGTRAP) are blocked while
   * we work so none is dequeued under us; restore() puts the mask back. `blockNow` false: the
   * subclass sets the mask itself, when it is safe to.
   */
  constructor(readonly t: Tracee, public syscallAt: bigint, blockNow = true) {
    this.saved = t.regs();
    this.savedMask = getSigmask(t.tid);
    if (blockNow) setSigmask(t.tid, ALL_BUT_SIGTRAP);
  }

  get originalRegs(): Regs {
    return this.saved.clone();
  }

  get originalSigmask(): bigint {
    return this.savedMask;
  }

  /** The task's own registers with syscall `nr` and its arguments loaded (rip is the caller's). */
  protected callRegs(nr: number, args: RemoteArg[]): Regs {
    const r = this.saved.clone();
    r.set('ax', nr);
    r.set('orig_ax', -1n); // not inside a syscall: no restart logic on resume
    ARG_REGS.forEach((n, i) => r.set(n, BigInt.asUintN(64, BigInt(args[i] ?? 0))));
    return r;
  }

  /** Runs one syscall in the task; returns the raw signed result (-errno on failure). */
  raw(nr: number, args: RemoteArg[] = []): bigint {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    checkInterrupt();
    const r = this.callRegs(nr, args);
    r.set('ip', this.syscallAt);
    this.t.setRegs(r);
    this.inSyscallStop = false;
    let st = this.t.step();
    // A job-control notification (PTRACE_EVENT_STOP, e.g. after a SIGCONT) can come before the
    // step is taken: the syscall has not run yet, so take the step again.
    for (let i = 0; i < 4 && st.stopped && st.event === PTRACE_EVENT.STOP; i++) {
      this.t.setRegs(r);
      st = this.t.step();
    }
    this.count++;
    if (!st.stopped) throw new TraceeError(this.t.tid, `died during injected syscall ${nr}`);
    if (st.stopSig !== SIG.TRAP || st.event !== 0) {
      throw new TraceeError(this.t.tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in injected syscall ${nr}`);
    }
    return this.t.regs().signed('ax');
  }

  /** Runs a syscall by name and throws RemoteSyscallError if it fails. */
  call(name: SyscallName, args: RemoteArg[] = [], detail?: string): bigint {
    return checkedResult(this.t.tid, name, this.raw(NR[name], args), detail);
  }

  /**
   * Runs a syscall by name without single-stepping: to its syscall-exit stop (PTRACE_SYSCALL,
   * entry then exit). A single step ends in a forced SIGTRAP, and the kernel resets an ignored
   * SIGTRAP to SIG_DFL when it forces one: what must survive every step (the task's own SIG_IGN
   * for SIGTRAP) is set by calls made this way, after the last step.
   */
  callWithoutStep(name: SyscallName, args: RemoteArg[] = [], detail?: string): bigint {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    const r = this.callRegs(NR[name], args);
    r.set('ip', this.syscallAt);
    this.t.setRegs(r);
    this.t.syscallStops(NR[name]);
    this.inSyscallStop = true;
    this.count++;
    return checkedResult(this.t.tid, name, this.t.regs().signed('ax'), detail);
  }

  /**
   * Runs `calls` in order, as few stops as the area allows (one stop runs a generated sequence
   * and records each result), and returns their results. The first failing call ends its batch
   * and throws RemoteSyscallError, as call() would; the calls before it have run.
   */
  batch(calls: BatchCall[], area: BatchArea): bigint[] {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    const out: bigint[] = [];
    for (const run of this.batchRuns(calls, area)) out.push(...this.endBatch(this.startBatch(run, area)));
    return out;
  }

  /** `calls` cut as batch() cuts them: each run is one stop. */
  batchRuns(calls: BatchCall[], area: BatchArea): BatchCall[][] {
    return batchRuns(calls, area.codeAt, area.resultsAt, area.codeSize);
  }

  /**
   * Starts one run of batchRuns() and returns without waiting for it, so that several tasks (the
   * threads of a process, each with an area of its own) run theirs side by side and their stops
   * overlap. Every batch started must be ended (endBatch) before anything else is done to the task.
   */
  startBatch(calls: BatchCall[], area: BatchArea): RunningBatch {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    checkInterrupt();
    const tid = this.t.tid;
    const { code, trapAt } = batchCode(codedCalls(calls), area.codeAt, area.resultsAt);
    vmWrite(tid, area.codeAt, code);
    vmWrite(tid, area.resultsAt, unwrittenSlots(calls.length));
    const r = this.saved.clone();
    r.set('orig_ax', -1n);
    r.set('ip', area.codeAt);
    this.t.setRegs(r);
    this.inSyscallStop = false;
    ptrace(PTRACE.CONT, tid, 0, 0);
    return { calls, resultsAt: area.resultsAt, trapAt };
  }

  /**
   * Waits for a batch startBatch() started; its results, or RemoteSyscallError as batch() throws.
   * `onClone`: the batch makes tasks (clone3, the tracee traced with PTRACE_O_TRACECLONE/FORK):
   * told each new task's TID at its fork or clone event stop, and the batch goes on.
   */
  endBatch(b: RunningBatch, onClone?: (tid: number) => void): bigint[] {
    const tid = this.t.tid;
    for (;;) {
      const st = this.t.wait();
      if (!st.stopped) throw new TraceeError(tid, `died during a batch of ${b.calls.length} injected syscalls`);
      if (st.event === PTRACE_EVENT.STOP || (onClone && (st.event === PTRACE_EVENT.CLONE || st.event === PTRACE_EVENT.FORK))) {
        if (st.event !== PTRACE_EVENT.STOP) onClone!(Number(getEventMsg(tid)));
        ptrace(PTRACE.CONT, tid, 0, 0); // job control: go on where it is
        continue;
      }
      if (st.stopSig === SIG.TRAP && st.event === 0 && this.t.regs().get('ip') === b.trapAt + 1n) break;
      throw new TraceeError(tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in a batch of injected syscalls`);
    }
    this.count += b.calls.length;
    return batchResults(tid, b.calls, b.resultsAt);
  }

  /** Puts the task's registers and signal mask back as they were. */
  restore(regs: Regs = this.saved): void {
    if (!this.active) return;
    this.active = false;
    this.leaveSyscallStop();
    this.t.setRegs(regs);
    setSigmask(this.t.tid, this.savedMask);
  }

  /** For the restorer: end the session without restoring, the caller sets final state itself. */
  finish(): void {
    this.active = false;
    this.leaveSyscallStop();
  }

  /** Registers set in a syscall-exit stop would miss the kernel's restart logic: see Tracee.interruptStop. */
  private leaveSyscallStop(): void {
    if (this.inSyscallStop) this.t.interruptStop();
    this.inSyscallStop = false;
  }
}
