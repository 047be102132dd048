// Before a restored tree runs: read each task's observable state back from the kernel and
// compare it with what the images say. A difference means the restore was not faithful: with
// --verify=on (the default) the restore fails, and since nothing runs yet the failure path leaves
// no process; with --verify=warn the differences are printed and the tree goes on.
import { observeProcess } from '../resources/observe/read.js';
import { diffSnapshots, formatDifference, type Difference } from '../resources/observe/snapshot.js';
import { expectedSnapshot } from './verify-expect.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { CheckpointImage, TaskImage } from './images.js';
import { signalName } from '../resources/observe/names.js';
import { ownerDifferences } from '../resources/ns/owner.js';
import { restoredMountDifferences } from '../resources/mnt/restore.js';
import { VERIFY_MODES, type VerifyMode } from '../util/option-defaults.js';

export { VERIFY_MODES, type VerifyMode };

/** The restored state differs from the images; `differences` has every one. */
export class VerifyError extends UserError {
  constructor(readonly differences: Difference[]) {
    const shown = differences.slice(0, 5).map(formatDifference).join('; ');
    const more = differences.length > 5 ? ` (and ${differences.length - 5} more)` : '';
    super(`restored state differs from the images, nothing was resumed: ${shown}${more}`);
    this.name = 'VerifyError';
  }
}

/** Every difference between the images and the restored (still stopped) tasks. */
export function restoredDifferences(ckpt: CheckpointImage): Difference[] {
  const out: Difference[] = [];
  for (const img of ckpt.tasks) {
    const parent = ckpt.tasks.find((t) => t.pid === img.pstree.ppid);
    const expected = expectedSnapshot(ckpt, img, parent);
    const got = observeProcess(img.pid, { sockets: [...expected.keys()].some((k) => / \(socket\) SO_/.test(k)) });
    const timers = timerSignals(img);
    out.push(...diffSnapshots(img.pid, expected, got, { keys: 'expected' }).filter((d) => !(PENDING.test(d.what) && d.expected === `no ${d.got}` && timers.has(d.got))));
  }
  // The tree's namespaces: each owned by the user namespace it was (a wrong one changes what root inside may do), and its mounts.
  out.push(...ownerDifferences(ckpt.tasks, ckpt.namespaces.own, ckpt.inventory.rootIds));
  if (ckpt.namespaces.mounts) out.push(...restoredMountDifferences(ckpt.tasks[0]!.pid, ckpt.namespaces.mounts));
  return out;
}

const PENDING = /(^|tid \d+ )(SigPnd|ShdPnd)$/;
const SIGEV_NONE = 1;

/**
 * Signals the task's own timers may have raised since the restore armed them (a 20 ms interval
 * timer fires while the rest of the tree is rebuilt): pending now without being in the images.
 */
function timerSignals(img: TaskImage): Set<string> {
  const t = img.core.tc?.timers;
  const out = new Set<string>();
  if (!t) return out;
  const armed = (it: { isec: bigint; iusec: bigint; vsec: bigint; vusec: bigint } | undefined) => !!it && (it.isec || it.iusec || it.vsec || it.vusec);
  if (armed(t.real)) out.add(signalName(14));
  if (armed(t.virt)) out.add(signalName(26));
  if (armed(t.prof)) out.add(signalName(27));
  for (const p of t.posix) if (p.itSigevNotify !== SIGEV_NONE && (p.isec || p.insec || p.vsec || p.vnsec)) out.add(signalName(p.siSigno));
  return out;
}

/**
 * Runs the check as `mode` says. Throws VerifyError (mode 'on'); otherwise returns the
 * differences, each also given to `report` (mode 'warn').
 */
export function verifyRestored(ckpt: CheckpointImage, mode: VerifyMode, log: Log, report?: (line: string) => void): Difference[] {
  if (mode === 'off') return [];
  const t0 = performance.now();
  const diffs = restoredDifferences(ckpt);
  log.info(`verified ${ckpt.tasks.length} restored tasks against the images in ${(performance.now() - t0).toFixed(1)} ms: ${diffs.length} differences`);
  for (const d of diffs) log.warn(`verify: ${formatDifference(d)}`);
  if (diffs.length && mode === 'on') throw new VerifyError(diffs);
  for (const d of diffs) report?.(formatDifference(d));
  return diffs;
}
