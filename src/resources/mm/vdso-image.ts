// The image's vdso against the running kernel's.
//
// The vdso and its data pages ([vvar], [vvar_vclock]) are the kernel's. An image records where
// they were and (CRIU, and cryo since it can proxy) the vdso's own bytes. At restore:
// - same layout and same bytes (or no bytes saved): the running kernel's vdso is mapped at the
//   old place (ARCH_MAP_VDSO_64) and the saved pages are not written (it is read-only);
// - otherwise (another kernel's vdso): the running one is mapped in free space, and the old
//   vdso's place gets a private anonymous copy of the saved bytes whose exported entry points
//   jump to the running one's (code that kept a pointer into the old vdso still works). An
//   export the running vdso lacks is refused before any task is created.
import { openSync, readSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { PAGE_SIZE, PROT, MAP, ARCH } from '../../sys/index.js';
import { parseMaps } from '../../proc/index.js';
import { UserError, hex } from '../../util/errors.js';
import { VMA } from './vma-kind.js';
import { vdsoSymbols, jumpTo, type VdsoSymbol } from './vdso-elf.js';
import type { VmaData } from './dump.js';
import type { FileRange } from './layout.js';
import type { RestoreTask } from '../context.js';

/** A kernel mapping: offset from the lowest of them, size, protections. */
interface Piece {
  off: bigint;
  size: bigint;
  prot: number;
  name: string;
}

export interface KernelVdso {
  /** [vvar], [vvar_vclock], [vdso] relative to the lowest. */
  pieces: Piece[];
  /** Offset of [vdso] from the lowest piece, and its size. */
  vdsoOff: bigint;
  vdsoSize: bigint;
  bytes: Buffer;
}

let running: KernelVdso | null = null;

/** The running kernel's vdso, as cryo itself has it mapped (the same for every process). */
export function runningVdso(): KernelVdso {
  if (running) return running;
  const maps = parseMaps(readFileSync('/proc/self/maps', 'utf8')).filter((m) => ['[vvar]', '[vvar_vclock]', '[vdso]'].includes(m.path));
  const vdso = maps.find((m) => m.path === '[vdso]');
  if (!vdso) throw new UserError('this process has no [vdso] mapping: cannot compare the image\'s vdso');
  const low = maps.reduce((a, m) => (m.start < a ? m.start : a), vdso.start);
  const bytes = Buffer.alloc(Number(vdso.end - vdso.start));
  const fd = openSync('/proc/self/mem', 'r');
  try {
    readSync(fd, bytes, 0, bytes.length, Number(vdso.start));
  } finally {
    closeSync(fd);
  }
  const prot = (m: (typeof maps)[number]) => (m.read ? PROT.READ : 0) | (m.exec ? PROT.EXEC : 0);
  running = {
    pieces: maps.map((m) => ({ off: m.start - low, size: m.end - m.start, prot: prot(m), name: m.path })),
    vdsoOff: vdso.start - low,
    vdsoSize: vdso.end - vdso.start,
    bytes,
  };
  return running;
}

/** A mapping the restore leaves where the image had the vdso (compared by the verify step). */
export interface VdsoMapping {
  start: bigint;
  end: bigint;
  prot: number;
}

export type VdsoPlan =
  | { kind: 'kernel'; mapped: VdsoMapping[] }
  | { kind: 'proxy'; old: VmaData; code: Buffer; patches: { off: number; name: string; target: VdsoSymbol }[]; mapped: VdsoMapping[]; running?: VdsoMapping };

const kernelArea = (v: VmaData) => (v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR)) !== 0;

/** The saved bytes of `[start, end)` from the pages file, or null if not every page is saved. */
function savedBytes(pages: FileRange[], pagesFile: string, start: bigint, end: bigint): Buffer | null {
  const out = Buffer.alloc(Number(end - start));
  let covered = 0;
  let fd: number | null = null;
  try {
    for (const p of pages) {
      const pEnd = p.vaddr + BigInt(p.nrPages * PAGE_SIZE);
      const from = p.vaddr > start ? p.vaddr : start;
      const to = pEnd < end ? pEnd : end;
      if (from >= to) continue;
      fd ??= openSync(pagesFile, 'r');
      const n = Number(to - from);
      if (readSync(fd, out, Number(from - start), n, Number(p.off + (from - p.vaddr))) !== n) throw new UserError(`${pagesFile} is shorter than its pagemap says (vdso pages)`);
      covered += n;
    }
  } finally {
    if (fd !== null) closeSync(fd);
  }
  return covered === out.length ? out : null;
}

/**
 * Decides, before any task exists, how task `pid`'s vdso comes back (see the top of the file).
 * Throws, naming what is missing, when the running kernel's vdso cannot stand in for it.
 */
