// Rebuilding an address space inside the new task: drop what the stub brought, map each VMA at
// its address, fill saved pages with pread64 from the pages image (run by the task itself, so the
// kernel copies straight from the page cache), put the protections back, then the vdso.
import { intersect, subtract, type Span } from './spans.js';
import { changedSince, type FileStamp } from '../files/reg.js';
import { keptApart, mapShmemAtOffset, throughViews, withFileOffsets, MADV_DONTFORK, MADV_DOFORK, MLOCK_ONFAULT, type FileRange } from './layout.js';
export { shmemSizes } from './layout.js';
import { vma_entrySchema } from '../../image/gen/vma_pb.js';
import { hasField } from '../../image/presence.js';
import { PAGE_SIZE, PROT, MAP, O, ARCH, NR } from '../../sys/index.js';
import { writeChangedPages } from './changed-pages.js';
import { hex, UserError } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { skip } from '../../util/skip.js';
import { attachArgs } from './sysv-shm.js';
import { VMA } from './vma-kind.js';
import type { VmaData, PageRange } from './dump.js';
import { CallQueue, batchIn, type RestoreTask } from '../context.js';
import type { BatchCall } from '../../ptrace/index.js';
import { withoutKernelPages, type VdsoPlan } from './vdso-image.js';
import { hostFdInTask } from '../host-fd.js';
import { inTreeMountNs } from '../mnt/root-path.js';

/** Highest address of a 4-level-paging user address space (TASK_SIZE_MAX). */
const TASK_SIZE = 0x7ffffffff000n;

export type MappedFile = FileStamp;

export interface MemoryImage {
  vmas: VmaData[];
  /** Private pages in the order they are stored in `pagesFile`. */
  pages: PageRange[];
  pagesFile: string;
  /** Shared anonymous objects: shmid -> saved ranges (vaddr is the offset in the object). */
  shmem: Map<bigint, { pages: PageRange[]; pagesFile: string }>;
  files: Map<number, MappedFile>;
  vdso?: VdsoPlan; // how the vdso comes back (vdso-image.ts planVdso), decided at image read
}

const special = (v: VmaData) => (v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR | VMA.AREA_VSYSCALL)) !== 0;

/** Where a shared anonymous object already lives in a restored task, for others to map it. */
export interface ShmemOwner {
  pid: number;
  start: bigint;
  end: bigint;
  pgoff: bigint;
}

/** What a task's memory restore can build on. */
export interface MemoryContext {
  /** The parent's image, when the task was forked from its restored parent. */
  parent?: MemoryImage;
  /** Shared anonymous objects created so far, restore-wide: shmid -> first mapping. */
  shmemOwners: Map<bigint, ShmemOwner>;
  /** SysV segments made for the restore: id in the image -> id now. */
  sysvIds: Map<number, number>;
  /** Paths cryo made for the restore (deleted files): not compared with the dumped file. */
  unchecked: Set<string>;
  /** Size of each shared anonymous object: the end of its furthest mapping in the tree. */
  shmemSizes: Map<bigint, bigint>;
}

/** Unmaps everything in the task except the given ranges: one batch of munmaps (one stop, not one each). */
export function dropMemory(r: RestoreTask, keep: { start: bigint; end: bigint }[]): void {
  const calls: BatchCall[] = [];
  let cur = 0n;
  for (const k of [...keep].sort((a, b) => (a.start < b.start ? -1 : 1))) {
    if (k.start > cur) calls.push({ name: 'munmap', args: [cur, k.start - cur], detail: `inherited memory ${hex(cur)}-${hex(k.start)}` });
    if (k.end > cur) cur = k.end;
  }
  if (cur < TASK_SIZE) calls.push({ name: 'munmap', args: [cur, TASK_SIZE - cur], detail: `inherited memory above ${hex(cur)}` });
  const mark = r.scratch.mark();
  batchIn(r, calls);
  r.scratch.release(mark);
}

function vmaKey(v: VmaData, files: Map<number, MappedFile>): string {
  const obj = v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED) ? files.get(Number(v.shmid))?.name : String(v.shmid);
  // The lock is not part of it: a fork never passes it on, and it is set again after (mlock).
  return `${v.start}:${v.end}:${v.prot}:${v.flags & ~MAP.LOCKED}:${v.status}:${v.pgoff}:${obj}`;
}

