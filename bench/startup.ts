// Start-up cost of the CLI as a user sees it: wall time of `node -e 0`, `cryo --version`,
// `cryo --help`, and a trivial `cryo dump` / `cryo restore` of `sleep 1000` (one process, no
// memory to speak of), each the median of several runs. Prints figures; asserts nothing.
//   node dist/bench/startup.js [--runs 7]      (as root)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidExists, wait4 } from '../src/sys/index.js';
import { median, flagNumber } from './figures.js';

const CRYO = fileURLToPath(new URL('../../bin/cryo.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wall time of one command, in ms; throws with its stderr if it fails. */
function wall(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return ms;
}

/** One dump and one restore of a fresh `sleep 1000`, through the CLI; the sleep is killed by PID. */
async function trivialOnce(): Promise<[number, number]> {
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

export interface StartupFigures {
  nodeMs: number;
  versionMs: number;
  helpMs: number;
  dumpMs: number;
  restoreMs: number;
}

/** Medians of `runs` runs of each, interleaved so that a busy moment of the machine hits all alike. */
export async function startupFigures(runs: number): Promise<StartupFigures> {
  const t: Record<keyof StartupFigures, number[]> = { nodeMs: [], versionMs: [], helpMs: [], dumpMs: [], restoreMs: [] };
  for (let i = 0; i < runs; i++) {
    t.nodeMs.push(wall(['-e', '0']));
    t.versionMs.push(wall([CRYO, '--version']));
    t.helpMs.push(wall([CRYO, '--help']));
    const [d, r] = await trivialOnce();
    t.dumpMs.push(d);
    t.restoreMs.push(r);
  }
  return {
    nodeMs: median(t.nodeMs), versionMs: median(t.versionMs), helpMs: median(t.helpMs),
    dumpMs: median(t.dumpMs), restoreMs: median(t.restoreMs),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const f = await startupFigures(flagNumber('--runs', 7));
  console.log(
    `node -e 0 ${f.nodeMs.toFixed(0)} ms; cryo --version ${f.versionMs.toFixed(0)} ms (${(f.versionMs / f.nodeMs).toFixed(2)}x), ` +
      `--help ${f.helpMs.toFixed(0)} ms; sleep: dump ${f.dumpMs.toFixed(0)} ms, restore ${f.restoreMs.toFixed(0)} ms (wall, CLI)`,
  );
}
