// The machine code cryo writes into a task's scratch area: one code page per task (see
// safe-remote.ts for why each task has its own). Both entry points run an injected system call
// with its arguments in registers and then leave the area for good:
//   - marker site (offset 0): syscall; mov r12, rax; tgkill(r13, r14, r15); <exit>
//     run with PTRACE_CONT, the tgkill gives the tracer one signal-delivery-stop;
//   - syscall site (SYSCALL_SITE_OFFSET): syscall; <exit> — stopped at entry and exit instead.
// <exit> is either `mov eax, 15; syscall` (rt_sigreturn through the frame at rsp - 8, inside the
// area), or, when the task has a frame on its own stack and the libc gadgets: munmap of the
// task's own part of the area, executed from the `syscall; ret` gadget with rsp at that stack
// frame, whose return address is a restorer: an orphaned task takes its part of the area away
// and returns to its own code.

export const MARKER_STOP_AT = 21; // rip in the marker's stop: just after the tgkill
/** Just after the marker site's syscall: where a batch (SafeRemote.batch) ends, with its rax. */
export const MARKER_TAIL_AT = 2;
export const SYSCALL_SITE_OFFSET = 128;
/** Past both entry points (codePage's 256 bytes): the rest of the page holds a batch's code. */
export const BATCH_CODE_AT = 256;
const SYSCALL_EXIT_AT = 2;

const MARKER_HEAD = [
  0x0f, 0x05, // syscall
  0x49, 0x89, 0xc4, // mov r12, rax
  0xb8, 0xea, 0x00, 0x00, 0x00, // mov eax, 234 (tgkill)
  0x4c, 0x89, 0xef, // mov rdi, r13
  0x4c, 0x89, 0xf6, // mov rsi, r14
  0x4c, 0x89, 0xfa, // mov rdx, r15
  0x0f, 0x05, // syscall
];
const SIGRETURN = [0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]; // mov eax, 15; syscall

export interface UnmapExit {
  /** The range this task unmaps on its way out. */
  start: bigint;
  len: number;
  /** Its signal frame on its own stack (first word: the restorer). */
  stackFrame: bigint;
  /** Address of `syscall; ret` in the task. */
  syscallRet: bigint;
  /** A second range unmapped first, from the code page itself (the owner's: slots no task took). */
  tail?: { start: bigint; len: number };
}

function movImm64(opcode: number[], v: bigint): Buffer {
  const b = Buffer.alloc(opcode.length + 8);
  Buffer.from(opcode).copy(b);
  b.writeBigUInt64LE(BigInt.asUintN(64, v), opcode.length);
  return b;
}

function exitCode(u: UnmapExit | null): Buffer {
  if (!u) return Buffer.from(SIGRETURN);
  const tail = u.tail && u.tail.len > 0
    ? [
        Buffer.from([0xb8, 0x0b, 0x00, 0x00, 0x00]), // mov eax, 11 (munmap)
        movImm64([0x48, 0xbf], u.tail.start),
        movImm64([0x48, 0xbe], BigInt(u.tail.len)),
        Buffer.from([0x0f, 0x05]), // syscall
      ]
    : [];
  return Buffer.concat([
    ...tail,
    Buffer.from([0xb8, 0x0b, 0x00, 0x00, 0x00]), // mov eax, 11 (munmap)
    movImm64([0x48, 0xbf], u.start), // mov rdi, imm64
    movImm64([0x48, 0xbe], BigInt(u.len)), // mov rsi, imm64
    movImm64([0x48, 0xbc], u.stackFrame), // mov rsp, imm64
    movImm64([0x48, 0xb9], u.syscallRet), // mov rcx, imm64
    Buffer.from([0xff, 0xe1]), // jmp rcx
  ]);
}

/** The code page of one task. */
export function codePage(u: UnmapExit | null): Buffer {
  const page = Buffer.alloc(256);
  const exit = exitCode(u);
  Buffer.from(MARKER_HEAD).copy(page, 0);
  exit.copy(page, MARKER_STOP_AT);
  page[SYSCALL_SITE_OFFSET] = 0x0f;
  page[SYSCALL_SITE_OFFSET + 1] = 0x05;
  exit.copy(page, SYSCALL_SITE_OFFSET + SYSCALL_EXIT_AT);
  return page;
}

/**
 * Code for a copy-on-write snapshot of the task (SafeRemote.forkSnapshot), placed at `codeAt`:
 * `clone(flags, 0, 0, 0, 0)`; the parent jumps to `tailAt` (the marker site's tail: its stop,
 * then its exit), the child calls exit(0) at once. So the child runs nothing of the program's
 * even if cryo dies before it is told what to do: orphaned, it just ends.
 */
export function snapshotForkCode(codeAt: bigint, tailAt: bigint, flags: number): Buffer {
  const head = Buffer.from([
    0xb8, 0x38, 0x00, 0x00, 0x00, // mov eax, 56 (clone)
    0xbf, 0, 0, 0, 0, // mov edi, flags
    0x31, 0xf6, // xor esi, esi (no new stack: the child never runs the program)
    0x31, 0xd2, // xor edx, edx
    0x45, 0x31, 0xd2, // xor r10d, r10d
    0x45, 0x31, 0xc0, // xor r8d, r8d
    0x0f, 0x05, // syscall
    0x48, 0x85, 0xc0, // test rax, rax
    0x75, 0x09, // jnz parent (past the child's 9 bytes)
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
    0xe9, 0, 0, 0, 0, // parent: jmp rel32 tailAt
  ]);
  head.writeUInt32LE(flags, 6);
  head.writeInt32LE(Number(tailAt - (codeAt + BigInt(head.length))), head.length - 4);
  return head;
}
