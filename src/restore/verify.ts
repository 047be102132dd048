// Before a restored tree runs: read each task's observable state back from the kernel and
// compare it with what the images say. A difference means the restore was not faithful: with
// --verify=on (the default) the restore fails, and since nothing runs yet the failure path leaves
// no process; with --verify=warn the differences are printed and the tree goes on.
import { observeProcess } from '../resources/observe/read.js';
import { diffSnapshots, formatDifference, type Difference } from '../resources/observe/snapshot.js';
import { expectedSnapshot } from './verify-expect.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { CheckpointImage } from './images.js';

export const VERIFY_MODES = ['on', 'warn', 'off'] as const;
export type VerifyMode = (typeof VERIFY_MODES)[number];

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
    out.push(...diffSnapshots(img.pid, expected, got, { keys: 'expected' }));
  }
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
