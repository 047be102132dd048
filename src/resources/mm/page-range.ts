// A run of pages of an address space or shared object, as pagemap entries describe them. A
// module of its own so that mm/ and files/memfd.ts share it without importing each other.

/** A run of pages to save: where it is in the task, and how many pages. */
export interface PageRange {
  vaddr: bigint;
  nrPages: number;
  /**
   * Whether the parent in the tree had these very pages (copy-on-write, never written since the
   * fork): if so, a child restored by fork from its restored parent keeps them without comparing;
   * if not, they were the child's own and are written without comparing. Unknown (undefined):
   * compare.
   */
  asParent?: boolean;
  /**
   * In a mapping a fork does not copy (MADV_DONTFORK: VmFlags dc) or gives the child zeroed
   * (MADV_WIPEONFORK: wf): a copy-on-write snapshot of the task (dump/snapshot.ts) lacks these pages.
   */
  notForked?: boolean;
}
