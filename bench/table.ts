// `npm run bench`: issue 11's table. Each case is run through the CLI as a user runs it (wall
// time, start-up included, as CRIU's figures were taken), `--runs` times, and the median printed
// beside cryo's figures before the speed work and CRIU 4.2's, both from issue 11 (CRIU itself
// cannot run here: see `criuState`). Then the machine's limits measured in the same run, and
// cryo's peak RSS for the largest memory case. Prints figures; asserts nothing about time.
//   node dist/bench/table.js [--runs 3] [--sizes 256,1024,4096] [--trees 10,50] [--threads 100]
//                            [--redis 1000000] [--limits-mib 1024]     (as root; 0 or '' skips)
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { freePort } from './free-port.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sys, PR } from '../src/sys/index.js';
import { flagList, flagNumber, median } from './figures.js';
import { measureLimits } from './limits.js';
import { cryoCli, killWorkload, startHolder, startRedis, startSleep, startTree, waitGone, type Workload } from './targets.js';
import { sessionPids } from './python-tree.js';

// Trees we dump are killed by the dump: as a subreaper we reap them (this machine's init is slow).
sys('prctl', [PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0]);

const RUNS = flagNumber('--runs', 3);
const SIZES = flagList('--sizes', [256, 1024, 4096]).filter((n) => n > 0);
const TREES = flagList('--trees', [10, 50]).filter((n) => n > 0);
const THREADS = flagNumber('--threads', 100);
const REDIS_KEYS = flagNumber('--redis', 1_000_000);
const LIMITS_MIB = flagNumber('--limits-mib', 1024);

/** Issue 11's figures (seconds): cryo before the speed work, and CRIU 4.2 on this kind of machine. */
const ISSUE: Record<string, { cryo: [number, number]; criu: [number, number] }> = {
  sleep: { cryo: [0.276, 0.287], criu: [0.015, 0.006] },
  'mem 256': { cryo: [0.45, 0.44], criu: [0.13, 0.11] },
  'mem 1024': { cryo: [0.96, 0.82], criu: [0.56, 0.4] },
  'mem 4096': { cryo: [3.15, 2.57], criu: [10.1, 1.55] },
  'tree 10': { cryo: [0.53, 0.62], criu: [0.1, 0.07] },
  'tree 50': { cryo: [1.5, 1.87], criu: [0.45, 0.32] },
  'threads 100': { cryo: [0.5, 0.51], criu: [0.063, 0.038] },
  'redis 1000000': { cryo: [0.39, 0.38], criu: [0.073, 0.047] },
};
const ISSUE_FROZEN_1G = { cryo: 0.83, criu: 0.42 };

/** Whether a `criu` binary works here (Debian's 3.17 rejects kernel 6.18's vdso). */
function criuState(): string {
  const r = spawnSync('criu', ['check'], { encoding: 'utf8' });
  if (r.error) return 'criu: not installed';
  if (r.status === 0) return 'criu check: ok (side-by-side CRIU runs are not implemented: CRIU columns are issue 11\'s figures)';
  const why = `${r.stderr}${r.stdout}`.trim().split('\n').pop() ?? '';
  return `criu check fails here (${why}): CRIU columns are issue 11's figures`;
}

interface Row {
  key: string;
  label: string;
  dumpMs: number;
  restoreMs: number;
  dumpCpuMs: number;
  restoreCpuMs: number;
  stops: string;
  bytes: number;
  maxRssKiB: number[];
}

/** `runs` rounds of: start, dump (which kills it), restore, check, kill. */
async function dumpRestore(key: string, label: string, start: () => Promise<Workload | null>): Promise<Row | null> {
  const d: number[] = [];
  const r: number[] = [];
  const dc: number[] = [];
  const rc: number[] = [];
  const rss: number[] = [];
  let bytes = 0;
  let stops = '';
  for (let i = 0; i < RUNS; i++) {
    const w = await start();
    if (!w) return null;
    const img = join(w.dir, 'img');
    try {
      const pids = sessionPids(w.pid);
      const dump = cryoCli(['dump', '-t', String(w.pid), '-D', img], w.dir);
      await waitGone(pids);
      const restore = cryoCli(['restore', '-D', img, '-d'], w.dir);
      w.checkRestored?.();
      d.push(dump.wallMs);
      r.push(restore.wallMs);
      dc.push(dump.cpuMs ?? NaN);
      rc.push(restore.cpuMs ?? NaN);
      bytes = (dump.result as { counts?: { bytes?: number } }).counts?.bytes ?? 0;
      rss.push(Math.max(dump.maxRssKiB ?? 0, restore.maxRssKiB ?? 0));
      stops = `${dump.stops ?? '?'} / ${restore.stops ?? '?'}`;
    } finally {
      await killWorkload(w);
      rmSync(w.dir, { recursive: true, force: true });
    }
  }
  return { key, label, dumpMs: median(d), restoreMs: median(r), dumpCpuMs: median(dc), restoreCpuMs: median(rc), stops, bytes, maxRssKiB: rss };
}

