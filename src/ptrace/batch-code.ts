// Machine code for a batch of system calls run in one stop: for each call, load rax and the six
// argument registers, `syscall`, store rax in the call's result slot, and jump to the end on an
// error (-4095..-1), so a failed call stops the ones after it. The end is an `int3` (the task
// stops there with a SIGTRAP the tracer takes), or a jump to code of the caller's (the dump's
// crash-safe exit, which stops on its marker signal). Pure: builds bytes, touches nothing.

export interface CodedCall {
  nr: number;
  args: readonly bigint[];
  /** Goes on past an error (the test and jump are nops): its error is an answer. */
  mayFail?: boolean;
}

const ARG_LOADS = [
  [0x48, 0xbf], // mov rdi, imm64
  [0x48, 0xbe], // mov rsi, imm64
  [0x48, 0xba], // mov rdx, imm64
  [0x49, 0xba], // mov r10, imm64
  [0x49, 0xb8], // mov r8, imm64
  [0x49, 0xb9], // mov r9, imm64
] as const;

/** Bytes of one call's code. */
export const BYTES_PER_CALL = 10 * 7 + 2 + 10 + 6 + 6;

const END_JUMP_BYTES = 5; // jmp rel32

/** How many calls fit in `size` bytes of code (one byte goes to the final int3, five to a jump). */
export function callsThatFit(size: number, endsInJump = false): number {
  return Math.floor((size - (endsInJump ? END_JUMP_BYTES : 1)) / BYTES_PER_CALL);
}

/**
 * The code of `calls`, to be placed at `codeAt`; call i stores its rax at `resultsAt + 8 * i`.
 * Returns the bytes and the address of the final int3 (or, with `endJumpTo`, of a jump there).
 */
export function batchCode(calls: readonly CodedCall[], codeAt: bigint, resultsAt: bigint, endJumpTo?: bigint): { code: Buffer; trapAt: bigint } {
  const code = Buffer.alloc(calls.length * BYTES_PER_CALL + (endJumpTo === undefined ? 1 : END_JUMP_BYTES));
  let o = 0;
  const imm64 = (prefix: readonly number[], v: bigint) => {
    code[o++] = prefix[0]!;
    code[o++] = prefix[1]!;
    code.writeBigUInt64LE(BigInt.asUintN(64, v), o);
    o += 8;
  };
  const end = calls.length * BYTES_PER_CALL;
  calls.forEach((c, i) => {
    imm64([0x48, 0xb8], BigInt(c.nr)); // mov rax, nr
    ARG_LOADS.forEach((p, a) => imm64(p, c.args[a] ?? 0n));
    code[o++] = 0x0f; // syscall
    code[o++] = 0x05;
    imm64([0x48, 0xa3], resultsAt + BigInt(8 * i)); // movabs [slot], rax
    if (c.mayFail) {
      code.fill(0x90, o, o + 12); // nop: every call has the same size
      o += 12;
      return;
    }
    code.set([0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff], o); // cmp rax, -4095
    o += 6;
    code[o++] = 0x0f; // jae end (rel32 from the next instruction)
    code[o++] = 0x83;
    code.writeInt32LE(end - (o + 4), o);
    o += 4;
  });
  if (endJumpTo === undefined) code[o] = 0xcc; // int3
  else {
    const rel = endJumpTo - (codeAt + BigInt(end + END_JUMP_BYTES));
    if (rel < -(1n << 31n) || rel >= 1n << 31n) throw new RangeError('batch code too far from its end');
    code[o] = 0xe9; // jmp rel32
    code.writeInt32LE(Number(rel), o + 1);
  }
  return { code, trapAt: codeAt + BigInt(end) };
}
