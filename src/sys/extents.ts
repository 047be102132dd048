// The data of a sparse file (or a shmem object) between two offsets, skipping its holes:
// SEEK_DATA / SEEK_HOLE, which report a file without holes as one extent.
import { sysTry } from './libc.js';
import { SEEK } from './consts.js';

/** Each [start, end) of data in `fd` within [lo, hi), in order. */
export function* dataExtents(fd: number, lo: number, hi: number): Generator<{ start: number; end: number }> {
  for (let pos = lo; pos < hi; ) {
    const data = sysTry('lseek', [fd, pos, SEEK.DATA]);
    if (data.ret < 0 || data.ret >= hi) return; // ENXIO: no data after pos
    const hole = sysTry('lseek', [fd, data.ret, SEEK.HOLE]);
    const end = Math.min(hole.ret < 0 ? hi : hole.ret, hi);
    yield { start: data.ret, end };
    pos = end;
  }
}
