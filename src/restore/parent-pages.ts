// Pages kept in a parent image (incremental dumps: CRIU's `in_parent` / PE_PARENT pagemap
// entries). The bytes of such an entry are not in this directory's pages file but in the one of
// `DIR/parent` (a symlink to the previous dump) for the same pagemap name, possibly in its parent
// again. The restore fills a task from one pages file per pagemap: the pages of the whole chain
// are copied, in pagemap order, into one file of cryo's own (removed when cryo exits).
import { openSync, readSync, writeSync, closeSync, existsSync, realpathSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { decodeImage } from '../image/io.js';
import { pagemapEntryFlags, pagemapEntryPages, PE_PARENT, PE_PRESENT, PE_LAZY } from '../image/pagemap.js';
import type { pagemap_entry, pagemap_head } from '../image/gen/pagemap_pb.js';
import { UserError, hex } from '../util/errors.js';

const PAGE = 4096n;
/** Longest parent chain followed (CRIU's incremental dumps are a few levels deep). */
const MAX_DEPTH = 64;

interface Run {
  vaddr: bigint;
  pages: bigint;
  flags: number;
  /** Offset in this level's pages file (entries stored here only). */
  off: bigint;
}

interface Level {
  dir: string;
  pagesFile: string;
  runs: Run[];
}

function level(dir: string, name: string): Level {
  const file = join(dir, name);
  if (!existsSync(file)) throw new UserError(`${file}: missing (the parent image has no such pagemap)`);
  const msgs = decodeImage(readFileSync(file), name).messages;
  const head = msgs[0] as pagemap_head;
  let off = 0n;
  const runs = (msgs.slice(1) as pagemap_entry[]).map((e) => {
    const flags = pagemapEntryFlags(e);
    const pages = pagemapEntryPages(e);
    const r = { vaddr: e.vaddr, pages, flags, off };
    if (flags & PE_PRESENT && !(flags & PE_PARENT)) off += pages * PAGE;
    return r;
  });
  return { dir, pagesFile: join(dir, `pages-${head.pagesId}.img`), runs };
}

function parentOf(dir: string, name: string, vaddr: bigint): string {
  const link = join(dir, 'parent');
  if (!existsSync(link)) throw new UserError(`${join(dir, name)}: pages at ${hex(vaddr)} are in the parent image, but ${dir} has no parent link`);
  return realpathSync(link);
}

/** Copies pages [vaddr, vaddr + n pages) of `name` as the image in `dir` has them into `out`. */
function copyFrom(dir: string, name: string, vaddr: bigint, n: bigint, out: number, outOff: bigint, depth: number): void {
  if (depth > MAX_DEPTH) throw new UserError(`${name}: parent images more than ${MAX_DEPTH} levels deep (a parent link loop?)`);
  const lv = level(dir, name);
  const end = vaddr + n * PAGE;
  let at = vaddr;
  const fd = openSync(lv.pagesFile, 'r');
  try {
    for (const r of lv.runs) {
      const rEnd = r.vaddr + r.pages * PAGE;
      if (rEnd <= at || r.vaddr >= end) continue;
      if (r.vaddr > at) break; // a gap: reported below
      const stop = rEnd < end ? rEnd : end;
      const count = (stop - at) / PAGE;
      const dst = outOff + (at - vaddr);
      if (r.flags & PE_PARENT) copyFrom(parentOf(dir, name, at), name, at, count, out, dst, depth + 1);
      else if (r.flags & PE_PRESENT) copyBytes(fd, r.off + (at - r.vaddr), out, dst, count * PAGE, lv.pagesFile);
      else break;
      at = stop;
      if (at >= end) break;
    }
  } finally {
    closeSync(fd);
  }
  if (at < end) throw new UserError(`${join(dir, name)}: no saved pages at ${hex(at)} (wanted by a child image as in its parent)`);
}

function copyBytes(src: number, srcOff: bigint, dst: number, dstOff: bigint, len: bigint, what: string): void {
  const buf = Buffer.allocUnsafe(Number(len < 1n << 24n ? len : 1n << 24n));
  for (let done = 0n; done < len; ) {
    const n = Number(len - done < BigInt(buf.length) ? len - done : BigInt(buf.length));
    if (readSync(src, buf, 0, n, Number(srcOff + done)) !== n) throw new UserError(`${what} is shorter than its pagemap says`);
    writeSync(dst, buf, 0, n, Number(dstOff + done));
    done += BigInt(n);
  }
}

let scratchDir: string | null = null;

/**
 * For a pagemap with entries in a parent image: one pages file holding every entry's pages, in
 * pagemap order (so each entry's offset is the sum of those before it). Entries absent from
 * both (no PE_PRESENT, no PE_PARENT; lazy pages only a page server has) are refused.
 */
export function composeWithParents(dir: string, name: string): string {
  const lv = level(dir, name);
  scratchDir ??= mkdtempSync(join(tmpdir(), 'cryo-pages-'));
  const dirNow = scratchDir;
  process.once('exit', () => rmSync(dirNow, { recursive: true, force: true }));
  const file = join(scratchDir, name.replace(/\.img$/, '') + `-${lv.runs.length}.pages`);
  const out = openSync(file, 'wx', 0o600);
  const own = openSync(lv.pagesFile, 'r');
  try {
    let off = 0n;
    for (const r of lv.runs) {
      if (r.flags & PE_PARENT) copyFrom(parentOf(dir, name, r.vaddr), name, r.vaddr, r.pages, out, off, 1);
      else if (r.flags & PE_PRESENT) copyBytes(own, r.off, out, off, r.pages * PAGE, lv.pagesFile);
      else throw new UserError(`${join(dir, name)}: pages at ${hex(r.vaddr)} are ${r.flags & PE_LAZY ? 'lazy (served by a page server)' : 'absent'} — not supported`);
      off += r.pages * PAGE;
    }
  } finally {
    closeSync(own);
    closeSync(out);
  }
  return file;
}