/**
 * The child's VMAs that a fork from its restored parent already gives it, identical: they are
 * kept (not unmapped and rebuilt), so memory the two share copy-on-write stays shared.
 */
export function inheritedVmas(img: MemoryImage, parent: MemoryImage | undefined): Set<VmaData> {
  const out = new Set<VmaData>();
  if (!parent) return out;
  const theirs = new Set(parent.vmas.filter((v) => !special(v)).map((v) => vmaKey(v, parent.files)));
  for (const v of img.vmas) if (!special(v) && theirs.has(vmaKey(v, img.files))) out.add(v);
  // The vdso is the kernel's: the same addresses in both means the inherited one is right.
  const vdsoOf = (m: MemoryImage) => m.vmas.filter((v) => v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR)).map((v) => `${v.start}-${v.end}`).join(',');
  if (vdsoOf(img) === vdsoOf(parent) && img.vdso?.kind !== 'proxy') for (const v of img.vmas) if (v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR)) out.add(v);
  return out;
}

/** cryo's record that a private mapping is accountable (VmFlags ac); CRIU's images do not say. */
function accountable(v: VmaData): boolean {
  return !(v.flags & MAP.SHARED) && hasField(vma_entrySchema, v, 'cryoAccount') && v.cryoAccount === true;
}

