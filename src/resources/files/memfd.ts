// memfds (the kind 'memfd'): an anonymous file with a name, a size, seals and contents, used
// through fds and mappings. Saved once per inode (memfd.img) with its non-zero pages as a shmem
// pagemap written with the memory (FdKind.pages); every fd, and every memfd mapped, is a MEMFD
// entry (flags, position) pointing at its inode. Restored with memfd_create in the restorer
// before any task (prepare): fds are new opens of it, mappings are made by the task from
// /proc/<restorer>/fd/N (mapped).
import { openSync, readSync, closeSync, fstatSync, writeSync, statSync } from 'node:fs';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { memfd_inode_entrySchema, type memfd_file_entry } from '../../image/gen/memfd_pb.js';
import { sys, O, PAGE_SIZE } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { PageRange } from '../mm/page-range.js';
import type { FownData } from './fown.js';
import type { FdKind, FdSeen, FdDumpContext, FdOpenContext, FdPrepareContext, KindImages, KindState } from './fd-kind.js';

export type MemfdInode = MessageInitShape<typeof memfd_inode_entrySchema> & {
  name: string; uid: number; gid: number; size: bigint; shmid: number; seals: number; inodeId: bigint; mode: number;
};

const PREFIX = '/memfd:';
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
/** F_SEAL_SEAL: no more seals can be added (memfds created without MFD_ALLOW_SEALING have it). */
const F_SEAL_SEAL = 1;

export function isMemfd(path: string): boolean {
  return path.startsWith(PREFIX);
}

/** The name given to memfd_create, from a `/memfd:NAME (deleted)` link or maps path. */
function memfdName(path: string): string {
  return path.slice(PREFIX.length).replace(/ \(deleted\)$/, '');
}

