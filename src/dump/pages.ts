// The memory of a frozen tree into pagemap + pages images: each task's private pages, each
// shared anonymous object once (from whichever tasks have its pages), and what the fd kinds save
// the same way (each memfd once, read from the file itself). Interrupts are taken between
// chunks; progress is counted per chunk. A task's private pages may come from its copy-on-write
// snapshot instead (dump/snapshot.ts), after the tree is released: `PageSource`.
import { create } from '@bufbuild/protobuf';
import { PAGE_SIZE, checkInterrupt } from '../sys/index.js';
import type { ImageDirWriter } from '../image/dir.js';
import { pagemap_headSchema, pagemap_entrySchema } from '../image/gen/pagemap_pb.js';
import { PE_PRESENT, PE_AS_PARENT, PE_NOT_PARENT } from '../image/pagemap.js';
import { copyPages, type PageRange } from '../resources/mm/dump.js';
import { FD_KINDS } from '../resources/files/registry.js';
import type { AnyFdKind, KindPages } from '../resources/files/fd-kind.js';
import type { FileTable } from '../resources/files/table.js';
import { UnsupportedError } from '../util/errors.js';
import type { ProgressMeter } from '../util/progress-meter.js';
import { mergeShmem, uncoveredShmem } from './shmem.js';
import type { TaskImages } from './task.js';

/** A run of pages for one pagemap: `at` is what it records, the bytes are read from `pid` at `vaddr`. */
type Run = PageRange & { pid: number; at: bigint };

/**
 * Where a task's private pages are read: from `pid` (the task itself, or its snapshot), except
 * the runs `held` has, read earlier (keyed by vaddr).
 */
export interface PageSource {
  pid: number;
  held?: ReadonlyMap<bigint, Buffer>;
}

/** Contents the fd kinds save as shmem pagemaps (memfds), from their dump state. */
function kindPages(files: FileTable): KindPages[] {
  return (FD_KINDS as readonly AnyFdKind[]).flatMap((k) => k.pages?.(files.dumpContext) ?? []);
}

/** Bytes of memory the dump will write (for the progress total). */
export function plannedBytes(images: TaskImages[], files: FileTable): number {
  const pages = (rs: PageRange[]) => rs.reduce((n, r) => n + r.nrPages, 0);
  const kinds = kindPages(files).reduce((n, k) => n + k.bytes, 0);
  return images.reduce((n, i) => n + (pages(i.privatePages) + pages(i.shmemPages)) * PAGE_SIZE, 0) + kinds;
}

/** The pages files of one dump, numbered as they are written; counts the pages. */
export class PageFiles {
  private pagesId = 0;
  pagesWritten = 0;

  constructor(private readonly writer: ImageDirWriter, private readonly meter: ProgressMeter) {}

  private sinkOf(sink: { write(chunk: Buffer): void }) {
    return (chunk: Buffer) => {
      checkInterrupt();
      sink.write(chunk);
      this.meter.bytes(chunk.length);
    };
  }

  /** The pagemap of the last pages file written: each run at `at`, with cryo's parent hint. */
  private writePagemap(name: string, runs: (PageRange & { at: bigint })[]): void {
    this.writer.writeImage(name, 'PAGEMAP', [
      create(pagemap_headSchema, { pagesId: this.pagesId }),
      ...runs.map((r) =>
        create(pagemap_entrySchema, { vaddr: r.at, compatNrPages: r.nrPages, nrPages: BigInt(r.nrPages), flags: PE_PRESENT | (r.asParent === undefined ? 0 : r.asParent ? PE_AS_PARENT : PE_NOT_PARENT) }),
      ),
    ]);
  }

  private writeRuns(pagemapName: string, runs: Run[], held?: ReadonlyMap<bigint, Buffer>): void {
    this.pagesId++;
    const sink = this.writer.openRaw(`pages-${this.pagesId}.img`, { direct: true });
    const put = this.sinkOf(sink);
    for (let i = 0; i < runs.length; ) {
      const kept = held?.get(runs[i]!.vaddr);
      if (kept) {
        put(kept);
        this.pagesWritten += runs[i++]!.nrPages;
        continue;
      }
      let j = i;
      while (j < runs.length && runs[j]!.pid === runs[i]!.pid && !held?.has(runs[j]!.vaddr)) j++;
      this.pagesWritten += copyPages(runs[i]!.pid, runs.slice(i, j), put) / PAGE_SIZE;
      i = j;
    }
    sink.close();
    this.writePagemap(pagemapName, runs);
  }

  /** A task's private pages, from `source` (the task itself by default). */
  privatePages(img: TaskImages, source: PageSource = { pid: img.pid }): void {
    this.writeRuns(`pagemap-${img.pid}.img`, img.privatePages.map((r) => ({ ...r, pid: source.pid, at: r.vaddr })), source.held);
  }

  /** Every shared anonymous object once, from whichever tasks have its pages; then the kinds' contents. */
  sharedPages(images: TaskImages[], files: FileTable): void {
    const shmem = mergeShmem(images.flatMap((i) => i.shmemPages.map((s) => ({ ...s, pid: i.pid }))));
    const uncovered = uncoveredShmem(images, shmem);
    if (uncovered.length) throw new UnsupportedError(uncovered);
    for (const [shmid, runs] of shmem) this.writeRuns(`pagemap-shmem-${shmid}.img`, runs.map((r) => ({ ...r, at: r.offset })));
    // A kind's contents (a memfd's: one shmem pagemap per inode, read from the file itself).
    for (const k of kindPages(files)) {
      this.pagesId++;
      const sink = this.writer.openRaw(`pages-${this.pagesId}.img`);
      const runs = k.copy(this.sinkOf(sink));
      sink.close();
      this.pagesWritten += runs.reduce((n, r) => n + r.nrPages, 0);
      this.writePagemap(k.pagemap, runs.map((r) => ({ ...r, at: r.vaddr })));
    }
  }
}

/**
 * Writes every pagemap and pages image but the private pages of the tasks in `later` (their
 * snapshots' turn, after the release); returns the files, to write those with.
 */
export function writePages(writer: ImageDirWriter, images: TaskImages[], files: FileTable, meter: ProgressMeter, later: ReadonlySet<number> = new Set()): PageFiles {
  const out = new PageFiles(writer, meter);
  for (const img of images) if (!later.has(img.pid)) out.privatePages(img);
  out.sharedPages(images, files);
  return out;
}
