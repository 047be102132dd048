// Time to freeze a large tree, by ptrace alone (top-down, listing children until none is new)
// and through its cgroup (--freeze-cgroup: cgroup.freeze, then the seize of a tree that stands
// still): the dump's `freeze` step of a --leave-running dump, median of RUNS. Trees: N sleeping
// python3 processes, and test/targets/forker.c (4 spawners forking all the time, N idle).
// Prints figures; asserts nothing.   node dist/bench/cgroup-freeze.js [N...]  (as root)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump } from '../src/api/dump.js';
import { script } from './python-tree.js';

const RUNS = Number(process.env.RUNS ?? 3);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SRC = fileURLToPath(new URL('../../test/targets/', import.meta.url));

function v2Mount(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre!.split(' ')[4]!;
  }
  throw new Error('no cgroup2 mount here');
}

const procs = (cg: string) => readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);

/** Starts argv inside cgroup `cg` (the shell moves itself in, then execs); waits for `ready`. */
async function start(cg: string, dir: string, argv: string[], ready: string): Promise<number> {
  const out = openSync(join(dir, 'out.log'), 'a');
  const c = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, ...argv], { cwd: dir, detached: true, stdio: ['ignore', out, out] });
  c.unref();
  for (let i = 0; i < 1200 && !readFileSync(join(dir, 'out.log'), 'utf8').includes(ready); i++) await sleep(50);
  await sleep(200);
  return c.pid!;
}

async function stop(cg: string): Promise<void> {
  for (let i = 0; i < 200 && existsSync(cg) && procs(cg).length; i++) {
    for (const p of procs(cg)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(20);
  }
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(cg);
      return;
    } catch {
      await sleep(20);
    }
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(label: string, parent: string, argv: string[], ready: string): Promise<void> {
  const cg = join(parent, `case-${label.replace(/\W+/g, '-')}`);
  mkdirSync(cg);
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-cgf-'));
  try {
    const pid = await start(cg, dir, argv, ready);
    const row: string[] = [];
    for (const mode of ['ptrace', 'cgroup'] as const) {
      const ms: number[] = [];
      const cgMs: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const img = join(dir, `img-${mode}-${i}`);
        const logFile = join(dir, `dump-${mode}-${i}.log`);
        const r = dump({ pid, dir: img, leaveRunning: true, logLevel: 3, logFile, ...(mode === 'cgroup' ? { freezeCgroup: '' } : {}) });
        if (r.verdict !== 'done') throw new Error(`${label} ${mode}: ${r.error}`);
        ms.push(r.timings.phases['freeze'] ?? NaN);
        const frozenIn = / frozen in ([\d.]+) ms/.exec(readFileSync(logFile, 'utf8'));
        if (frozenIn) cgMs.push(Number(frozenIn[1]));
        rmSync(img, { recursive: true, force: true });
      }
      row.push(`${mode} ${median(ms).toFixed(1).padStart(7)} ms${cgMs.length ? ` (cgroup.freeze until frozen ${median(cgMs).toFixed(1)} ms)` : ''}`);
    }
    console.log(`${label.padEnd(34)} ${procs(cg).length.toString().padStart(4)} procs now   freeze: ${row.join('   ')}`);
  } finally {
    await stop(cg);
    rmSync(dir, { recursive: true, force: true });
  }
}

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const parent = join(v2Mount(), `cryo-bench-${process.pid}`);
mkdirSync(parent);
const forker = join(tmpdir(), `cryo-bench-forker-${process.pid}`);
const cc = spawnSync('cc', ['-O1', '-o', forker, '-I', SRC, join(SRC, 'forker.c')], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(`cc forker.c: ${cc.stderr}`);
try {
  console.log(`freeze step of dump --leave-running, median of ${RUNS} (ptrace alone vs --freeze-cgroup)`);
  for (const n of sizes.length ? sizes : [100, 300]) {
    await measure(`${n} sleeping python3 processes`, parent, ['python3', '-c', script(n, 0)], 'ready');
    await measure(`forker: 4 spawners + ${n} idle`, parent, [forker, '4', String(n)], 'READY');
  }
} finally {
  rmSync(forker, { force: true });
  try {
    writeFileSync(join(parent, 'cgroup.freeze'), '0');
  } catch {
    /* gone */
  }
  rmdirSync(parent);
}