export function restoreMemory(r: RestoreTask, img: MemoryImage, ctx: MemoryContext, kept: Set<VmaData>): { cowKept: number } {
  const call = r.remote.call.bind(r.remote);
  // The layout's mmap/mprotect/madvise/mlock runs go in batches (a stop per ~40 calls, not one
  // each); anything that needs a result or sees the mappings flushes the queue first.
  const q = new CallQueue(r);
  let fileFds = new Map<number, number>();
  const created = new Map<bigint, VmaData>();
  // Saved pages in a private mapping that was never writable (written through /proc/PID/mem or
  // ptrace, as a debugger sets breakpoints): mapping it writable to fill it would make it
  // accountable, so they go in from outside, through /proc/PID/mem. Only cryo's images say which
  // mappings are accountable; CRIU's are filled writable.
  const knowsAccount = img.vmas.some((v) => hasField(vma_entrySchema, v, 'cryoAccount'));
  const forced = new Set(
    [...vmasWithPages(img)].filter((v) => knowsAccount && !(v.flags & MAP.SHARED) && !(v.prot & PROT.WRITE) && !accountable(v)),
  );
  const filled = new Set([...vmasWithPages(img)].filter((v) => !forced.has(v)));
  const apart = keptApart(img.vmas, filled);
  // A shared anonymous object's pages go in through any of its mappings: each is writable then.
  const fedShared = (v: VmaData) => (v.status & VMA.ANON_SHARED) !== 0 && !(v.status & VMA.AREA_SYSVIPC) && img.shmem.has(v.shmid);
  let cowKept = 0;
  try {
    failpoint('restore:mm');
    fileFds = openMappedFiles(r, img, img.vmas.filter((v) => !special(v) && !kept.has(v)), ctx.unchecked);
    for (const v of img.vmas) {
      if (special(v) || kept.has(v)) continue;
      const len = v.end - v.start;
      const where = `mapping ${hex(v.start)}-${hex(v.end)}`;
      // Writable while we fill it only if it holds saved pages (so it was written, and is
      // accountable): mapping a never-written read-only VMA writable would make it accountable,
      // and the kernel would then merge it with a neighbour it was separate from.
      // A private mapping that was writable once is accountable (VM_ACCOUNT) for good: mapped
      // writable first again, or it would lose that (and merge where it did not).
      let fillProt = filled.has(v) || v.prot & PROT.WRITE || fedShared(v) || accountable(v) ? v.prot | PROT.READ | PROT.WRITE : v.prot;
      if (apart.has(v)) fillProt ^= PROT.EXEC;
      if (v.status & VMA.AREA_SYSVIPC) {
        const id = ctx.sysvIds.get(Number(v.shmid));
        if (id === undefined) throw new UserError(`${where}: SysV segment ${v.shmid} is not in the images`);
        q.add('shmat', attachArgs(id, v.start, (v.prot & PROT.WRITE) !== 0), where);
      } else if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) {
        const fd = fileFds.get(fileNeed(v).key)!;
        const prot = v.status & VMA.FILE_SHARED ? v.prot : fillProt;
        q.add('mmap', [v.start, len, prot, (v.flags & ~(MAP.ANONYMOUS | MAP.LOCKED)) | MAP.FIXED, fd, v.pgoff], where);
      } else if (v.status & VMA.ANON_SHARED) {
        const owner = ctx.shmemOwners.get(v.shmid);
        if (!owner) {
          // The object is as big as its furthest mapping, in any task (split or mremap'ed views).
          const size = ctx.shmemSizes.get(v.shmid) ?? v.pgoff + len;
          if (v.pgoff === 0n && size === len) q.add('mmap', [v.start, len, fillProt, MAP.SHARED | MAP.ANONYMOUS | MAP.FIXED, -1, 0], where);
          else {
            q.flush();
            mapShmemAtOffset(r, v, size, fillProt, where);
          }
          ctx.shmemOwners.set(v.shmid, { pid: r.pid, start: v.start, end: v.end, pgoff: v.pgoff });
          created.set(v.shmid, v);
        } else {
          // The same object, through the mapping that made it (in this task or another one).
          q.flush();
          r.scratch.reset();
          const self = owner.pid === r.pid ? 'self' : String(owner.pid);
          const mapFile = `/proc/${self}/map_files/${owner.start.toString(16)}-${owner.end.toString(16)}`;
          // In a mount namespace of its own the task's /proc is its container's: cryo opens it.
          const fd = inTreeMountNs() ? hostFdInTask(r, `/proc/${owner.pid}/map_files/${owner.start.toString(16)}-${owner.end.toString(16)}`, O.RDWR, where)
            : call('open', [r.scratch.putString(mapFile), O.RDWR, 0], where);
          call('mmap', [v.start, len, fillProt, MAP.SHARED | MAP.FIXED, fd, v.pgoff], where);
          call('close', [fd]);
        }
      } else {
        q.add('mmap', [v.start, len, fillProt, (v.flags & ~MAP.LOCKED) | MAP.FIXED | MAP.ANONYMOUS, -1, 0], where);
      }

    }
    // Mapped apart, kept apart while filled: a page fault would share the neighbour's anonymous
    // pages object (and so allow a merge later) unless the flags differ beyond the protection.
    for (const v of apart) if (!kept.has(v)) q.add('madvise', [v.start, v.end - v.start, MADV_DONTFORK], `mapping ${hex(v.start)} kept apart`);
    for (const fd of fileFds.values()) q.add('close', [fd]);
    q.flush();
    fileFds.clear();

    failpoint('restore:pages');
    const { fresh, inherited } = splitByKept(withFileOffsets(img.pages), kept);
    const { fresh: injected, inherited: fromOutside } = splitByKept(fresh, forced);
    fillPages(r, img.pagesFile, withoutKernelPages(injected, img.vmas));
    writeChangedPages(r.pid, img.pagesFile, fromOutside.map((f) => ({ ...f, asParent: false })));
    cowKept = writeChangedPages(r.pid, img.pagesFile, inherited);
    if (ctx.parent) dropStalePages(r, img, ctx.parent, kept);
    for (const [shmid, sh] of img.shmem) {
      if (!created.has(shmid)) continue;
      // Each page of the object goes in through a mapping of it in this task that covers it.
      const views = img.vmas.filter((v) => v.status & VMA.ANON_SHARED && v.shmid === shmid);
      fillPages(r, sh.pagesFile, throughViews(withFileOffsets(sh.pages), views, shmid));
    }

    for (const v of img.vmas) {
      if (special(v) || kept.has(v)) continue;
      const wasFilledRw = !(v.status & VMA.FILE_SHARED) && (filled.has(v) || v.prot & PROT.WRITE || fedShared(v) || accountable(v));
      if (apart.has(v) && !((v.madv ?? 0n) & (1n << BigInt(MADV_DONTFORK)))) q.add('madvise', [v.start, v.end - v.start, MADV_DOFORK], `mapping ${hex(v.start)}`);
      if (apart.has(v) || (wasFilledRw && v.prot !== (v.prot | PROT.READ | PROT.WRITE) && !skip('mprotect'))) {
        q.add('mprotect', [v.start, v.end - v.start, v.prot], `mapping ${hex(v.start)}`);
      }
      if (v.madv) {
        for (let adv = 0; adv < 64; adv++) {
          if (v.madv & (1n << BigInt(adv))) q.add('madvise', [v.start, v.end - v.start, adv], `madvise ${adv} at ${hex(v.start)}`);
        }
      }
    }
    // Locks are not inherited through fork: kept (inherited) mappings are locked here too.
    for (const v of img.vmas) {
      if (special(v) || !(v.flags & MAP.LOCKED)) continue;
      r.log.debug(`pid ${r.pid}: lock ${hex(v.start)}-${hex(v.end)}${v.cryoLockOnfault ? ' on fault' : ''}`);
      // An inaccessible mapping (PROT_NONE: a thread stack's guard, a reservation, made after
      // mlockall(MCL_FUTURE)) is locked by the kernel before it fails to fault its pages in:
      // mlock says ENOMEM although the lock is set, as it would for the task. The verification
      // compares the lock (VmFlags lo, lf) of every mapping.
      const mayFail = v.prot === 0;
      if (v.cryoLockOnfault) q.add('mlock2', [v.start, v.end - v.start, MLOCK_ONFAULT], `mlock2 ${hex(v.start)} on fault`, { mayFail });
      else q.add('mlock', [v.start, v.end - v.start], `mlock ${hex(v.start)}`, { mayFail });
    }
    q.flush();
  } finally {
    for (const fd of fileFds.values()) r.remote.raw(NR.close, [fd]);
  }
  return { cowKept };
}

