// /proc/PID/pagemap: one little-endian u64 per virtual page.

export const PM_PRESENT = 1n << 63n;
export const PM_SWAP = 1n << 62n;
/** Page is file-backed or shared anonymous (not a private anonymous copy). */
export const PM_FILE = 1n << 61n;
export const PM_EXCLUSIVE = 1n << 56n;
export const PM_SOFT_DIRTY = 1n << 55n;

const HI_PRESENT = 1 << 31;
const HI_SWAP = 1 << 30;
const HI_FILE = 1 << 29;
/** PM_GUARD_REGION (bit 58, Linux 6.14): a guard page (MADV_GUARD_INSTALL), which pagemap also calls swapped. */
const HI_GUARD = 1 << 26;

export interface PageRun {
  /** Index of the first page relative to the range start. */
  first: number;
  count: number;
}

/**
 * Runs of pages worth saving in a range whose pagemap words are in `words`.
 * `privateOnly`: for private file mappings, only pages that became anonymous copies (or were
 * swapped out) differ from the file; everything else is re-read from the file on restore.
 */
export function pagesToDump(words: Buffer, privateOnly: boolean): PageRun[] {
  const runs: PageRun[] = [];
  const n = words.length / 8;
  let cur: PageRun | null = null;
  // Only the high 32 bits hold the flags: test them as numbers (BigInt per page is slow).
  for (let i = 0; i < n; i++) {
    const hi = words.readUInt32LE(i * 8 + 4);
    let want = (hi & (HI_PRESENT | HI_SWAP)) !== 0 && (hi & HI_GUARD) === 0;
    if (want && privateOnly && (hi & HI_FILE) !== 0) want = false;
    if (want) {
      if (cur && cur.first + cur.count === i) cur.count++;
      else runs.push((cur = { first: i, count: 1 }));
    }
  }
  return runs;
}

/** Runs of guard pages (MADV_GUARD_INSTALL) in a range whose pagemap words are in `words`. */
export function guardRuns(words: Buffer): PageRun[] {
  const runs: PageRun[] = [];
  let cur: PageRun | null = null;
  for (let i = 0; i < words.length / 8; i++) {
    if ((words.readUInt32LE(i * 8 + 4) & HI_GUARD) === 0) continue;
    if (cur && cur.first + cur.count === i) cur.count++;
    else runs.push((cur = { first: i, count: 1 }));
  }
  return runs;
}

/**
 * Splits pages into runs by whether each is the very same physical page (same frame number,
 * present in both) in `mine` and `theirs` — pagemap words for the same addresses in two
 * processes. Frame numbers are only shown to CAP_SYS_ADMIN; without them nothing is shared.
 */
export function sameFrameRuns(mine: Buffer, theirs: Buffer): (PageRun & { same: boolean })[] {
  const runs: (PageRun & { same: boolean })[] = [];
  const n = Math.min(mine.length, theirs.length) / 8;
  let cur: (PageRun & { same: boolean }) | null = null;
  for (let i = 0; i < n; i++) {
    const hiA = mine.readUInt32LE(i * 8 + 4);
    const hiB = theirs.readUInt32LE(i * 8 + 4);
    const loA = mine.readUInt32LE(i * 8);
    const pfnA = (hiA & 0x7fffff) * 0x100000000 + loA;
    const same =
      (hiA & HI_PRESENT) !== 0 && (hiB & HI_PRESENT) !== 0 && (hiA & HI_SWAP) === 0 && pfnA !== 0 &&
      loA === theirs.readUInt32LE(i * 8) && (hiA & 0x7fffff) === (hiB & 0x7fffff);
    if (cur && cur.same === same && cur.first + cur.count === i) cur.count++;
    else runs.push((cur = { first: i, count: 1, same }));
  }
  return runs;
}
