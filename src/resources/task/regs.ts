// General registers: what the task had when frozen, and how to make it go on where it was.
import { readFileSync, openSync, readSync, closeSync } from 'node:fs';
import { Regs, REG_NAMES, ERESTART, EINTR, NR, type RegName } from '../../sys/index.js';
import { user_x86_regs_mode, type user_x86_regs_entry } from '../../image/gen/core-x86_pb.js';

/** user_regs_struct names to the image's field names (orig_ax -> origAx ...). */
const FIELD: Record<RegName, string> = Object.fromEntries(
  REG_NAMES.map((n) => [n, n.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())]),
) as Record<RegName, string>;

/** The image's gpregs entry (as init fields) for a register set. */
export function regsToEntry(r: Regs): Record<string, bigint | number> {
  const out: Record<string, bigint | number> = {};
  for (const n of REG_NAMES) out[FIELD[n]] = r.get(n);
  out.mode = user_x86_regs_mode.NATIVE;
  return out;
}

export function regsFromEntry(e: user_x86_regs_entry): Regs {
  const r = new Regs();
  const fields = e as unknown as Record<string, bigint>;
  for (const n of REG_NAMES) r.set(n, fields[FIELD[n]] ?? 0n);
  return r;
}

/** Calls that return -ERESTART_RESTARTBLOCK when stopped with time left, and how they restart. */
const RESTARTABLE: Record<number, string> = { 7: 'poll', 35: 'nanosleep', 202: 'futex', 230: 'clock_nanosleep' };
const NR_RESTART_SYSCALL = NR.restart_syscall;

/**
 * The call a task sits in when the kernel shows restart_syscall (it was stopped once already and
 * resumed into its restart block): read off the code before the `syscall` instruction, which
 * for libc wrappers is `mov $NR, %eax` (b8 imm32) a few bytes earlier.
 */
export function callBeforeSyscall(code: Buffer): number | null {
  for (let i = code.length - 5; i >= 0; i--) {
    if (code[i] !== 0xb8) continue;
    const nr = code.readUInt32LE(i + 1);
    if (RESTARTABLE[nr]) return nr;
  }
  return null;
}

/** Where the kernel has a task sleep (/proc/TID/wchan) -> the timed call that sleeps there. */
const CALL_BY_WCHAN: [RegExp, number][] = [
  [/futex/, 202],
  [/nanosleep|hrtimer/, 230],
  [/poll/, 7],
];

/**
 * The call a thread in restart_syscall restarts, from where it sleeps: read before it is frozen
 * (frozen, it sleeps in ptrace_stop). Only for calls whose restart block is a timed wait.
 */
export function restartedCall(pid: number, tid: number): number | null {
  try {
    if (!readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').startsWith(`${NR_RESTART_SYSCALL} `)) return null;
    const wchan = readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8');
    return CALL_BY_WCHAN.find(([re]) => re.test(wchan))?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * A thread saved inside restart_syscall (-ERESTART_RESTARTBLOCK, orig_ax 219) is saved as being
 * in the call it restarts, when that is known (the libc wrapper's code, or where it slept), so
 * that a restore re-issues that call.
 */
export function namingRestartedCall(r: Regs, code: Buffer, fromWchan: number | null): void {
  if (r.signed('orig_ax') !== BigInt(NR_RESTART_SYSCALL) || -r.signed('ax') !== BigInt(ERESTART.RESTARTBLOCK)) return;
  const nr = callBeforeSyscall(code) ?? fromWchan;
  if (nr !== null) r.set('orig_ax', BigInt(nr));
}

/**
 * A task frozen inside a syscall shows rax = -ERESTART*: the kernel would restart or fail the
 * call when it resumes. A restored task resumes from a ptrace stop outside any syscall, so do
 * the kernel's job here: re-execute the syscall. Calls with a timeout (-ERESTART_RESTARTBLOCK)
 * kept their deadline in the kernel's restart block, which does not survive: they are issued
 * again with their own arguments, so the program never sees an interruption. An absolute deadline
 * (clock_nanosleep TIMER_ABSTIME, FUTEX_WAIT_BITSET) is then exact; a relative one (nanosleep,
 * poll, FUTEX_WAIT) starts over: the wait is longer, by at most the time already waited. Only a
 * call that cannot be told (restart_syscall with no libc wrapper in front) gets EINTR, as CRIU
 * gives it. `codeBefore(ip, n)` reads the task's code before ip.
 */
export function registersForResume(dumped: Regs, codeBefore?: (ip: bigint, n: number) => Buffer): Regs {
  const r = dumped.clone();
  const origAx = r.signed('orig_ax');
  if (origAx >= 0n) {
    const ax = -r.signed('ax');
    if (ax === BigInt(ERESTART.SYS) || ax === BigInt(ERESTART.NOINTR) || ax === BigInt(ERESTART.NOHAND)) {
      r.set('ax', origAx);
      r.set('ip', r.get('ip') - 2n);
    } else if (ax === BigInt(ERESTART.RESTARTBLOCK)) {
      let nr: number | null = Number(origAx);
      if (nr === NR_RESTART_SYSCALL) nr = codeBefore ? callBeforeSyscall(codeBefore(r.get('ip') - 2n, 24)) : null;
      if (nr !== null && RESTARTABLE[nr]) {
        r.set('ax', BigInt(nr));
        r.set('ip', r.get('ip') - 2n);
      } else {
        r.set('ax', -BigInt(EINTR));
      }
    }
  }
  r.set('orig_ax', -1n);
  return r;
}

/** `n` bytes of a task's memory at `addr` (its code before a syscall), through /proc; empty where unreadable. */
export function readTaskCode(pid: number, addr: bigint, n: number): Buffer {
  const b = Buffer.alloc(n);
  try {
    const fd = openSync(`/proc/${pid}/mem`, 'r');
    try {
      return b.subarray(0, readSync(fd, b, 0, n, addr));
    } finally {
      closeSync(fd);
    }
  } catch {
    return Buffer.alloc(0);
  }
}
