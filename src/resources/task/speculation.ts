// Speculation controls a thread turned on for itself (prctl PR_SET_SPECULATION_CTRL: store
// bypass, indirect branch, L1D flush), often to defend a sandbox. Per thread, inherited at fork,
// and a forced one cannot be undone. Read by the thread (PR_GET_SPECULATION_CTRL), kept in
// thread_core_entry 1004 as (which, control) pairs, set again by the thread before its seccomp
// filters (which could forbid the call). CRIU does not keep them.
import type { CallQueue, ReadQueue } from '../context.js';

const PR_GET_SPECULATION_CTRL = 52;
const PR_SET_SPECULATION_CTRL = 53;
/** The controls the kernel lets a thread choose (PR_SPEC_PRCTL set in the answer). */
const PR_SPEC_PRCTL = 1;
const DISABLE = 4;
const FORCE_DISABLE = 8;
const DISABLE_NOEXEC = 16;
const WHICH = [0, 1, 2]; // store bypass, indirect branch, L1D flush

/** (which, control) pairs of what the thread turned on (empty when it chose nothing), once `q` ran. */
export function dumpSpeculation(q: ReadQueue): () => number[] {
  const got = WHICH.map((which) => q.add('prctl', [PR_GET_SPECULATION_CTRL, which, 0, 0, 0], { mayFail: true }));
  return () => {
    const out: number[] = [];
    WHICH.forEach((which, i) => {
      const v = Number(got[i]!());
      if (v < 0 || !(v & PR_SPEC_PRCTL)) return; // unknown here, or not the thread's to choose
      const ctrl = v & FORCE_DISABLE ? FORCE_DISABLE : v & DISABLE_NOEXEC ? DISABLE_NOEXEC : v & DISABLE ? DISABLE : 0;
      if (ctrl) out.push(which, ctrl);
    });
    return out;
  };
}

export function restoreSpeculation(q: CallQueue, pairs: readonly number[]): void {
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    q.add('prctl', [PR_SET_SPECULATION_CTRL, pairs[i]!, pairs[i + 1]!, 0, 0], `speculation control ${pairs[i]}`);
  }
}

/** What /proc/PID/status says for a control the image holds (the verification's key and text). */
export function speculationStatus(which: number, ctrl: number): [string, string] | null {
  if (which === 0 && ctrl === FORCE_DISABLE) return ['Speculation_Store_Bypass', 'thread force mitigated'];
  if (which === 0 && ctrl === DISABLE) return ['Speculation_Store_Bypass', 'thread mitigated'];
  if (which === 1 && ctrl === FORCE_DISABLE) return ['SpeculationIndirectBranch', 'conditional force disabled'];
  if (which === 1 && ctrl === DISABLE) return ['SpeculationIndirectBranch', 'conditional disabled'];
  return null;
}

/** The status lines the verification and the --leave-running proof compare. */
export const SPECULATION_STATUS = ['Speculation_Store_Bypass', 'SpeculationIndirectBranch'];
