// General registers: what the task had when frozen, and how to make it go on where it was.
import { Regs, ERESTART, EINTR } from '../../sys/index.js';

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
