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
// Each task works in a code page of its own (inject-code.ts), whose exit path, when the task has
// a frame on its own stack, unmaps the task's own part of the area: an orphaned tree leaves no
// scratch mapping behind. A task without such a frame (no libc gadgets, or a stack that is not
// recognisably one: [stack], or a pthread stack above its guard page) leaves its part behind.
import { readFileSync } from 'node:fs';
import {
  Regs, PTRACE, PTRACE_O, PTRACE_EVENT, SIG, PROT, MAP, NR, PAGE_SIZE, ptrace, setSigmask, getXstate, vmWrite, memWrite, checkInterrupt, getEventMsg,
} from '../sys/index.js';
import { parseMaps } from '../proc/index.js';
import { Remote, checkedResult, deniedWriteExec, batchResults, batchRuns, codedCalls, unwrittenSlots, type BatchCall, type RemoteArg, type RunningBatch } from './remote.js';
import { batchCode } from './batch-code.js';
export { ScratchArea } from './scratch-area.js';
import { Tracee, TraceeError } from './tracee.js';
import { buildSigframe, FPSTATE_OFFSET } from './sigframe.js';
import { findGadgets, type Gadgets } from './gadgets.js';
import { codePage, snapshotForkCode, BATCH_CODE_AT, MARKER_STOP_AT, MARKER_TAIL_AT, SYSCALL_SITE_OFFSET } from './inject-code.js';
import { skip } from '../util/skip.js';
import { ScratchArea, type Slot } from './scratch-area.js';
import { pickMarker } from './marker.js';
import { findSyscallInVdso } from './syscall-site.js';
import { freeSpot, stackFrameSpot } from './placement.js';

const SYSGOOD_TRAP = SIG.TRAP | 0x80;
const MAP_FIXED_NOREPLACE = 0x100000;
type Bootstrap = { kind: 'stack'; frame: bigint; gadgets: Gadgets } | { kind: 'window'; vdsoSyscall: bigint };

export class SafeRemote extends Remote {
  private marker = 0;
  private slot: Slot | null = null;
  private masked = false;
  private area_: ScratchArea | null = null;
  /** How the owner of the area maps and unmaps it (null for the others). */
  private bootstrap: Bootstrap | null = null;
  private readonly xstate: Buffer;
  private readonly block: bigint;
  /** The kind of stop the task sits in; the final registers go back in a signal or interrupt stop. */
  private lastStop: 'interrupt' | 'signal' | 'syscall' = 'interrupt';