/** Name, owner, mode, size and seals of the memfd that `source` (a /proc link) opens. */
function inspectMemfd(source: string, path: string, inodeId: number): MemfdInode {
  const fd = openSync(source, O.RDONLY | O.CLOEXEC);
  try {
    const st = fstatSync(fd);
    return {
      name: memfdName(path), uid: st.uid, gid: st.gid, size: BigInt(st.size), mode: st.mode,
      shmid: st.ino, inodeId: BigInt(inodeId), seals: sys('fcntl', [fd, F_GET_SEALS], `memfd ${path}`),
    };
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the memfd's non-zero pages to `sink`; returns them as ranges of page offsets (the
 * pagemap of a shared object records offsets, not addresses).
 */
function copyMemfdPages(source: string, size: bigint, sink: (chunk: Buffer) => void): PageRange[] {
  const fd = openSync(source, O.RDONLY | O.CLOEXEC);
  const buf = Buffer.alloc(1 << 20);
  const runs: PageRange[] = [];
  try {
    for (let off = 0; off < Number(size); ) {
      const n = readSync(fd, buf, 0, buf.length, off);
      if (n <= 0) break;
      const pages = Math.ceil(n / PAGE_SIZE);
      buf.fill(0, n, pages * PAGE_SIZE);
      for (let p = 0; p < pages; p++) {
        const page = buf.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
        if (page.every((b) => b === 0)) continue;
        sink(Buffer.from(page));
        const at = BigInt(off + p * PAGE_SIZE);
        const last = runs[runs.length - 1];
        if (last && last.vaddr + BigInt(last.nrPages * PAGE_SIZE) === at) last.nrPages++;
        else runs.push({ vaddr: at, nrPages: 1 });
      }
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return runs;
}

/** A new memfd as the image describes it, in the restorer: contents, owner, mode, then seals. */
function createMemfd(m: MemfdInode, pages: PageRange[], pagesFile: string): number {
  const name = Buffer.from(m.name + '\0');
  const sealable = m.seals !== F_SEAL_SEAL;
  const fd = sys('memfd_create', [name, MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0)], `memfd ${m.name}`);
  try {
    sys('ftruncate', [fd, m.size], `memfd ${m.name} size`);
    if (pages.length) {
      const src = openSync(pagesFile, O.RDONLY | O.CLOEXEC);
      try {
        const buf = Buffer.alloc(1 << 20);
        let pos = 0;
        for (const r of pages) {
          for (let done = 0; done < r.nrPages * PAGE_SIZE; ) {
            const n = readSync(src, buf, 0, Math.min(buf.length, r.nrPages * PAGE_SIZE - done), pos);
            if (n <= 0) throw new Error(`${pagesFile}: ends early`);
            writeSync(fd, buf, 0, n, Number(r.vaddr) + done);
            done += n;
            pos += n;
          }
        }
      } finally {
        closeSync(src);
      }
    }
    // The last page goes in whole: cut the file back to its size.
    sys('ftruncate', [fd, m.size], `memfd ${m.name} size`);
    sys('fchown', [fd, m.uid, m.gid], `memfd ${m.name} owner`);
    sys('fchmod', [fd, m.mode & 0o7777], `memfd ${m.name} mode`);
    // Sealing after filling (a write seal would stop us); a memfd created without
    // MFD_ALLOW_SEALING has F_SEAL_SEAL already.
    if (sealable && m.seals) sys('fcntl', [fd, F_ADD_SEALS, m.seals], `memfd ${m.name} seals`);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** One open file description of a restored memfd, with its own flags and position. */
function openMemfd(memfd: number, flags: number, pos: bigint): number {
  const fd = openSync(`/proc/self/fd/${memfd}`, (flags & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY)) | O.CLOEXEC);
  if (pos) sys('lseek', [fd, pos, 0], 'memfd position');
  return fd;
}

export interface MemfdRecord {
  id: number;
  flags: number;
  pos: bigint;
  fown: FownData;
  /** Its inode's id in memfd.img. */
  inodeId: number;
}

/** The dump's memfd inodes, by dev:ino, each with a /proc path that opens it (while frozen). */
const dumpedInodes = (state: KindState) => state.memo('memfd inodes', () => new Map<string, MemfdInode & { source: string }>());

/**
 * The MEMFD record of file `id`: one open file description (flags, position) of the memfd that
 * `source` (a /proc fd or map_files link) opens; its inode is inspected once per dump.
 */
export function memfdRecord(state: KindState, id: number, source: string, path: string, flags: number, pos: bigint, fown: FownData): MemfdRecord {
  const st = statSync(source);
  const key = `${st.dev}:${st.ino}`;
  const inodes = dumpedInodes(state);
  let m = inodes.get(key);
  if (!m) {
    m = { ...inspectMemfd(source, path, inodes.size + 1), source };
    inodes.set(key, m);
  }
  return { id, flags, pos, fown, inodeId: Number(m.inodeId) };
}

/** memfd.img's inodes, by inode id, with their pages, read once for the restore. */
const imageInodes = (images: KindImages) =>
  images.memo('memfd.img read', () => {
    const out = new Map<number, { inode: MemfdInode; pages: PageRange[]; pagesFile: string }>();
    for (const m of (images.read('memfd.img') ?? []) as MemfdInode[]) {
      out.set(Number(m.inodeId), { inode: m, ...(images.pagemap(`pagemap-shmem-${m.shmid}.img`) ?? { pages: [], pagesFile: '' }) });
    }
    return out;
  });

/** Our memfd of each inode, by inode id, made by prepare(). */
const madeMemfds = (images: KindImages) => images.memo('memfds made', () => new Map<number, number>());

export const memfdKind = {
  name: 'memfd' as const,
  type: 'MEMFD',
  field: 'memfd',
  phase: 'table',
  object: false,
  recognise: (link: string) => isMemfd(link),
  blocker: () => null,
  dump: (f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext) => memfdRecord(ctx, id, `/proc/${f.pid}/fd/${f.fd}`, f.link, flags, f.info.pos, fown),
  images(_records: MemfdRecord[], state: KindState) {
    const inodes = [...dumpedInodes(state).values()];
    return inodes.length ? [{ file: 'memfd.img', kind: 'MEMFD_INODE', entries: inodes.map(({ source: _, ...m }) => create(memfd_inode_entrySchema, m)) }] : [];
  },
  pages: (state: KindState) =>
    [...dumpedInodes(state).values()].map((m) => ({
      pagemap: `pagemap-shmem-${m.shmid}.img`,
      bytes: Math.ceil(Number(m.size) / PAGE_SIZE) * PAGE_SIZE,
      copy: (sink: (chunk: Buffer) => void) => copyMemfdPages(m.source, m.size, sink),
    })),
  read(entry: unknown, id: number): MemfdRecord {
    const e = entry as memfd_file_entry;
    return { id, flags: e.flags, pos: e.pos, fown: e.fown!, inodeId: e.inodeId };
  },
  validate(records: MemfdRecord[], images: KindImages): void {
    const inodes = imageInodes(images);
    for (const r of records) if (!inodes.has(r.inodeId)) throw new UserError(`files.img: memfd file id ${r.id} refers to inode ${r.inodeId}, missing from memfd.img`);
  },
  prepare(_records: MemfdRecord[], ctx: FdPrepareContext): void {
    const made = madeMemfds(ctx.images);
    for (const [inodeId, m] of imageInodes(ctx.images)) made.set(inodeId, createMemfd(m.inode, m.pages, m.pagesFile));
  },
  open: (rec: MemfdRecord, ctx: FdOpenContext) => openMemfd(madeMemfds(ctx.images).get(rec.inodeId)!, rec.flags, rec.pos),
  mapped: (rec: MemfdRecord, images: KindImages) => ({ name: `/proc/${process.pid}/fd/${madeMemfds(images).get(rec.inodeId)}` }),
  release(images: KindImages): number[] {
    const made = madeMemfds(images);
    const fds = [...made.values()];
    made.clear();
    return fds;
  },
  expect: (rec: MemfdRecord, s, key) => s.set(`${key} pos`, String(rec.pos)),
  observe: (info, s, key) => s.set(`${key} pos`, String(info.pos)),
} satisfies FdKind<MemfdRecord>;
