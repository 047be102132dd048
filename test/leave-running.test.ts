// `dump --leave-running` from a copy-on-write snapshot (dump/snapshot.ts): the tree is released
// once its memory is snapshotted, and its pages are written from the snapshot while it runs on.
// The target (targets/cowsnap.c) rewrites its pages without pause and checks each against the
// round before as it goes: an image with any page read after the freeze, or a page of a
// MADV_WIPEONFORK / MADV_DONTFORK mapping (which the snapshot lacks) lost, fails in the restored
// process. Each way is also run with --frozen-copy, and after a failure past the release.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { buildTarget, cleanup, goAndWaitResult, runningProblem, startTarget, waitForLine, dump, type CryoResult, type Target } from './lib/index.js';
import { report, killAndWait, restoreOk } from './lib/single.js';

after(cleanup);

async function startCowsnap(mib: number): Promise<Target> {
  const t = await startTarget([buildTarget('cowsnap'), String(mib)], { name: 'cowsnap' });
  await waitForLine(t, 'READY', 30_000);
  return t;
}

/** The children of every thread of `pid` (a snapshot left behind, alive or a zombie, shows here). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
}

function phasesOf(r: CryoResult): Record<string, number> {
  const line = r.stdout.trim().split('\n').pop() ?? '{}';
  return (JSON.parse(line) as { timings?: { phases?: Record<string, number> } }).timings?.phases ?? {};
}

/** Dumps with --leave-running (and `extra`), checks the original runs on alone; returns the image dir. */
async function dumpLeaving(t: Target, label: string, runs: CryoResult[], extra: string[] = []): Promise<{ dir: string; phases: Record<string, number> }> {
  const d = dump(t, label, { leaveRunning: true, extraArgs: ['--json', ...extra] });
  runs.push(d.res);
  if (d.res.code !== 0) assert.fail(report(`dump ${label} failed`, t, runs));
  const kids = childrenOf(t.pid);
  assert.deepEqual(kids, [], report(`after the dump the original has children ${kids.join(', ')} (its snapshot left behind)`, t, runs));
  const p = runningProblem(t);
  if (p) assert.fail(report(`after the dump the original is not running normally: ${p}`, t, runs));
  return { dir: d.dir, phases: phasesOf(d.res) };
}

async function restoreAndCheck(t: Target, dir: string, label: string, runs: CryoResult[]): Promise<void> {
  await killAndWait(t, runs);
  await restoreOk(t, dir, label, runs);
  const r = await goAndWaitResult(t, 60_000);
  assert.ok(r.pass, report(`restored from ${label}: ${r.line}`, t, runs));
}

describe('dump --leave-running: the image is the memory of the freeze', () => {
  it('from a copy-on-write snapshot, the target writing all the while', { timeout: 180_000 }, async () => {
    const t = await startCowsnap(256);
    const runs: CryoResult[] = [];
    const { dir, phases } = await dumpLeaving(t, 'snap', runs);
    assert.ok('snapshot pages' in phases, report(`the dump wrote no pages from a snapshot (phases: ${Object.keys(phases).join(', ')})`, t, runs));
    await restoreAndCheck(t, dir, 'snap', runs);
  });

  it('with --frozen-copy: frozen until the pages are on disk', { timeout: 180_000 }, async () => {
    const t = await startCowsnap(64);
    const runs: CryoResult[] = [];
    const { dir, phases } = await dumpLeaving(t, 'frozen', runs, ['--frozen-copy']);
    assert.ok(!('snapshot pages' in phases), report('--frozen-copy wrote pages from a snapshot', t, runs));
    await restoreAndCheck(t, dir, 'frozen', runs);
  });

  it('a failure after the release: no image, the original runs on with no snapshot left', { timeout: 180_000 }, async () => {
    const t = await startCowsnap(64);
    const runs: CryoResult[] = [];
    const d = dump(t, 'late-fail', { leaveRunning: true, env: { CRYO_FAIL_AT: 'dump:inventory' } });
    runs.push(d.res);
    assert.equal(d.res.code, 1, report('the dump failing at its inventory did not exit 1', t, runs));
    assert.ok(!existsSync(`${d.dir}/inventory.img`), report('a failed dump left an inventory.img', t, runs));
    assert.deepEqual(readdirSync(d.dir), [], report(`a failed dump left files: ${readdirSync(d.dir).join(', ')}`, t, runs));
    assert.deepEqual(childrenOf(t.pid), [], report('the failed dump left its snapshot behind', t, runs));
    const p = runningProblem(t);
    if (p) assert.fail(report(`after the failed dump the original is not running normally: ${p}`, t, runs));
    // And it goes on as it was: its own check finds every page as it left it.
    const r = await goAndWaitResult(t, 60_000);
    assert.ok(r.pass, report(`the original after the failed dump: ${r.line}`, t, runs));
  });
});
