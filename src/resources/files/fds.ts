// The fd table of a task: which module each fd belongs to, what stops it from being dumped,
// and its dump (one files.img entry per open file description, shared fds share it).
import { readlinkSync, readFileSync, statSync, readdirSync, existsSync } from 'node:fs';
import { O, kcmp, KCMP } from '../../sys/index.js';
import { parseFdinfo } from '../../proc/index.js';
import { UnsupportedError } from '../../util/errors.js';
import type { Blocker } from '../../util/blocker.js';
import { findFdBlocker } from './kind.js';
import { fdLocks, lockEntries } from './locks.js';
import { registeredKindOf } from './registry.js';
import type { FileTypeName } from './fd-kind.js';
import { dumpFown, NO_FOWN } from './fown.js';
import type { FileScan } from './scan.js';
import type { FileTable } from './table.js';

/**
 * One fd of a task's table as fdinfo-N.img keeps it (CRIU's fdinfo_entry): the fd number, its
 * FD_CLOEXEC, and the files.img id of its open file description. Not to be confused with
 * ProcFdinfo, the parsed /proc/PID/fdinfo/N.
 */
export interface FdTableEntry {
  id: number;
  flags: number;
  type: FileTypeName;
  fd: number;
}

const FD_CLOEXEC = 1;

export function listFds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

/** Every fd that cryo cannot checkpoint. */
export function fdBlockers(pid: number, scan: FileScan): Blocker[] {
  const out: Blocker[] = [];
  for (const fd of listFds(pid)) {
    let link: string;
    let mode: number | null = null;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    try {
      mode = statSync(`/proc/${pid}/fd/${fd}`).mode;
    } catch {
      /* leave null */
    }
    let b: Blocker | null;
    try {
      b = findFdBlocker(pid, fd, link, mode, scan);
    } catch (e) {
      if (!existsSync(`/proc/${pid}/fd/${fd}`)) continue; // closed while we looked
      b = { pid, fd, kind: 'file', reason: `${link} — cannot inspect: ${(e as Error).message}` };
    }
    if (b) out.push(b);
  }
  return out;
}

/** Dumps the fd table of a frozen task; shared descriptions (dup'ed fds) share one entry. */
export function dumpFds(pid: number, files: FileTable): FdTableEntry[] {
  return listFds(pid).map((fd) => dumpFd(pid, fd, files));
}

/**
 * Dumps one fd of `pid` (a task of the tree, or cryo itself for fds found in flight in a socket
 * queue) into the files table; an open file description seen before keeps its entry.
 */
export function dumpFd(pid: number, fd: number, files: FileTable): FdTableEntry {
  const seen = files.seenFds;
  const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
  const st = statSync(`/proc/${pid}/fd/${fd}`, { bigint: false });
  const info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
  const flags = info.flags & ~O.CLOEXEC;
  const registered = registeredKindOf(link, st.mode, { pid, fd });
  // A shared description (a twin) keeps this type: a registered kind's is known from the link.
  let type: FdTableEntry['type'] = registered?.type ?? 'REG';
  const twin = seen.find((s) => s.ino === st.ino && s.dev === st.dev && kcmp(s.pid, pid, KCMP.FILE, s.fd, fd) === 0);
  let id: number;
  const fown = twin ? NO_FOWN : dumpFown(pid, fd);
  if (twin) {
    id = twin.id;
  } else {
    const blocker = findFdBlocker(pid, fd, link, st.mode, files.scan, info);
    if (blocker) throw new UnsupportedError([blocker]);
    // Every fd not refused above is of a registered kind.
    if (!registered) throw new Error(`pid ${pid} fd ${fd}: ${link}: no fd kind takes it`);
    id = files.addKind(registered, (fileId) => registered.dump({ pid, fd, link, mode: st.mode, info }, fileId, flags, fown, files.dumpContext));
  }
  if (!twin) seen.push({ pid, fd, ino: st.ino, dev: st.dev, id });
  if (files.scan.fileLocks) files.locks.push(...lockEntries(pid, fd, fdLocks(info)));
  return { id, flags: info.flags & O.CLOEXEC ? FD_CLOEXEC : 0, type, fd };
}
