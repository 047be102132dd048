// What an image directory holds, counted for a result: tasks, threads, fds and memory.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImageDirReader } from '../image/dir.js';
import { pstree_entrySchema } from '../image/gen/pstree_pb.js';
import { PAGE_SIZE } from '../sys/index.js';
import type { Counts } from './types.js';
import type { Log } from '../util/log.js';

/** Counts of a complete image directory; `pages` given (a dump knows what it wrote) or summed from pages-*.img. */
export function countImages(dir: string, pages?: number): Counts {
  const r = ImageDirReader.open(dir);
  const tree = r.readAs('pstree.img', pstree_entrySchema);
  const names = readdirSync(dir);
  // CLONE_FILES tasks share one fdinfo image: each file counts its table once.
  const fds = names.filter((n) => /^fdinfo-\d+\.img$/.test(n)).reduce((n, f) => n + r.read(f).length, 0);
  const bytes = pages !== undefined ? pages * PAGE_SIZE : names.filter((n) => /^pages-\d+\.img$/.test(n)).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  return {
    tasks: tree.length,
    threads: tree.reduce((n, t) => n + Math.max(1, t.threads.length), 0),
    fds,
    pages: Math.round(bytes / PAGE_SIZE),
    bytes,
  };
}

/**
 * countImages after the work is done: a count that cannot be made (an image unreadable to us)
 * must not turn a done dump or restore into a failed one. Logged, and left out.
 */
export function countsAfter(log: Log, dir: string, pages?: number): Counts | undefined {
  try {
    return log.step('count', () => countImages(dir, pages));
  } catch (e) {
    log.warn(`cannot count what ${dir} holds: ${(e as Error).message}`);
    return undefined;
  }
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** `1 task, 2 threads, 3 fds, 1717 pages (6.7 MiB)`, for the log. */
export function countsText(c: Counts | undefined): string {
  if (!c) return 'counts unknown';
  return `${plural(c.tasks, 'task')}, ${plural(c.threads, 'thread')}, ${plural(c.fds, 'fd')}, ${plural(c.pages, 'page')} (${(c.bytes / 2 ** 20).toFixed(1)} MiB)`;
}
