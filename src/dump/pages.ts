// The memory of a frozen tree into pagemap + pages images: each task's private pages, each
// shared anonymous object once (from whichever tasks have its pages), and what the fd kinds save
// the same way (each memfd once, read from the file itself). Interrupts are taken between
// chunks; progress is counted per chunk.
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

/** Writes every pagemap and pages image; returns the number of pages written. */
export function writePages(writer: ImageDirWriter, images: TaskImages[], files: FileTable, meter: ProgressMeter): number {
  let pagesId = 0;
  let pagesWritten = 0;
  const sinkOf = (sink: { write(chunk: Buffer): void }) => (chunk: Buffer) => {
    checkInterrupt();
    sink.write(chunk);
    meter.bytes(chunk.length);
  };
  // The pagemap of the last pages file written: each run at `at`, with cryo's parent hint.
  const writePagemap = (name: string, runs: (PageRange & { at: bigint })[]) => {
    writer.writeImage(name, 'PAGEMAP', [
      create(pagemap_headSchema, { pagesId }),
      ...runs.map((r) =>
        create(pagemap_entrySchema, { vaddr: r.at, compatNrPages: r.nrPages, nrPages: BigInt(r.nrPages), flags: PE_PRESENT | (r.asParent === undefined ? 0 : r.asParent ? PE_AS_PARENT : PE_NOT_PARENT) }),
      ),
    ]);
  };
  const writeRuns = (pagemapName: string, runs: Run[]) => {
    pagesId++;
    const sink = writer.openRaw(`pages-${pagesId}.img`, { direct: true });
    for (let i = 0; i < runs.length; ) {
      let j = i;
      while (j < runs.length && runs[j]!.pid === runs[i]!.pid) j++;
      pagesWritten += copyPages(runs[i]!.pid, runs.slice(i, j), sinkOf(sink)) / PAGE_SIZE;
      i = j;
    }
    sink.close();
    writePagemap(pagemapName, runs);
  };
  for (const img of images) writeRuns(`pagemap-${img.pid}.img`, img.privatePages.map((r) => ({ ...r, pid: img.pid, at: r.vaddr })));
  // A shared anonymous object is saved once, from whichever tasks have its pages.
  const shmem = mergeShmem(images.flatMap((i) => i.shmemPages.map((s) => ({ ...s, pid: i.pid }))));
  const uncovered = uncoveredShmem(images, shmem);
  if (uncovered.length) throw new UnsupportedError(uncovered);
  for (const [shmid, runs] of shmem) writeRuns(`pagemap-shmem-${shmid}.img`, runs.map((r) => ({ ...r, at: r.offset })));
  // A kind's contents (a memfd's: one shmem pagemap per inode, read from the file itself).
  for (const k of kindPages(files)) {
    pagesId++;
    const sink = writer.openRaw(`pages-${pagesId}.img`);
    const runs = k.copy(sinkOf(sink));
    sink.close();
    pagesWritten += runs.reduce((n, r) => n + r.nrPages, 0);
    writePagemap(k.pagemap, runs.map((r) => ({ ...r, at: r.vaddr })));
  }
  return pagesWritten;
}
