// The tree's terminals, taken once per check or dump with the rest of the file scan: which pty
// masters the tree holds (a slave whose master is among them is restorable), where one fd of
// each end is (the dump reads queued data through them), every task's /proc stat (the session
// and foreground group of a slave only /proc tells from outside), and the ptys from outside the
// tree (--shell-job reattaches one of them) but those named --external.
import { readdirSync, readlinkSync, readFileSync, statSync } from 'node:fs';
import { ptyIndex } from '../../sys/index.js';
import { parseStatTty, type StatTty } from '../../proc/tty.js';
import { classifyTty, isExternal, slaveIndex, type TreeTtys } from '../tty/classify.js';
import { withOurCopy } from './our-copy.js';

export interface FdAt {
  pid: number;
  fd: number;
}

export interface TreeTerminals extends TreeTtys {
  masterIndexes: Set<number>;
  /** /proc/PID/stat's terminal fields of every task of the tree */
  stats: StatTty[];
  /** by pty index: an fd of the tree on its master, and one on its slave */
  masters: Map<number, FdAt>;
  slaves: Map<number, FdAt>;
  /** indexes of the ptys from outside the tree the tasks hold or have as controlling tty, first seen first */
  outside: number[];
  /** pty indexes whose queued data the dump has taken already (once per pair) */
  drained: Set<number>;
}

/** Does a /proc fd link name a terminal device (the tty kind's fds)? */
export function isTerminalLink(link: string): boolean {
  return link.startsWith('/dev/pts/') || link === '/dev/ptmx' || link.startsWith('/dev/tty') || link === '/dev/console';
}

/** `external`: the keys of --external tty[RDEV:DEV] (resources/tty/external.ts). */
export function scanTerminals(pids: readonly number[], shellJob: boolean, external: ReadonlySet<string> = new Set()): TreeTerminals {
  const t: TreeTerminals = {
    pids: new Set(pids), masterIndexes: new Set(), shellJob, external, stats: [], masters: new Map(), slaves: new Map(), outside: [], drained: new Set(),
  };
  const slaveRdevs: { rdev: number; dev?: number }[] = [];
  for (const pid of pids) {
    try {
      t.stats.push(parseStatTty(readFileSync(`/proc/${pid}/stat`, 'utf8')));
    } catch {
      continue; // gone
    }
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const name of fds) {
      const fd = Number(name);
      try {
        if (!isTerminalLink(readlinkSync(`/proc/${pid}/fd/${fd}`))) continue;
        const rdev = statSync(`/proc/${pid}/fd/${fd}`).rdev;
        const cls = classifyTty(rdev);
        if (cls === 'pty-master') {
          const index = withOurCopy(pid, fd, ptyIndex);
          t.masterIndexes.add(index);
          if (!t.masters.has(index)) t.masters.set(index, { pid, fd });
        } else if (cls === 'pty-slave') {
          slaveRdevs.push({ rdev, dev: statSync(`/proc/${pid}/fd/${fd}`).dev });
          if (!t.slaves.has(slaveIndex(rdev))) t.slaves.set(slaveIndex(rdev), { pid, fd });
        }
      } catch {
        /* closed meanwhile */
      }
    }
  }
  // Outside ptys: slaves held, and controlling terminals (a job whose stdio is redirected still
  // has one); not those the caller named with --external.
  for (const { rdev, dev } of [...slaveRdevs, ...t.stats.map((s): { rdev: number; dev?: number } => ({ rdev: s.ttyNr }))]) {
    if (!rdev || classifyTty(rdev) !== 'pty-slave' || isExternal(t, rdev, dev)) continue;
    const index = slaveIndex(rdev);
    if (!t.masterIndexes.has(index) && !t.outside.includes(index)) t.outside.push(index);
  }
  return t;
}
