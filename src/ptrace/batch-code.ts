// Machine code for a batch of system calls run in one stop: for each call, load eax and the six
// argument registers, `syscall`, store rax in the call's result slot, and jump to the end on an
// error (-4095..-1), so a failed call stops the ones after it. The end is an `int3` (the task
// stops there with a SIGTRAP the tracer takes), or a jump to code of the caller's (the dump's
// crash-safe exit, which stops on its marker signal). Pure: builds bytes, touches nothing.
// Each value takes the shortest load that gives all 64 bits (a zero: xor; 32 bits: mov r32,
// which zero-extends; a small negative: mov r64, simm32; an address near the code: lea from
// rip), and results are stored rip-relative when near: a call is ~50 bytes instead of 94, so a
// task's 62 dispositions and its other reads fit in one page of code, one stop.

export interface CodedCall {
  nr: number;
  args: readonly bigint[];
  /** Goes on past an error (no test and jump): its error is an answer. */
  mayFail?: boolean;
}

/** Per argument register: xor r32 (zero), mov r32 imm32, mov r64 simm32, lea r64 [rip+d32], mov r64 imm64. */
const REGS = [
  { xor: [0x31, 0xff], mov32: [0xbf], simm: [0x48, 0xc7, 0xc7], lea: [0x48, 0x8d, 0x3d], imm64: [0x48, 0xbf] }, // rdi
  { xor: [0x31, 0xf6], mov32: [0xbe], simm: [0x48, 0xc7, 0xc6], lea: [0x48, 0x8d, 0x35], imm64: [0x48, 0xbe] }, // rsi
  { xor: [0x31, 0xd2], mov32: [0xba], simm: [0x48, 0xc7, 0xc2], lea: [0x48, 0x8d, 0x15], imm64: [0x48, 0xba] }, // rdx
  { xor: [0x45, 0x31, 0xd2], mov32: [0x41, 0xba], simm: [0x49, 0xc7, 0xc2], lea: [0x4c, 0x8d, 0x15], imm64: [0x49, 0xba] }, // r10
  { xor: [0x45, 0x31, 0xc0], mov32: [0x41, 0xb8], simm: [0x49, 0xc7, 0xc0], lea: [0x4c, 0x8d, 0x05], imm64: [0x49, 0xb8] }, // r8
  { xor: [0x45, 0x31, 0xc9], mov32: [0x41, 0xb9], simm: [0x49, 0xc7, 0xc1], lea: [0x4c, 0x8d, 0x0d], imm64: [0x49, 0xb9] }, // r9
] as const;

const END_JUMP_BYTES = 5; // jmp rel32
const CHECK_BYTES = 12; // cmp rax, -4095; jae rel32
/** rip-relative only well inside ±2 GiB, so that a size computed at the batch's start holds for every call in it. */
const NEAR = (1n << 31n) - (1n << 20n);

const near = (a: bigint, b: bigint) => a - b < NEAR && b - a < NEAR;

type Load = 'xor' | 'mov32' | 'simm' | 'lea' | 'imm64';

function loadOf(v: bigint, codeAt: bigint): Load {
  const u = BigInt.asUintN(64, v);
  const s = BigInt.asIntN(64, v);
  if (u === 0n) return 'xor';
  if (u < 1n << 32n) return 'mov32';
  if (s < 0n && s >= -(1n << 31n)) return 'simm';
  if (near(u, codeAt)) return 'lea';
  return 'imm64';
}

const LOAD_BYTES = (r: (typeof REGS)[number], l: Load) => r[l].length + (l === 'xor' ? 0 : l === 'imm64' ? 8 : 4);

/** Bytes of one call's code at about `codeAt`, its result at `slot`. */
function callBytes(c: CodedCall, codeAt: bigint, slot: bigint): number {
  let n = 5 + 2 + (near(slot, codeAt) ? 7 : 10) + (c.mayFail ? 0 : CHECK_BYTES); // mov eax; syscall; store
  REGS.forEach((r, a) => (n += LOAD_BYTES(r, loadOf(c.args[a] ?? 0n, codeAt))));
  return n;
}

/**
 * How many of `calls`, from the first, fit in `size` bytes of code at `codeAt` (one byte goes to
 * the final int3, five to a jump), their results from `resultsAt` on.
 */
export function callsThatFit(calls: readonly CodedCall[], codeAt: bigint, resultsAt: bigint, size: number, endsInJump = false): number {
  let used = endsInJump ? END_JUMP_BYTES : 1;
  let i = 0;
  for (; i < calls.length; i++) {
    used += callBytes(calls[i]!, codeAt, resultsAt + BigInt(8 * i));
    if (used > size) break;
  }
  return i;
}

/**
 * The code of `calls`, to be placed at `codeAt`; call i stores its rax at `resultsAt + 8 * i`.
 * Returns the bytes and the address of the final int3 (or, with `endJumpTo`, of a jump there).
 */
export function batchCode(calls: readonly CodedCall[], codeAt: bigint, resultsAt: bigint, endJumpTo?: bigint): { code: Buffer; trapAt: bigint } {
  const end = calls.reduce((n, c, i) => n + callBytes(c, codeAt, resultsAt + BigInt(8 * i)), 0);
  const code = Buffer.alloc(end + (endJumpTo === undefined ? 1 : END_JUMP_BYTES));
  let o = 0;
  const bytes = (b: readonly number[]) => {
    code.set(b, o);
    o += b.length;
  };
  /** A rel32 to `target`, measured from the end of the instruction whose last 4 bytes it is. */
  const rel32 = (target: bigint) => {
    code.writeInt32LE(Number(target - (codeAt + BigInt(o + 4))), o);
    o += 4;
  };
  calls.forEach((c, i) => {
    bytes([0xb8]); // mov eax, nr
    code.writeUInt32LE(c.nr, o);
    o += 4;
    REGS.forEach((r, a) => {
      const v = c.args[a] ?? 0n;
      const l = loadOf(v, codeAt);
      bytes(r[l]);
      if (l === 'mov32') code.writeUInt32LE(Number(BigInt.asUintN(32, v)), o);
      else if (l === 'simm') code.writeInt32LE(Number(BigInt.asIntN(32, v)), o);
      else if (l === 'lea') return rel32(BigInt.asUintN(64, v));
      else if (l === 'imm64') code.writeBigUInt64LE(BigInt.asUintN(64, v), o);
      o += l === 'xor' ? 0 : l === 'imm64' ? 8 : 4;
    });
    bytes([0x0f, 0x05]); // syscall
    const slot = resultsAt + BigInt(8 * i);
    if (near(slot, codeAt)) {
      bytes([0x48, 0x89, 0x05]); // mov [rip + d32], rax
      rel32(slot);
    } else {
      bytes([0x48, 0xa3]); // movabs [slot], rax
      code.writeBigUInt64LE(slot, o);
      o += 8;
    }
    if (c.mayFail) return;
    bytes([0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff]); // cmp rax, -4095
    bytes([0x0f, 0x83]); // jae end
    code.writeInt32LE(end - (o + 4), o);
    o += 4;
  });
  if (o !== end) throw new Error(`batch code: ${o} bytes written, ${end} planned`);
  if (endJumpTo === undefined) code[o] = 0xcc; // int3
  else {
    const rel = endJumpTo - (codeAt + BigInt(end + END_JUMP_BYTES));
    if (rel < -(1n << 31n) || rel >= 1n << 31n) throw new RangeError('batch code too far from its end');
    code[o] = 0xe9; // jmp rel32
    code.writeInt32LE(Number(rel), o + 1);
  }
  return { code, trapAt: codeAt + BigInt(end) };
}
