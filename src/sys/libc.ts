// The only module that touches koffi: libc is loaded once and every kernel entry point cryo uses
// goes through the generic syscall() binding below (so there is one calling convention to trust),
// plus posix_spawn, which needs libc's vfork-and-exec logic.
import koffi from 'koffi';
import { SysError } from './errno.js';
import { NR, type SyscallName } from './nr.js';

const libc = koffi.load('libc.so.6');

const rawSyscall = libc.func('long syscall(long nr, long a, long b, long c, long d, long e, long f)');
const rawPosixSpawn = libc.func(
  'int posix_spawn(_Out_ int *pid, const char *path, void *fileActions, void *attr, const char **argv, const char **envp)',
);

/** An argument to a raw syscall: a number, a bigint (addresses) or a Buffer (passed by address). */
export type SysArg = number | bigint | Buffer;

function toLong(v: SysArg | undefined): bigint {
  if (v === undefined) return 0n;
  if (typeof v === 'number') return BigInt.asIntN(64, BigInt(v));
  if (typeof v === 'bigint') return BigInt.asIntN(64, v);
  return koffi.address(v);
}

/** Address of a Buffer's first byte, for structs that embed pointers (iovec, clone_args). */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(buf);
}

/**
 * Calls a system call. Returns its non-negative result; throws SysError on failure.
 * `detail` names the object in the error message (a PID, a path, an address).
 */
export function sys(name: SyscallName, args: SysArg[] = [], detail?: string): number {
  const r = rawSyscall(
    NR[name],
    toLong(args[0]),
    toLong(args[1]),
    toLong(args[2]),
    toLong(args[3]),
    toLong(args[4]),
    toLong(args[5]),
  ) as number | bigint;
  if (r === -1 || r === -1n) throw new SysError(name, koffi.errno(), detail);
  return Number(r);
}

/** Like sys() but returns the errno instead of throwing (0 on success). */
export function sysTry(name: SyscallName, args: SysArg[] = []): { ret: number; errno: number } {
  const r = rawSyscall(
    NR[name],
    toLong(args[0]),
    toLong(args[1]),
    toLong(args[2]),
    toLong(args[3]),
    toLong(args[4]),
    toLong(args[5]),
  ) as number | bigint;
  if (r === -1 || r === -1n) return { ret: -1, errno: koffi.errno() };
  return { ret: Number(r), errno: 0 };
}

const rawMmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)');

/**
 * A page-aligned buffer outside the JS heap (an anonymous mapping), for O_DIRECT I/O. It lives
 * as long as the process: callers keep and reuse it.
 */
export function alignedBuffer(bytes: number): Buffer {
  const p = rawMmap(null, bytes, 3, 0x22, -1, 0); // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
  if (!p || koffi.address(p) === 0xffffffffffffffffn) throw new SysError('mmap', koffi.errno(), `${bytes} bytes`);
  return Buffer.from(koffi.view(p, bytes));
}

/** posix_spawn(3) without file actions or attributes: the child inherits our non-CLOEXEC fds. */
export function posixSpawn(path: string, argv: string[], envp: string[]): number {
  const pid = [0];
  const rc = rawPosixSpawn(pid, path, null, null, [...argv, null], [...envp, null]) as number;
  if (rc !== 0) throw new SysError('posix_spawn', rc, path);
  return pid[0]!;
}
