// The machine's own limits, measured in the same run as the figures they bound: memcpy, reading
// a file from the page cache, and O_DIRECT writes (with fsync) to the directory images go to.
import { closeSync, constants, fsyncSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { alignedBuffer } from '../src/sys/index.js';
import { median } from './figures.js';

export interface Limits {
  memcpyGBs: number;
  pageCacheReadGBs: number;
  directWriteGBs: number;
}

const CHUNK = 8 << 20;

function gbs(bytes: number, ms: number): number {
  return bytes / 1e9 / (ms / 1000);
}

function memcpy(mib: number): number {
  const a = Buffer.alloc(mib << 20, 0x5a);
  const b = Buffer.alloc(mib << 20);
  a.copy(b); // first touch of b's pages is not what we measure
  const t0 = performance.now();
  a.copy(b);
  return gbs(a.length, performance.now() - t0);
}

/** O_DIRECT writes of `mib` MiB in 8 MiB chunks, then fsync. */
function directWrite(file: string, mib: number, buf: Buffer): number {
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT, 0o600);
  try {
    const t0 = performance.now();
    for (let done = 0; done < mib << 20; done += CHUNK) writeSync(fd, buf, 0, CHUNK);
    fsyncSync(fd);
    return gbs(mib << 20, performance.now() - t0);
  } finally {
    closeSync(fd);
  }
}

/** Reads the file through the page cache twice; the second (hot) read is the figure. */
function cachedRead(file: string, buf: Buffer): number {
  let ms = 0;
  let bytes = 0;
  for (let round = 0; round < 2; round++) {
    const fd = openSync(file, 'r');
    const t0 = performance.now();
    let n = 0;
    bytes = 0;
    while ((n = readSync(fd, buf, 0, CHUNK, null)) > 0) bytes += n;
    ms = performance.now() - t0;
    closeSync(fd);
  }
  return gbs(bytes, ms);
}

/** Medians of `runs` runs, with files of `mib` MiB in `dir` (removed after). */
export function measureLimits(dir: string, mib: number, runs: number): Limits {
  const file = join(dir, 'cryo-bench-limits.tmp');
  const buf = alignedBuffer(CHUNK);
  buf.fill(0x5a);
  const m: number[] = [];
  const r: number[] = [];
  const w: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      m.push(memcpy(Math.min(mib, 256)));
      w.push(directWrite(file, mib, buf));
      r.push(cachedRead(file, buf));
    }
  } finally {
    rmSync(file, { force: true });
  }
  return { memcpyGBs: median(m), pageCacheReadGBs: median(r), directWriteGBs: median(w) };
}
