// The mapping cryo puts in a task for injected system calls: data pages (buffers, see Scratch),
// then one slot per task working in it — the task's code page, a signal frame and a data page of
// its own (a thread's reads run beside the other threads', their results there). The owner's
// slot comes right after the data, so that its own part (data + slot) is one range to unmap.
import { PAGE_SIZE } from '../sys/index.js';
import { FPSTATE_OFFSET } from './sigframe.js';
import type { Gadgets } from './gadgets.js';
import type { UnmapExit } from './inject-code.js';
import type { MapsEntry } from '../proc/index.js';

const DATA_PAGES = 4;

export interface Slot {
  start: bigint;
  size: number;
  code: bigint;
  frame: bigint;
  /** The task's own data page (writable only when the code is not: see codeReadOnly). */
  data: bigint;
}

export class ScratchArea {
  private used = 0;
  /** The owner's code page and exit, rewritten as slots are taken (see freeTail). */
  owner: { code: bigint; exit: UnmapExit } | null = null;
  /**
   * The slots (code and frames) are read and execute only, the data pages read and write: the
   * task refuses memory both writable and executable (PR_SET_MDWE). Code is then written through
   * /proc/PID/mem, which writes past the protection.
   */
  codeReadOnly = false;
  /**
   * The owner's mappings as it was frozen (before the area): its threads, frozen too, have their
   * stacks there, so each one that joins finds its stack frame's place without reading /proc
   * again (a process of many threads has as many stacks: a read and parse of them per thread).
   */
  maps: MapsEntry[] | null = null;

  private constructor(
    readonly addr: bigint,
    readonly size: number,
    readonly dataSize: number,
    readonly slotSize: number,
    private readonly slotCount: number,
    /** The gadgets found in the owner (its threads map the same libraries). */
    readonly gadgets: Gadgets | null,
  ) {}

  static layout(tasks: number, xstateLen: number): { size: number; dataSize: number; slotSize: number; slotCount: number } {
    const frame = Math.ceil((FPSTATE_OFFSET + xstateLen + 4) / PAGE_SIZE) * PAGE_SIZE;
    const slotSize = PAGE_SIZE + frame + PAGE_SIZE;
    const slotCount = tasks;
    const dataSize = DATA_PAGES * PAGE_SIZE;
    return { size: dataSize + slotCount * slotSize, dataSize, slotSize, slotCount };
  }

  static at(addr: bigint, tasks: number, xstateLen: number, gadgets: Gadgets | null): ScratchArea {
    const l = ScratchArea.layout(tasks, xstateLen);
    return new ScratchArea(addr, l.size, l.dataSize, l.slotSize, l.slotCount, gadgets);
  }

  /** The slots no task has taken yet: the owner unmaps them too on its way out. */
  freeTail(): { start: bigint; len: number } {
    const start = this.addr + BigInt(this.dataSize + this.used * this.slotSize);
    return { start, len: Number(this.addr + BigInt(this.size) - start) };
  }

  /** Gives back the last slot taken (its task is put back): it joins the free tail. */
  releaseSlot(slot: Slot): boolean {
    if (this.used === 0 || slot.start !== this.addr + BigInt(this.dataSize + (this.used - 1) * this.slotSize)) return false;
    this.used--;
    return true;
  }

  takeSlot(): Slot {
    if (this.used >= this.slotCount) throw new Error(`scratch area at 0x${this.addr.toString(16)}: no slot left (${this.slotCount} tasks)`);
    const start = this.addr + BigInt(this.dataSize + this.used++ * this.slotSize);
    return { start, size: this.slotSize, code: start, frame: start + BigInt(PAGE_SIZE), data: start + BigInt(this.slotSize - PAGE_SIZE) };
  }
}
