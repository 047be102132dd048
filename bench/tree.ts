// Dump and restore time for process trees of 1, 10 and 100 processes and for one process with
// 100 threads. Prints figures; asserts nothing about time.   node dist/bench/tree.js  (as root)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from '../src/dump/index.js';
import { restore } from '../src/restore/index.js';
import { pidExists, wait4, sys, PR } from '../src/sys/index.js';
import { Log } from '../src/util/log.js';
import { script, sessionPids } from './python-tree.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The trees we kill are ours to reap: as a subreaper we get the orphans (this machine's init
// reaps them late), and wait for each PID before restoring it.
sys('prctl', [PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0]);

function reap(pid: number): void {
  try {
    wait4(pid);
  } catch {
    /* not ours (libuv's own child), or already reaped */
  }
}

async function once(label: string, procs: number, threads: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-tree-'));
  const log = openSync(join(dir, 'out.log'), 'a');
  const c = spawn('python3', ['-c', script(procs, threads)], { cwd: dir, detached: true, stdio: ['ignore', log, log] });
  const pid = c.pid!;
  let pids: number[] = [];
  try {
    for (let i = 0; i < 600 && !readFileSync(join(dir, 'out.log'), 'utf8').includes('ready'); i++) await sleep(50);
    await sleep(200);
    pids = sessionPids(pid);
    const d = dump({ pid, dir: join(dir, "img"), leaveRunning: false, log: new Log(Number(process.env.BENCH_LOG ?? 1)) });
    if (process.env.BENCH_LOG) console.error("dumped", pids.length);
    for (const p of pids) if (p !== pid) reap(p);
    while (pidExists(pid)) await sleep(5);
    const r = restore({ dir: join(dir, "img"), detach: true, log: new Log(Number(process.env.BENCH_LOG ?? 1)) });
    console.log(`${label.padEnd(22)} dump ${d.totalMs.toFixed(0).padStart(6)} ms (frozen ${d.frozenMs.toFixed(0)} ms), restore ${r.ms.toFixed(0).padStart(6)} ms`);
  } finally {
    for (const p of sessionPids(pid)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
      reap(p);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const only = process.argv[2];
const cases: [string, number, number][] = [
  ['1 process', 1, 0],
  ['10 processes', 10, 0],
  ['100 processes', 100, 0],
  ['1 process, 100 threads', 1, 100],
];
for (const [label, procs, threads] of cases) if (!only || label.startsWith(only)) await once(label, procs, threads);
