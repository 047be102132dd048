// PAGEMAP_SCAN (Linux 6.7): an ioctl on /proc/PID/pagemap that walks a range of the page table
// in the kernel and answers with runs of pages of the same kind, instead of one 8-byte word per
// page to read and test. For 1 GiB of touched memory: ~4 ms instead of ~25 ms (reading 2 MiB of
// words and testing each in JS), which a dump spends with the tree frozen.
// struct pm_scan_arg (12 u64: size, flags, start, end, walk_end, vec, vec_len, max_pages,
// category_inverted, category_mask, category_anyof_mask, return_mask) and struct page_region
// (start, end, categories), as <linux/fs.h> lays them out.
import { sysTry, addressOf } from './libc.js';
import { E } from './errno.js';

const PAGEMAP_SCAN = 0xc0606610; // _IOWR('f', 16, struct pm_scan_arg)
const ARG_SIZE = 96;
const VEC_LEN = 1024;

export const PAGE_IS = { FILE: 1 << 2, PRESENT: 1 << 3, SWAPPED: 1 << 4, GUARD: 1 << 8 } as const;

export interface ScannedRun {
  start: bigint;
  end: bigint;
  /** The PAGE_IS bits of `returned` these pages have. */
  categories: number;
}

// CRYO_NO_PAGEMAP_SCAN=1: the words always (to compare the two, or on a kernel whose scan misbehaves).
let unsupported = process.env.CRYO_NO_PAGEMAP_SCAN === '1';
const vec = Buffer.alloc(VEC_LEN * 24);
const arg = Buffer.alloc(ARG_SIZE);

/**
 * The runs of pages in [start, end) with any of `anyOf`, each with which of `returned` it has
 * (runs split where those differ); null when the kernel has no PAGEMAP_SCAN (before 6.7).
 */
export function pagemapScan(pagemapFd: number, start: bigint, end: bigint, anyOf: number, returned: number): ScannedRun[] | null {
  if (unsupported) return null;
  const out: ScannedRun[] = [];
  for (let at = start; at < end; ) {
    arg.fill(0);
    arg.writeBigUInt64LE(BigInt(ARG_SIZE), 0);
    arg.writeBigUInt64LE(at, 16);
    arg.writeBigUInt64LE(end, 24);
    arg.writeBigUInt64LE(addressOf(vec), 40);
    arg.writeBigUInt64LE(BigInt(VEC_LEN), 48);
    arg.writeBigUInt64LE(BigInt(anyOf), 80);
    arg.writeBigUInt64LE(BigInt(returned), 88);
    const r = sysTry('ioctl', [pagemapFd, PAGEMAP_SCAN, arg]);
    if (r.ret < 0) {
      if (r.errno === E.ENOTTY || r.errno === E.EINVAL) {
        unsupported = true;
        return null;
      }
      throw new Error(`PAGEMAP_SCAN: errno ${r.errno}`);
    }
    for (let i = 0; i < r.ret; i++) {
      out.push({ start: vec.readBigUInt64LE(i * 24), end: vec.readBigUInt64LE(i * 24 + 8), categories: Number(vec.readBigUInt64LE(i * 24 + 16)) });
    }
    const walkEnd = arg.readBigUInt64LE(32);
    if (walkEnd <= at) break;
    at = walkEnd;
  }
  return out;
}
