// Injected system calls that a SIGKILL of cryo cannot turn against the task. cryo's death makes
// the kernel detach every tracee, which then runs on from wherever it stands; so at every moment
// the task's registers point at code that ends in rt_sigreturn through a frame holding its own
// registers, mask and FPU state (sigframe.ts), and every stop it sits in is one whose signal is
// harmless when delivered for real:
//   - in the scratch area, each call is `syscall; keep rax in r12; tgkill(self, marker); ...;
//     rt_sigreturn`, run with PTRACE_CONT: ONE stop per call, the marker's signal-delivery-stop
//     (the marker is a signal the task ignores, see marker.ts);
//   - the scratch area's own mmap and munmap run from `syscall; ret` in the task's libraries with
//     rsp at a frame on its stack below the red zone (where the kernel puts signal frames), whose
//     return address is a restorer; they stop at syscall entry and exit (PTRACE_O_TRACESYSGOOD:
//     the stop's code SIGTRAP|0x80 is not a valid signal, so nothing is delivered on detach).
// Without those gadgets (a static binary) or room on a [stack] mapping, mmap and munmap run from
// the vdso's `syscall` and the registers are put back at once: the one unsafe window, two stops.
// An orphaned task leaves the area behind unless it was its only user (soloSite unmaps it): with
// threads, one could still be running in it: an anonymous rwx mapping stays in the process.
import { readFileSync } from 'node:fs';
import {
  Regs, PTRACE, PTRACE_O, PTRACE_EVENT, SIG, PROT, MAP, NR, PAGE_SIZE, ptrace, setSigmask, getXstate, vmWrite,
  checkInterrupt, type SyscallName,
} from '../sys/index.js';
import { parseMaps } from '../proc/index.js';
import { Remote, RemoteSyscallError, type RemoteArg } from './remote.js';
import { TraceeError, type Tracee } from './tracee.js';
import { buildSigframe, FPSTATE_OFFSET } from './sigframe.js';
import { findGadgets, type Gadgets } from './gadgets.js';
import { pickMarker } from './marker.js';
import { findSyscallInVdso } from './syscall-site.js';

