// Dump/restore throughput on processes holding 256, 1024 and 4096 MiB of touched memory, and the
// fixed cost on a trivial process. Prints figures; asserts nothing about time.
//   npm run bench [-- 256 1024]      (as root)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from '../src/dump/index.js';
import { restore } from '../src/restore/index.js';
import { wait4, pidExists } from '../src/sys/index.js';
import { Log } from '../src/util/log.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startHolder(dir: string, mib: number): Promise<number> {
  const code = `import os, time\nos.closerange(3, 65536)\nb = b'\\x5a' * (${mib} << 20)\nprint('ready', flush=True)\ntime.sleep(1e6)\n`;
  const log = openSync(join(dir, 'holder.log'), 'a');
  const c = spawn('python3', ['-c', code], { cwd: dir, detached: true, stdio: ['ignore', log, log] });
  for (let i = 0; i < 600; i++) {
    if (readFileSync(join(dir, 'holder.log'), 'utf8').includes('ready')) return c.pid!;
    await sleep(50);
  }
  throw new Error('memory holder did not start');
}

async function once(mib: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-'));
  const log = new Log(1);
  let pid = 0;
  try {
    pid = await startHolder(dir, mib);
    const images = join(dir, 'img');
    const d = dump({ pid, dir: images, leaveRunning: false, log });
    while (pidExists(pid)) await sleep(1);
    const r = restore({ dir: images, detach: true, log, pidWaitMs: 5000 });
    const gb = (d.pagesWritten * 4096) / 1e9;
    console.log(
      `${String(mib).padStart(5)} MiB: dump ${d.totalMs.toFixed(0).padStart(6)} ms (frozen ${d.frozenMs.toFixed(0)} ms, ` +
        `${(gb / (d.totalMs / 1000)).toFixed(2)} GB/s), restore ${r.ms.toFixed(0).padStart(6)} ms ` +
        `(${(gb / (r.ms / 1000)).toFixed(2)} GB/s), ${d.pagesWritten} pages`,
    );
  } finally {
    if (pid && pidExists(pid)) {
      process.kill(pid, 'SIGKILL');
      try {
        wait4(pid);
      } catch {
        /* not our child */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const sizes = process.argv.slice(2).map(Number).filter((n) => n >= 0);
for (const mib of sizes.length ? sizes : [0, 256, 1024, 4096]) await once(mib);
