// Wrappers for the process-level syscalls (wait, signals, pidfds, remote memory, limits, kcmp) the
// dumper and restorer call on their own behalf.
import { openSync, writeSync, closeSync } from 'node:fs';
import { sys, sysTry, addressOf } from './libc.js';
import { E, SysError } from './errno.js';
import { WAIT } from './consts.js';

export interface WaitStatus {
  pid: number;
  raw: number;
  exited: boolean;
  exitCode: number;
  signaled: boolean;
  termSig: number;
  stopped: boolean;
  stopSig: number;
  /** PTRACE_EVENT_* from the high byte of a ptrace stop (0 if none). */
  event: number;
}

export function decodeWaitStatus(pid: number, raw: number): WaitStatus {
  const low = raw & 0x7f;
  const stopped = (raw & 0xff) === 0x7f;
  return {
    pid,
    raw,
    exited: low === 0,
    exitCode: (raw >> 8) & 0xff,
    signaled: !stopped && low !== 0,
    termSig: low,
    stopped,
    stopSig: stopped ? (raw >> 8) & 0xff : 0,
    event: stopped ? (raw >>> 16) & 0xff : 0,
  };
}

/** wait4(pid, __WALL | options); returns null when WNOHANG finds nothing. */
export function wait4(pid: number, options = 0): WaitStatus | null {
  const status = Buffer.alloc(4);
  for (;;) {
    const r = sysTry('wait4', [pid, status, options | WAIT.WALL, 0]);
    if (r.ret === -1) {
      if (r.errno === E.EINTR) continue;
      throw new SysError('wait4', r.errno, `pid ${pid}`);
    }
    if (r.ret === 0) return null;
    return decodeWaitStatus(r.ret, status.readInt32LE(0));
  }
}

export function kill(pid: number, sig: number): void {
  sys('kill', [pid, sig], `pid ${pid}`);
}

export function tgkill(tgid: number, tid: number, sig: number): void {
  sys('tgkill', [tgid, tid, sig], `tid ${tid}`);
}

/** True while the PID is held by any task, zombies included. */
export function pidExists(pid: number): boolean {
  const r = sysTry('kill', [pid, 0]);
  return r.ret === 0 || r.errno === E.EPERM;
}

export function pidfdOpen(pid: number): number {
  return sys('pidfd_open', [pid, 0], `pid ${pid}`);
}

export function pidfdGetfd(pidfd: number, fd: number): number {
  return sys('pidfd_getfd', [pidfd, fd, 0], `fd ${fd}`);
}

export function closeFd(fd: number): void {
  sysTry('close', [fd]);
}

function iovecs(parts: { addr: bigint; len: number }[]): Buffer {
  const b = Buffer.alloc(16 * parts.length);
  parts.forEach((p, i) => {
    b.writeBigUInt64LE(p.addr, i * 16);
    b.writeBigUInt64LE(BigInt(p.len), i * 16 + 8);
  });
  return b;
}

/**
 * Reads remote memory ranges into `dst` back to back (process_vm_readv). Returns bytes read,
 * which is short when a range hits an unreadable page.
 */
export function vmRead(pid: number, dst: Buffer, ranges: { addr: bigint; len: number }[], dstOff = 0): number {
  const total = ranges.reduce((s, r) => s + r.len, 0);
  const local = iovecs([{ addr: addressOf(dst) + BigInt(dstOff), len: total }]);
  const remote = iovecs(ranges);
  const r = sysTry('process_vm_readv', [pid, local, 1, remote, ranges.length, 0]);
  if (r.ret === -1) {
    if (r.errno === E.EFAULT) return 0;
    throw new SysError('process_vm_readv', r.errno, `pid ${pid}`);
  }
  return r.ret;
}

