// A file a task of a container opened before its mount namespace was made (an fd its runtime
// handed down: the host's /dev/null as stdin, a log file) is on a mount of cryo's own mount
// namespace, which the container cannot reach by path: its /proc link is the path from the top
// of cryo's namespace (d_path stops there). Opened again through the container's root it would be
// nothing or another file; the restorer opens it from its own root instead, on that same mount:
// the same inode, and the same link for the task. Recorded as reg_file_entry cryo_dumper_root.
import { readFileSync, statSync } from 'node:fs';
import { parseMountInfo } from '../../proc/index.js';
import { nsLink } from '../ns/link.js';
import type { FdSeen } from './fd-kind.js';

function dumperMountIds(): Set<number> {
  return new Set(parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.mountId));
}

/** In cryo's own mount namespace, where the restore opens a path as it is (not through a tree's root). */
export function inDumperMountNs(pid: number): boolean {
  const its = nsLink(pid, 'mnt');
  return its !== null && its === nsLink('self', 'mnt');
}

/** Where cryo finds a path of task `pid` as the restore will open it again. */
export const restoreSidePath = (pid: number, path: string): string => (inDumperMountNs(pid) ? path : `/proc/${pid}/root${path}`);

/**
 * The fd of a task in another mount namespace than cryo's is on a mount of cryo's, and its link
 * leads there, from cryo's root, to the inode it has open.
 */
export function onDumperMount(f: Pick<FdSeen, 'pid' | 'fd' | 'link' | 'info'>): boolean {
  if (!f.link.startsWith('/') || inDumperMountNs(f.pid)) return false;
  try {
    const open = statSync(`/proc/${f.pid}/fd/${f.fd}`, { bigint: true });
    const named = statSync(f.link, { bigint: true });
    if (open.dev !== named.dev || open.ino !== named.ino) return false;
  } catch {
    return false;
  }
  return dumperMountIds().has(f.info.mntId);
}
