// Rebuilding an address space inside the new task: drop what the stub brought, map each VMA at
// its address, fill saved pages with pread64 from the pages image (run by the task itself, so the
// kernel copies straight from the page cache), put the protections back, then the vdso.
import { statSync } from 'node:fs';
import { PAGE_SIZE, PROT, MAP, O, ARCH, NR } from '../../sys/index.js';
import { hex, UserError } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { VMA } from './vma-kind.js';
import type { VmaData, PageRange } from './dump.js';
import type { RestoreTask } from '../context.js';

/** Highest address of a 4-level-paging user address space (TASK_SIZE_MAX). */
const TASK_SIZE = 0x7ffffffff000n;

export interface MappedFile {
  name: string;
  size?: bigint;
}

export interface MemoryImage {
  vmas: VmaData[];
  /** Private pages in the order they are stored in `pagesFile`. */
  pages: PageRange[];
  pagesFile: string;
  /** Shared anonymous objects: shmid -> saved ranges (vaddr is the offset in the object). */
  shmem: Map<bigint, { pages: PageRange[]; pagesFile: string }>;
  files: Map<number, MappedFile>;
}

const special = (v: VmaData) => (v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR | VMA.AREA_VSYSCALL)) !== 0;

/** Unmaps everything the stub had except [keepStart, keepEnd) (the trampoline). */
export function dropStubMemory(r: RestoreTask, keepStart: bigint, keepEnd: bigint): void {
  if (keepStart > 0n) r.remote.call('munmap', [0, keepStart], 'stub memory below trampoline');
  r.remote.call('munmap', [keepEnd, TASK_SIZE - keepEnd], 'stub memory above trampoline');
}

export function restoreMemory(r: RestoreTask, img: MemoryImage): void {
  const call = r.remote.call.bind(r.remote);
  const fileFds = new Map<number, number>();
  const shmemFirst = new Map<bigint, VmaData>();
  const filled = vmasWithPages(img);
  try {
    failpoint('restore:mm');
    for (const v of img.vmas) {
      if (special(v)) continue;
      const len = v.end - v.start;
      const where = `mapping ${hex(v.start)}-${hex(v.end)}`;
      // Writable while we fill it only if it holds saved pages (so it was written, and is
      // accountable): mapping a never-written read-only VMA writable would make it accountable,
      // and the kernel would then merge it with a neighbour it was separate from.
      const fillProt = filled.has(v) || v.prot & PROT.WRITE ? v.prot | PROT.READ | PROT.WRITE : v.prot;
      if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) {
        const fd = openMappedFile(r, img, Number(v.shmid), (v.status & VMA.FILE_SHARED) !== 0 && (v.prot & PROT.WRITE) !== 0, fileFds);
        const prot = v.status & VMA.FILE_SHARED ? v.prot : fillProt;
        call('mmap', [v.start, len, prot, (v.flags & ~MAP.ANONYMOUS) | MAP.FIXED, fd, v.pgoff], where);
      } else if (v.status & VMA.ANON_SHARED) {
        const first = shmemFirst.get(v.shmid);
        if (!first) {
          if (v.pgoff !== 0n) throw new UserError(`${where}: shared anonymous mapping at offset ${v.pgoff} — not supported yet`);
          call('mmap', [v.start, len, fillProt, MAP.SHARED | MAP.ANONYMOUS | MAP.FIXED, -1, 0], where);
          shmemFirst.set(v.shmid, v);
        } else {
          r.scratch.reset();
          const path = r.scratch.putString(`/proc/self/map_files/${first.start.toString(16)}-${first.end.toString(16)}`);
          const fd = call('open', [path, O.RDWR, 0], where);
          call('mmap', [v.start, len, fillProt, MAP.SHARED | MAP.FIXED, fd, v.pgoff], where);
          call('close', [fd]);
        }
      } else {
        call('mmap', [v.start, len, fillProt, v.flags | MAP.FIXED | MAP.ANONYMOUS, -1, 0], where);
      }
    }
    for (const fd of fileFds.values()) call('close', [fd]);
    fileFds.clear();

    failpoint('restore:pages');
    fillPages(r, img.pagesFile, img.pages);
    for (const [shmid, sh] of img.shmem) {
      const first = shmemFirst.get(shmid);
      if (!first) continue;
      // The object is mapped from offset 0 at first.start: offset x lives at first.start + x.
      fillPages(r, sh.pagesFile, sh.pages.map((p) => ({ vaddr: first.start + p.vaddr, nrPages: p.nrPages })));
    }

    for (const v of img.vmas) {
      if (special(v)) continue;
      const wasFilledRw = !(v.status & VMA.FILE_SHARED) && (filled.has(v) || v.prot & PROT.WRITE);
      if (wasFilledRw && v.prot !== (v.prot | PROT.READ | PROT.WRITE)) {
        call('mprotect', [v.start, v.end - v.start, v.prot], `mapping ${hex(v.start)}`);
      }
      if (v.madv) {
        for (let adv = 0; adv < 64; adv++) {
          if (v.madv & (1n << BigInt(adv))) call('madvise', [v.start, v.end - v.start, adv], `madvise ${adv} at ${hex(v.start)}`);
        }
      }
    }
  } finally {
    for (const fd of fileFds.values()) r.remote.raw(3, [fd]);
  }
}