/** Splits saved ranges into the parts inside kept (inherited) VMAs and the rest. */
function splitByKept(ranges: FileRange[], kept: Set<VmaData>): { fresh: FileRange[]; inherited: FileRange[] } {
  const keptList = [...kept].filter((v) => !special(v)).sort((a, b) => (a.start < b.start ? -1 : 1));
  const fresh: FileRange[] = [];
  const inherited: FileRange[] = [];
  const page = BigInt(PAGE_SIZE);
  for (const r of ranges) {
    let addr = r.vaddr;
    const end = r.vaddr + BigInt(r.nrPages) * page;
    while (addr < end) {
      const inside = keptList.find((v) => v.start <= addr && addr < v.end);
      let stop: bigint;
      if (inside) stop = inside.end < end ? inside.end : end;
      else {
        const next = keptList.find((v) => v.start > addr);
        stop = next && next.start < end ? next.start : end;
      }
      (inside ? inherited : fresh).push({
        vaddr: addr, nrPages: Number((stop - addr) / page), off: r.off + (addr - r.vaddr), ...(r.asParent !== undefined ? { asParent: r.asParent } : {}),
      });
      addr = stop;
    }
  }
  return { fresh, inherited };
}

/** Pages the parent had in an inherited private VMA and the child did not: drop the copies. */
function dropStalePages(r: RestoreTask, img: MemoryImage, parent: MemoryImage, kept: Set<VmaData>): void {
  // Interval arithmetic on page numbers (a page-per-page walk with BigInt sets cost ~0.2 s per
  // GiB): the parent's pages, inside kept private VMAs, minus the child's own.
  const pageNo = (a: bigint) => Number(a / BigInt(PAGE_SIZE));
  const runs = (ps: PageRange[]) => ps.map((p): Span => [pageNo(p.vaddr), pageNo(p.vaddr) + p.nrPages]);
  const priv = [...kept]
    .filter((v) => !special(v) && !(v.status & (VMA.ANON_SHARED | VMA.FILE_SHARED)))
    .map((v): Span => [pageNo(v.start), pageNo(v.end)]);
  for (const [a, b] of subtract(intersect(runs(parent.pages), priv), runs(img.pages))) {
    const start = BigInt(a) * BigInt(PAGE_SIZE);
    r.remote.call('madvise', [start, BigInt(b - a) * BigInt(PAGE_SIZE), MADV_DONTNEED], `drop stale pages at ${hex(start)}`);
  }
}

const MADV_DONTNEED = 4;

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

/** The mapped file a file VMA needs open, and how: a shared writable mapping needs O_RDWR. */
function fileNeed(v: VmaData): { id: number; writable: boolean; key: number } {
  const mayWrite = hasField(vma_entrySchema, v, 'fdflags') ? (v.fdflags! & O.ACCMODE) === O.RDWR : (v.prot & PROT.WRITE) !== 0;
  const writable = (v.status & VMA.FILE_SHARED) !== 0 && mayWrite;
  return { id: Number(v.shmid), writable, key: Number(v.shmid) * 2 + (writable ? 1 : 0) };
}

