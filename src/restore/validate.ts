// The image graph, checked before any task is created: every id an image refers to exists
// (exactly once), the process tree is a tree with unique PIDs whose sessions and groups can be
// put back, VMAs and page ranges make sense and the page images hold exactly the pages the
// pagemaps promise. cryo's own images are also covered byte for byte by the manifest; CRIU's
// (no manifest) get only these checks, which is why they are thorough: a damaged image must
// fail here with a line naming the file, not restore a process that crashes or misses data.
import { readFileSync, statSync } from 'node:fs';
import { PAGE_SIZE } from '../sys/index.js';
import { VMA } from '../resources/mm/vma-kind.js';
import type { VmaData, PageRange } from '../resources/mm/dump.js';
import type { Manifest } from '../image/manifest.js';
import { UserError, hex } from '../util/errors.js';
import { pidHolder } from './pid-holder.js';
import type { CheckpointImage, TaskImage } from './checkpoint.js';
import { validateNestedPids, nestedOf } from '../resources/ns/pid-nested.js';

const PAGE = BigInt(PAGE_SIZE);
/** Highest user address + 1 with 5-level paging; the vsyscall page lies above, alone. */
const USER_END = 1n << 56n;
const VSYSCALL_START = 0xffffffffff600000n;

/** The statuses cryo and CRIU write for the mappings cryo restores (see resources/mm/dump.ts). */
const R = VMA.AREA_REGULAR;
const VALID_STATUS = new Set<number>([
  VMA.AREA_VSYSCALL | VMA.ANON_PRIVATE,
  R | VMA.AREA_VDSO | VMA.ANON_PRIVATE,
  R | VMA.AREA_VVAR | VMA.ANON_PRIVATE,
  R | VMA.ANON_PRIVATE,
  R | VMA.ANON_PRIVATE | VMA.AREA_HEAP,
  R | VMA.ANON_PRIVATE | VMA.AREA_STACK,
  R | VMA.ANON_SHARED,
  R | VMA.AREA_SYSVIPC | VMA.ANON_SHARED,
  R | VMA.FILE_PRIVATE,
  R | VMA.FILE_PRIVATE | VMA.AREA_MEMFD,
  R | VMA.FILE_SHARED,
  R | VMA.FILE_SHARED | VMA.AREA_MEMFD,
]);
const PROT_ALL = 0x7; // READ | WRITE | EXEC
const MAP_SHARED = 0x1;
const MAP_PRIVATE = 0x2;
// SHARED PRIVATE FIXED ANONYMOUS GROWSDOWN DENYWRITE EXECUTABLE LOCKED NORESERVE POPULATE
// NONBLOCK STACK HUGETLB SYNC FIXED_NOREPLACE
const MAP_KNOWN = 0x1 | 0x2 | 0x10 | 0x20 | 0x100 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x40000 | 0x80000 | 0x100000;

function pidMax(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  } catch {
    return 4194304;
  }
}

/** `names`: the files of the directory; `fileIds`: every id files.img defines, once each. */
export function validateCheckpoint(ckpt: CheckpointImage, names: string[], fileIds: Set<number>, manifest: Manifest | null, shellJob: boolean): void {
  validateTree(ckpt, names, manifest, shellJob);
  validateNestedPids(ckpt.tasks.map(nestedOf), ckpt.zombies);
  const segments = new Set(ckpt.sysvShm.map((s) => s.entry.desc.id));
  for (const t of ckpt.tasks) {
    validateIds(t, fileIds);
    validateVmas(t, fileIds, segments);
  }
  validatePages(ckpt);
  validateFileRefs(ckpt);
}

