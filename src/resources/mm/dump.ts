// Dumping a task's address space: the VMA list (mm image), and the contents of the pages that
// matter (pagemap + pages images). Private file mappings only save pages that differ from the
// file; vvar/vsyscall are the kernel's and are not saved (the vdso's bytes are, for another kernel).
import { openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { PAGE_SIZE, PROT, MAP, PR, O, PAGE_IS, alignedBuffer, pagemapScan, dataExtents } from '../../sys/index.js';
import { parseSmapsVmFlags, pagesToDump, guardRuns, parseAuxv, sameFrameRuns, type MapsEntry } from '../../proc/index.js';
import { UnsupportedError } from '../../util/errors.js';
import { blockerAt, type Blocker } from '../../util/blocker.js';
import { ghostBlocker } from '../files/ghost.js';
import { lostReason, unlinkedName } from '../files/other-name.js';
import { isMemfd } from '../files/memfd.js';
import { VMA, classifyVma, mappingName, MADV_BY_VMFLAG, type VmaKind } from './vma-kind.js';
import type { DumpTask, ReadQueue } from '../context.js';
import type { PageRange } from './page-range.js';

export interface VmaData {
  start: bigint;
  end: bigint;
  pgoff: bigint;
  shmid: bigint;
  prot: number;
  flags: number;
  status: number;
  fd: number;
  madv?: bigint;
  fdflags?: number;
  cryoLockOnfault?: boolean;
  cryoAccount?: boolean;
  cryoSealed?: boolean;
  /** Guard regions: pairs of (first page index in the mapping, pages). */
  cryoGuardPages?: bigint[];
  /** VmFlags gu: guards were installed once (marked again at restore by an install and a removal). */
  cryoMaybeGuard?: boolean;
}

export interface MmData {
  mmStartCode: bigint;
  mmEndCode: bigint;
  mmStartData: bigint;
  mmEndData: bigint;
  mmStartStack: bigint;
  mmStartBrk: bigint;
  mmBrk: bigint;
  mmArgStart: bigint;
  mmArgEnd: bigint;
  mmEnvStart: bigint;
  mmEnvEnd: bigint;
  exeFileId: number;
  mmSavedAuxv: bigint[];
  vmas: VmaData[];
  cryoMdwe?: number;
}

// PageRange (page-range.ts) is named through this module too.
export type { PageRange } from './page-range.js';

/** Something to save for a shared anonymous object (keyed by its shmem inode). */
export interface ShmemRange extends PageRange {
  shmid: bigint;
  /** Offset of `vaddr` inside the shared object. */
  offset: bigint;
}

export interface MemoryPlan {
  vmas: VmaData[];
  privatePages: PageRange[];
  shmemPages: ShmemRange[];
  /** SysV segments attached, with a /proc path that reads each. */
  sysvShm: { shmid: number; source: string }[];
  /** mlockall's MCL_FUTURE (| MCL_ONFAULT) when the task set it, else 0 (see futureLocking). */
  mlockall: number;
}

const MCL_FUTURE = 2;
const MCL_ONFAULT = 4;

/**
 * Whether new mappings of the task are locked (mlockall MCL_FUTURE: mm->def_flags, which nothing
 * in /proc shows but a mapping made after it). cryo's scratch area is such a mapping: the task
 * mmapped it for us a moment ago, so its VmFlags say (lo, and lf for MCL_ONFAULT).
 */
function futureLocking(vmFlags: Map<bigint, Set<string>>, scratch: bigint): number {
  let best: bigint | null = null;
  for (const start of vmFlags.keys()) if (start <= scratch && (best === null || start > best)) best = start;
  const f = best === null ? undefined : vmFlags.get(best);
  if (!f?.has('lo')) return 0;
  return MCL_FUTURE | (f.has('lf') ? MCL_ONFAULT : 0);
}

/** Checks every mapping before anything is touched; returns the blockers (empty if none). */
export function mappingBlockers(pid: number, maps: MapsEntry[], ghostLimit: number): Blocker[] {
  const out: Blocker[] = [];
  for (const m of maps) {
    const c = classifyVma(pid, m);
    if ('blocker' in c) out.push(c.blocker);
    else if (m.deleted && (c.kind === 'file-private' || c.kind === 'file-shared') && !isMemfd(m.path)) {
      // Deleted files are saved as ghost files, up to the limit; one linked under another name is mapped by it.
      const source = `/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
      const unlinked = unlinkedName(pid, m.path, source);
      const b = unlinked.kind === 'lost'
        ? blockerAt({ pid, mapping: mappingName(m) }, { kind: 'file', reason: lostReason(m.path, unlinked.links) })
        : unlinked.kind === 'deleted' ? ghostBlocker({ pid, mapping: mappingName(m) }, m.path, source, ghostLimit) : null;
      if (b) out.push(b);
    }
  }
  return out;
}

function statusFor(kind: VmaKind, m: MapsEntry, heap: boolean): number {
  switch (kind) {
    case 'vsyscall':
      return VMA.AREA_VSYSCALL | VMA.ANON_PRIVATE;
    case 'vdso':
      return VMA.AREA_REGULAR | VMA.AREA_VDSO | VMA.ANON_PRIVATE;
    case 'vvar':
      return VMA.AREA_REGULAR | VMA.AREA_VVAR | VMA.ANON_PRIVATE;
    case 'anon-private':
      return VMA.AREA_REGULAR | VMA.ANON_PRIVATE | (heap ? VMA.AREA_HEAP : 0);
    case 'anon-shared':
      return VMA.AREA_REGULAR | VMA.ANON_SHARED;
    case 'sysv-shm':
      return VMA.AREA_REGULAR | VMA.AREA_SYSVIPC | VMA.ANON_SHARED;
    case 'file-private':
      return VMA.AREA_REGULAR | VMA.FILE_PRIVATE | (isMemfd(m.path) ? VMA.AREA_MEMFD : 0);
    case 'file-shared':
      return VMA.AREA_REGULAR | VMA.FILE_SHARED | (isMemfd(m.path) ? VMA.AREA_MEMFD : 0);
  }
}

/**
 * Builds the VMA list and decides which pages to save. `fileId(path)` registers a mapped file in
 * the files image and returns its id.
 */
export function planMemory(t: DumpTask, fileId: (m: MapsEntry) => number, parentPid?: number): MemoryPlan {
  const vmFlags = parseSmapsVmFlags(readFileSync(`/proc/${t.pid}/smaps`, 'utf8'));
  const vmas: VmaData[] = [];
  const privatePages: PageRange[] = [];
  const shmemPages: ShmemRange[] = [];
  const sysvShm: MemoryPlan['sysvShm'] = [];
  const pagemapFd = openSync(`/proc/${t.pid}/pagemap`, 'r');
  // The parent's page table, to mark pages the child still shares with it (see asParent).
  const parentFd = parentPid ? openSync(`/proc/${parentPid}/pagemap`, 'r') : null;
  try {
    for (const m of t.maps) {
      const c = classifyVma(t.pid, m);
      if ('blocker' in c) throw new UnsupportedError([c.blocker]);
      const flagsSet = vmFlags.get(m.start) ?? new Set<string>();
      const heap = m.path === '[heap]';
      const anon = c.kind !== 'file-private' && c.kind !== 'file-shared' && c.kind !== 'sysv-shm';
      let flags = (m.shared ? MAP.SHARED : MAP.PRIVATE) | (anon ? MAP.ANONYMOUS : 0);
      if (flagsSet.has('gd')) flags |= MAP.GROWSDOWN;
      if (flagsSet.has('nr')) flags |= MAP.NORESERVE;
      // mlock()ed or MAP_LOCKED (VM_LOCKED), as CRIU records it; restored with mlock.
      if (flagsSet.has('lo')) flags |= MAP.LOCKED;
      let madv = 0n;
      for (const [code, advice] of Object.entries(MADV_BY_VMFLAG)) if (flagsSet.has(code)) madv |= 1n << BigInt(advice);
      const prot = (m.read ? PROT.READ : 0) | (m.write ? PROT.WRITE : 0) | (m.exec ? PROT.EXEC : 0);
      const isFile = c.kind === 'file-private' || c.kind === 'file-shared';
      const v: VmaData = {
        start: m.start,
        end: m.end,
        pgoff: isFile || c.kind === 'anon-shared' ? m.offset : 0n,
        shmid: isFile ? BigInt(fileId(m)) : c.kind === 'anon-shared' || c.kind === 'sysv-shm' ? BigInt(m.inode) : 0n,
        prot,
        flags,
        status: statusFor(c.kind, m, heap),
        fd: -1,
      };
      if (madv) v.madv = madv;
      if (flagsSet.has('lf')) v.cryoLockOnfault = true;
      if (flagsSet.has('ac') && !m.shared) v.cryoAccount = true;
      if (flagsSet.has('sl')) v.cryoSealed = true;
      if (flagsSet.has('gu')) v.cryoMaybeGuard = true;
      // A shared file mapping keeps VM_MAYWRITE (VmFlags mw) only when its file was open for
      // writing: the restore opens it so too, or the mapping loses mw and sh.
      if (isFile) v.fdflags = c.kind === 'file-shared' && flagsSet.has('mw') ? O.RDWR : O.RDONLY;
      vmas.push(v);

      if (c.kind === 'sysv-shm') {
        // The segment's contents are saved once, with the segment, not per attachment.
        sysvShm.push({ shmid: m.inode, source: `/proc/${t.pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}` });
        continue;
      }
      // The vdso's bytes are saved, as CRIU does: a restore on another kernel proxies them.
      if (c.kind === 'vdso') privatePages.push({ vaddr: m.start, nrPages: Number((m.end - m.start) / BigInt(PAGE_SIZE)) });
      if (c.kind === 'vdso' || c.kind === 'vvar' || c.kind === 'vsyscall' || c.kind === 'file-shared') continue;
      if (c.kind === 'anon-shared') {
        for (const run of shmemRuns(t.pid, m)) {
          const vaddr = m.start + BigInt(run.first * PAGE_SIZE);
          shmemPages.push({ vaddr, nrPages: run.count, shmid: BigInt(m.inode), offset: m.offset + BigInt(run.first * PAGE_SIZE) });
        }
        continue;
      }
      const notForked = flagsSet.has('dc') || flagsSet.has('wf') ? { notForked: true } : {};
      const guards: { first: number; count: number }[] = [];
      for (const run of presentRuns(pagemapFd, m, c.kind === 'file-private', guards)) {
        const vaddr = m.start + BigInt(run.first * PAGE_SIZE);
        if (parentFd !== null) {
          privatePages.push(...markShared(pagemapFd, parentFd, vaddr, run.count).map((r) => ({ ...r, ...notForked })));
        } else {
          privatePages.push({ vaddr, nrPages: run.count, ...notForked });
        }
      }
      if (guards.length) v.cryoGuardPages = guards.flatMap((g) => [BigInt(g.first), BigInt(g.count)]);
    }
  } finally {
    closeSync(pagemapFd);
    if (parentFd !== null) closeSync(parentFd);
  }
  return { vmas, privatePages, shmemPages, sysvShm, mlockall: t.maps.length ? futureLocking(vmFlags, t.scratch.addr) : 0 };
}

const PAGEMAP_CHUNK_PAGES = 65536;

/** A run of present pages, split where the child's pages are (or stop being) the parent's own. */
function markShared(mineFd: number, parentFd: number, vaddr: bigint, count: number): PageRange[] {
  const out: PageRange[] = [];
  for (let done = 0; done < count; done += PAGEMAP_CHUNK_PAGES) {
    const n = Math.min(PAGEMAP_CHUNK_PAGES, count - done);
    const at = vaddr + BigInt(done * PAGE_SIZE);
    const pos = Number(at / BigInt(PAGE_SIZE)) * 8;
    const mine = Buffer.alloc(n * 8);
    const theirs = Buffer.alloc(n * 8);
    readSync(mineFd, mine, 0, mine.length, pos);
    readSync(parentFd, theirs, 0, theirs.length, pos);
    for (const r of sameFrameRuns(mine, theirs)) {
      const v = at + BigInt(r.first * PAGE_SIZE);
      const last = out[out.length - 1];
      if (last && !!last.asParent === r.same && last.vaddr + BigInt(last.nrPages * PAGE_SIZE) === v) last.nrPages += r.count;
      else out.push({ vaddr: v, nrPages: r.count, asParent: r.same });
    }
  }
  return out;
}

/** The runs of pages to save in `m`; its guard pages go to `guards` (indices in the mapping). */
function* presentRuns(pagemapFd: number, m: MapsEntry, privateOnly: boolean, guards: { first: number; count: number }[]): Generator<{ first: number; count: number }> {
  // The kernel's own walk when it has one (sys/pagemap-scan.ts): the same pages as the words
  // below tell (present or swapped; not guards; not file pages where only copies count).
  const scanned = pagemapScan(pagemapFd, m.start, m.end, PAGE_IS.PRESENT | PAGE_IS.SWAPPED | PAGE_IS.GUARD, PAGE_IS.FILE | PAGE_IS.GUARD);
  if (scanned) {
    let pending: { first: number; count: number } | null = null;
    const page = BigInt(PAGE_SIZE);
    for (const r of scanned) {
      const first = Number((r.start - m.start) / page);
      const count = Number((r.end - r.start) / page);
      if (r.categories & PAGE_IS.GUARD) {
        const last = guards[guards.length - 1];
        if (last && last.first + last.count === first) last.count += count;
        else guards.push({ first, count });
        continue;
      }
      if (privateOnly && r.categories & PAGE_IS.FILE) continue;
      if (pending && pending.first + pending.count === first) pending.count += count;
      else {
        if (pending) yield pending;
        pending = { first, count };
      }
    }
    if (pending) yield pending;
    return;
  }
  const total = Number((m.end - m.start) / BigInt(PAGE_SIZE));
  const words = Buffer.alloc(Math.min(total, PAGEMAP_CHUNK_PAGES) * 8);
  let pending: { first: number; count: number } | null = null;
  for (let done = 0; done < total; done += PAGEMAP_CHUNK_PAGES) {
    const n = Math.min(PAGEMAP_CHUNK_PAGES, total - done);
    const pos = Number(m.start / BigInt(PAGE_SIZE)) * 8 + done * 8;
    const got = readSync(pagemapFd, words, 0, n * 8, pos);
    for (const g of guardRuns(words.subarray(0, got))) {
      const last = guards[guards.length - 1];
      if (last && last.first + last.count === g.first + done) last.count += g.count;
      else guards.push({ first: g.first + done, count: g.count });
    }
    for (const run of pagesToDump(words.subarray(0, got), privateOnly)) {
      const first = run.first + done;
      if (pending && pending.first + pending.count === first) pending.count += run.count;
      else {
        if (pending) yield pending;
        pending = { first, count: run.count };
      }
    }
  }
  if (pending) yield pending;
}

/**
 * The pages a shared anonymous mapping shows that its object holds, from the object itself
 * (SEEK_DATA/SEEK_HOLE on /proc/PID/map_files), not from the task's page table: a page written
 * by a task that has since exited or unmapped it, or dropped from this one by MADV_DONTNEED, is
 * in the object but not in pagemap, and a dump that read pagemap lost it silently.
 */
function* shmemRuns(pid: number, m: MapsEntry): Generator<{ first: number; count: number }> {
  const fd = openSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`, 'r');
  try {
    const lo = Number(m.offset);
    let last = lo;
    for (const { start, end } of dataExtents(fd, lo, lo + Number(m.end - m.start))) {
      const from = Math.max(last, Math.floor(start / PAGE_SIZE) * PAGE_SIZE);
      const to = Math.ceil(end / PAGE_SIZE) * PAGE_SIZE;
      if (to > from) yield { first: (from - lo) / PAGE_SIZE, count: (to - from) / PAGE_SIZE };
      last = to;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The mm-wide fields: from /proc/PID/stat, brk and PR_SET_MDWE's flags from the task (read with
 * its other reads, `q`), auxv from /proc; the function gives them once `q` ran.
 */
export function dumpMmFields(t: DumpTask, q: ReadQueue): (exeFileId: number) => Omit<MmData, 'vmas'> {
  const brk = q.add('brk', [0]);
  // A kernel before 6.3 has no such prctl (EINVAL): its error is the answer.
  const mdwe = q.add('prctl', [PR.GET_MDWE, 0, 0, 0, 0], { mayFail: true });
  return (exeFileId) => {
    const flags = mdwe();
    return {
      mmStartCode: t.stat.startCode,
      mmEndCode: t.stat.endCode,
      mmStartData: t.stat.startData,
      mmEndData: t.stat.endData,
      mmStartStack: t.stat.startStack,
      mmStartBrk: t.stat.startBrk,
      mmBrk: BigInt.asUintN(64, brk()),
      mmArgStart: t.stat.argStart,
      mmArgEnd: t.stat.argEnd,
      mmEnvStart: t.stat.envStart,
      mmEnvEnd: t.stat.envEnd,
      exeFileId,
      mmSavedAuxv: parseAuxv(readFileSync(`/proc/${t.pid}/auxv`)),
      // Only when set.
      ...(flags > 0n ? { cryoMdwe: Number(flags) } : {}),
    };
  };
}

/**
 * Copies the page ranges out of the task to `sink`, in order, through one reusable buffer.
 * Read through /proc/PID/mem, not process_vm_readv: that pins the pages, and pinning a page
 * shared copy-on-write (after fork) makes the kernel give the task its own copy — the dump
 * would multiply the memory of a process tree. /proc/PID/mem also reads PROT_NONE pages.
 */
let copyBuffer: Buffer | null = null;

export function copyPages(pid: number, ranges: PageRange[], sink: (chunk: Buffer) => void, bufBytes = 16 << 20): number {
  // Page-aligned, so the sink may write it with O_DIRECT.
  if (!copyBuffer || copyBuffer.length !== bufBytes) copyBuffer = alignedBuffer(bufBytes);
  const buf = copyBuffer;
  const mem = openSync(`/proc/${pid}/mem`, 'r');
  let total = 0;
  let used = 0;
  const flush = () => {
    if (!used) return;
    sink(buf.subarray(0, used));
    total += used;
    used = 0;
  };
  try {
    for (const r of ranges) {
      let left = r.nrPages * PAGE_SIZE;
      let addr = Number(r.vaddr);
      while (left > 0) {
        if (used === buf.length) flush();
        const n = Math.min(left, buf.length - used);
        const got = readSync(mem, buf, used, n, addr);
        if (got !== n) throw new Error(`pid ${pid}: cannot read memory at 0x${(addr + got).toString(16)}`);
        used += n;
        addr += n;
        left -= n;
      }
    }
    flush();
  } finally {
    closeSync(mem);
  }
  return total;
}

/** One run of pages read out of the task now, into a buffer of its own (page-aligned, for O_DIRECT). */
export function readPages(pid: number, r: PageRange): Buffer {
  const buf = alignedBuffer(r.nrPages * PAGE_SIZE);
  const mem = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (let done = 0; done < buf.length; ) {
      const got = readSync(mem, buf, done, buf.length - done, Number(r.vaddr) + done);
      if (got <= 0) throw new Error(`pid ${pid}: cannot read memory at 0x${(Number(r.vaddr) + done).toString(16)}`);
      done += got;
    }
  } finally {
    closeSync(mem);
  }
  return buf;
}
