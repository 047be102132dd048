// Making a stopped task execute system calls for us: set its registers so that rip points at a
// `syscall` instruction, single-step over it, read rax, and finally put the registers back.
import { Regs, PTRACE_EVENT, SIG, getSigmask, setSigmask, errnoName, checkInterrupt, type SyscallName, NR } from '../sys/index.js';
import { Tracee, TraceeError } from './tracee.js';

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

  /** Runs one syscall in the task; returns the raw signed result (-errno on failure). */
  raw(nr: number, args: RemoteArg[] = []): bigint {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    checkInterrupt();
    const r = this.saved.clone();
    r.set('ax', nr);
    r.set('orig_ax', -1n); // not inside a syscall: no restart logic on resume
    const names = ['di', 'si', 'dx', 'r10', 'r8', 'r9'] as const;
    names.forEach((n, i) => r.set(n, BigInt.asUintN(64, BigInt(args[i] ?? 0))));
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
    const res = this.raw(NR[name], args);
    if (res < 0n && res >= -4095n) throw new RemoteSyscallError(this.t.tid, name, Number(-res), detail);
    return res;
  }

  /**
   * Runs a syscall by name without single-stepping: to its syscall-exit stop (PTRACE_SYSCALL,
   * entry then exit). A single step ends in a forced SIGTRAP, and the kernel resets an ignored
   * SIGTRAP to SIG_DFL when it forces one: what must survive every step (the task's own SIG_IGN
   * for SIGTRAP) is set by calls made this way, after the last step.
   */
  callWithoutStep(name: SyscallName, args: RemoteArg[] = [], detail?: string): bigint {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    const r = this.saved.clone();
    r.set('ax', NR[name]);
    r.set('orig_ax', -1n);
    const names = ['di', 'si', 'dx', 'r10', 'r8', 'r9'] as const;
    names.forEach((n, i) => r.set(n, BigInt.asUintN(64, BigInt(args[i] ?? 0))));
    r.set('ip', this.syscallAt);
    this.t.setRegs(r);
    this.t.syscallStops(NR[name]);
    this.inSyscallStop = true;
    this.count++;
    const res = this.t.regs().signed('ax');
    if (res < 0n && res >= -4095n) throw new RemoteSyscallError(this.t.tid, name, Number(-res), detail);
    return res;
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
