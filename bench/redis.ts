// Dump and restore times of a redis-server holding 100k and 1M keys (DEBUG POPULATE), with its
// memory use and the keys counted again after restore. Prints figures; asserts nothing about time.
//   node dist/bench/redis.js [100000 1000000]     (as root, redis-server installed)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { freePort } from './free-port.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from '../src/dump/index.js';
import { restore } from '../src/restore/index.js';
import { pidExists, wait4 } from '../src/sys/index.js';
import { Log } from '../src/util/log.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function once(keys: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-redis-'));
  const port = await freePort();
  const logFd = openSync(join(dir, 'redis.log'), 'a');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'yes'];
  const child = spawn('redis-server', args, { cwd: dir, detached: true, stdio: ['ignore', logFd, logFd] });
  const pid = child.pid!;
  try {
    for (let i = 0; i < 200 && !readFileSync(join(dir, 'redis.log'), 'utf8').includes('Ready to accept'); i++) await sleep(25);
    cli(port, 'DEBUG', 'POPULATE', String(keys));
    const rss = rssMiB(pid);
    await sleep(200); // redis-cli's connection closes on the server side
    const log = new Log(1);
    const d = dump({ pid, dir: join(dir, 'img'), leaveRunning: false, log });
    while (pidExists(pid)) await sleep(1);
    const r = restore({ dir: join(dir, 'img'), detach: true, log, pidWaitMs: 5000 });
    const n = cli(port, 'DBSIZE');
    console.log(
      `redis ${String(keys).padStart(8)} keys (${rss.toFixed(0)} MiB RSS): dump ${d.totalMs.toFixed(0).padStart(5)} ms ` +
        `(frozen ${d.frozenMs.toFixed(0)} ms), restore ${r.ms.toFixed(0).padStart(5)} ms, DBSIZE after: ${n}`,
    );
  } finally {
    if (pidExists(pid)) process.kill(pid, 'SIGKILL');
    try {
      wait4(pid);
    } catch {
      /* restored: init's child now */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (spawnSync('redis-server', ['--version']).status !== 0) {
  console.log('redis-server is not installed: skipping the Redis benchmark');
} else {
  const counts = process.argv.slice(2).map(Number).filter((n) => n > 0);
  for (const keys of counts.length ? counts : [100_000, 1_000_000]) await once(keys);
}
