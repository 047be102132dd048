// What each further task and thread costs (issue 11's slopes): dump and restore of python3 trees
// of --trees processes and of one process with --threads threads, through the CLI. Besides the
// medians of wall and CPU time, figures a busy machine does not change: the tasks' ptrace stops
// (from the log) and, with --strace, cryo's own system calls, its opens of /proc files and the
// bytes it read (strace of cryo's main thread, which does all the engine's work: the stub and the
// tasks are ptraced by cryo, so strace cannot follow into them). The runs alternate between the
// cases, so that a busy moment hits all alike. Prints figures; asserts nothing about time.
//   node dist/bench/slopes.js [--runs 3] [--trees 10,50] [--threads 0,100] [--strace]   (as root)
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { sys, PR } from '../src/sys/index.js';
import { flagList, flagNumber, median } from './figures.js';
import { cryoCli, killWorkload, startTree, waitGone, type CliRun } from './targets.js';
import { sessionPids } from './python-tree.js';

sys('prctl', [PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0]); // the dumped trees' orphans are ours to reap

const RUNS = flagNumber('--runs', 3);
const TREES = flagList('--trees', [10, 50]);
const THREADS = flagList('--threads', [0, 100]);
const STRACE = process.argv.includes('--strace') && spawnSync('strace', ['-V']).status === 0;

/** What strace saw of one CLI run. */
interface Traced {
  syscalls: number;
  procOpens: number;
  readBytes: number;
}

/** Counts from an `strace -o` file: every call, opens under /proc, bytes returned by read-like calls. */
function parseTrace(file: string): Traced {
  const t: Traced = { syscalls: 0, procOpens: 0, readBytes: 0 };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\w+)\((.*)\) += (-?\d+)/.exec(line);
    if (!m) continue;
    t.syscalls++;
    const [, name, args, ret] = m;
    if ((name === 'openat' || name === 'open') && /"\/proc\//.test(args!)) t.procOpens++;
    if ((name === 'read' || name === 'pread64' || name === 'readv' || name === 'preadv') && Number(ret) > 0) t.readBytes += Number(ret);
  }
  return t;
}

interface Sample {
  run: CliRun;
  traced?: Traced;
}

function cli(args: string[], dir: string, tag: string): Sample {
  if (!STRACE) return { run: cryoCli(args, dir) };
  const out = join(dir, `strace-${tag}`);
  const run = cryoCli(args, dir, ['strace', '-qq', '-s', '80', '-e', 'signal=none', '-o', out]);
  const traced = parseTrace(out);
  rmSync(out, { force: true });
  return { run, traced };
}

interface Case {
  label: string;
  procs: number;
  threads: number;
  dump: Sample[];
  restore: Sample[];
}

const cases: Case[] = [
  ...TREES.map((n) => ({ label: `tree of ${n}`, procs: n, threads: 0, dump: [], restore: [] })),
  ...THREADS.map((n) => ({ label: `1 process, ${n} threads`, procs: 1, threads: n, dump: [], restore: [] })),
];

async function round(c: Case): Promise<void> {
  const w = await startTree(c.procs, c.threads);
  const img = join(w.dir, 'img');
  try {
    const pids = sessionPids(w.pid);
    c.dump.push(cli(['dump', '-t', String(w.pid), '-D', img], w.dir, 'dump'));
    await waitGone(pids);
    c.restore.push(cli(['restore', '-D', img, '-d'], w.dir, 'restore'));
  } finally {
    await killWorkload(w);
    rmSync(w.dir, { recursive: true, force: true });
  }
}

for (let i = 0; i < RUNS; i++) for (const c of cases) await round(c);

/** The medians of one operation's samples. */
function figures(s: Sample[]) {
  const m = (f: (x: Sample) => number | undefined) => median(s.map((x) => f(x) ?? NaN));
  return {
    wall: m((x) => x.run.wallMs),
    cpu: m((x) => x.run.cpuMs),
    stops: m((x) => x.run.stops),
    syscalls: m((x) => x.traced?.syscalls),
    procOpens: m((x) => x.traced?.procOpens),
    readKiB: m((x) => (x.traced ? x.traced.readBytes / 1024 : undefined)),
  };
}
type Figures = ReturnType<typeof figures>;

const f0 = (n: number) => (Number.isNaN(n) ? '-' : n.toFixed(0));
const f1 = (n: number) => (Number.isNaN(n) ? '-' : n.toFixed(1));
const line = (f: Figures, fmt = f0) => `${fmt(f.wall)} ms wall, ${fmt(f.cpu)} ms cpu, ${fmt(f.stops)} stops` + (STRACE ? `, ${fmt(f.syscalls)} syscalls, ${fmt(f.procOpens)} /proc opens, ${fmt(f.readKiB)} KiB read` : '');

console.log(`medians of ${RUNS} alternating runs through the CLI${STRACE ? ' (under strace: wall and cpu include its cost)' : ''}`);
const byCase = new Map(cases.map((c) => [c.label, { dump: figures(c.dump), restore: figures(c.restore) }]));
for (const c of cases) {
  const f = byCase.get(c.label)!;
  console.log(`${c.label.padEnd(22)} dump:    ${line(f.dump)}`);
  console.log(`${''.padEnd(22)} restore: ${line(f.restore)}`);
}

/** (b - a) / n for every figure. */
function slope(a: Figures, b: Figures, n: number): Figures {
  const out = { ...a };
  for (const k of Object.keys(a) as (keyof Figures)[]) out[k] = (b[k] - a[k]) / n;
  return out;
}
const pairs: [Case | undefined, Case | undefined, string][] = [
  [cases.find((c) => c.procs === TREES[0] && !c.threads), cases.find((c) => c.procs === TREES[TREES.length - 1] && !c.threads && TREES.length > 1), 'task'],
  [cases.find((c) => c.procs === 1 && c.threads === THREADS[0]), cases.find((c) => c.procs === 1 && c.threads === THREADS[THREADS.length - 1] && THREADS.length > 1), 'thread'],
];
for (const [a, b, what] of pairs) {
  if (!a || !b) continue;
  const n = what === 'task' ? b.procs - a.procs : b.threads - a.threads;
  const fa = byCase.get(a.label)!;
  const fb = byCase.get(b.label)!;
  console.log(`per further ${what} (${a.label} -> ${b.label}):`);
  console.log(`  dump:    ${line(slope(fa.dump, fb.dump, n), f1)}`);
  console.log(`  restore: ${line(slope(fa.restore, fb.restore, n), f1)}`);
}
if (process.argv.includes('--strace') && !STRACE) console.log('(no strace here: syscall counts left out)');
