// Start-up cost of the CLI as a user sees it: wall and CPU time of `node -e 0`, `cryo --version`,
// `cryo --help`, and a trivial `cryo check -t`, `cryo dump` and `cryo restore` of `sleep 1000`
// (one process, no memory to speak of), each the median of several runs, interleaved so that a
// busy moment of the machine hits all alike. Prints figures; asserts nothing (issue 11's targets:
// --version within 1.5x of node -e 0, a trivial dump or restore under 100 ms wall).
//   node dist/bench/startup.js [--runs 11]      (as root)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidExists, wait4 } from '../src/sys/index.js';
import { median, flagNumber } from './figures.js';

const CRYO = fileURLToPath(new URL('../../bin/cryo.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The timer is a python3 parent that forks and execs the command and reads its rusage from wait4:
// CPU time (user + system) to the microsecond, which a busy machine changes much less than wall
// time (/usr/bin/time rounds to 10 ms), and a wall time without Node's spawnSync overhead.
const TIMER = [
  'import os, sys, time',
  't = time.perf_counter()',
  'pid = os.fork()',
  'if pid == 0:',
  '    fd = os.open(os.devnull, os.O_WRONLY); os.dup2(fd, 1); os.execv(sys.argv[1], sys.argv[1:])',
  '_, status, ru = os.wait4(pid, 0)',
  'wall = time.perf_counter() - t',
  'print(os.waitstatus_to_exitcode(status), wall * 1000, (ru.ru_utime + ru.ru_stime) * 1000)',
].join('\n');

/** Wall and CPU time of one command, in ms; throws with its stderr if it fails. */
function timed(args: string[]): [number, number] {
  const r = spawnSync('python3', ['-c', TIMER, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const [code, wall, cpu] = r.stdout.trim().split(' ').map(Number);
  if (r.status !== 0 || code !== 0) throw new Error(`node ${args.join(' ')}: exit ${code ?? r.status}: ${r.stderr}`);
  return [wall!, cpu!];
}

/** One check, dump and restore of a fresh `sleep 1000`, through the CLI; the sleep is killed by PID. */
async function trivialOnce(): Promise<[number, number][]> {
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-start-'));
  // Through python3 only to close the fds this bench may have inherited (a pipe of its caller's
  // would be an external pipe in the image), then exec: the PID is the sleep's.
  const exec = "import os; os.closerange(3, 65536); os.execvp('sleep', ['sleep', '1000'])";
  const c = spawn('python3', ['-c', exec], { detached: true, stdio: 'ignore' });
  c.unref(); // we reap it ourselves: libuv would wait for an exit it never sees
  const pid = c.pid!;
  try {
    while (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep')) await sleep(5);
    const k = timed([CRYO, 'check', '-t', String(pid)]);
    const d = timed([CRYO, 'dump', '-t', String(pid), '-D', join(dir, 'img')]);
    while (pidExists(pid)) {
      try {
        wait4(pid);
      } catch {
        /* libuv reaped it */
      }
      await sleep(1);
    }
    const r = timed([CRYO, 'restore', '-D', join(dir, 'img'), '-d']);
    return [k, d, r];
  } finally {
    if (pidExists(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Each figure as [wall, cpu] medians, in ms. */
export interface StartupFigures {
  node: [number, number];
  version: [number, number];
  help: [number, number];
  check: [number, number];
  dump: [number, number];
  restore: [number, number];
}

const medians = (xs: [number, number][]): [number, number] => [median(xs.map((x) => x[0])), median(xs.map((x) => x[1]))];

/** Medians of `runs` runs of each, interleaved. */
export async function startupFigures(runs: number): Promise<StartupFigures> {
  const t: Record<keyof StartupFigures, [number, number][]> = { node: [], version: [], help: [], check: [], dump: [], restore: [] };
  for (let i = 0; i < runs; i++) {
    t.node.push(timed(['-e', '0']));
    t.version.push(timed([CRYO, '--version']));
    t.help.push(timed([CRYO, '--help']));
    const [k, d, r] = await trivialOnce();
    t.check.push(k!);
    t.dump.push(d!);
    t.restore.push(r!);
  }
  return {
    node: medians(t.node),
    version: medians(t.version),
    help: medians(t.help),
    check: medians(t.check),
    dump: medians(t.dump),
    restore: medians(t.restore),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runs = flagNumber('--runs', 11);
  const f = await startupFigures(runs);
  const ms = (x: [number, number]) => `${x[0].toFixed(0)} ms (cpu ${x[1].toFixed(0)})`;
  console.log(`start-up, medians of ${runs}, wall (cpu) in ms:`);
  console.log(`  node -e 0          ${ms(f.node)}`);
  console.log(`  cryo --version     ${ms(f.version)}  ${(f.version[0] / f.node[0]).toFixed(2)}x node wall, ${(f.version[1] / f.node[1]).toFixed(2)}x cpu`);
  console.log(`  cryo --help        ${ms(f.help)}`);
  console.log(`  cryo check -t      ${ms(f.check)}  (sleep)`);
  console.log(`  cryo dump          ${ms(f.dump)}  (sleep)`);
  console.log(`  cryo restore -d    ${ms(f.restore)}  (sleep)`);
}
