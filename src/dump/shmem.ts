// Shared anonymous memory of a tree: each object's pages once, from whichever task has them,
// and the check that the task that makes the object again on restore can fill all of it.
import { PAGE_SIZE } from '../sys/index.js';
import { VMA } from '../resources/mm/vma-kind.js';
import type { ShmemRange } from '../resources/mm/dump.js';
import type { TaskImages } from './task.js';
import type { Blocker } from '../util/blocker.js';

/**
 * Pages of shared anonymous objects, by object: each page once, read from the first task that
 * has it present. `vaddr` stays the address in that task, `offset` the place in the object.
 */
export function mergeShmem(ranges: (ShmemRange & { pid: number })[]): Map<bigint, (ShmemRange & { pid: number })[]> {
  const out = new Map<bigint, (ShmemRange & { pid: number })[]>();
  const byObj = new Map<bigint, (ShmemRange & { pid: number })[]>();
  for (const r of ranges) byObj.set(r.shmid, [...(byObj.get(r.shmid) ?? []), r]);
  for (const [shmid, list] of byObj) {
    const taken = new Set<bigint>();
    const pages: { off: bigint; pid: number; vaddr: bigint }[] = [];
    for (const r of list) {
      for (let i = 0; i < r.nrPages; i++) {
        const off = r.offset + BigInt(i * PAGE_SIZE);
        if (taken.has(off)) continue;
        taken.add(off);
        pages.push({ off, pid: r.pid, vaddr: r.vaddr + BigInt(i * PAGE_SIZE) });
      }
    }
    pages.sort((a, b) => (a.off < b.off ? -1 : a.off > b.off ? 1 : 0));
    const runs: (ShmemRange & { pid: number })[] = [];
    for (const p of pages) {
      const last = runs[runs.length - 1];
      const size = BigInt(PAGE_SIZE);
      if (last && last.pid === p.pid && last.offset + BigInt(last.nrPages) * size === p.off && last.vaddr + BigInt(last.nrPages) * size === p.vaddr) {
        last.nrPages++;
      } else {
        runs.push({ shmid, offset: p.off, vaddr: p.vaddr, nrPages: 1, pid: p.pid });
      }
    }
    out.set(shmid, runs);
  }
  return out;
}

/**
 * A shared anonymous object is made again, and filled, by the first task that maps it: each of
 * its saved pages must lie in one of that task's mappings of it (others reach it through them).
 */
export function uncoveredShmem(images: TaskImages[], shmem: Map<bigint, (ShmemRange & { pid: number })[]>): Blocker[] {
  const out: Blocker[] = [];
  for (const [shmid, runs] of shmem) {
    const first = images.find((i) => i.mm.vmas.some((v) => v.shmid === shmid && v.status & VMA.ANON_SHARED));
    const views = first?.mm.vmas.filter((v) => v.shmid === shmid && v.status & VMA.ANON_SHARED) ?? [];
    for (const r of runs) {
      const end = r.offset + BigInt(r.nrPages * PAGE_SIZE);
      const covered = (off: bigint): bigint | null => {
        const v = views.find((w) => w.pgoff <= off && off < w.pgoff + (w.end - w.start));
        return v ? v.pgoff + (v.end - v.start) : null;
      };
      for (let off = r.offset; off < end; ) {
        const next = covered(off);
        if (next === null) {
          out.push({ pid: r.pid, kind: 'mapping', reason: `shared anonymous memory ${shmid}: offset ${off} is mapped by pid ${r.pid} but not by pid ${first?.pid}, which maps it first — not supported yet` });
          break;
        }
        off = next;
      }
    }
  }
  return out;
}
