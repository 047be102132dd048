// The last word on a task's memory, once nothing more is mapped, protected or advised in it:
// guard regions (MADV_GUARD_INSTALL: vma_entry cryo_guard_pages), sealed mappings (mseal(2), VmFlags sl: vma_entry cryo_sealed) and memory-deny-write-execute
// (PR_SET_MDWE: mm_entry cryo_mdwe), which would refuse the restore's own mprotect to r-x, and
// mlockall's MCL_FUTURE (mm_entry cryo_mlockall), which would lock what the restore still maps.
import type { RestoreTask } from '../context.js';
import { hex } from '../../util/errors.js';
import type { MemoryImage } from './restore.js';
import { PR, PAGE_SIZE, memWrite } from '../../sys/index.js';
import { MADV_GUARD_INSTALL, MADV_GUARD_REMOVE } from './layout.js';
import { readPages, type VmaData } from './dump.js';
import type { PageRange } from './page-range.js';

/**
 * Installs the guard regions the mappings had (a guard page faults on any access), once their
 * pages are filled and their flags final and the task's children forked (a child inherits guards
 * it may not have had), before any seal (which would refuse the advice). A kernel before 6.13 has
 * no such advice: the restore fails rather than leave the pages open. A mapping marked for guards
 * (VmFlags gu, which only an install sets and a removal keeps) without any left gets the mark by
 * an install and a removal on one page: one the image has no contents for, or else one whose
 * contents are read first and written back (the install drops the page).
 */
export function installGuards(r: RestoreTask, img: MemoryImage): void {
  for (const v of img.vmas) {
    const g = v.cryoGuardPages ?? [];
    for (let i = 0; i + 1 < g.length; i += 2) {
      const at = v.start + g[i]! * BigInt(PAGE_SIZE);
      r.remote.call('madvise', [at, g[i + 1]! * BigInt(PAGE_SIZE), MADV_GUARD_INSTALL], `MADV_GUARD_INSTALL at ${hex(at)}`);
    }
    if (v.cryoMaybeGuard && !g.length) markForGuards(r, v, img.pages);
  }
}

function markForGuards(r: RestoreTask, v: VmaData, pages: readonly PageRange[]): void {
  const page = BigInt(PAGE_SIZE);
  // The first page from the start that no saved run covers.
  let at = v.start;
  const runs = pages.filter((p) => p.vaddr < v.end && p.vaddr + BigInt(p.nrPages) * page > v.start).sort((a, b) => (a.vaddr < b.vaddr ? -1 : 1));
  for (const p of runs) {
    if (p.vaddr > at) break;
    const end = p.vaddr + BigInt(p.nrPages) * page;
    if (end > at) at = end;
  }
  const keep = at < v.end ? null : readPages(r.pid, { vaddr: (at = v.start), nrPages: 1 });
  r.remote.call('madvise', [at, page, MADV_GUARD_INSTALL], `mark ${hex(v.start)} for guards`);
  r.remote.call('madvise', [at, page, MADV_GUARD_REMOVE], `mark ${hex(v.start)} for guards`);
  if (keep) memWrite(r.pid, at, keep);
}

/**
 * Seals the mappings that were sealed (mseal): the last thing done to the task's memory, once its
 * children were forked (a child inherits the seal, and would have its own restore refused) and
 * nothing is left to map, protect or advise in them.
 */
export function sealMappings(r: RestoreTask, img: MemoryImage): void {
  for (const v of img.vmas) {
    if (v.cryoSealed) r.remote.call('mseal', [v.start, v.end - v.start, 0], `mseal ${hex(v.start)}-${hex(v.end)}`);
  }
}

/**
 * Sets PR_SET_MDWE again (after the task's children were forked: they have their own, or none,
 * and would inherit it), and reads it back: a kernel that took other flags fails the restore.
 */
export function denyWriteExec(r: RestoreTask, flags: number): void {
  if (!flags) return;
  r.remote.call('prctl', [PR.SET_MDWE, flags, 0, 0, 0], 'PR_SET_MDWE');
  const got = Number(r.remote.call('prctl', [PR.GET_MDWE, 0, 0, 0, 0], 'PR_GET_MDWE'));
  if (got !== flags) throw new Error(`pid ${r.pid}: PR_SET_MDWE ${flags} reads back as ${got}`);
}

/**
 * mlockall(MCL_FUTURE [| MCL_ONFAULT]) again: without MCL_CURRENT it only marks the mappings to
 * come (the task's own locked mappings were locked one by one with the layout). Not inherited by
 * a fork, so after the task's children exist.
 */
export function lockFutureMappings(r: RestoreTask, flags: number): void {
  if (flags) r.remote.call('mlockall', [flags], `mlockall ${flags}`);
}