/** PIDs and TIDs valid and unique, each task among its threads: checked before any is read. */
export function validatePstree(entries: { pid: number; threads: number[] }[]): void {
  const max = pidMax();
  const seen = new Set<number>();
  const claim = (id: number, what: string) => {
    if (!Number.isInteger(id) || id < 1 || id > max) throw new UserError(`pstree.img: ${what} ${id} is not a valid PID (1..${max})`);
    if (seen.has(id)) throw new UserError(`pstree.img: PID ${id} appears twice (${what})`);
    seen.add(id);
  };
  for (const t of entries) {
    // A zombie's entry may list no threads.
    if (t.threads.length && !t.threads.includes(t.pid)) throw new UserError(`pstree.img: task ${t.pid} is not among its own threads`);
    claim(t.pid, 'task');
    for (const tid of t.threads) if (tid !== t.pid) claim(tid, `thread of ${t.pid}`);
  }
}

function validateTree(ckpt: CheckpointImage, names: string[], manifest: Manifest | null, shellJob: boolean): void {
  const max = pidMax();
  const seen = new Set([...ckpt.tasks.flatMap((t) => [t.pid, ...t.pstree.threads]), ...ckpt.zombies.map((z) => z.pid)]);
  // A task image beside the tree but outside it: pstree.img lost entries (cut, or edited).
  for (const n of names) {
    const m = /^core-(\d+)\.img$/.exec(n);
    if (m && !seen.has(Number(m[1]))) throw new UserError(`${n}: task ${m[1]} is not in pstree.img (pstree.img damaged or cut short?)`);
  }
  const led = new Set([...ckpt.tasks.map((t) => t.pid), ...ckpt.zombies.map((z) => z.pid)]);
  const ext = manifest?.external;
  const byPid = new Map(ckpt.tasks.map((t) => [t.pid, t.pstree]));
  for (const p of ckpt.tasks.map((t) => t.pstree)) {
    const { pid, sid, pgid } = p;
    for (const [id, what] of [[sid, 'session'], [pgid, 'process group']] as const) {
      if (!Number.isInteger(id) || id < 1 || id > max) throw new UserError(`pstree.img: task ${pid} has ${what} ${id}, not a valid id`);
    }
    // setsid() makes the caller its group's leader, and a session leader cannot change group.
    if (sid === pid && pgid !== pid) throw new UserError(`pstree.img: task ${pid} leads session ${sid} but is in process group ${pgid} — impossible`);
    const leader = byPid.get(pgid);
    if (leader && leader.sid !== sid) throw new UserError(`pstree.img: task ${pid} is in group ${pgid}, whose leader is in another session (${leader.sid} vs ${sid})`);
    checkOutsideLeader(p, sid, 'session', led, byPid, ext?.sessions, manifest !== null, shellJob);
    checkOutsideLeader(p, pgid, 'process group', led, byPid, ext?.groups, manifest !== null, shellJob);
  }
}

/**
 * A session or group led from outside the tree must be one the dump saw so (the manifest records
 * it), and, when helpers must stand in for its leader (a task other than the root, not in its
 * parent's), its PID must not be held by a live task. The root then joins the restorer's
 * session: for images without a manifest (CRIU's), only when asked to (--shell-job, as CRIU).
 */
function checkOutsideLeader(
  p: { pid: number; ppid: number; sid: number; pgid: number },
  id: number,
  what: 'session' | 'process group',
  led: Set<number>,
  byPid: Map<number, { sid: number; pgid: number }>,
  external: number[] | undefined,
  haveManifest: boolean,
  shellJob: boolean,
): void {
  if (led.has(id)) return;
  if (haveManifest && !external?.includes(id)) {
    throw new UserError(`pstree.img: task ${p.pid} is in ${what} ${id}, led neither from inside the tree nor recorded as external by the dump`);
  }
  const parent = p.ppid ? byPid.get(p.ppid) : undefined;
  if (!parent) {
    if (haveManifest || shellJob) return;
    throw new UserError(`pstree.img: the root task ${p.pid} is in ${what} ${id}, led from outside the images — restore with --shell-job to put it in this session`);
  }
  if ((what === 'session' ? parent.sid : parent.pgid) === id) return; // inherited from its parent
  const h = pidHolder(id);
  if (h.kind === 'live') {
    throw new UserError(`pstree.img: task ${p.pid} is in ${what} ${id}, whose leader must be re-created, but PID ${id} is held by a live ${h.what}`);
  }
}

