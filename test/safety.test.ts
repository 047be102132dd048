// A dump never harms its target: SIGINT, SIGTERM, SIGHUP and SIGKILL of cryo at random moments of
// dumps of a 1 GiB process, a 16-thread process and a 20-process tree (test/targets/safety.c).
// After each trial every task of the target must be alive, untraced, not stopped, counting on,
// and unchanged: maps, fds, signal dispositions and every thread's mask as before the first dump.
// Interrupted dumps must exit 128+signal saying "interrupted" and leave no image files. At the
// end the target checks itself (its SIGTRAP and SIGUSR1 handlers run, pattern intact) -> PASS.
// Also: a SIGTRAP handler survives dump --leave-running and a dump + restore.
//
// CRYO_TRIALS=N runs N trials per signal per target (default 2); the figures are printed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  CRYO_BIN, buildTarget, cleanup, cryoReport, dump, goAndWaitResult, killTarget, mapsSnapshot, diffMaps, restore,
  runningProblem, sleep, startTarget, statusField, waitFor, waitForLine, type Target,
} from './lib/index.js';

const TRIALS = Number(process.env.CRYO_TRIALS ?? 2);
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGKILL'] as const;
const SIGNO: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15, SIGKILL: 9 };

after(async () => {
  await cleanup();
});

/** Every PID of the tree under `root` (root first). */
function treeOf(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const tid of tids(out[i]!)) {
      const kids = read(`/proc/${out[i]}/task/${tid}/children`)?.trim();
      if (kids) out.push(...kids.split(/\s+/).map(Number));
    }
  }
  return out;
}

