// Starting, driving and cleaning up target processes.
//
// A target runs in its own session (setsid via detached: true), cwd = a fresh temp dir,
// stdin /dev/null, stdout+stderr appended to target.log in that dir (a regular file: the engine
// does not support pipes or ttys yet). The engine restores a process with its original PID but
// re-parented to init, so targets are tracked by PID (plus their cmdline and temp dir to never
// touch a recycled PID), not by ChildProcess handle.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTarget } from './build.js';
import { removeShmLeftovers, noteShmOf } from './shm-leftovers.js';
import { pidExists, procStat, readCmdline, readCwd, sleep, describePid, statusField, waitFor } from './proc.js';

export interface Target {
  /** label used in messages */
  name: string;
  pid: number;
  /** argv as started: /proc/PID/cmdline must stay equal to it (also after restore) */
  argv: string[];
  /** per-target root (removed by cleanup): holds cwd/, image dirs, cryo logs */
  root: string;
  /** the target's cwd, where target.log and the go file live */
  dir: string;
  logPath: string;
  /** current content of target.log ('' if missing) */
  log(): string;
}

export interface StartOptions {
  /** label for messages (default: basename of argv[0]) */
  name?: string;
  /** extra environment (the base is a minimal PATH/LC_ALL environment) */
  env?: Record<string, string>;
  /** the program rewrites its own cmdline (redis-server): wait only until launch has exec'd it */
  retitles?: boolean;
  /** argv[0] runs another program in its place (a shell script ending in exec, setpriv): wait until
   * the process's executable is this one */
  execs?: string;
}

interface Tracked {
  pid: number;
  argv: string[];
  root: string;
}

const tracked: Tracked[] = [];
const tempDirs = new Set<string>();

/** Remember a temp dir for cleanup(). */
export function trackTempDir(dir: string): void {
  tempDirs.add(dir);
}

