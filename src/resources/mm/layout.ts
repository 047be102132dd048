// How a task's mappings are laid out again before their pages go in: kept apart from neighbours
// the kernel would merge them with, shared anonymous objects made as big as their furthest view
// and filled through whichever view covers a page, and where each saved range sits in its file.
import { PAGE_SIZE, PROT, MAP, O } from '../../sys/index.js';
import { UserError, hex } from '../../util/errors.js';
import { VMA } from './vma-kind.js';
import type { RestoreTask } from '../context.js';
import type { PageRange, VmaData } from './dump.js';

const special = (v: VmaData) => (v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR | VMA.AREA_VSYSCALL)) !== 0;

/** Each shared anonymous object's size, from every task's mappings of it. */
export function shmemSizes(vmas: VmaData[]): Map<bigint, bigint> {
  const out = new Map<bigint, bigint>();
  for (const v of vmas) {
    if (!(v.status & VMA.ANON_SHARED) || v.status & VMA.AREA_SYSVIPC) continue;
    const end = v.pgoff + (v.end - v.start);
    if (end > (out.get(v.shmid) ?? 0n)) out.set(v.shmid, end);
  }
  return out;
}

/**
 * Private mappings that touch the one before them and both hold pages: separate VMAs in the
 * task (each has its own anonymous pages), but a new mapping with the same flags as its
 * neighbour is merged into it at mmap time, before it has pages of its own. Every other one in a
 * run of them is mapped with PROT_EXEC flipped and MADV_DONTFORK while it is filled; once each has
 * its own pages the kernel no longer merges them, and both are undone.
 */
export const MADV_DONTFORK = 10;
/** Guard regions (Linux 6.13): pages that fault on any access, in the page table only. */
export const MADV_GUARD_INSTALL = 102;
export const MADV_GUARD_REMOVE = 103;

export const MLOCK_ONFAULT = 1;

export const MADV_DOFORK = 11;

export function keptApart(vmas: VmaData[], filled: Set<VmaData>): Set<VmaData> {
  const apart = new Set<VmaData>();
  const isPrivate = (v: VmaData) => !special(v) && !(v.status & (VMA.FILE_SHARED | VMA.ANON_SHARED | VMA.AREA_SYSVIPC));
  for (let i = 1; i < vmas.length; i++) {
    const [prev, v] = [vmas[i - 1]!, vmas[i]!];
    if (prev.end === v.start && isPrivate(prev) && isPrivate(v) && filled.has(prev) && filled.has(v) && !apart.has(prev)) apart.add(v);
  }
  return apart;
}

/**
 * The first mapping of a shared anonymous object that does not cover all of it from offset 0
 * (split by mprotect or madvise, the start unmapped, or mremap'ed from inside): the object is
 * made as big as `size` in a scratch mapping the kernel places, mapped from there at the
 * mapping's offset (through map_files), and the scratch dropped.
 */
export function mapShmemAtOffset(r: RestoreTask, v: VmaData, size: bigint, prot: number, where: string): void {
  const call = r.remote.call.bind(r.remote);
  const tmp = call('mmap', [0, size, PROT.READ | PROT.WRITE, MAP.SHARED | MAP.ANONYMOUS, -1, 0], `${where}: object of ${size} bytes`);
  try {
    r.scratch.reset();
    const fd = call('open', [r.scratch.putString(`/proc/self/map_files/${tmp.toString(16)}-${(tmp + size).toString(16)}`), O.RDWR, 0], where);
    try {
      call('mmap', [v.start, v.end - v.start, prot, MAP.SHARED | MAP.FIXED, fd, v.pgoff], where);
    } finally {
      call('close', [fd]);
    }
  } finally {
    call('munmap', [tmp, size]);
  }
}

/** Object-offset ranges (vaddr = offset in the object) turned into addresses of the views. */
export function throughViews(ranges: FileRange[], views: VmaData[], shmid: bigint): FileRange[] {
  const out: FileRange[] = [];
  const page = BigInt(PAGE_SIZE);
  for (const r of ranges) {
    for (let i = 0n; i < BigInt(r.nrPages); ) {
      const off = r.vaddr + i * page;
      const v = views.find((w) => w.pgoff <= off && off < w.pgoff + (w.end - w.start));
      if (!v) throw new UserError(`shared anonymous object ${shmid}: page at offset ${hex(off)} is in no mapping of the task that restores it`);
      const n = Math.min(Number(r.nrPages) - Number(i), Number((v.pgoff + (v.end - v.start) - off) / page));
      out.push({ vaddr: v.start + (off - v.pgoff), nrPages: n, off: r.off + i * page });
      i += BigInt(n);
    }
  }
  return out;
}

export interface FileRange extends PageRange {
  /** Where the range's bytes start in the pages file. */
  off: bigint;
}

export function withFileOffsets(ranges: PageRange[]): FileRange[] {
  let off = 0n;
  return ranges.map((p) => {
    const r = { ...p, off };
    off += BigInt(p.nrPages * PAGE_SIZE);
    return r;
  });
}
