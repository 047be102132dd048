// A private anonymous mapping in the task that holds the arguments and results of injected
// syscalls (paths, structs); written and read with process_vm_writev/readv.
import { PROT, MAP, PAGE_SIZE, vmRead, vmWrite } from '../sys/index.js';
import type { Remote } from './remote.js';

export class Scratch {
  private cursor = 0;

  private constructor(readonly remote: Remote, readonly addr: bigint, readonly size: number, private owned: boolean) {}

  /** mmaps `pages` pages in the task. */
  static map(remote: Remote, pages = 4): Scratch {
    const size = pages * PAGE_SIZE;
    // MAP_NORESERVE gives it flags no ordinary neighbour has, so the kernel never merges it into
    // an adjacent VMA of the task (which would then be dumped with our scratch pages in it).
    const addr = remote.call('mmap', [0, size, PROT.READ | PROT.WRITE, MAP.PRIVATE | MAP.ANONYMOUS | MAP.NORESERVE, -1, 0], 'scratch');
    return new Scratch(remote, BigInt.asUintN(64, addr), size, true);
  }

  /** Uses an area the caller already mapped in the task. */
  static at(remote: Remote, addr: bigint, size: number): Scratch {
    return new Scratch(remote, addr, size, false);
  }

  get pid(): number {
    return this.remote.t.tid;
  }

  /** Resets the bump allocator: everything handed out before is free again. */
  reset(): void {
    this.cursor = 0;
  }

  /** Where the allocator is now: release(mark) frees what was reserved after it, and only that. */
  mark(): number {
    return this.cursor;
  }

  release(mark: number): void {
    if (mark > this.cursor) throw new Error(`scratch release past the cursor (${mark} > ${this.cursor})`);
    this.cursor = mark;
  }

  /** Reserves `len` bytes (8-aligned) and returns their address in the task. */
  alloc(len: number): bigint {
    const off = (this.cursor + 7) & ~7;
    if (off + len > this.size) throw new Error(`scratch area full (${off + len} > ${this.size})`);
    this.cursor = off + len;
    return this.addr + BigInt(off);
  }

  /** Copies `data` into the task and returns its address. */
  put(data: Buffer): bigint {
    const a = this.alloc(data.length);
    vmWrite(this.pid, a, data);
    return a;
  }

  putString(s: string): bigint {
    return this.put(Buffer.from(s + '\0'));
  }

  read(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    const n = vmRead(this.pid, b, [{ addr, len }]);
    if (n !== len) throw new Error(`short read of scratch memory in pid ${this.pid}`);
    return b;
  }

  /** Unmaps the area (only if we mapped it). */
  unmap(): void {
    if (!this.owned) return;
    this.owned = false;
    this.remote.call('munmap', [this.addr, this.size], 'scratch');
  }
}