/** The VMAs that saved pages will be written into (private ranges and shared objects). */
function vmasWithPages(img: MemoryImage): Set<VmaData> {
  const out = new Set<VmaData>();
  const sorted = img.vmas.filter((v) => !special(v));
  for (const p of img.pages) {
    const end = p.vaddr + BigInt(p.nrPages * PAGE_SIZE);
    for (const v of sorted) if (v.start < end && p.vaddr < v.end) out.add(v);
  }
  for (const v of sorted) if (v.status & VMA.ANON_SHARED) out.add(v);
  return out;
}

function openMappedFile(r: RestoreTask, img: MemoryImage, id: number, writable: boolean, fds: Map<number, number>): number {
  const have = fds.get(id);
  if (have !== undefined) return have;
  const f = img.files.get(id);
  if (!f) throw new UserError(`mm image refers to file id ${id}, which files.img does not have`);
  if (f.size !== undefined) {
    let size: bigint;
    try {
      size = BigInt(statSync(f.name).size);
    } catch (e) {
      throw new UserError(`mapped file ${f.name} is missing: ${(e as Error).message}`);
    }
    if (size !== f.size) throw new UserError(`mapped file ${f.name} changed since the dump (size ${size}, was ${f.size})`);
  }
  r.scratch.reset();
  const fd = Number(r.remote.call('open', [r.scratch.putString(f.name), writable ? O.RDWR : O.RDONLY, 0], f.name));
  fds.set(id, fd);
  return fd;
}

/** pread64s each range from the pages file (opened by the task) into place. */
function fillPages(r: RestoreTask, pagesFile: string, ranges: PageRange[]): void {
  if (!ranges.length) return;
  r.scratch.reset();
  // O_DIRECT: the kernel reads straight into the task's pages, no page cache to fill first
  // (measured 0.38 GB/s buffered on a cold cache here). Filesystems without it: buffered.
  const path = r.scratch.putString(pagesFile);
  let fd = r.remote.raw(NR.open, [path, O.RDONLY | O.DIRECT, 0]);
  if (fd === -22n) fd = r.remote.call('open', [path, O.RDONLY, 0], pagesFile);
  else if (fd < 0n) r.remote.call('open', [path, O.RDONLY, 0], pagesFile);
  let off = 0n;
  try {
    for (const p of ranges) {
      let left = BigInt(p.nrPages * PAGE_SIZE);
      let addr = p.vaddr;
      while (left > 0n) {
        const chunk = left > 1n << 30n ? 1n << 30n : left;
        const n = r.remote.call('pread64', [fd, addr, chunk, off], `pages at ${hex(addr)}`);
        if (n <= 0n) throw new UserError(`${pagesFile} is shorter than its pagemap says (at offset ${off})`);
        addr += n;
        off += n;
        left -= n;
      }
    }
  } finally {
    r.remote.raw(3, [fd]);
  }
}

/** Maps the kernel's vdso back at the address the task had it, via arch_prctl(ARCH_MAP_VDSO_64). */
export function restoreVdso(r: RestoreTask, vmas: VmaData[]): bigint | null {
  failpoint('restore:vdso');
  const vvar = vmas.filter((v) => v.status & VMA.AREA_VVAR).sort((a, b) => (a.start < b.start ? -1 : 1))[0];
  const vdso = vmas.find((v) => v.status & VMA.AREA_VDSO);
  if (!vdso) return null;
  const base = vvar && vvar.start < vdso.start ? vvar.start : vdso.start;
  r.remote.call('arch_prctl', [ARCH.MAP_VDSO_64, base], `vdso at ${hex(base)}`);
  return vdso.start;
}
