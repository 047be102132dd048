// How the snapshot spells kernel values, shared by the side that reads /proc and the side that
// derives the same keys from the images: signal names, open flags, fd kinds, limits, mappings.
import { O } from '../../sys/index.js';
import { RLIM_INFINITY } from '../../proc/index.js';

const SIGNALS = [
  '', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV',
  'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN',
  'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS',
];

export function signalName(sig: number): string {
  return SIGNALS[sig] ?? `SIG${sig}`;
}

/** The signals of a 64-bit mask (bit n-1 = signal n), by name. */
export function signalSet(mask: bigint): { set: string[] } {
  const set: string[] = [];
  for (let s = 1; s <= 64; s++) if (mask & (1n << BigInt(s - 1))) set.push(signalName(s));
  return { set };
}

/** SIGKILL and SIGSTOP can never be blocked: a mask asking for them shows without. */
export const UNBLOCKABLE = (1n << 8n) | (1n << 18n);

const O_SYNC = 0o4010000;

/** Status flags that a restore must give back and that the kernel keeps as they were set. */
const FILE_FLAGS: [string, number][] = [
  ['O_APPEND', O.APPEND],
  ['O_NONBLOCK', O.NONBLOCK],
  ['O_DIRECT', O.DIRECT],
  ['O_NOATIME', O.NOATIME],
  ['O_ASYNC', O.ASYNC],
  ['O_PATH', O.PATH],
];

/**
 * The flags of an fd as a set: access mode, status flags, FD_CLOEXEC. Left out: O_LARGEFILE
 * (forced by the kernel on 64-bit opens) and O_DIRECTORY/O_NOFOLLOW (how a path was opened, not
 * what the description does). Kernel objects (`object`: sockets, eventfd, epoll ...) have an
 * access mode fixed by their kind, and their images mix other bits into the low ones (eventfd
 * keeps EFD_SEMAPHORE in bit 0): only O_NONBLOCK and FD_CLOEXEC count for them.
 */
export function fdFlagSet(flags: number, cloexec: boolean, object: boolean): { set: string[] } {
  const set: string[] = [];
  if (!object) set.push(['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE3'][flags & O.ACCMODE]!);
  for (const [name, bit] of object ? FILE_FLAGS.slice(1, 2) : FILE_FLAGS) if (flags & bit) set.push(name);
  if (!object && (flags & O_SYNC) === O_SYNC) set.push('O_SYNC');
  else if (!object && flags & O.DSYNC) set.push('O_DSYNC');
  if (cloexec) set.push('FD_CLOEXEC');
  return { set };
}

/** /proc/PID/limits row names, by RLIMIT_* number. */
const RLIMIT_NAMES = [
  'Max cpu time', 'Max file size', 'Max data size', 'Max stack size', 'Max core file size', 'Max resident set',
  'Max processes', 'Max open files', 'Max locked memory', 'Max address space', 'Max file locks',
  'Max pending signals', 'Max msgqueue size', 'Max nice priority', 'Max realtime priority', 'Max realtime timeout',
];

export function limitKey(resource: number): string {
  return `limit ${RLIMIT_NAMES[resource] ?? resource}`;
}

export function limitValue(cur: bigint, max: bigint): string {
  const v = (x: bigint) => (x === RLIM_INFINITY ? 'unlimited' : String(x));
  return `${v(cur)}/${v(max)}`;
}

export function mappingKey(start: bigint, end: bigint): string {
  return `mapping ${start.toString(16)}-${end.toString(16)}`;
}

/** "rw-p": protections and private/shared, as maps shows them. */
export function permsOf(read: boolean, write: boolean, exec: boolean, shared: boolean): string {
  return `${read ? 'r' : '-'}${write ? 'w' : '-'}${exec ? 'x' : '-'}${shared ? 's' : 'p'}`;
}

/** "(sec, nsec)" of fdinfo as "sec.nsec". */
export function timespecText(sec: bigint, nsec: bigint): string {
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}

/** A thread's keys carry its TID, except the leader's (which are the process's). */
export function threadPrefix(pid: number, tid: number): string {
  return tid === pid ? '' : `tid ${tid} `;
}

export function capHex(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/** A path as the kernel shows it for an unlinked file, without the " (deleted)". */
export function stripDeleted(path: string): string {
  return path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
}
