// Start-up cost of the CLI as a user sees it: wall time of `node -e 0`, `cryo --version`,
// `cryo --help`, and a trivial `cryo dump` / `cryo restore` of `sleep 1000` (one process, no
// memory to speak of), each the median of several runs. Prints figures; asserts nothing.
//   node dist/bench/startup.js [--runs 7]      (as root)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidExists, wait4 } from '../src/sys/index.js';
import { median, flagNumber } from './figures.js';

const CRYO = fileURLToPath(new URL('../../bin/cryo.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TIME = '/usr/bin/time';

/**
 * Wall time of one command, and its CPU time (user + system, from /usr/bin/time when there: a
 * figure a busy machine changes much less), in ms; throws with its stderr if it fails.
 */
function wall(args: string[]): [number, number] {
  const cpuFile = join(tmpdir(), `cryo-bench-cpu-${process.pid}`);
  const timed = existsSync(TIME);
  const argv = timed ? [TIME, '-f', '%U %S', '-o', cpuFile, process.execPath, ...args] : [process.execPath, ...args];
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  let cpu = NaN;
  if (timed) {
    const [u, sy] = readFileSync(cpuFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    cpu = ((u ?? NaN) + (sy ?? NaN)) * 1000;
    rmSync(cpuFile, { force: true });
  }
  return [ms, cpu];
}

/** One dump and one restore of a fresh `sleep 1000`, through the CLI; the sleep is killed by PID. */
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
    const d = wall([CRYO, 'dump', '-t', String(pid), '-D', join(dir, 'img')]);
    while (pidExists(pid)) {
      try {
        wait4(pid);
      } catch {
        /* libuv reaped it */
      }
      await sleep(1);
    }
    const r = wall([CRYO, 'restore', '-D', join(dir, 'img'), '-d']);
    return [d, r];
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
  dump: [number, number];
  restore: [number, number];
}

const medians = (xs: [number, number][]): [number, number] => [median(xs.map((x) => x[0])), median(xs.map((x) => x[1]))];

/** Medians of `runs` runs of each, interleaved so that a busy moment of the machine hits all alike. */
export async function startupFigures(runs: number): Promise<StartupFigures> {
  const t: Record<keyof StartupFigures, [number, number][]> = { node: [], version: [], help: [], dump: [], restore: [] };
  for (let i = 0; i < runs; i++) {
    t.node.push(wall(['-e', '0']));
    t.version.push(wall([CRYO, '--version']));
    t.help.push(wall([CRYO, '--help']));
    const [d, r] = await trivialOnce();
    t.dump.push(d!);
    t.restore.push(r!);
  }
  return { node: medians(t.node), version: medians(t.version), help: medians(t.help), dump: medians(t.dump), restore: medians(t.restore) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const f = await startupFigures(flagNumber('--runs', 7));
  const ms = (x: [number, number]) => `${x[0].toFixed(0)} ms (cpu ${x[1].toFixed(0)} ms)`;
  console.log(
    `start-up, medians, wall (cpu): node -e 0 ${ms(f.node)}; cryo --version ${ms(f.version)}, ${(f.version[0] / f.node[0]).toFixed(2)}x wall, ` +
      `${(f.version[1] / f.node[1]).toFixed(2)}x cpu; --help ${ms(f.help)}; sleep: dump ${ms(f.dump)}, restore ${ms(f.restore)} (CLI)`,
  );
}