// syscall; mov r12, rax; mov eax, 234 (tgkill); mov rdi, r13; mov rsi, r14; mov rdx, r15; syscall;
// mov eax, 15; syscall (rt_sigreturn, frame at rsp - 8)
const MARKER_SITE = [
  0x0f, 0x05, 0x49, 0x89, 0xc4, 0xb8, 0xea, 0x00, 0x00, 0x00, 0x4c, 0x89, 0xef, 0x4c, 0x89, 0xf6, 0x4c, 0x89, 0xfa,
  0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05,
];
const MARKER_STOP_AT = 21; // rip in the marker's stop: after the tgkill
// For a task without an ignored signal: syscall; mov eax, 15; syscall — stopped at entry and exit.
const SYSCALL_SITE_OFFSET = 32;
const SYSCALL_SITE = [0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
/**
 * The marker site of an area only its owner works in: after the marker, instead of returning
 * from the area it unmaps it, from the `syscall; ret` gadget with rsp at the stack frame:
 * mov eax, 11 (munmap); mov rdi, AREA; mov rsi, SIZE; mov rsp, FRAME; mov rcx, GADGET; jmp rcx.
 * An orphaned task leaves no scratch mapping behind either.
 */
const SOLO_SITE_OFFSET = 64;
function soloSite(area: bigint, size: number, frame: bigint, syscallRet: bigint): Buffer {
  const imm = (prefix: number[], v: bigint) => {
    const b = Buffer.alloc(prefix.length + 8);
    Buffer.from(prefix).copy(b);
    b.writeBigUInt64LE(v, prefix.length);
    return b;
  };
  return Buffer.concat([
    Buffer.from(MARKER_SITE.slice(0, MARKER_STOP_AT)),
    Buffer.from([0xb8, 0x0b, 0x00, 0x00, 0x00]),
    imm([0x48, 0xbf], area),
    imm([0x48, 0xbe], BigInt(size)),
    imm([0x48, 0xbc], frame),
    imm([0x48, 0xb9], syscallRet),
    Buffer.from([0xff, 0xe1]),
  ]);
}
const SYSGOOD_TRAP = SIG.TRAP | 0x80;
const RED_ZONE = 128n;
const DATA_PAGES = 4;
/** Frames beyond the process's threads, for CLONE_VM children working in the same area. */
const SPARE_FRAMES = 8;
const ARG_REGS = ['di', 'si', 'dx', 'r10', 'r8', 'r9'] as const;

/** The mapping in the task: data pages (Scratch), one code page, then one signal frame per task. */
export class ScratchArea {
  private slotsUsed = 0;
  /** The owner's marker site unmaps the area on the way out (see soloSite). */
  solo = false;
  constructor(
    readonly addr: bigint,
    readonly size: number,
    readonly dataSize: number,
    readonly code: bigint,
    private readonly slots: bigint,
    private readonly slotSize: number,
    private readonly slotCount: number,
  ) {}

  static layout(tasks: number, xstateLen: number): { size: number; dataSize: number; slotSize: number; slotCount: number } {
    const slotSize = Math.ceil((FPSTATE_OFFSET + xstateLen + 4) / 64) * 64;
    const slotCount = tasks + SPARE_FRAMES;
    const dataSize = DATA_PAGES * PAGE_SIZE;
    const size = dataSize + PAGE_SIZE + Math.ceil((slotCount * slotSize) / PAGE_SIZE) * PAGE_SIZE;
    return { size, dataSize, slotSize, slotCount };
  }

  takeFrame(): bigint {
    if (this.slotsUsed >= this.slotCount) throw new Error(`scratch area at 0x${this.addr.toString(16)}: no signal frame left (${this.slotCount} tasks)`);
    return this.slots + BigInt(this.slotsUsed++ * this.slotSize);
  }
}

type Bootstrap = { kind: 'stack'; frame: bigint; gadgets: Gadgets } | { kind: 'window'; vdsoSyscall: bigint };

export class SafeRemote extends Remote {
  private marker = 0;
  private frame = 0n;
  /** Where the marker site is in the code page (the solo one for an area used by one task). */
  private siteOffset = 0;
  private masked = false;
  private area_: ScratchArea | null = null;
  private bootstrap: Bootstrap | null = null;
  private readonly xstate: Buffer;
  private readonly block: bigint;
  /** The kind of stop the task sits in; the final registers go back in a signal or interrupt stop. */
  private lastStop: 'interrupt' | 'signal' | 'syscall' = 'interrupt';

  /** `backTo`: the registers the task returns to (its own, or an rseq abort handler). */
  private constructor(t: Tracee, private readonly backTo: Regs) {
    super(t, 0n, false);
    ptrace(PTRACE.SETOPTIONS, t.tid, 0, PTRACE_O.TRACESYSGOOD);
    this.xstate = getXstate(t.tid);
    this.marker = pickMarker(t.tgid, t.tid);
    this.block = ((1n << 64n) - 1n) & ~(this.marker ? 1n << BigInt(this.marker - 1) : 0n);
  }

  get area(): ScratchArea {
    if (!this.area_) throw new TraceeError(this.t.tid, 'no scratch area');
    return this.area_;
  }

  /**
   * Maps a scratch area in a frozen task (the leader of `tasks` tasks sharing its memory) and
   * takes the task over. On failure the task is as it was.
   */
  static open(t: Tracee, tasks: number, backTo?: Regs): SafeRemote {
    const r = new SafeRemote(t, backTo ?? t.regs());
    try {
      r.bootstrap = r.chooseBootstrap();
      const { size, dataSize, slotSize, slotCount } = ScratchArea.layout(tasks, r.xstate.length);
      // MAP_NORESERVE: flags no ordinary neighbour has, so the kernel never merges it into an
      // adjacent VMA of the task. Executable: our code page is in it.
      const prot = PROT.READ | PROT.WRITE | PROT.EXEC;
      const addr = BigInt.asUintN(64, r.outsideCall(NR.mmap, [0, size, prot, MAP.PRIVATE | MAP.ANONYMOUS | MAP.NORESERVE, -1, 0], 'mmap'));
      const code = addr + BigInt(dataSize);
      r.area_ = new ScratchArea(addr, size, dataSize, code, code + BigInt(PAGE_SIZE), slotSize, slotCount);
      const page = Buffer.alloc(256);
      Buffer.from(MARKER_SITE).copy(page, 0);
      Buffer.from(SYSCALL_SITE).copy(page, SYSCALL_SITE_OFFSET);
      const b = r.bootstrap;
      if (tasks === 1 && b.kind === 'stack') {
        soloSite(addr, size, b.frame, b.gadgets.syscallRet).copy(page, SOLO_SITE_OFFSET);
        r.siteOffset = SOLO_SITE_OFFSET;
      }
      vmWrite(t.tid, code, page);
      r.area_.solo = r.siteOffset === SOLO_SITE_OFFSET;
      r.syscallAt = code;
      r.placeFrame();
    } catch (e) {
      try {
        r.restore();
      } catch {
        /* the first error says what went wrong */
      }
      throw e;
    }
    return r;
  }

  /** Takes over another task working in `area` (a thread of its owner, or a CLONE_VM child). */
  static join(t: Tracee, area: ScratchArea, backTo?: Regs): SafeRemote {
    const r = new SafeRemote(t, backTo ?? t.regs());
    if (area.solo) {
      // Another task now runs in the area too: the owner's site must not unmap it under that
      // task any more. Its tail becomes a plain rt_sigreturn (the owner stands right there).
      vmWrite(t.tid, area.code + BigInt(SOLO_SITE_OFFSET + MARKER_STOP_AT), Buffer.from(MARKER_SITE.slice(MARKER_STOP_AT)));
      area.solo = false;
    }
    r.area_ = area;
    r.syscallAt = area.code;
    r.placeFrame();
    return r;
  }

  /** The frame for calls made from the scratch area; the task's registers do not change yet. */
  private placeFrame(): void {
    this.frame = this.area.takeFrame();
    vmWrite(this.t.tid, this.frame, buildSigframe(this.frame, this.backTo, this.savedMask, this.xstate));
  }

  /** Stack frame + gadgets when the task has both, else the vdso's syscall (see the header). */
  private chooseBootstrap(): Bootstrap {
    const gadgets = findGadgets(this.t.tgid);
    const sp = this.saved.get('sp');
    const at = (sp - RED_ZONE - BigInt(FPSTATE_OFFSET + this.xstate.length + 4)) & ~63n;
    const stack = parseMaps(readFileSync(`/proc/${this.t.tgid}/maps`, 'utf8')).find((m) => m.start <= at && sp <= m.end);
    if (gadgets && stack && stack.path === '[stack]' && stack.write) {
      vmWrite(this.t.tid, at, buildSigframe(at, this.backTo, this.savedMask, this.xstate, gadgets.restorer));
      return { kind: 'stack', frame: at, gadgets };
    }
    return { kind: 'window', vdsoSyscall: findSyscallInVdso(this.t.tgid) };
  }

  private callRegs(nr: number, args: RemoteArg[]): Regs {
    const r = this.saved.clone();
    r.set('ax', nr);
    r.set('orig_ax', -1n); // not inside a syscall: no restart logic on resume
    ARG_REGS.forEach((n, i) => r.set(n, BigInt.asUintN(64, BigInt(args[i] ?? 0))));
    return r;
  }

  /** A call made while no scratch code can run it (the area's mmap and munmap). */
  private outsideCall(nr: number, args: RemoteArg[], name: string): bigint {
    const b = this.bootstrap!;
    const r = this.callRegs(nr, args);
    if (b.kind === 'stack') {
      r.set('ip', b.gadgets.syscallRet);
      r.set('sp', b.frame);
      this.t.setRegs(r); // first the registers: from now on the frame gives the mask back too
      setSigmask(this.t.tid, this.block);
      this.masked = true;
      const ret = this.syscallStops(nr);
      return checked(this.t.tid, name, ret);
    }
    setSigmask(this.t.tid, this.block);
    r.set('ip', b.vdsoSyscall);
    this.t.setRegs(r);
    let ret: bigint;
    try {
      ret = this.syscallStops(nr);
    } finally {
      this.t.setRegs(this.backTo);
      setSigmask(this.t.tid, this.savedMask);
    }
    return checked(this.t.tid, name, ret);
  }

  /** Runs the prepared call to its syscall-exit stop (PTRACE_SYSCALL: entry, then exit). */
  private syscallStops(nr: number): bigint {
    for (let stops = 0; stops < 2; ) {
      ptrace(PTRACE.SYSCALL, this.t.tid, 0, 0);
      const st = this.t.wait();
      if (!st.stopped) throw new TraceeError(this.t.tid, `died during injected syscall ${nr}`);
      if (st.event === PTRACE_EVENT.STOP) continue; // job control: resume where it is
      if (st.stopSig !== SYSGOOD_TRAP || st.event !== 0) {
        throw new TraceeError(this.t.tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in injected syscall ${nr}`);
      }
      stops++;
      this.lastStop = 'syscall';
    }
    this.count++;
    return this.t.regs().signed('ax');
  }

  override raw(nr: number, args: RemoteArg[] = []): bigint {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    checkInterrupt();
    const r = this.callRegs(nr, args);
    r.set('sp', this.frame + 8n); // rt_sigreturn finds its frame at rsp - 8
    if (!this.marker) {
      r.set('ip', this.area.code + BigInt(SYSCALL_SITE_OFFSET));
      this.t.setRegs(r);
      this.maskOnce();
      return this.syscallStops(nr);
    }
    r.set('ip', this.area.code + BigInt(this.siteOffset));
    r.set('r13', this.t.tgid);
    r.set('r14', this.t.tid);
    r.set('r15', this.marker);
    this.t.setRegs(r);
    this.maskOnce();
    const stopAt = this.area.code + BigInt(this.siteOffset + MARKER_STOP_AT);
    for (;;) {
      ptrace(PTRACE.CONT, this.t.tid, 0, 0);
      const st = this.t.wait();
      if (!st.stopped) throw new TraceeError(this.t.tid, `died during injected syscall ${nr}`);
      if (st.event === PTRACE_EVENT.STOP) continue; // job control: resume where it is
      if (st.event !== 0 || st.stopSig !== this.marker) {
        throw new TraceeError(this.t.tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in injected syscall ${nr}`);
      }
      this.lastStop = 'signal';
      const now = this.t.regs();
      if (now.get('ip') === stopAt) {
        this.count++;
        return now.signed('r12');
      }
      // The same signal sent by someone else: give it back on release.
      if (!this.t.deferredSignals.includes(this.marker)) this.t.deferredSignals.push(this.marker);
    }
  }

  private maskOnce(): void {
    if (this.masked) return;
    setSigmask(this.t.tid, this.block);
    this.masked = true;
  }

  /**
   * Puts the task back: the area's munmap (by its owner), then mask, then registers — in that
   * order, so that until the very end the registers still lead through rt_sigreturn.
   */
  override restore(regs: Regs = this.backTo): void {
    if (!this.active) return;
    this.active = false;
    let err: unknown = null;
    if (this.bootstrap && this.area_) {
      try {
        this.outsideCall(NR.munmap, [this.area_.addr, this.area_.size], 'munmap');
      } catch (e) {
        err = e;
      }
    }
    this.giveBack(regs);
    if (err) throw err;
  }

  private giveBack(regs: Regs = this.backTo): void {
    this.active = false;
    if (this.lastStop === 'syscall') this.interruptStop();
    setSigmask(this.t.tid, this.savedMask);
    this.t.setRegs(regs);
  }

  /**
   * Moves the task from a syscall-exit stop into an interrupt stop. The kernel restarts a system
   * call the freeze interrupted (rax -ERESTART*) only on the signal path of the return to user
   * mode, which a syscall-exit stop has already passed; an interrupt stop is on it. No user
   * instruction runs in between: the stop comes on the way out of the kernel.
   */
  private interruptStop(): void {
    ptrace(PTRACE.INTERRUPT, this.t.tid);
    ptrace(PTRACE.CONT, this.t.tid, 0, 0);
    for (;;) {
      const st = this.t.wait();
      if (!st.stopped) throw new TraceeError(this.t.tid, 'died while being put back');
      if (st.event === PTRACE_EVENT.STOP) break;
      // A signal dequeued first: hold it back (re-sent on release) and go on to the interrupt.
      if (st.event === 0 && st.stopSig !== SYSGOOD_TRAP) this.t.deferredSignals.push(st.stopSig);
      ptrace(PTRACE.CONT, this.t.tid, 0, 0);
    }
    this.lastStop = 'interrupt';
  }
}

function checked(tid: number, name: string, ret: bigint): bigint {
  if (ret < 0n && ret >= -4095n) throw new RemoteSyscallError(tid, name as SyscallName, Number(-ret), 'scratch');
  return ret;
}
