// Reaching a task's fd from cryo: what its /proc link names, and our own copy of its open file
// description (pidfd_getfd), through which sockets and other objects are inspected directly.
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

/** Runs `fn` on our own copy of the task's fd (the same open file description). */
export function withOurCopy<T>(pid: number, fd: number, fn: (ours: number) => T): T {
  const pidfd = pidfdOpen(pid);
  try {
    const ours = pidfdGetfd(pidfd, fd);
    try {
      return fn(ours);
    } finally {
      closeFd(ours);
    }
  } finally {
    closeFd(pidfd);
  }
}