/** Writes `src` into remote memory at `addr` (process_vm_writev). */
export function vmWrite(pid: number, addr: bigint, src: Buffer): void {
  const local = iovecs([{ addr: addressOf(src), len: src.length }]);
  const remote = iovecs([{ addr, len: src.length }]);
  const n = sys('process_vm_writev', [pid, local, 1, remote, 1, 0], `pid ${pid} at 0x${addr.toString(16)}`);
  if (n !== src.length) throw new SysError('process_vm_writev', E.EFAULT, `short write at 0x${addr.toString(16)}`);
}

/**
 * Writes into the task's memory through /proc/PID/mem, which writes past the page protections
 * (as a debugger does): for code in a mapping that may not be writable (PR_SET_MDWE).
 */
export function memWrite(pid: number, addr: bigint, src: Buffer): void {
  const fd = openSync(`/proc/${pid}/mem`, 'r+');
  try {
    const n = writeSync(fd, src, 0, src.length, Number(addr));
    if (n !== src.length) throw new SysError('write', E.EFAULT, `/proc/${pid}/mem: short write at 0x${addr.toString(16)}`);
  } finally {
    closeSync(fd);
  }
}

export interface Rlimit {
  cur: bigint;
  max: bigint;
}

export function prlimit(pid: number, resource: number, set?: Rlimit): Rlimit {
  const oldBuf = Buffer.alloc(16);
  let newBuf: Buffer | number = 0;
  if (set) {
    newBuf = Buffer.alloc(16);
    newBuf.writeBigUInt64LE(set.cur, 0);
    newBuf.writeBigUInt64LE(set.max, 8);
  }
  sys('prlimit64', [pid, resource, newBuf, oldBuf], `pid ${pid} resource ${resource}`);
  return { cur: oldBuf.readBigUInt64LE(0), max: oldBuf.readBigUInt64LE(8) };
}

/** get_robust_list(tid): the head address and length the task registered. */
export function getRobustList(tid: number): { head: bigint; len: number } {
  const head = Buffer.alloc(8);
  const len = Buffer.alloc(8);
  sys('get_robust_list', [tid, head, len], `tid ${tid}`);
  return { head: head.readBigUInt64LE(0), len: Number(len.readBigUInt64LE(0)) };
}

export const KCMP = { FILE: 0, VM: 1, FILES: 2, FS: 3, SIGHAND: 4, IO: 5, SYSVSEM: 6, EPOLL_TFD: 7 } as const;

/** kcmp(2): 0 when the two objects are the same, non-zero otherwise. */
export function kcmp(pid1: number, pid2: number, type: number, idx1 = 0, idx2 = 0): number {
  return sys('kcmp', [pid1, pid2, type, idx1, idx2], `pids ${pid1},${pid2}`);
}

const KCMP_EPOLL_TFD = 7;

/**
 * Whether fd `fd` of task `holder` is the file that epoll `epfd` of task `pid` watches under
 * registration (`tfd`, `toff`): kcmp(KCMP_EPOLL_TFD) compares a file of its first task with a
 * target of an epoll of its second.
 */
export function isEpollTarget(pid: number, fd: number, epfd: number, tfd: number, toff: number, holder = pid): boolean {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(epfd, 0);
  slot.writeUInt32LE(tfd, 4);
  slot.writeUInt32LE(toff, 8);
  return sysTry('kcmp', [holder, pid, KCMP_EPOLL_TFD, fd, slot]).ret === 0;
}

/** Filesystem magic numbers (statfs f_type) cryo tells apart. */
export const FS_MAGIC = {
  MQUEUE: 0x19800202,
  PROC: 0x9fa0,
  SYSFS: 0x62656572,
  CGROUP: 0x27e0eb,
  CGROUP2: 0x63677270,
} as const;

/** The f_type of the filesystem `path` is on (statfs(2)); null if it cannot be reached. */
export function filesystemType(path: string): number | null {
  const buf = Buffer.alloc(120); // struct statfs: f_type is its first field (a long)
  const r = sysTry('statfs', [Buffer.from(path + '\0'), buf]);
  return r.ret < 0 ? null : Number(buf.readBigInt64LE(0));
}