/** Time frozen in a --leave-running dump (the engine's own figure), median of the runs. */
async function frozenLeaveRunning(mib: number): Promise<number> {
  const f: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const w = await startHolder(mib);
    try {
      f.push(cryoCli(['dump', '-t', String(w.pid), '-D', join(w.dir, 'img'), '--leave-running'], w.dir).result.timings.frozenMs ?? NaN);
    } finally {
      await killWorkload(w);
      rmSync(w.dir, { recursive: true, force: true });
    }
  }
  return median(f);
}

const s = (ms: number) => (ms / 1000).toFixed(3);
const pair = (a: [number, number]) => `${a[0]} / ${a[1]} s`;

function printRow(row: Row): void {
  const before = ISSUE[row.key];
  const gb = row.key.startsWith('mem ') ? ` (${(row.bytes / 1e9 / (row.dumpMs / 1000)).toFixed(2)} / ${(row.bytes / 1e9 / (row.restoreMs / 1000)).toFixed(2)} GB/s)` : '';
  const ratio = before ? ` | ${(row.dumpMs / 1000 / before.criu[0]).toFixed(1)}x / ${(row.restoreMs / 1000 / before.criu[1]).toFixed(1)}x` : ' | -';
  console.log(`| ${row.label} | ${s(row.dumpMs)} / ${s(row.restoreMs)} s${gb} | ${s(row.dumpCpuMs)} / ${s(row.restoreCpuMs)} s | ${row.stops} | ${before ? pair(before.cryo) : '-'} | ${before ? pair(before.criu) : '-'}${ratio} |`);
}

console.log(`cryo benchmark: ${RUNS} run(s) per case, medians; wall time of the CLI (start-up included)`);
console.log(criuState());
console.log('| case | cryo now: dump / restore | CPU time: dump / restore | ptrace stops | cryo before (issue 11) | CRIU 4.2 (issue 11) | now/CRIU |');
console.log('|---|---|---|---|---|---|---|');
const rows: Row[] = [];
const run = async (key: string, label: string, start: () => Promise<Workload | null>) => {
  const row = await dumpRestore(key, label, start);
  if (!row) console.log(`| ${label} | not run (missing program) | | | | | |`);
  else {
    rows.push(row);
    printRow(row);
  }
};
await run('sleep', '`sleep` (one process)', startSleep);
for (const mib of SIZES) await run(`mem ${mib}`, `${mib} MiB touched (python3)`, () => startHolder(mib));
const frozenMib = SIZES.includes(1024) ? 1024 : SIZES[SIZES.length - 1];
if (frozenMib) {
  const ms = await frozenLeaveRunning(frozenMib);
  const before = frozenMib === 1024 ? ` ${ISSUE_FROZEN_1G.cryo} s | ${ISSUE_FROZEN_1G.criu} s | ${(ms / 1000 / ISSUE_FROZEN_1G.criu).toFixed(1)}x` : ' - | - | -';
  console.log(`| ${frozenMib} MiB --leave-running: time frozen | ${s(ms)} s | ${before} |`);
}
for (const n of TREES) await run(`tree ${n}`, `tree of ${n} processes`, () => startTree(n, 0));
if (THREADS) await run(`threads ${THREADS}`, `one process, ${THREADS} threads`, () => startTree(1, THREADS));
if (REDIS_KEYS) await run(`redis ${REDIS_KEYS}`, `redis-server, ${REDIS_KEYS} keys`, async () => startRedis(REDIS_KEYS, await freePort()));

const biggest = rows.filter((r) => r.key.startsWith('mem ')).pop();
if (biggest) console.log(`cryo peak RSS, ${biggest.label}: ${biggest.maxRssKiB.map((k) => `${(k / 1024).toFixed(0)} MiB`).join(', ')} (largest of dump and restore, each run)`);
if (LIMITS_MIB) {
  const l = measureLimits(tmpdir(), LIMITS_MIB, RUNS);
  console.log(`machine limits (${LIMITS_MIB} MiB, ${tmpdir()}): memcpy ${l.memcpyGBs.toFixed(1)} GB/s, page-cache read ${l.pageCacheReadGBs.toFixed(1)} GB/s, O_DIRECT write + fsync ${l.directWriteGBs.toFixed(2)} GB/s`);
}
