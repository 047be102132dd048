// A thread's machine-check policy (prctl PR_MCE_KILL): whether a hardware memory error in a page
// it uses kills it as soon as the error is found (early) or only when it touches the page (late),
// or the machine's default. QEMU sets it on its vCPU threads. Per thread, and not inherited by a
// fork. The kernel shows it in /proc/TID/stat's flags word, so the dump needs no injected call;
// the thread sets it again itself. CRIU's images have no field for it: thread_core_entry 1005.
import { PR } from '../../sys/index.js';
import type { RestoreTask } from '../context.js';

const PF_MCE_PROCESS = 0x80; // a policy of its own
const PF_MCE_EARLY = 0x08000000; // ... which is early
const PR_MCE_KILL_SET = 1;

/** The policy in the image's terms (1 early, 0 late), only when the thread set one. */
export function mceKillField(statFlags: number): { cryoMceKill?: number } {
  if (!(statFlags & PF_MCE_PROCESS)) return {};
  return { cryoMceKill: statFlags & PF_MCE_EARLY ? 1 : 0 };
}

export function restoreMceKill(r: RestoreTask, policy: number): void {
  r.remote.call('prctl', [PR.MCE_KILL, PR_MCE_KILL_SET, policy, 0, 0], 'machine-check kill policy');
}

/** What the verification compares: 'default', 'early' or 'late'. */
export function mceKillText(policy: number | undefined): string {
  return policy === undefined ? 'default' : policy ? 'early' : 'late';
}

/** The same, from a live thread's stat flags. */
export function observedMceKill(statFlags: number): string {
  return mceKillText(mceKillField(statFlags).cryoMceKill);
}
