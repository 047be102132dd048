// ptrace(2) requests and the x86_64 user_regs_struct layout.
import { sys, sysTry, addressOf, type SysArg } from './libc.js';
import { SysError } from './errno.js';
import { PTRACE, NT } from './consts.js';

export function ptrace(req: number, tid: number, addr: SysArg = 0, data: SysArg = 0, what?: string): number {
  return sys('ptrace', [req, tid, addr, data], what ?? `tid ${tid}`);
}

export function ptraceTry(req: number, tid: number, addr: SysArg = 0, data: SysArg = 0): number {
  return sysTry('ptrace', [req, tid, addr, data]).errno;
}

/** Field order of struct user_regs_struct (arch/x86/include/asm/user_64.h), 8 bytes each. */
export const REG_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'bp', 'bx', 'r11', 'r10', 'r9', 'r8', 'ax', 'cx', 'dx', 'si', 'di',
  'orig_ax', 'ip', 'cs', 'flags', 'sp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export const USER_REGS_SIZE = REG_NAMES.length * 8;

/** A task's general registers: a view over user_regs_struct bytes. */
export class Regs {
  constructor(readonly buf: Buffer = Buffer.alloc(USER_REGS_SIZE)) {}

  get(name: RegName): bigint {
    return this.buf.readBigUInt64LE(REG_NAMES.indexOf(name) * 8);
  }

  set(name: RegName, v: bigint | number): void {
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), REG_NAMES.indexOf(name) * 8);
  }

  /** The value as a signed 64-bit number (syscall results, orig_ax). */
  signed(name: RegName): bigint {
    return BigInt.asIntN(64, this.get(name));
  }

  clone(): Regs {
    return new Regs(Buffer.from(this.buf));
  }

  toObject(): Record<RegName, bigint> {
    const o = {} as Record<RegName, bigint>;
    for (const n of REG_NAMES) o[n] = this.get(n);
    return o;
  }
}

export function getRegs(tid: number): Regs {
  const r = new Regs();
  ptrace(PTRACE.GETREGS, tid, 0, r.buf);
  return r;
}

export function setRegs(tid: number, r: Regs): void {
  ptrace(PTRACE.SETREGS, tid, 0, r.buf);
}

/** The XSAVE area as the kernel hands it out: big enough for AMX (11008 bytes) and beyond. */
export function getXstate(tid: number): Buffer {
  const buf = Buffer.alloc(16384);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  ptrace(PTRACE.GETREGSET, tid, NT.X86_XSTATE, iov, `tid ${tid} xstate`);
  const len = Number(iov.readBigUInt64LE(8));
  return Buffer.from(buf.subarray(0, len));
}

export function setXstate(tid: number, xstate: Buffer): void {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(xstate), 0);
  iov.writeBigUInt64LE(BigInt(xstate.length), 8);
  ptrace(PTRACE.SETREGSET, tid, NT.X86_XSTATE, iov, `tid ${tid} xstate`);
}

export function getSigmask(tid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE.GETSIGMASK, tid, 8, b);
  return b.readBigUInt64LE(0);
}

export function setSigmask(tid: number, mask: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(mask, 0);
  ptrace(PTRACE.SETSIGMASK, tid, 8, b);
}

export interface RseqConfig {
  ptr: bigint;
  size: number;
  signature: number;
  flags: number;
}

export function getRseqConfig(tid: number): RseqConfig {
  const b = Buffer.alloc(24);
  const n = ptrace(PTRACE.GET_RSEQ_CONFIGURATION, tid, 24, b, `tid ${tid} rseq`);
  if (n < 20) throw new SysError('ptrace(GET_RSEQ_CONFIGURATION)', 22, `short answer ${n}`);
  return {
    ptr: b.readBigUInt64LE(0),
    size: b.readUInt32LE(8),
    signature: b.readUInt32LE(12),
    flags: b.readUInt32LE(16),
  };
}

export function getEventMsg(tid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE.GETEVENTMSG, tid, 0, b);
  return b.readBigUInt64LE(0);
}