  /** `backTo`: the registers the task returns to (its own, or an rseq abort handler). */
  private constructor(t: Tracee, private readonly backTo: Regs) {
    super(t, 0n, false);
    // Syscall stops must say SIGTRAP|0x80, which is no signal: nothing is delivered on detach.
    t.options |= PTRACE_O.TRACESYSGOOD;
    ptrace(PTRACE.SETOPTIONS, t.tid, 0, t.options);
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
      const maps = parseMaps(readFileSync(`/proc/${t.tgid}/maps`, 'utf8'));
      const gadgets = findGadgets(t.tgid, maps);
      const stackFrame = gadgets ? r.placeStackFrame(gadgets, maps) : null;
      r.bootstrap = gadgets && stackFrame !== null ? { kind: 'stack', frame: stackFrame, gadgets } : { kind: 'window', vdsoSyscall: findSyscallInVdso(t.tgid) };
      const { size } = ScratchArea.layout(tasks, r.xstate.length);
      // MAP_NORESERVE: flags no ordinary neighbour has, so the kernel never merges it into an
      // adjacent VMA of the task. Executable: the code pages are in it.
      const prot = PROT.READ | PROT.WRITE | PROT.EXEC;
      const flags = MAP.PRIVATE | MAP.ANONYMOUS | MAP.NORESERVE;
      // Orphaned while the mmap runs, the task would keep the area: at a free address chosen
      // here (MAP_FIXED_NOREPLACE), the call returns into glibc's munmap with rdi and rsi still
      // holding that address and size, and only then into the restorer.
      const b = r.bootstrap;
      const spot = b.kind === 'stack' && b.gadgets.munmapRet ? freeSpot(maps, size) : null;
      const undo = spot !== null && b.kind === 'stack' ? r.chainUndo(b.frame, b.gadgets.munmapRet!) : undefined;
      const mmapArgs = (p: number) => [spot ?? 0, size, p, flags | (spot !== null ? MAP_FIXED_NOREPLACE : 0), -1, 0];
      let addr: bigint;
      let codeReadOnly = false;
      try {
        addr = BigInt.asUintN(64, r.outsideCall(NR.mmap, mmapArgs(prot), 'mmap', undo));
      } catch (e) {
        if (!deniedWriteExec(e)) throw e;
        // PR_SET_MDWE: executable but not writable, then the data pages writable but not
        // executable (neither gains execute); the code goes in through /proc/PID/mem.
        addr = BigInt.asUintN(64, r.outsideCall(NR.mmap, mmapArgs(PROT.READ | PROT.EXEC), 'mmap', undo));
        codeReadOnly = true;
        const { dataSize } = ScratchArea.layout(tasks, r.xstate.length);
        r.outsideCall(NR.mprotect, [addr, dataSize, PROT.READ | PROT.WRITE], 'mprotect');
      }
      // First thing, before the code is written: orphaned from here on, the task unmaps the
      // area again (from the gadget) before its rt_sigreturn.
      r.parkOnUnmap(addr, size);
      r.area_ = ScratchArea.at(addr, tasks, r.xstate.length, gadgets);
      r.area_.codeReadOnly = codeReadOnly;
      r.area_.maps = maps;
      // The owner's part: the data pages and its slot, right after them, and the slots not taken.
      r.takeSlot(stackFrame, (slot) => ({ start: addr, len: Number(slot.start - addr) + slot.size }), true);
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

  private parkOnUnmap(addr: bigint, size: number): void {
    const b = this.bootstrap;
    if (b?.kind !== 'stack') return;
    const r = this.callRegs(NR.munmap, [addr, size]);
    r.set('ip', b.gadgets.syscallRet);
    r.set('sp', b.frame);
    this.t.setRegs(r);
  }

  /** Takes over another task working in `area` (a thread of its owner, or a CLONE_VM child). */
  static join(t: Tracee, area: ScratchArea, backTo?: Regs): SafeRemote {
    const r = new SafeRemote(t, backTo ?? t.regs());
    r.area_ = area;
    const stackFrame = area.gadgets ? r.placeStackFrame(area.gadgets, area.maps ?? undefined) : null;
    r.takeSlot(stackFrame, (slot) => ({ start: slot.start, len: slot.size }));
    return r;
  }

  /**
   * The task's own slot: its code page (whose exit unmaps `part` when the task has a stack
   * frame) and the frame for calls made from there; then parks the task on that exit.
   */
  private takeSlot(stackFrame: bigint | null, part: (s: Slot) => { start: bigint; len: number }, owner = false): void {
    const area = this.area;
    const slot = area.takeSlot();
    const g = area.gadgets;
    const exit = stackFrame !== null && g ? { ...part(slot), stackFrame, syscallRet: g.syscallRet } : null;
    this.writeSlot(slot.code, codePage(exit ? { ...exit, tail: owner ? area.freeTail() : undefined } : null));
    this.writeSlot(slot.frame, buildSigframe(slot.frame, this.backTo, this.savedMask, this.xstate));
    this.slot = slot;
    this.syscallAt = slot.code;
    if (owner && exit) area.owner = { code: slot.code, exit };
    // The owner's exit lets go of the slot only now that this task's code is in place, and before
    // the task is parked on it: should cryo die in between, the slot stays (harmless) rather than
    // being unmapped twice (the second munmap could hit a mapping the process made meanwhile).
    if (!owner) this.refreshOwnerExit();
    // Parked on its exit path until the first call: orphaned now, the task would take its part
    // of the area away and return to its own state, as from any later stop.
    const park = this.saved.clone();
    park.set('ip', slot.code + BigInt(MARKER_STOP_AT));
    park.set('sp', slot.frame + 8n);
    park.set('orig_ax', -1n);
    this.t.setRegs(park);
  }

  /** The owner stands in a stop (its exit code not running): its exit can change under it. */
  private refreshOwnerExit(): void {
    const o = this.area.owner;
    if (o) this.writeSlot(o.code, codePage({ ...o.exit, tail: this.area.freeTail() }));
  }

  /** Code or a frame into the task's slots (see ScratchArea.codeReadOnly). */
  private writeSlot(addr: bigint, data: Buffer): void {
    if (this.area.codeReadOnly) memWrite(this.t.tid, addr, data);
    else vmWrite(this.t.tid, addr, data);
  }

  /**
   * Writes the task's signal frame on its own stack, below the red zone (where the kernel would
   * put a signal frame: stackFrameSpot), and returns its address; null if there is no such place.
   */
  private placeStackFrame(g: Gadgets, maps = parseMaps(readFileSync(`/proc/${this.t.tgid}/maps`, 'utf8'))): bigint | null {
    const at = stackFrameSpot(maps, this.saved.get('sp'), FPSTATE_OFFSET + this.xstate.length + 4);
    if (at === null) return null;
    vmWrite(this.t.tid, at, buildSigframe(at, this.backTo, this.savedMask, this.xstate, g.restorer));
    return at;
  }

  /** Puts `munmapRet` just below the stack frame; returns the stack pointer that returns into it. */
  private chainUndo(frame: bigint, munmapRet: bigint): bigint {
    const w = Buffer.alloc(8);
    w.writeBigUInt64LE(munmapRet, 0);
    vmWrite(this.t.tid, frame - 8n, w);
    return frame - 8n;
  }

  /** A call made while no scratch code can run it (the area's mmap and munmap). */
  private outsideCall(nr: number, args: RemoteArg[], name: string, sp?: bigint): bigint {
    const b = this.bootstrap!;
    const r = this.callRegs(nr, args);
    if (b.kind === 'stack') {
      r.set('ip', b.gadgets.syscallRet);
      r.set('sp', sp ?? b.frame);
      this.t.setRegs(r); // first the registers: from now on the frame gives the mask back too
      setSigmask(this.t.tid, this.block);
      this.masked = true;
      const ret = this.syscallStops(nr);
      return checkedResult(this.t.tid, name, ret, 'scratch');
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
    return checkedResult(this.t.tid, name, ret, 'scratch');
  }

  /** Runs the prepared call to its syscall-exit stop (PTRACE_SYSCALL: entry, then exit). */
  private syscallStops(nr: number): bigint {
    for (let stops = 0; stops < 2; ) {
      ptrace(PTRACE.SYSCALL, this.t.tid, 0, 0);
      const st = this.t.wait();
      if (!st.stopped) throw new TraceeError(this.t.tid, `died during injected syscall ${nr}`);
      if (st.event === PTRACE_EVENT.STOP) continue; // job control: resume where it is
      if (st.event === 0 && this.marker && st.stopSig === this.marker) {
        // Someone else's signal of the marker's kind (a child's SIGCHLD), taken before the call.
        this.defer(this.marker);
        continue;
      }
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
    const slot = this.slot!;
    r.set('sp', slot.frame + 8n); // rt_sigreturn finds its frame at rsp - 8
    if (!this.marker) {
      r.set('ip', slot.code + BigInt(SYSCALL_SITE_OFFSET));
      this.t.setRegs(r);
      this.maskOnce();
      return this.syscallStops(nr);
    }
    r.set('ip', slot.code);
    this.count++;
    return this.runToMarker(r, `injected syscall ${nr}`).signed('r12');
  }

  /**
   * Runs `calls` (independent, each harmless to run to the end: reads of the task's state) in as
   * few stops as fit: generated code in this task's code page, past its entry points, makes each
   * call and stores its result in the scratch data at `resultsAt`, then jumps to the marker
   * site's tail (the tgkill stop, then the exit). Orphaned mid-batch, the task runs the rest of
   * it and leaves through that exit as from a single call. Without a marker, one call at a time.
   * (Only `area.resultsAt` is used: the code goes in the task's own code page.) startBatch and
   * endBatch run one run of batchRuns() in pieces, for threads side by side (context.ts ReadQueue).
   */
  override batch(calls: BatchCall[], area: { resultsAt: bigint }): bigint[] {
    if (!this.active) throw new TraceeError(this.t.tid, 'remote syscall after restore()');
    if (!this.marker) return calls.map((c) => (c.mayFail ? this.raw(NR[c.name], c.args) : this.call(c.name, c.args, c.detail)));
    const out: bigint[] = [];
    for (const part of this.batchRuns(calls, area)) out.push(...this.endBatch(this.startBatch(part, area)));
    return out;
  }

  override batchRuns(calls: BatchCall[], area: { resultsAt: bigint }): BatchCall[][] {
    return batchRuns(calls, this.slot!.code + BigInt(BATCH_CODE_AT), area.resultsAt, PAGE_SIZE - BATCH_CODE_AT, true);
  }

  override startBatch(part: BatchCall[], area: { resultsAt: bigint }): RunningBatch {
    if (!this.active || !this.marker) throw new TraceeError(this.t.tid, 'a batch without a marker, or after restore()');
    checkInterrupt();
    const codeAt = this.slot!.code + BigInt(BATCH_CODE_AT);
    this.writeSlot(codeAt, batchCode(codedCalls(part), codeAt, area.resultsAt, this.slot!.code + BigInt(MARKER_TAIL_AT)).code);
    vmWrite(this.t.tid, area.resultsAt, unwrittenSlots(part.length));
    const r = this.callRegs(0, []);
    r.set('sp', this.slot!.frame + 8n);
    r.set('ip', codeAt);
    this.launch(r);
    return { calls: part, resultsAt: area.resultsAt, trapAt: 0n };
  }

  override endBatch(b: RunningBatch): bigint[] {
    this.awaitMarker(`a batch of ${b.calls.length} injected syscalls`);
    this.count += b.calls.length;
    return batchResults(this.t.tid, b.calls, b.resultsAt);
  }

  /**
   * A copy-on-write copy of the task's memory as it is now: a child made by clone(`flags`, exit
   * signal 0), adopted and stopped at birth, never to run (the code it would run exits:
   * inject-code.ts snapshotForkCode). Its own death is wired to cryo's (PTRACE_O_EXITKILL), the
   * task's is not. Returns the errno instead when the kernel refuses the clone (EAGAIN at a
   * pids limit, ENOMEM); null when the task has no marker to run the code with.
   */
  forkSnapshot(flags: number): Tracee | number | null {
    if (!this.active || !this.marker) return null;
    checkInterrupt();
    const codeAt = this.slot!.code + BigInt(BATCH_CODE_AT);
    this.writeSlot(codeAt, snapshotForkCode(codeAt, this.slot!.code + BigInt(MARKER_TAIL_AT), flags));
    const before = this.t.options;
    this.t.options |= PTRACE_O.TRACECLONE;
    ptrace(PTRACE.SETOPTIONS, this.t.tid, 0, this.t.options);
    let child: Tracee | null = null;
    try {
      const r = this.callRegs(0, []);
      r.set('sp', this.slot!.frame + 8n);
      r.set('ip', codeAt);
      this.launch(r);
      for (;;) {
        const st = this.t.wait();
        if (!st.stopped) throw new TraceeError(this.t.tid, 'died during the snapshot clone');
        if (st.event === PTRACE_EVENT.CLONE) {
          const tid = Number(getEventMsg(this.t.tid));
          child = Tracee.adopt(tid, tid, this.t.options);
          child.options = (before | PTRACE_O.EXITKILL) >>> 0;
          ptrace(PTRACE.SETOPTIONS, tid, 0, child.options);
          ptrace(PTRACE.CONT, this.t.tid, 0, 0);
          break;
        }
        if (st.event === 0 && st.stopSig === this.marker && this.t.regs().get('ip') === this.slot!.code + BigInt(MARKER_STOP_AT)) {
          this.lastStop = 'signal';
          return -Number(this.t.regs().signed('r12')); // the clone failed: no event
        }
        if (st.event !== PTRACE_EVENT.STOP && !(st.event === 0 && st.stopSig === this.marker)) {
          throw new TraceeError(this.t.tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in the snapshot clone`);
        }
        if (st.event === 0) this.defer(this.marker);
        ptrace(PTRACE.CONT, this.t.tid, 0, 0);
      }
      const ret = this.awaitMarker('the snapshot clone').signed('r12');
      this.count++;
      // The child's PID as the task counts (its own PID namespace's).
      if (ret !== BigInt(child.ownIds().tid)) throw new TraceeError(this.t.tid, `snapshot clone returned ${ret}, its child is ${child.tid}`);
      return child;
    } catch (e) {
      child?.kill();
      child?.waitGone();
      throw e;
    } finally {
      this.t.options = before;
      ptrace(PTRACE.SETOPTIONS, this.t.tid, 0, before);
    }
  }

  /**
   * This task's own data page (its slot's), for results of a batch run beside other threads':
   * null when it has none writable (code written through /proc/PID/mem) or no marker.
   */
  get ownData(): bigint | null {
    return this.slot && this.marker && !this.area.codeReadOnly ? this.slot.data : null;
  }

  /** Runs the task from `r` (in its code page) to the marker's stop; returns the registers there. */
  private runToMarker(r: Regs, what: string): Regs {
    this.launch(r);
    return this.awaitMarker(what);
  }

  /** Sets the task off from `r` (in its code page) towards the marker's stop. */
  private launch(r: Regs): void {
    // The task's own ids: in a PID namespace of its own, cryo's numbers name other tasks or none.
    r.set('r13', this.t.ownIds().tgid);
    r.set('r14', this.t.ownIds().tid);
    r.set('r15', this.marker);
    this.t.setRegs(r);
    this.maskOnce();
    ptrace(PTRACE.CONT, this.t.tid, 0, 0);
  }

  /** Waits until the task launched sits in the marker's stop; returns its registers there. */
  private awaitMarker(what: string): Regs {
    const stopAt = this.slot!.code + BigInt(MARKER_STOP_AT);
    for (;; ptrace(PTRACE.CONT, this.t.tid, 0, 0)) {
      const st = this.t.wait();
      if (!st.stopped) throw new TraceeError(this.t.tid, `died during ${what}`);
      if (st.event === PTRACE_EVENT.STOP) continue; // job control: resume where it is
      if (st.event !== 0 || st.stopSig !== this.marker) {
        throw new TraceeError(this.t.tid, `unexpected stop (signal ${st.stopSig}, event ${st.event}) in ${what}`);
      }
      this.lastStop = 'signal';
      const now = this.t.regs();
      if (now.get('ip') === stopAt) return now;
      // The same signal sent by someone else: give it back on release.
      this.defer(this.marker);
    }
  }

  /** A signal taken by one of our stops that was not ours: re-sent on release (once: not queued). */
  private defer(sig: number): void {
    if (!this.t.deferredSignals.includes(sig)) this.t.deferredSignals.push(sig);
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
    if (this.bootstrap && this.area_ && !skip('scratch-unmap')) {
      try {
        this.outsideCall(NR.munmap, [this.area_.addr, this.area_.size], 'munmap');
      } catch (e) {
        err = e;
      }
    }
    this.giveBack(regs);
    // Back in its own code, a thread hands its slot to the owner's exit (threads are put back
    // last-opened first, so the slot is the end of the slots in use).
    if (!this.bootstrap && this.slot && this.area.releaseSlot(this.slot)) this.refreshOwnerExit();
    if (err) throw err;
  }

  private giveBack(regs: Regs = this.backTo): void {
    this.active = false;
    if (this.lastStop === 'syscall') this.interruptStop();
    setSigmask(this.t.tid, this.savedMask);
    // In an interrupt stop the kernel restarts what the freeze interrupted, a timed wait
    // (-ERESTART_RESTARTBLOCK) through its restart block, with the time left: no rt_sigreturn
    // ran in the normal path, so the block is intact.
    this.t.setRegs(regs);
  }

  private interruptStop(): void {
    this.t.interruptStop();
    this.lastStop = 'interrupt';
  }
}
