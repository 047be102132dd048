// Helpers of the single-process c/r tests (c-r-single, c-r-failures): a dump or restore that must
// succeed, with the whole context (target log, every cryo run) in the failure message.
import assert from 'node:assert/strict';
import { checkImages, cryoReport, dump, restore, type CryoResult } from './cryo.js';
import { describePid, diffMaps, mapsSnapshot, pidExists, sleep, waitPidGone } from './proc.js';
import { killTarget, runningProblem, startTarget, targetReport, waitForLine, type Target } from './target.js';
import { buildTarget } from './build.js';

/** A failure message: what went wrong, the target's state and log, and every cryo run. */
export function report(title: string, t: Target, runs: CryoResult[] = []): string {
  return [title, targetReport(t), ...runs.map((r) => cryoReport(r))].join('\n');
}

export async function dumpOk(t: Target, label: string, runs: CryoResult[], leaveRunning = false): Promise<string> {
  const d = dump(t, label, { leaveRunning });
  runs.push(d.res);
  if (d.res.code !== 0) assert.fail(report(`dump ${label} of ${t.name} failed`, t, runs));
  try {
    await checkImages(d.dir, t.pid);
  } catch (e) {
    assert.fail(report(`images of dump ${label}: ${(e as Error).message}`, t, runs));
  }
  if (leaveRunning) {
    await sleep(50);
    const p = runningProblem(t);
    if (p) assert.fail(report(`after dump --leave-running the original is not running normally: ${p}`, t, runs));
    if (/^FAIL/m.test(t.log())) assert.fail(report('the original reported FAIL after dump --leave-running', t, runs));
  } else if (!(await waitPidGone(t.pid))) {
    assert.fail(
      report(`dump ${label} (without --leave-running) exited 0 but PID ${t.pid} is still there: ${describePid(t.pid)}`, t, runs),
    );
  }
  return d.dir;
}

export async function restoreOk(t: Target, dir: string, label: string, runs: CryoResult[]): Promise<void> {
  if (pidExists(t.pid)) assert.fail(report(`PID ${t.pid} is not free before restore ${label}: ${describePid(t.pid)}`, t, runs));
  const r = restore(t, dir, label);
  runs.push(r.res);
  if (r.res.code !== 0) assert.fail(report(`restore ${label} of ${t.name} failed`, t, runs));
  if (r.pidFromFile !== t.pid)
    assert.fail(report(`--pidfile holds ${r.pidFromFile}, expected the original PID ${t.pid}`, t, runs));
  const p = runningProblem(t);
  if (p) assert.fail(report(`after restore ${label}: ${p}`, t, runs));
}

export async function killAndWait(t: Target, runs: CryoResult[]): Promise<void> {
  if (!killTarget(t)) assert.fail(report(`cannot kill ${describePid(t.pid)}: not our target`, t, runs));
  if (!(await waitPidGone(t.pid))) assert.fail(report(`killed PID ${t.pid} did not go away: ${describePid(t.pid)}`, t, runs));
}

export function checkMaps(t: Target, before: string[], when: string, runs: CryoResult[]): void {
  const d = diffMaps(before, mapsSnapshot(t.pid));
  if (d) assert.fail(report(`/proc/${t.pid}/maps ${when} differs from before the dump: ${d}`, t, runs));
}

/** Starts test/targets/NAME.c and waits for its READY. */
export async function startC(name: string): Promise<Target> {
  const t = await startTarget([buildTarget(name)], { name });
  await waitForLine(t, 'READY');
  return t;
}
