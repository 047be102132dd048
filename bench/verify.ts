// What verification costs: restore time with --verify=off and =on for a trivial process, one with
// 100 threads and a tree of 50 processes (median of 3 restores of the same images each), the
// check alone on the restored tree (median of 3), and the --leave-running snapshot (taken twice
// per dump).
// Prints figures; asserts nothing about time.   node dist/bench/verify.js  (as root)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from '../src/dump/index.js';
import { restore } from '../src/restore/index.js';
import { readCheckpoint } from '../src/restore/images.js';
import { restoredDifferences, type VerifyMode } from '../src/restore/verify.js';
import { snapshotTree } from '../src/dump/unchanged.js';
import { pidExists, wait4, sys, PR } from '../src/sys/index.js';
import { Log } from '../src/util/log.js';
import { script, sessionPids } from './python-tree.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Restored roots are our children and orphans come to us: reap them all before restoring again.
sys('prctl', [PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0]);

/** Kills the session's processes (ours: the bench started them) and waits until every PID is free. */
async function killAll(pids: number[]): Promise<void> {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const p of pids) {
    try {
      wait4(p);
    } catch {
      /* not our child: init reaps it */
    }
  }
  for (let i = 0; i < 2000 && pids.some(pidExists); i++) await sleep(5);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function once(label: string, procs: number, threads: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-verify-'));
  const log = openSync(join(dir, 'out.log'), 'a');
  const c = spawn('python3', ['-c', script(procs, threads)], { cwd: dir, detached: true, stdio: ['ignore', log, log] });
  const pid = c.pid!;
  let pids: number[] = [pid];
  try {
    for (let i = 0; i < 600 && !readFileSync(join(dir, 'out.log'), 'utf8').includes('ready'); i++) await sleep(50);
    await sleep(200);
    pids = sessionPids(pid);
    let t0 = performance.now();
    snapshotTree(pid);
    const snapMs = performance.now() - t0;
    const images = join(dir, 'img');
    dump({ pid, dir: images, leaveRunning: false, log: new Log(1) });
    await killAll(pids);
    const times: Record<VerifyMode, number[]> = { off: [], on: [], warn: [] };
    const checks: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (const mode of ['off', 'on'] as const) {
        times[mode].push(restore({ dir: images, detach: true, log: new Log(1), verify: mode }).ms);
        if (mode === 'on') {
          const ckpt = readCheckpoint(images);
          t0 = performance.now();
          const diffs = restoredDifferences(ckpt);
          checks.push(performance.now() - t0);
          if (diffs.length) console.error(`${label}: ${diffs.length} differences on the running tree`);
        }
        await killAll(pids);
      }
    }
    const off = median(times.off);
    const on = median(times.on);
    const checkMs = median(checks);
    console.log(
      `${label.padEnd(22)} restore ${off.toFixed(0).padStart(5)} ms without verify, ${on.toFixed(0).padStart(5)} ms with ` +
        `(check alone ${checkMs.toFixed(1)} ms, ${((100 * checkMs) / on).toFixed(0)}%); --leave-running snapshot ${snapMs.toFixed(1)} ms (x2 per dump)`,
    );
  } finally {
    await killAll(sessionPids(pid));
    rmSync(dir, { recursive: true, force: true });
  }
}

const cases: [string, number, number][] = [
  ['1 process', 1, 0],
  ['1 process, 100 threads', 1, 100],
  ['50 processes', 50, 0],
];
for (const [label, procs, threads] of cases) await once(label, procs, threads);
