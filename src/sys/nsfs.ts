// Namespace files' ioctls (linux/nsfs.h): which user namespace owns a namespace, a user
// namespace's parent and its owner's uid. Each answer that is a namespace comes as a new fd,
// compared by inode (what /proc/PID/ns/KIND links name) and closed at once. And the pidfd ioctl
// that hands out a task's pid_for_children namespace.
import { openSync, closeSync, fstatSync, statSync } from 'node:fs';
import { sys } from './libc.js';
import { pidfdOpen, closeFd } from './process.js';

const NSIO = 0xb7;
const NS_GET_USERNS = (NSIO << 8) | 0x1;
const NS_GET_PARENT = (NSIO << 8) | 0x2;
const NS_GET_OWNER_UID = (NSIO << 8) | 0x4;

function withNsFile<T>(path: string, fn: (fd: number) => T): T {
  const fd = openSync(path, 'r');
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

function relatedIno(path: string, req: number, what: string): number {
  return withNsFile(path, (fd) => {
    const other = sys('ioctl', [fd, req, 0], `${what} of ${path}`);
    try {
      return fstatSync(other).ino;
    } finally {
      closeSync(other);
    }
  });
}

/** Inode of the namespace file `path` (/proc/PID/ns/KIND). */
export const nsInode = (path: string): number => statSync(path).ino;
/** Inode of the user namespace that owns the namespace at `path`. */
export const nsOwnerInode = (path: string): number => relatedIno(path, NS_GET_USERNS, 'owning user namespace');
/** Inode of the parent of the user namespace at `path` (EPERM when it is outside ours). */
export const nsParentInode = (path: string): number => relatedIno(path, NS_GET_PARENT, 'parent user namespace');

/** The uid (in our namespace) of the creator of the user namespace at `path`. */
export function nsOwnerUid(path: string): number {
  return withNsFile(path, (fd) => {
    const b = Buffer.alloc(4);
    sys('ioctl', [fd, NS_GET_OWNER_UID, b], `owner of ${path}`);
    return b.readUInt32LE(0);
  });
}

/** PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE (linux/pidfd.h, _IO(PIDFS_IOCTL_MAGIC 0xFF, 6), Linux 6.11). */
const PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE = (0xff << 8) | 6;

/**
 * An fd of task `pid`'s pid_for_children namespace. After unshare(CLONE_NEWPID) and before the
 * namespace has an init, /proc/PID/ns/pid_for_children is ENOENT (the kernel hides a namespace
 * without child_reaper there); the pidfd ioctl hands it out all the same.
 */
export function pidForChildrenNsFd(pid: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    return sys('ioctl', [pidfd, PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE, 0], `pid_for_children namespace of pid ${pid} (PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE, Linux 6.11)`);
  } finally {
    closeFd(pidfd);
  }
}

const CLONE_FLAG = { net: 0x40000000, pid: 0x20000000 } as const;

/**
 * Runs `fn` with the calling thread in namespace `fd` of `kind` and always puts it back. For
 * net, what the thread makes (a socket, a forked process) is in that namespace; for pid, only
 * what it forks (setns(CLONE_NEWPID) sets pid_for_children: back is the thread's own active
 * namespace, which setns always allows). Mount and user namespaces refuse a multithreaded caller.
 */
export function withThreadNamespace<T>(kind: keyof typeof CLONE_FLAG, fd: number, fn: () => T): T {
  const home = openSync(`/proc/thread-self/ns/${kind}`, 'r');
  try {
    sys('setns', [fd, CLONE_FLAG[kind]], `enter a ${kind} namespace`);
    try {
      return fn();
    } finally {
      sys('setns', [home, CLONE_FLAG[kind]], `back to our own ${kind} namespace`);
    }
  } finally {
    closeSync(home);
  }
}

/** `fn` with what the calling thread forks in the PID namespace of task `pid`. */
export function withPidForChildren<T>(pid: number, fn: () => T): T {
  const target = openSync(`/proc/${pid}/ns/pid`, 'r');
  try {
    return withThreadNamespace('pid', target, fn);
  } finally {
    closeSync(target);
  }
}
