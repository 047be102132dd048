// Regular files, directories and stateless character devices: dumped as path + flags + position,
// restored by opening the path in the restorer and handing the open file to the task.
import { readlinkSync, readFileSync, statSync, openSync, closeSync, readdirSync, existsSync } from 'node:fs';
import { O, sys, kcmp, KCMP } from '../../sys/index.js';
import { parseFdinfo } from '../../proc/index.js';
import { UserError } from '../../util/errors.js';
import { fdBlocker } from './kind.js';
import { pipeInode, peekPipe } from './pipe.js';
import { anonKind, type AnonKind } from './anon.js';
import { deletedPath } from './ghost.js';
import { isMemfd } from './memfd.js';
import { fdLocks, lockEntries } from './locks.js';
import { socketInode, dumpSocket } from './socket.js';
import type { FileScan } from './scan.js';
import type { FileTable } from './table.js';

export interface FownData {
  uid: number;
  euid: number;
  signum: number;
  pidType: number;
  pid: number;
}

export interface RegFileData {
  id: number;
  flags: number;
  pos: bigint;
  fown: FownData;
  name: string;
  mode?: number;
  size?: bigint;
  buildId?: number[];
}

export interface FdinfoData {
  id: number;
  flags: number;
  type: 'REG' | 'PIPE' | 'FIFO' | 'MEMFD' | 'UNIXSK' | 'INETSK' | AnonKind;
  fd: number;
}

const FD_CLOEXEC = 1;
export const NO_FOWN: FownData = { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 };

export function listFds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

/** Every fd that cryo cannot checkpoint, as user-facing lines. */
export function fdBlockers(pid: number, sockets: FileScan): string[] {
  const out: string[] = [];
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
    let b: string | null;
    try {
      b = fdBlocker(pid, fd, link, mode, sockets);
    } catch (e) {
      if (!existsSync(`/proc/${pid}/fd/${fd}`)) continue; // closed while we looked
      b = `pid ${pid} fd ${fd}: ${link} — cannot inspect: ${(e as Error).message}`;
    }
    if (b) out.push(b);
  }
  return out;
}

/** Dumps the fd table of a frozen task; shared descriptions (dup'ed fds) share one entry. */
export function dumpFds(pid: number, files: FileTable): FdinfoData[] {
  const out: FdinfoData[] = [];
  const seen = files.seenFds;
  for (const fd of listFds(pid)) {
    const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    const st = statSync(`/proc/${pid}/fd/${fd}`, { bigint: false });
    const info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    const flags = info.flags & ~O.CLOEXEC;
    const pipeId = pipeInode(link);
    const anon = anonKind(link);
    const sock = socketInode(link);
    let type: FdinfoData['type'] = anon ?? (pipeId !== null ? 'PIPE' : 'REG');
    const twin = seen.find((s) => s.ino === st.ino && s.dev === st.dev && kcmp(s.pid, pid, KCMP.FILE, s.fd, fd) === 0);
    let id: number;
    if (twin) {
      id = twin.id;
      if (sock !== null) type = files.entries.find((e) => e.id === id)!.type as FdinfoData['type'];
    } else if (sock !== null) {
      // Sockets are inspected (and refused) by their own module, with the tree-wide view.
      ({ id, type } = dumpSocket(pid, fd, sock, flags, NO_FOWN, files, files.sockets));
    } else {
      const blocker = fdBlocker(pid, fd, link, st.mode, files.sockets);
      if (blocker) throw new UserError(blocker);
      if (anon) id = files.addAnon(anon, flags, NO_FOWN, info);
      else if (isMemfd(link)) {
        type = 'MEMFD';
        id = files.addMemfd(`/proc/${pid}/fd/${fd}`, link, flags, info.pos, NO_FOWN);
      } else if ((st.mode & 0o170000) === 0o010000 && pipeId === null) {
        type = 'FIFO';
        id = files.addFifo(st.ino, { flags, pos: 0n, fown: NO_FOWN, name: link, mode: st.mode });
        if (!files.fifoData.has(st.ino)) files.fifoData.set(st.ino, peekPipe(pid, fd, st.ino));
      } else if (pipeId !== null) {
        id = files.addPipe(pipeId, flags, NO_FOWN);
        if (!files.pipeData.has(pipeId)) files.pipeData.set(pipeId, peekPipe(pid, fd, pipeId));
      } else {
        const gone = deletedPath(link);
        id = files.add(
          {
            flags,
            pos: info.pos,
            fown: NO_FOWN,
            name: gone ?? link,
            mode: st.mode,
            ...((st.mode & 0o170000) === 0o100000 ? { size: BigInt(st.size) } : {}),
          },
          gone !== null ? `/proc/${pid}/fd/${fd}` : undefined,
        );
      }
    }
    if (!twin) seen.push({ pid, fd, ino: st.ino, dev: st.dev, id });
    if (files.sockets.fileLocks) files.locks.push(...lockEntries(pid, fd, fdLocks(info)));
    out.push({ id, flags: info.flags & O.CLOEXEC ? FD_CLOEXEC : 0, type, fd });
  }
  return out;
}

/**
 * Opens a file description as the image describes it, in the restorer, with its position set.
 * Returns our fd (O_CLOEXEC on our side; the task's fd flags are set when it is installed).
 */
export function openRegFile(reg: Pick<RegFileData, "name" | "flags" | "pos" | "mode">): number {
  const isDir = reg.mode !== undefined && (reg.mode & 0o170000) === 0o040000;
  const flags = (reg.flags & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY)) | O.CLOEXEC | (isDir ? O.DIRECTORY : 0);
  let fd: number;
  try {
    fd = openSync(reg.name, flags);
  } catch (e) {
    throw new UserError(`cannot open ${reg.name}: ${(e as Error).message}`);
  }
  try {
    if (reg.pos !== 0n) sys('lseek', [fd, reg.pos, 0], reg.name);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}