export function planVdso(pid: number, vmas: VmaData[], pages: FileRange[], pagesFile: string): VdsoPlan | undefined {
  const old = vmas.find((v) => v.status & VMA.AREA_VDSO);
  if (!old) return undefined;
  const kern = runningVdso();
  const low = vmas.filter(kernelArea).reduce((a, v) => (v.start < a ? v.start : a), old.start);
  const sameLayout = old.start - low === kern.vdsoOff && old.end - old.start === kern.vdsoSize;
  const code = savedBytes(pages, pagesFile, old.start, old.end);
  const atOld = kern.pieces.map((p) => ({ start: low + p.off, end: low + p.off + p.size, prot: p.prot }));
  if (sameLayout && (code === null || code.equals(kern.bytes))) return { kind: 'kernel', mapped: atOld };
  const where = `pid ${pid}: the image's vdso (${hex(old.start)}-${hex(old.end)}) is another kernel's`;
  if (code === null) throw new UserError(`${where}, and its pages are not in the image: it cannot be proxied`);
  let oldSyms: Map<string, VdsoSymbol>;
  let newSyms: Map<string, VdsoSymbol>;
  try {
    oldSyms = vdsoSymbols(code);
  } catch (e) {
    throw new UserError(`${where}, and its ELF image is unreadable: ${(e as Error).message}`);
  }
  try {
    newSyms = vdsoSymbols(kern.bytes);
  } catch (e) {
    throw new UserError(`the running kernel's vdso is unreadable: ${(e as Error).message}`);
  }
  const missing = [...oldSyms.keys()].filter((n) => !newSyms.has(n));
  if (missing.length) throw new UserError(`${where}: it exports ${missing.join(', ')}, which the running kernel's vdso lacks`);
  const patches: { off: number; name: string; target: VdsoSymbol }[] = [];
  const byOff = [...oldSyms.values()].sort((a, b) => a.off - b.off);
  for (const s of byOff) {
    if (patches.some((p) => p.off === s.off)) continue; // an alias (clock_gettime / __vdso_clock_gettime)
    const next = byOff.find((o) => o.off > s.off);
    const room = Math.min(s.size || Infinity, (next?.off ?? code.length) - s.off, code.length - s.off);
    if (s.off < 0 || room < 12) throw new UserError(`${where}: ${s.name} has ${room} bytes, too few for a jump to the running vdso`);
    patches.push({ off: s.off, name: s.name, target: newSyms.get(s.name)! });
  }
  return { kind: 'proxy', old, code, patches, mapped: [] };
}

/** Saved ranges without the pages of the kernel's mappings (never written into the task). */
export function withoutKernelPages(ranges: FileRange[], vmas: VmaData[]): FileRange[] {
  const kern = vmas.filter(kernelArea);
  if (!kern.length) return ranges;
  const page = BigInt(PAGE_SIZE);
  const out: FileRange[] = [];
  for (const r of ranges) {
    let addr = r.vaddr;
    const end = r.vaddr + BigInt(r.nrPages) * page;
    while (addr < end) {
      const inside = kern.find((v) => v.start <= addr && addr < v.end);
      const next = kern.filter((v) => v.start > addr).reduce<bigint>((a, v) => (v.start < a ? v.start : a), end);
      const stop = inside ? (inside.end < end ? inside.end : end) : next < end ? next : end;
      if (!inside) out.push({ ...r, vaddr: addr, nrPages: Number((stop - addr) / page), off: r.off + (addr - r.vaddr) });
      addr = stop;
    }
  }
  return out;
}

/** Lowest address from 4 GiB up where `size` bytes touch none of `busy`. */
function freeSpace(busy: { start: bigint; end: bigint }[], size: bigint): bigint {
  let cand = 0x100000000n;
  for (const r of [...busy].sort((a, b) => (a.start < b.start ? -1 : 1))) {
    if (r.end <= cand) continue;
    if (r.start >= cand + size) break;
    cand = r.end;
  }
  return cand;
}

/**
 * Proxies another kernel's vdso in task `r` (its VMAs laid out already, `busy` being every
 * range in use): the running vdso in free space, the old one's place a private copy of the
 * saved bytes whose entry points jump there. Returns the old vdso's start.
 */
export function proxyVdso(r: RestoreTask, plan: Extract<VdsoPlan, { kind: 'proxy' }>, busy: { start: bigint; end: bigint }[]): bigint {
  const kern = runningVdso();
  const span = kern.pieces.reduce((a, p) => (p.off + p.size > a ? p.off + p.size : a), 0n);
  const base = freeSpace(busy, span);
  r.remote.call('arch_prctl', [ARCH.MAP_VDSO_64, base], `running vdso at ${hex(base)}`);
  const newVdso = base + kern.vdsoOff;
  const { old } = plan;
  const len = old.end - old.start;
  const code = Buffer.from(plan.code);
  for (const p of plan.patches) jumpTo(newVdso + BigInt(p.target.off)).copy(code, p.off);
  r.remote.call('mmap', [old.start, len, PROT.READ | PROT.WRITE, MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED, -1, 0], `old vdso copy at ${hex(old.start)}`);
  // /proc/PID/mem writes the copy from here: no scratch buffer of the vdso's size in the task.
  const mem = openSync(`/proc/${r.pid}/mem`, 'r+');
  try {
    writeSync(mem, code, 0, code.length, Number(old.start));
  } finally {
    closeSync(mem);
  }
  r.remote.call('mprotect', [old.start, len, old.prot], `old vdso copy at ${hex(old.start)}`);
  plan.running = { start: newVdso, end: newVdso + kern.vdsoSize, prot: PROT.READ | PROT.EXEC };
  plan.mapped = [{ start: old.start, end: old.end, prot: old.prot }, ...kern.pieces.map((p) => ({ start: base + p.off, end: base + p.off + p.size, prot: p.prot }))];
  r.log.info(`pid ${r.pid}: vdso of another kernel at ${hex(old.start)} proxied to the running one at ${hex(newVdso)} (${plan.patches.map((p) => p.name).join(', ')})`);
  return old.start;
}

/**
 * Where to look for a `syscall` instruction in the restored task's vdso (the last injected call
 * runs from there): the running kernel's vdso when the old one is a proxy (its code is another
 * kernel's, possibly none of it usable), else the vdso VMA itself.
 */
export function vdsoSyscallArea(plan: VdsoPlan | undefined, vmas: VmaData[], vdso: bigint): { start: bigint; len: number } {
  if (plan?.kind === 'proxy' && plan.running) return { start: plan.running.start, len: Number(plan.running.end - plan.running.start) };
  const v = vmas.find((w) => w.start === vdso)!;
  return { start: v.start, len: Number(v.end - v.start) };
}
