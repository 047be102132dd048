// An x86_64 rt_sigframe (the one the kernel pushes for a signal handler) that holds a task's own
// registers, signal mask and XSAVE state. While we inject system calls, the task's stack pointer
// points at such a frame and every injected instruction sequence ends in rt_sigreturn: should cryo
// die (SIGKILL) and the kernel detach the task wherever it stands, the task's next steps take it
// back to its own code and state instead of into our half-finished work.
//
// Layout (arch/x86/include/asm/sigframe.h, uapi asm/sigcontext.h, asm/ucontext.h):
//   0   pretcode                       (where a handler's `ret` goes: the restorer)
//   8   ucontext: flags, link, uc_stack (24 bytes), sigcontext (256 bytes), sigmask (8)
//   312 siginfo (128)
//   448 XSAVE area, 64-byte aligned, then FP_XSTATE_MAGIC2
import { Regs, cpuXsaveLayout } from '../sys/index.js';

export const FPSTATE_OFFSET = 448;
const UC = 8;
const UC_STACK = UC + 16;
const MCONTEXT = UC + 40;
const SIGMASK = UC + 296;
const UC_FP_XSTATE = 1;
const UC_SIGCONTEXT_SS = 2;
const UC_STRICT_RESTORE_SS = 4;
/** An ss_flags value sigaltstack rejects: rt_sigreturn then leaves the task's alternate stack as it is. */
const SS_INVALID = 3;
const FP_XSTATE_MAGIC1 = 0x46505853;
const FP_XSTATE_MAGIC2 = 0x46505845;
const SW_RESERVED = 464;
const XFEATURE_XTILEDATA = 18;

/** sigcontext field order from r8 (offset 0) to rip (128), 8 bytes each. */
const SC_REGS = ['r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'di', 'si', 'bp', 'bx', 'dx', 'ax', 'cx', 'sp', 'ip'] as const;

const ERESTARTSYS = -512n;
const ERESTARTNOINTR = -513n;
const ERESTARTNOHAND = -514n;
const ERESTART_RESTARTBLOCK = -516n;

export function sigframeSize(xstateLen: number): number {
  return FPSTATE_OFFSET + xstateLen + 4;
}

/**
 * The registers the task must get back through rt_sigreturn. rt_sigreturn sets orig_ax to -1,
 * so the kernel would no longer restart a system call the freeze interrupted: do it here
 * (rewind rip onto the `syscall` and put the number back in rax). A call that needs the kernel's
 * restart block (nanosleep, poll with a timeout...) cannot be resumed that way: it is issued
 * again with its original arguments (it waits its full timeout again).
 */
export function resumeRegs(regs: Regs): Regs {
  const r = regs.clone();
  const nr = r.signed('orig_ax');
  const ax = r.signed('ax');
  if (nr >= 0n && (ax === ERESTARTSYS || ax === ERESTARTNOINTR || ax === ERESTARTNOHAND || ax === ERESTART_RESTARTBLOCK)) {
    r.set('ax', nr);
    r.set('ip', r.get('ip') - 2n);
  }
  r.set('orig_ax', -1n);
  return r;
}

/**
 * How much of the XSAVE area rt_sigreturn may take: the kernel refuses (and then restores only
 * the legacy x87/SSE part) a size above the task's own buffer, which lacks AMX tile data unless
 * the process asked for it. The ptrace buffer names the enabled features in sw_reserved word 0.
 */
function xstateExtent(xstate: Buffer): { size: number; features: bigint } {
  let features = xstate.length >= SW_RESERVED + 8 ? xstate.readBigUInt64LE(SW_RESERVED) : 0n;
  if (!features) features = 3n;
  features &= ~(1n << BigInt(XFEATURE_XTILEDATA));
  let size = 576; // legacy area + XSAVE header
  for (const [bit, c] of cpuXsaveLayout()) {
    if (features & (1n << BigInt(bit))) size = Math.max(size, c.offset + c.size);
  }
  return { size: Math.min(size, xstate.length), features };
}

/**
 * The frame bytes for address `at` (64-byte aligned). `pretcode` is what a `ret` executed with
 * rsp = `at` jumps to (a `mov eax,15; syscall` restorer), 0 when the code runs rt_sigreturn itself.
 */
export function buildSigframe(at: bigint, regs: Regs, mask: bigint, xstate: Buffer, pretcode = 0n): Buffer {
  if (at % 64n !== 0n) throw new Error('sigframe must be 64-byte aligned');
  const { size, features } = xstateExtent(xstate);
  const f = Buffer.alloc(FPSTATE_OFFSET + size + 4);
  f.writeBigUInt64LE(pretcode, 0);
  f.writeBigUInt64LE(BigInt(UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS), UC);
  f.writeInt32LE(SS_INVALID, UC_STACK + 8);
  const r = resumeRegs(regs);
  SC_REGS.forEach((n, i) => f.writeBigUInt64LE(r.get(n), MCONTEXT + i * 8));
  f.writeBigUInt64LE(r.get('flags'), MCONTEXT + 136);
  f.writeUInt16LE(Number(r.get('cs')), MCONTEXT + 144);
  f.writeUInt16LE(Number(r.get('ss')), MCONTEXT + 150);
  f.writeBigUInt64LE(at + BigInt(FPSTATE_OFFSET), MCONTEXT + 184);
  f.writeBigUInt64LE(mask, SIGMASK);
  const fp = f.subarray(FPSTATE_OFFSET);
  xstate.copy(fp, 0, 0, size);
  fp.writeUInt32LE(FP_XSTATE_MAGIC1, SW_RESERVED);
  fp.writeUInt32LE(size + 4, SW_RESERVED + 4); // extended_size
  fp.writeBigUInt64LE(features, SW_RESERVED + 8);
  fp.writeUInt32LE(size, SW_RESERVED + 16); // xstate_size
  fp.fill(0, SW_RESERVED + 20, SW_RESERVED + 48);
  fp.writeUInt32LE(FP_XSTATE_MAGIC2, size);
  return f;
}
