// A container's executable and mapped files are opened again by path at restore, inside its
// mount namespace, so each path must lead there, in the task's root, to the file it maps. A
// process that made its mount namespace itself (unshare(CLONE_NEWNS) and pivot_root in-process,
// as a runtime's init does) still runs and maps files of cryo's namespace: their paths are host
// paths, nothing or another file in its root. Refused, named, until the restore hands them over
// from cryo's side.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import type { Blocker } from '../../util/blocker.js';

/** `what` (a /proc path that opens the file) and `path` name the same inode in the task's root; else why not. */
function leadsThere(pid: number, what: string, path: string): string | null {
  let open;
  try {
    open = statSync(what, { bigint: true });
  } catch {
    return null; // gone meanwhile
  }
  try {
    const named = statSync(`/proc/${pid}/root${path}`, { bigint: true });
    return named.dev === open.dev && named.ino === open.ino ? null : 'to another file';
  } catch {
    return 'nowhere';
  }
}

const WHY = "in the container's root (a file of cryo's mount namespace, mapped before its own was made) — not supported yet";

/** Task `pid`'s executable and file mappings whose paths do not lead to them in its root. */
export function mappedPathBlockers(pid: number): Blocker[] {
  const out: Blocker[] = [];
  let exe = '';
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    /* a kernel thread, or gone */
  }
  const exeWhere = exe.startsWith('/') && !exe.endsWith(' (deleted)') ? leadsThere(pid, `/proc/${pid}/exe`, exe) : null;
  if (exeWhere) out.push({ pid, kind: 'mount', reason: `its executable ${exe}: its path leads ${exeWhere} ${WHY}` });
  let maps = '';
  try {
    maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch {
    return out;
  }
  const seen = new Set<string>([exe]);
  const lost: { range: string; path: string; where: string }[] = [];
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ [1-9]\d* +(\/.*)$/.exec(line);
    if (!m || seen.has(m[2]!) || m[2]!.endsWith(' (deleted)')) continue;
    seen.add(m[2]!);
    const where = leadsThere(pid, `/proc/${pid}/map_files/${m[1]}`, m[2]!);
    if (where) lost.push({ range: m[1]!, path: m[2]!, where });
  }
  // One blocker for them all: a runtime's init maps tens of the host's libraries.
  const first = lost[0];
  if (first) {
    const more = lost.length > 1 ? ` (and ${lost.length - 1} more: ${lost.slice(1, 4).map((l) => l.path).join(', ')}${lost.length > 4 ? ', ...' : ''})` : '';
    out.push({ pid, mapping: first.range, kind: 'mount', reason: `mapped file ${first.path}: its path leads ${first.where}${more} ${WHY}` });
  }
  return out;
}
