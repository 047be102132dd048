// General registers: what the task had when frozen, and how to make it go on where it was.
import { Regs, REG_NAMES, ERESTART, EINTR, type RegName } from '../../sys/index.js';
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

/**
 * A task frozen inside a syscall shows rax = -ERESTART*: the kernel would restart or fail the
 * call when it resumes. A restored task resumes from a ptrace stop outside any syscall, so do
 * the kernel's job here: re-execute the syscall, or return EINTR where restart needs state
 * (the restart block) that did not survive.
 */
export function registersForResume(dumped: Regs): Regs {
  const r = dumped.clone();
  const origAx = r.signed('orig_ax');
  if (origAx >= 0n) {
    const ax = -r.signed('ax');
    if (ax === BigInt(ERESTART.SYS) || ax === BigInt(ERESTART.NOINTR) || ax === BigInt(ERESTART.NOHAND)) {
      r.set('ax', origAx);
      r.set('ip', r.get('ip') - 2n);
    } else if (ax === BigInt(ERESTART.RESTARTBLOCK)) {
      r.set('ax', -BigInt(EINTR));
    }
  }
  r.set('orig_ax', -1n);
  return r;
}