/** A fresh temp dir under os.tmpdir(), removed by cleanup(). */
export function makeTempDir(prefix = 'cryo-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

function readLog(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** Every target's temp dir starts so; its processes run inside it. */
export const TARGET_ROOT_PREFIX = path.join(os.tmpdir(), 'cryo-t-');

/**
 * Is PID still the process we started (or restored)? Never true for a recycled PID: either its
 * cwd is inside this target's temp dir (also recognises a restored process whose cmdline area is
 * damaged), or its cmdline is the one we started and its cwd is not inside another target's temp
 * dir (a concurrent test run uses the same cached binaries).
 */
export function isOurs(t: { pid: number; argv: string[]; root: string }): boolean {
  if (!pidExists(t.pid)) return false;
  const cwd = readCwd(t.pid);
  if (cwd !== null && (cwd === t.root || cwd.startsWith(t.root + '/'))) return true;
  if (cwd !== null && cwd.startsWith(TARGET_ROOT_PREFIX)) return false;
  const cmd = readCmdline(t.pid);
  return cmd !== null && cmd.length === t.argv.length && cmd.every((a, i) => a === t.argv[i]);
}

/**
 * Spawn a target: own session, fresh cwd, stdin /dev/null, stdout+stderr appended to target.log,
 * no other fd (it goes through test/targets/launch.c, which closes every inherited fd above 2:
 * node's spawn passes on any non-CLOEXEC descriptor of the test runner's own environment).
 * Returns once the target program runs (not when it is READY: see waitForLine).
 */
export async function startTarget(argv: string[], opts: StartOptions = {}): Promise<Target> {
  const root = makeTempDir(`cryo-t-${opts.name ?? path.basename(argv[0]!)}-`);
  const dir = path.join(root, 'cwd');
  fs.mkdirSync(dir);
  const logPath = path.join(dir, 'target.log');
  const logFd = fs.openSync(logPath, 'a', 0o644);
  const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', LC_ALL: 'C', HOME: dir, ...opts.env };
  const child = spawn(buildTarget('launch'), argv, {
    cwd: dir,
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env,
  });
  fs.closeSync(logFd);
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot start ${argv.join(' ')}: ${e.message}`)));
    child.once('spawn', () => resolve(child.pid!));
  });
  child.on('error', () => {});
  child.unref();
  tracked.push({ pid, argv: [...argv], root });
  const t: Target = {
    name: opts.name ?? path.basename(argv[0]!),
    pid,
    argv: [...argv],
    root,
    dir,
    logPath,
    log: () => readLog(logPath),
  };
  // wait for launch to exec the program itself
  const execd = await waitFor(() => {
    const cmd = readCmdline(pid);
    if (opts.retitles || opts.execs) return exeIs(pid, opts.execs ?? argv[0]!);
    return cmd !== null && cmd.join('\0') === argv.join('\0');
  }, 5000);
  if (!execd) throw new TargetError(`${argv[0]} did not start\n${targetReport(t)}`);
  return t;
}

function exeIs(pid: number, program: string): boolean {
  try {
    return fs.realpathSync(`/proc/${pid}/exe`) === fs.realpathSync(program);
  } catch {
    return false;
  }
}

/** Track a PID that was not started by startTarget (e.g. restored from foreign images). */
export function trackPid(pid: number, argv: string[], root: string): void {
  tracked.push({ pid, argv, root });
}

export class TargetError extends Error {}

/** Full context of a target for assertion messages. */
export function targetReport(t: Target): string {
  const log = t.log();
  const shown = log.length > 20000 ? '[...]\n' + log.slice(-20000) : log;
  return `target ${t.name} (${describePid(t.pid)})\n--- ${t.logPath} ---\n${shown}--- end of target log ---`;
}

/**
 * Wait for a line of target.log starting with one of the prefixes ('READY', 'PASS', ...).
 * Returns that line. Fails early if the process disappears without printing it.
 */
export async function waitForLine(t: Target, prefix: string | string[], timeoutMs = 10000): Promise<string> {
  const prefixes = Array.isArray(prefix) ? prefix : [prefix];
  const deadline = Date.now() + timeoutMs;
  let goneSince: number | null = null;
  let deathInfo = '';
  for (;;) {
    const line = t
      .log()
      .split('\n')
      .find((l) => prefixes.some((p) => l.startsWith(p)));
    if (line !== undefined) return line;
    const st = procStat(t.pid);
    if (!st || st.state === 'Z' || st.state === 'X') {
      // give the log a moment: the line may have been written just before exit
      if (goneSince === null) {
        goneSince = Date.now();
        deathInfo = describePid(t.pid); // while it is still a zombie: says how it died
      }
      if (Date.now() - goneSince > 200)
        throw new TargetError(
          `target ${t.name} exited (or was killed) before printing ${prefixes.join('/')}: ${deathInfo}\n${targetReport(t)}`,
        );
    }
    if (Date.now() >= deadline)
      throw new TargetError(`timed out after ${timeoutMs} ms waiting for ${prefixes.join('/')}\n${targetReport(t)}`);
    await sleep(10);
  }
}

export interface GoResult {
  pass: boolean;
  /** the PASS or FAIL line */
  line: string;
  /** the whole log, for messages */
  log: string;
}

/** Create the go file and wait for PASS/FAIL. */
export async function goAndWaitResult(t: Target, timeoutMs = 15000): Promise<GoResult> {
  fs.writeFileSync(path.join(t.dir, 'go'), '');
  const line = await waitForLine(t, ['PASS', 'FAIL'], timeoutMs);
  return { pass: line.startsWith('PASS'), line, log: t.log() };
}

/** Process is alive, not a zombie, not stopped or traced, in its own session. Returns a problem or null. */
export function runningProblem(t: Target): string | null {
  const st = procStat(t.pid);
  if (!st) return `pid ${t.pid} does not exist`;
  if (st.state === 'Z' || st.state === 'X') return `pid ${t.pid} is a zombie/dead (state ${st.state})`;
  if (st.state === 'T' || st.state === 't') return `pid ${t.pid} is stopped (state ${st.state})`;
  const tracer = statusField(t.pid, 'TracerPid');
  if (tracer !== null && tracer !== '0') return `pid ${t.pid} is still traced by ${tracer}`;
  if (!isOurs(t)) return `pid ${t.pid} is not our target any more: ${describePid(t.pid)}`;
  const cmd = readCmdline(t.pid);
  if (!cmd || cmd.join('\0') !== t.argv.join('\0'))
    return `pid ${t.pid} cmdline is ${JSON.stringify(cmd)}, expected ${JSON.stringify(t.argv)}`;
  if (st.session !== t.pid || st.pgrp !== t.pid)
    return `pid ${t.pid} session/pgrp are ${st.session}/${st.pgrp}, expected ${t.pid} (it was a session leader)`;
  return null;
}

/** SIGKILL a target by PID if it is still ours. Returns true if a signal was sent. */
export function killTarget(t: { pid: number; argv: string[]; root: string }): boolean {
  if (!isOurs(t)) return false;
  try {
    process.kill(t.pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/**
 * Kill every process started or restored by this run (by PID, only if it is still ours), then
 * remove the temp dirs (unless CRYO_TEST_KEEP is set) and what the killed left in /dev/shm. Safe to call several times (e.g. from
 * after() hooks).
 */
export async function cleanup(): Promise<void> {
  const victims = tracked.splice(0);
  noteShmOf(victims.filter((t) => isOurs(t)).map((t) => t.pid));
  for (const t of victims) killTarget(t);
  // let them die before removing the files they map (not needed for correctness, keeps /tmp tidy)
  const deadline = Date.now() + 2000;
  while (victims.some((v) => isOurs(v) && procStat(v.pid)?.state !== 'Z') && Date.now() < deadline) await sleep(20);
  // CRYO_TEST_KEEP=1 keeps target dirs, images and cryo logs for a post-mortem
  if (!process.env.CRYO_TEST_KEEP) for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
  removeShmLeftovers();
}

// Last resort if the runner exits without the after() hooks (timeouts, crashes).
process.once('exit', () => {
  for (const t of tracked) killTarget(t);
});