const OPENS_PER_BATCH = 16; // their paths share the scratch area (4 pages) with the results

/**
 * The task's fds on every file its VMAs map, one per file and access mode, opened by the task in
 * batches (a process maps tens of libraries: an injected open each was a third of its stops).
 */
function openMappedFiles(r: RestoreTask, img: MemoryImage, vmas: VmaData[], unchecked: Set<string>): Map<number, number> {
  const needs = new Map<number, { id: number; writable: boolean }>();
  for (const v of vmas) if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED) && !(v.status & VMA.AREA_SYSVIPC)) needs.set(fileNeed(v).key, fileNeed(v));
  const list = [...needs].map(([key, n]) => {
    const f = img.files.get(n.id);
    if (!f) throw new UserError(`mm image refers to file id ${n.id}, which files.img does not have`);
    const changed = unchecked.has(f.name) ? null : changedSince(f);
    if (changed) throw new UserError(`mapped file ${changed}`);
    return { key, name: f.name, writable: n.writable };
  });
  const fds = new Map<number, number>();
  for (let i = 0; i < list.length; i += OPENS_PER_BATCH) {
    const part = list.slice(i, i + OPENS_PER_BATCH);
    r.scratch.reset();
    const calls = part.map((f) => ({ name: 'open' as const, args: [r.scratch.putString(f.name), f.writable ? O.RDWR : O.RDONLY, 0], detail: f.name }));
    try {
      batchIn(r, calls).forEach((fd, j) => fds.set(part[j]!.key, Number(fd)));
    } catch (e) {
      // The opens before the failing one ran: close them here (the caller never gets the map).
      for (const fd of fds.values()) r.remote.raw(NR.close, [fd]);
      throw e;
    }
  }
  return fds;
}

/** pread64s each range from the pages file (opened by the task) into place. */
function fillPages(r: RestoreTask, pagesFile: string, ranges: FileRange[]): void {
  if (!ranges.length) return;
  r.scratch.reset();
  // O_DIRECT: the kernel reads straight into the task's pages, no page cache to fill first
  // (measured 0.38 GB/s buffered on a cold cache here). Filesystems without it: buffered.
  let fd: bigint;
  if (inTreeMountNs()) {
    // The images are not in the task's mount namespace: it takes cryo's open file instead.
    try {
      fd = hostFdInTask(r, pagesFile, O.RDONLY | O.DIRECT, pagesFile);
    } catch {
      fd = hostFdInTask(r, pagesFile, O.RDONLY, pagesFile);
    }
  } else {
    const path = r.scratch.putString(pagesFile);
    fd = r.remote.raw(NR.open, [path, O.RDONLY | O.DIRECT, 0]);
    if (fd < 0n) fd = r.remote.call('open', [path, O.RDONLY, 0], pagesFile);
  }
  try {
    // Every range's pread64s (at most 1 GiB each) in batches; a short read (end of file, or the
    // kernel stopping early) is finished one call at a time.
    const reads: { addr: bigint; off: bigint; len: bigint }[] = [];
    for (const p of ranges) {
      const end = p.vaddr + BigInt(p.nrPages * PAGE_SIZE);
      for (let addr = p.vaddr; addr < end; addr += 1n << 30n) {
        reads.push({ addr, off: p.off + (addr - p.vaddr), len: end - addr > 1n << 30n ? 1n << 30n : end - addr });
      }
    }
    const got = batchIn(r, reads.map((x) => ({ name: 'pread64', args: [fd, x.addr, x.len, x.off], detail: `pages at ${hex(x.addr)}` })));
    reads.forEach((x, i) => {
      let n = got[i]!;
      for (let { addr, off, len } = x; ; ) {
        if (n <= 0n) throw new UserError(`${pagesFile} is shorter than its pagemap says (at offset ${off})`);
        addr += n;
        off += n;
        len -= n;
        if (len <= 0n) break;
        n = r.remote.call('pread64', [fd, addr, len, off], `pages at ${hex(addr)}`);
      }
    });
  } finally {
    r.remote.raw(NR.close, [fd]);
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
