// The processes the benchmark table checkpoints, and the CLI run as a user runs it. Every process
// is started here and killed by PID (the bench is a subreaper, so orphans come back to it).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidExists, wait4 } from '../src/sys/index.js';
import { script, sessionPids } from './python-tree.js';

const CRYO = fileURLToPath(new URL('../../bin/cryo.js', import.meta.url));
const TIME = '/usr/bin/time';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running workload: its root PID (a session leader), the directory it runs in. */
export interface Workload {
  pid: number;
  dir: string;
  /** Extra check after restore (redis: the keys are all there); throws if not. */
  checkRestored?: () => void;
}

function reap(pid: number): void {
  try {
    wait4(pid);
  } catch {
    /* not our child (init's, or libuv reaped it) */
  }
}

/** Kills every process of the workload's session by PID and waits until each PID is free. */
export async function killWorkload(w: Workload): Promise<void> {
  const pids = sessionPids(w.pid);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const p of pids) reap(p);
  for (let i = 0; i < 2000 && pids.some(pidExists); i++) {
    pids.forEach(reap);
    await sleep(5);
  }
}

/** Waits until the dumped (killed) tree's PIDs are free again, reaping what is ours. */
export async function waitGone(pids: number[]): Promise<void> {
  for (let i = 0; i < 2000 && pids.some(pidExists); i++) {
    pids.forEach(reap);
    await sleep(2);
  }
}

async function startPython(code: string, name: string): Promise<Workload> {
  const dir = mkdtempSync(join(tmpdir(), `cryo-bench-${name}-`));
  const log = openSync(join(dir, 'out.log'), 'a');
  // python3 closes the fds it may have inherited from the bench's caller (an outside pipe would
  // be refused), prints `ready` once set up.
  const c = spawn('python3', ['-c', code], { cwd: dir, detached: true, stdio: ['ignore', log, log] });
  c.unref(); // reaped by wait4 here, never by libuv
  const w = { pid: c.pid!, dir };
  for (let i = 0; i < 2400; i++) {
    if (readFileSync(join(dir, 'out.log'), 'utf8').includes('ready')) return w;
    if (!pidExists(w.pid)) break;
    await sleep(25);
  }
  await killWorkload(w);
  throw new Error(`${name}: the workload did not start (${readFileSync(join(dir, 'out.log'), 'utf8').slice(-300)})`);
}

/** `sleep 1000` (exec'd from python3 after it closed its inherited fds). */
export async function startSleep(): Promise<Workload> {
  const w = await startPython("import os, sys\nos.closerange(3, 65536)\nprint('ready', flush=True)\nos.execvp('sleep', ['sleep', '1000'])", 'sleep');
  while (!readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').startsWith('sleep')) await sleep(2);
  return w;
}

/** python3 holding `mib` MiB of touched memory. */
export function startHolder(mib: number): Promise<Workload> {
  return startPython(`import os, time\nos.closerange(3, 65536)\nb = b'\\x5a' * (${mib} << 20)\nprint('ready', flush=True)\ntime.sleep(1e6)\n`, `mem${mib}`);
}

/** A tree of `procs` python3 processes, or one with `threads` threads. */
export async function startTree(procs: number, threads: number): Promise<Workload> {
  const w = await startPython(script(procs, threads), `tree${procs}-${threads}`);
  await sleep(100); // the children print nothing: let them reach their sleep
  return w;
}

function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** redis-server with `keys` keys (DEBUG POPULATE); null if redis-server is not installed. */
export async function startRedis(keys: number, port: number): Promise<Workload | null> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'cryo-bench-redis-'));
  const log = openSync(join(dir, 'out.log'), 'a');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'yes'];
  const c = spawn('redis-server', args, { cwd: dir, detached: true, stdio: ['ignore', log, log] });
  c.unref();
  const w: Workload = { pid: c.pid!, dir };
  for (let i = 0; i < 400 && !readFileSync(join(dir, 'out.log'), 'utf8').includes('Ready to accept'); i++) await sleep(25);
  redisCli(port, 'DEBUG', 'POPULATE', String(keys));
  await sleep(200); // redis-cli's connection closes on the server side
  w.checkRestored = () => {
    const n = Number(redisCli(port, 'DBSIZE'));
    if (n !== keys) throw new Error(`redis after restore: DBSIZE ${n}, expected ${keys}`);
  };
  return w;
}

/** One CLI run: wall time as a user sees it, the --json result, and its peak RSS when measurable. */
export interface CliRun {
  wallMs: number;
  /** Ptrace stops of the tasks (from the log): a figure a busy machine does not change. */
  stops?: number;
  result: { verdict: string; error?: string; timings: { totalMs: number; frozenMs?: number } };
  maxRssKiB?: number;
  /** User + system CPU time of the CLI process and its children (from /usr/bin/time). */
  cpuMs?: number;
}

/** `prefix`: a command the CLI runs under (strace), inside the timing. */
export function cryoCli(args: string[], dir: string, prefix: string[] = []): CliRun {
  const tag = process.hrtime.bigint();
  const rssFile = join(dir, `rss-${tag}`);
  const logFile = join(dir, `log-${tag}`);
  const timed = existsSync(TIME);
  const cmd = [...prefix, process.execPath, CRYO, ...args, '--json', '-v3', '-o', logFile];
  const argv = timed ? [TIME, '-f', '%M %U %S', '-o', rssFile, ...cmd] : cmd;
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  const wallMs = performance.now() - t0;
  let result: CliRun['result'];
  try {
    result = JSON.parse(r.stdout);
  } catch {
    throw new Error(`cryo ${args.join(' ')}: exit ${r.status}, no JSON result: ${r.stderr.slice(-500)}`);
  }
  if (r.status !== 0 || result.verdict !== 'done') throw new Error(`cryo ${args.join(' ')}: ${result.verdict}: ${result.error ?? r.stderr.slice(-500)}`);
  const timeLine = timed && existsSync(rssFile) ? readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) : [];
  const maxRssKiB = timeLine[0];
  const cpuMs = timeLine.length === 3 ? (timeLine[1]! + timeLine[2]!) * 1000 : undefined;
  rmSync(rssFile, { force: true });
  const stops = /(\d+) ptrace stops/.exec(existsSync(logFile) ? readFileSync(logFile, 'utf8') : '')?.[1];
  rmSync(logFile, { force: true });
  return { wallMs, result, maxRssKiB, cpuMs, ...(stops !== undefined ? { stops: Number(stops) } : {}) };
}
