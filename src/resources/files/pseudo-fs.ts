// Files of the kernel's own filesystems (procfs, sysfs, cgroupfs), opened by a program and kept
// open: /proc/self/status or /proc/stat read again and again, a cgroup's memory.pressure or
// cgroup.events polled (systemd, oomd), /proc/PID/ of a child. Their contents are made when read
// and their size and mtime are the inode's of the moment (a /proc/PID inode is new with the
// restored process), so they are opened again by path without the changed-since-the-dump test
// of regular files. A /proc/PID path names a process: one of the tree's comes back with its PID,
// and is opened once its holder's children exist (phaseOf: the holder, an ancestor or a
// descendant; a sibling's branch is refused); one outside the tree would be another process or
// none after a restore, and is refused.
import { readlinkSync } from 'node:fs';
import { filesystemType, FS_MAGIC } from '../../sys/index.js';
import type { Blocker } from '../../util/blocker.js';
import { tgidOf, madeByHolderChildren } from './tree-line.js';

const PSEUDO = new Set<number>([FS_MAGIC.PROC, FS_MAGIC.SYSFS, FS_MAGIC.CGROUP, FS_MAGIC.CGROUP2]);
/** A path on /proc/N/ (N: the process it names). */
const PROC_PID = /^\/proc\/(\d+)(\/|$)/;

/** Whether what `source` (a /proc/PID/fd/N link) opens is on procfs, sysfs or cgroupfs. */
export function onPseudoFs(source: string): boolean {
  const t = filesystemType(source);
  return t !== null && PSEUDO.has(t);
}

/**
 * A procfs fd of task `pid` on /proc/N/... where N is no task of the tree (`tree`: its thread
 * group ids). Judged only for a task in cryo's PID namespace: inside a container of its own,
 * its /proc shows the container's processes, which a dump of the container holds.
 */
export function procOwnerBlocker(pid: number, fd: number, link: string, tree: Set<number>): Blocker | null {
  const m = PROC_PID.exec(link);
  if (!m) return null;
  try {
    if (readlinkSync(`/proc/${pid}/ns/pid`) !== readlinkSync('/proc/self/ns/pid')) return null;
  } catch {
    return null; // gone meanwhile: the dump finds out
  }
  const owner = tgidOf(Number(m[1]));
  if (owner !== null && tree.has(owner)) {
    if (madeByHolderChildren(pid, owner, tree)) return null;
    return { pid, fd, kind: 'file', reason: `${link}: a /proc file of pid ${m[1]}, neither an ancestor nor a descendant of its holder — not supported yet (the restore opens it before that process exists)` };
  }
  return {
    pid, fd, kind: 'file',
    reason: `${link}: a /proc file of pid ${m[1]}, ${owner === null ? 'which has ended' : 'outside the dumped tree'} — after a restore that PID would name another process or none`,
    hint: 'dump the tree that holds that process too',
  };
}

/** A record's path on /proc/N/...: opened once the holder's children exist (reg kind's phaseOf). */
export const namesProcess = (name: string): boolean => PROC_PID.test(name);
