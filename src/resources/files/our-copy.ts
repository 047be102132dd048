// Reaching a task's fd from cryo: what its /proc link names, and our own copy of its open file
// description (pidfd_getfd), through which sockets and other objects are inspected directly.
import { readdirSync, readlinkSync } from 'node:fs';
import { pidfdOpen, pidfdGetfd, closeFd } from '../../sys/index.js';

/** The pipe inode of a `pipe:[N]` link. */
export function pipeInode(link: string): number | null {
  const m = /^pipe:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : null;
}

export function socketInode(link: string): number | null {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : null;
}

/** Our own copy of the task's fd (the same open file description), ours to close. */
export function ourCopy(pid: number, fd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return pidfdGetfd(pidfd, fd);
  } finally {
    closeFd(pidfd);
  }
}

/** Runs `fn` on our own copy of the task's fd. */
export function withOurCopy<T>(pid: number, fd: number, fn: (ours: number) => T): T {
  const ours = ourCopy(pid, fd);
  try {
    return fn(ours);
  } finally {
    closeFd(ours);
  }
}

/**
 * Every fd of every process but those `skip` names, with what its /proc link names; an fd
 * closed (or a process gone) while it is read is left out.
 */
export function* everyFdLink(skip: (pid: number) => boolean = () => false): Generator<{ pid: number; fd: number; link: string }> {
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || skip(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        yield { pid, fd: Number(fd), link: readlinkSync(`/proc/${pid}/fd/${fd}`) };
      } catch {
        /* closed meanwhile */
      }
    }
  }
}