function validateIds(t: TaskImage, fileIds: Set<number>): void {
  const need = (id: number, what: string, file: string) => {
    if (!fileIds.has(id)) throw new UserError(`${file}: ${what} refers to file id ${id}, missing from files.img`);
  };
  need(t.mm.exeFileId, 'the exe link', `mm-${t.pid}.img`);
  need(t.fs.cwdId, 'the cwd', `fs-${t.pid}.img`);
  if (t.fs.rootId) need(t.fs.rootId, 'the root', `fs-${t.pid}.img`);
  const fds = new Set<number>();
  const table = `fdinfo-${t.ids.filesId}.img`;
  for (const fi of t.fdinfo) {
    if (!Number.isInteger(fi.fd) || fi.fd < 0 || fi.fd >= 1 << 20) throw new UserError(`${table}: fd ${fi.fd} is out of range`);
    if (fds.has(fi.fd)) throw new UserError(`${table}: fd ${fi.fd} appears twice`);
    fds.add(fi.fd);
    need(fi.id, `fd ${fi.fd}`, table);
  }
}

function validateVmas(t: TaskImage, fileIds: Set<number>, segments: Set<number>): void {
  const file = `mm-${t.pid}.img`;
  let prevEnd = 0n;
  let vdso = 0;
  for (const v of t.memory.vmas) {
    const where = `${file}: VMA ${hex(v.start)}-${hex(v.end)}`;
    if (v.start % PAGE || v.end % PAGE || v.start >= v.end) throw new UserError(`${where}: not a page-aligned, non-empty range`);
    if (v.start < prevEnd) throw new UserError(`${where}: overlaps the VMA before it or is out of order`);
    prevEnd = v.end;
    const vsyscall = (v.status & VMA.AREA_VSYSCALL) !== 0;
    if (vsyscall ? v.start !== VSYSCALL_START : v.end > USER_END) throw new UserError(`${where}: outside user space`);
    if (!VALID_STATUS.has(v.status)) throw new UserError(`${where}: VMA status ${hex(v.status)} is not one cryo restores (damaged, or a kind not supported)`);
    if (v.prot & ~PROT_ALL) throw new UserError(`${where}: protection ${hex(v.prot)} has unknown bits`);
    if (v.flags & ~MAP_KNOWN) throw new UserError(`${where}: mmap flags ${hex(v.flags)} have unknown bits`);
    const shared = (v.status & (VMA.FILE_SHARED | VMA.ANON_SHARED)) !== 0;
    if ((v.flags & (MAP_SHARED | MAP_PRIVATE)) !== (shared ? MAP_SHARED : MAP_PRIVATE)) {
      throw new UserError(`${where}: mmap flags ${hex(v.flags)} disagree with its status ${hex(v.status)} (shared or private)`);
    }
    if (v.pgoff % PAGE) throw new UserError(`${where}: file offset ${hex(v.pgoff)} is not page-aligned`);
    if (v.status & VMA.AREA_VDSO) vdso++;
    if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED) && !fileIds.has(Number(v.shmid))) {
      throw new UserError(`${where}: maps file id ${v.shmid}, missing from files.img`);
    }
    if (v.status & VMA.AREA_SYSVIPC && !segments.has(Number(v.shmid))) {
      throw new UserError(`${where}: attaches SysV segment ${v.shmid}, missing from the IPC images`);
    }
  }
  if (vdso > 1) throw new UserError(`${file}: ${vdso} vdso VMAs (one expected)`);
  if (vdso === 0 && t.memory.vmas.length) throw new UserError(`${file}: no vdso VMA — the task could not be resumed`);
  checkRanges(t.memory.pages, `pagemap-${t.pid}.img`, privateVmas(t.memory.vmas));
}

