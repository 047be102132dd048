// Small helpers for pagemap entries, whose page count moved in CRIU 4.x: CRIU 4.2 writes the
// count in the u64 field nr_pages (5) and 0 in the old u32 field, now named compat_nr_pages (2).
// Older images only have compat_nr_pages.

import { create, isFieldSet } from "@bufbuild/protobuf";
import { pagemap_entrySchema, type pagemap_entry } from "./gen/pagemap_pb.js";

/** pagemap_entry.flags bits (CRIU's PE_*). */
export const PE_PARENT = 1 << 0;
export const PE_LAZY = 1 << 1;
export const PE_PRESENT = 1 << 2;
/**
 * cryo's own bit: the pages are written as CRIU expects, but the parent task had the very same
 * physical pages at dump time (copy-on-write, untouched since the fork), so a child restored by
 * fork from its restored parent keeps what it inherits without comparing. CRIU ignores it.
 */
export const PE_AS_PARENT = 1 << 7;
/** cryo's own bit, beside PE_AS_PARENT: the child had its own frames here (written since the fork). */
export const PE_NOT_PARENT = 1 << 8;

/** Number of pages an entry covers, from whichever field the writer used. */
export function pagemapEntryPages(e: pagemap_entry): bigint {
  return isFieldSet(e, pagemap_entrySchema.field.nrPages) ? e.nrPages : BigInt(e.compatNrPages);
}

/** Flags of an entry as CRIU reads them: images without flags mean PE_PRESENT (or PE_PARENT if in_parent). */
export function pagemapEntryFlags(e: pagemap_entry): number {
  if (isFieldSet(e, pagemap_entrySchema.field.flags)) return e.flags | (e.inParent ? PE_PARENT : 0);
  return e.inParent ? PE_PARENT : PE_PRESENT;
}

/** A pagemap entry laid out like CRIU 4.2 writes it (compat_nr_pages 0, nr_pages set). */
export function makePagemapEntry(vaddr: bigint, nrPages: number | bigint, flags: number = PE_PRESENT): pagemap_entry {
  return create(pagemap_entrySchema, { vaddr, compatNrPages: 0, nrPages: BigInt(nrPages), flags });
}