function tids(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

function read(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

function statusOf(pid: number, tid: number, key: string): string {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(read(`/proc/${pid}/task/${tid}/status`) ?? '');
  return m ? m[1]! : '<none>';
}

/** What must not change: per process its maps, fds and dispositions; per thread its mask. */
function snapshot(root: number): Map<number, { maps: string[]; fds: string[]; sig: string }> {
  const snap = new Map<number, { maps: string[]; fds: string[]; sig: string }>();
  for (const pid of treeOf(root)) {
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`).sort().map((fd) => `${fd} ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)} ${read(`/proc/${pid}/fdinfo/${fd}`)?.split('\n').find((l) => l.startsWith('flags'))}`);
    } catch {
      fds = ['<gone>'];
    }
    const sig = [`ign ${statusOf(pid, pid, 'SigIgn')} cgt ${statusOf(pid, pid, 'SigCgt')}`, ...tids(pid).map((t) => `${t} blk ${statusOf(pid, t, 'SigBlk')}`)].join('; ');
    snap.set(pid, { maps: mapsSnapshot(pid), fds, sig });
  }
  return snap;
}

function snapshotProblems(before: ReturnType<typeof snapshot>, after: ReturnType<typeof snapshot>): string[] {
  const out: string[] = [];
  if ([...before.keys()].join() !== [...after.keys()].join()) out.push(`tasks ${[...before.keys()]} -> ${[...after.keys()]}`);
  for (const [pid, b] of before) {
    const a = after.get(pid);
    if (!a) continue;
    const maps = diffMaps(b.maps, a.maps);
    if (maps) out.push(`pid ${pid} maps: ${maps.split('\n--- maps before')[0]}`);
    if (b.fds.join('\n') !== a.fds.join('\n')) out.push(`pid ${pid} fds: ${b.fds.join(', ')} -> ${a.fds.join(', ')}`);
    if (b.sig !== a.sig) out.push(`pid ${pid} signals: ${b.sig} -> ${a.sig}`);
  }
  return out;
}

/** Every task alive, untraced, not stopped, and running (its voluntary switches go up). */
async function healthProblems(t: Target): Promise<string[]> {
  const out: string[] = [];
  const rp = runningProblem(t);
  if (rp) return [rp];
  const threads = treeOf(t.pid).flatMap((pid) => tids(pid).map((tid) => ({ pid, tid })));
  // A detached tracee is untraced at once; give a killed cryo's exit a moment to be processed.
  await waitFor(() => threads.every(({ pid, tid }) => statusOf(pid, tid, 'TracerPid') === '0'), 3000);
  const switches = () => threads.map(({ pid, tid }) => Number(statusOf(pid, tid, 'voluntary_ctxt_switches')));
  const s0 = switches();
  await sleep(120);
  const s1 = switches();
  threads.forEach(({ pid, tid }, i) => {
    const state = statusOf(pid, tid, 'State');
    if (!/^[RSD]/.test(state)) out.push(`tid ${tid} of ${pid}: state ${state}`);
    const tracer = statusOf(pid, tid, 'TracerPid');
    if (tracer !== '0') out.push(`tid ${tid} of ${pid}: traced by ${tracer}`);
    if (!(s1[i]! > s0[i]!)) out.push(`tid ${tid} of ${pid}: not counting on (voluntary switches ${s0[i]} -> ${s1[i]})`);
  });
  return out;
}

const pause = new Int32Array(new SharedArrayBuffer(4));
const sleepSync = (ms: number) => Atomics.wait(pause, 0, 0, ms);

interface Trial {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** ms from the target becoming traced to cryo's exit */
  tracedMs: number;
  complete: boolean;
}

/**
 * Runs `cryo dump --leave-running` on the target; once the target is traced (the dump has begun
 * freezing), waits `delayMs` (null: no signal) and sends `sig` to cryo.
 */
async function trialDump(t: Target, dir: string, sig: string | null, delayMs: (tracedToExit: number) => number): Promise<Trial> {
  const errFile = `${dir}.stderr`;
  const err = fs.openSync(errFile, 'w');
  const child = spawn(process.execPath, [CRYO_BIN, 'dump', '-t', String(t.pid), '-D', dir, '--leave-running'], { stdio: ['ignore', 'ignore', err] });
  fs.closeSync(err);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })));
  let tracedAt = 0;
  let done = false;
  void exited.then(() => (done = true));
  // Busy-wait (1 ms steps) for the freeze to begin, then the chosen delay, then the signal.
  await sleep(0);
  const t0 = performance.now();
  while (!done && performance.now() - t0 < 10000) {
    if (statusField(t.pid, 'TracerPid') === String(child.pid)) {
      tracedAt = performance.now();
      break;
    }
    sleepSync(1);
    await sleep(0);
  }
  if (sig && tracedAt) {
    const d = delayMs(0);
    while (!done && performance.now() - tracedAt < d) {
      sleepSync(1);
      await sleep(0);
    }
    if (!done) child.kill(sig as NodeJS.Signals);
  }
  const r = await exited;
  return { ...r, stderr: read(errFile) ?? '', tracedMs: tracedAt ? performance.now() - tracedAt : 0, complete: fs.existsSync(path.join(dir, 'inventory.img')) };
}

interface Case {
  name: string;
  args: string[];
}

const CASES: Case[] = [
  { name: '1 GiB process', args: ['1024', '0', '0'] },
  { name: '16-thread process', args: ['16', '16', '0'] },
  { name: '20-process tree', args: ['16', '0', '19'] },
];

describe('dumps never harm the target', () => {
  for (const c of CASES) {
    it(`${c.name}: SIGINT/SIGTERM/SIGHUP/SIGKILL of cryo mid-dump, ${TRIALS} trial(s) each`, async () => {
      const t = await startTarget([buildTarget('safety'), ...c.args], { name: 'safety' });
      await waitForLine(t, 'READY', 60000);
      const before = snapshot(t.pid);
      assert.equal(before.size, 1 + Number(c.args[2]), `tree of ${c.name}: ${[...before.keys()]}`);

      // A whole dump first: how long it stays traced, and that a complete dump harms nothing.
      const calDir = path.join(t.root, 'img-cal');
      const cal = await trialDump(t, calDir, null, () => 0);
      assert.equal(cal.code, 0, `calibration dump failed: ${cal.stderr}`);
      assert.ok(cal.complete && cal.tracedMs > 0, `calibration dump: complete ${cal.complete}, traced ${cal.tracedMs} ms`);
      fs.rmSync(calDir, { recursive: true, force: true });
      assert.deepEqual(await healthProblems(t), []);
      assert.deepEqual(snapshotProblems(before, snapshot(t.pid)), []);

      // Problems are collected, so that a long run (CRYO_TRIALS=50) still prints its figures; a
      // harmed target ends the run (later trials would compare with a broken process).
      const figures: string[] = [];
      const failures: string[] = [];
      let span = cal.tracedMs;
      let harmed = false;
      for (const sig of SIGNALS) {
        let alive = 0;
        let midDump = 0;
        let run = 0;
        // If every random delay fell after the dump's last step (a short dump on a busy machine),
        // one more trial signals as soon as the freeze begins, so a break-off is always tried.
        for (let i = 0; i < TRIALS + 1 && !harmed; i++, run++) {
          if (i === TRIALS && midDump) break;
          const dir = path.join(t.root, `img-${sig}-${i}`);
          const when = i === TRIALS ? 0 : Math.random() * span * 0.8;
          const r = await trialDump(t, dir, sig, () => when);
          const label = `${c.name}, ${sig} trial ${i} at ${when.toFixed(0)} ms after the freeze began`;
          if (!r.complete) midDump++;
          // The machine's load varies: aim within the shortest whole dump seen so far.
          else span = Math.min(span, r.tracedMs);
          if (sig === 'SIGKILL') {
            if (r.signal !== 'SIGKILL' && r.code !== 0) failures.push(`${label}: cryo ended with ${r.code}/${r.signal}: ${r.stderr}`);
          } else if (!r.complete) {
            if (r.code !== 128 + SIGNO[sig]! || !/interrupted/.test(r.stderr)) failures.push(`${label}: exit ${r.code}/${r.signal}, stderr: ${r.stderr}`);
            const left = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
            if (left.length) failures.push(`${label}: image files left behind: ${left.join(' ')}`);
          }
          // A --leave-running snapshot (dump/snapshot.ts) that died with cryo is reaped by the
          // snapshot guard a moment later (it seizes the task for that): the tree must be back to
          // its tasks, none of them traced, within 5 s.
          const untraced = () => [...snapshot(t.pid).keys()].every((pid) => statusOf(pid, pid, 'TracerPid') === '0');
          await waitFor(() => [...snapshot(t.pid).keys()].join() === [...before.keys()].join() && untraced(), 5000);
          const problems = [...(await healthProblems(t)), ...snapshotProblems(before, snapshot(t.pid))];
          if (problems.length) {
            failures.push(`${label}: the target was harmed\n${problems.join('\n')}\n${r.stderr}`);
            harmed = true;
          } else alive++;
          fs.rmSync(dir, { recursive: true, force: true });
        }
        figures.push(`${sig}: ${alive}/${run} unharmed (${midDump} broke off mid-dump)`);
        // Trials that all missed the dump would prove nothing.
        if (run && !midDump) failures.push(`${c.name}, ${sig}: no trial broke off a dump`);
      }
      process.stdout.write(`# ${c.name} (dump traced ${cal.tracedMs.toFixed(0)} ms): ${figures.join('; ')}\n`);
      assert.deepEqual(failures, []);

      const res = await goAndWaitResult(t, 30000);
      assert.ok(res.pass, `${c.name}: ${res.line}\n${res.log}`);
    });
  }
});

describe('a SIGTRAP handler survives dumps', () => {
  it('dump --leave-running, then the target checks its handlers', async () => {
    const t = await startTarget([buildTarget('safety'), '1', '2', '0'], { name: 'safety' });
    await waitForLine(t, 'READY');
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const res = await goAndWaitResult(t);
    assert.ok(res.pass, `${res.line}\n${res.log}`);
  });

  it('dump + restore, then the restored target checks its handlers', async () => {
    const t = await startTarget([buildTarget('safety'), '1', '2', '0'], { name: 'safety' });
    await waitForLine(t, 'READY');
    const d = dump(t, 'kill');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await waitFor(() => statusField(t.pid, 'State') === null, 5000);
    const r = restore(t, d.dir, 'kill');
    assert.equal(r.res.code, 0, cryoReport(r.res));
    const res = await goAndWaitResult(t);
    assert.ok(res.pass, `${res.line}\n${res.log}`);
    killTarget(t);
  });
});
