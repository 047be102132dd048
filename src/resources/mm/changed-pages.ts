// Saved pages that go into a restored task from outside, through /proc/PID/mem: those of an
// inherited (kept) VMA, written only where they differ from what the fork gave, and those of a
// private mapping that was never writable.
import { openSync, readSync, writeSync, closeSync, constants } from 'node:fs';
import { PAGE_SIZE, alignedBuffer } from '../../sys/index.js';
import { hex, UserError } from '../../util/errors.js';
import type { FileRange } from './layout.js';

const CHUNK = 1024; // pages: 4 MiB read from the image at a time
// Pieces of the image closer than this are read as one: a forked child's own pages are often
// single pages between runs shared with its parent, and one O_DIRECT read each cost a disk
// round trip (127 reads of one page per python3 child, ~80 µs each); reading 16 pages more is
// cheaper than another round trip.
const GAP = 16; // pages

interface Piece {
  vaddr: bigint;
  pages: number;
  off: number;
  asParent?: boolean;
}

/** The ranges that need the image (not the parent's very pages), cut to CHUNK pages, grouped into reads. */
function reads(ranges: FileRange[]): Piece[][] {
  const out: Piece[][] = [];
  let cur: Piece[] = [];
  let start = 0;
  let end = 0;
  for (const r of ranges) {
    if (r.asParent) continue;
    for (let done = 0; done < r.nrPages; done += CHUNK) {
      const p: Piece = { vaddr: r.vaddr + BigInt(done * PAGE_SIZE), pages: Math.min(CHUNK, r.nrPages - done), off: Number(r.off) + done * PAGE_SIZE, ...(r.asParent === false ? { asParent: false } : {}) };
      const pEnd = p.off + p.pages * PAGE_SIZE;
      if (cur.length && p.off >= end && p.off - end <= GAP * PAGE_SIZE && pEnd - start <= CHUNK * PAGE_SIZE) {
        cur.push(p);
        end = pEnd;
        continue;
      }
      if (cur.length) out.push(cur);
      cur = [p];
      start = p.off;
      end = pEnd;
    }
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * For inherited VMAs: write only the pages whose saved content differs from what the fork gave
 * (through /proc/PID/mem, which may write read-only private pages). Equal pages stay shared with
 * the parent. Returns how many pages were left shared.
 */
export function writeChangedPages(pid: number, pagesFile: string, ranges: FileRange[]): number {
  if (!ranges.length) return 0;
  // The very pages the parent had at dump time: what the fork gave us is them already.
  let same = ranges.reduce((n, r) => n + (r.asParent ? r.nrPages : 0), 0);
  const groups = reads(ranges);
  if (!groups.length) return same;
  // Page-aligned buffers: the image is read with O_DIRECT (it was written that way, so it is
  // not in the page cache, and filling the cache first would cost more than the read).
  const want = alignedBuffer(CHUNK * PAGE_SIZE);
  const have = Buffer.allocUnsafeSlow(CHUNK * PAGE_SIZE);
  let img: number;
  try {
    img = openSync(pagesFile, constants.O_RDONLY | constants.O_DIRECT);
  } catch {
    img = openSync(pagesFile, 'r');
  }
  const mem = openSync(`/proc/${pid}/mem`, 'r+');
  try {
    for (const g of groups) {
      const base = g[0]!.off;
      const last = g[g.length - 1]!;
      const span = last.off + last.pages * PAGE_SIZE - base;
      if (readSync(img, want, 0, span, base) !== span) throw new UserError(`${pagesFile} is shorter than its pagemap says`);
      for (const p of g) {
        const at = p.off - base;
        const bytes = p.pages * PAGE_SIZE;
        // The child's own pages at dump time: write them (as the original, they are not shared).
        if (p.asParent === false) {
          writeSync(mem, want, at, bytes, Number(p.vaddr));
          continue;
        }
        // Through /proc/PID/mem, not process_vm_readv: that one pins pages, and pinning a
        // page shared copy-on-write makes the kernel give the task its own copy (unshare).
        if (readSync(mem, have, 0, bytes, Number(p.vaddr)) !== bytes) throw new UserError(`pid ${pid}: cannot read inherited memory at ${hex(p.vaddr)}`);
        if (want.compare(have, 0, bytes, at, at + bytes) === 0) {
          same += p.pages;
          continue;
        }
        for (let i = 0; i < p.pages; i++) {
          const o = i * PAGE_SIZE;
          if (want.compare(have, o, o + PAGE_SIZE, at + o, at + o + PAGE_SIZE) === 0) {
            same++;
            continue;
          }
          // /proc/PID/mem may write pages that are read-only for the task itself.
          writeSync(mem, want, at + o, PAGE_SIZE, Number(p.vaddr) + o);
        }
      }
    }
  } finally {
    closeSync(img);
    closeSync(mem);
  }
  return same;
}