function privateVmas(vmas: VmaData[]): VmaData[] {
  return vmas.filter((v) => !(v.status & (VMA.FILE_SHARED | VMA.ANON_SHARED | VMA.AREA_VSYSCALL)));
}

/** Ranges in order, disjoint, page-aligned, and (when `vmas` is given) inside those VMAs. */
function checkRanges(pages: PageRange[], file: string, vmas?: VmaData[]): void {
  let prevEnd = 0n;
  let i = 0;
  for (const p of pages) {
    const where = `${file}: pages at ${hex(p.vaddr)}`;
    if (!Number.isSafeInteger(p.nrPages) || p.nrPages < 1) throw new UserError(`${where}: ${p.nrPages} pages`);
    if (p.vaddr % PAGE) throw new UserError(`${where}: not page-aligned`);
    if (p.vaddr < prevEnd) throw new UserError(`${where}: overlap the range before or are out of order`);
    const end = p.vaddr + BigInt(p.nrPages) * PAGE;
    prevEnd = end;
    if (!vmas) continue;
    // Walk the VMAs covering [vaddr, end): they must be contiguous.
    let at = p.vaddr;
    while (i < vmas.length && vmas[i]!.end <= at) i++;
    let j = i;
    while (at < end) {
      const v = vmas[j];
      if (!v || v.start > at) throw new UserError(`${where} (${p.nrPages} pages): not inside a private VMA of the task`);
      at = v.end;
      j++;
    }
  }
}

/** Each page image holds exactly the pages its pagemap lists (no more: no less). */
function validatePages(ckpt: CheckpointImage): void {
  const byFile = new Map<string, { pages: PageRange[]; what: string }>();
  const add = (pagesFile: string, pages: PageRange[], what: string) => {
    if (pagesFile && !byFile.has(pagesFile)) byFile.set(pagesFile, { pages, what });
  };
  for (const t of ckpt.tasks) {
    add(t.memory.pagesFile, t.memory.pages, `pagemap-${t.pid}.img`);
    for (const [shmid, s] of t.memory.shmem) {
      checkRanges(s.pages, `pagemap-shmem-${shmid}.img`);
      add(s.pagesFile, s.pages, `pagemap-shmem-${shmid}.img`);
    }
  }
  for (const [file, { pages, what }] of byFile) checkPagesFile(file, pages, what);
}

/** A pages file holds exactly the pages `what` (its pagemap) lists. */
function checkPagesFile(file: string, pages: PageRange[], what: string): void {
  const want = pages.reduce((n, p) => n + p.nrPages, 0) * PAGE_SIZE;
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    if (want === 0) return;
    throw new UserError(`${file}: missing, but ${what} lists ${want / PAGE_SIZE} pages in it`);
  }
  if (size !== want) throw new UserError(`${file}: ${size} bytes, but ${what} lists ${want / PAGE_SIZE} pages (${want} bytes): truncated or damaged`);
}

/**
 * A shmem pagemap an fd kind reads (a memfd's contents, KindImages.pagemap): its ranges sane and
 * its pages file of their size, as validatePages checks the tasks' own.
 */
export function checkPageImage(pages: PageRange[], pagesFile: string, pagemap: string): void {
  checkRanges(pages, pagemap);
  if (pagesFile) checkPagesFile(pagesFile, pages, pagemap);
}

/** Locks belong to tasks the tree has (a kind checks its own images: FdKind.validate). */
function validateFileRefs(ckpt: CheckpointImage): void {
  const pids = new Set(ckpt.tasks.map((t) => t.pid));
  for (const pid of ckpt.locks.keys()) if (!pids.has(pid)) throw new UserError(`filelocks.img: a lock held by pid ${pid}, not a live task of the tree`);
}
