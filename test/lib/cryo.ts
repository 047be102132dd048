// Running the cryo CLI and checking the images it writes.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from './build.js';
import type { Target } from './target.js';

/** The CLI under test (override with CRYO_BIN). */
export const CRYO_BIN = process.env.CRYO_BIN ?? path.join(REPO_ROOT, 'bin', 'cryo.js');
export const CRIT = process.env.CRIT ?? '/usr/bin/crit';

export interface CryoResult {
  argv: string[];
  env: Record<string, string>;
  /** exit code, null if killed by a signal or timed out */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
  /** the -o log file, when one was passed */
  logFile?: string;
}

export interface CryoOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Fds of ours the CLI gets as its fds 3, 4, ... (for --inherit-fd). */
  extraFds?: number[];
}

let outDir: string | undefined;
function scratch(): string {
  outDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-cli-out-'));
  return outDir;
}
process.once('exit', () => {
  if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
});

let seq = 0;

/**
 * Run `node bin/cryo.js ARGS` synchronously. stdout/stderr go to files, not pipes, so that a
 * process the engine leaves behind holding them cannot make this hang. CRYO_FAIL_AT is never
 * inherited from the test's own environment, only passed through opts.env.
 */
/**
 * PIDs of the cryo processes this test process started: what they leave (a network lock is
 * named after its cryo's PID) can be told from what other runs on the machine leave.
 */
export const cryoPids = new Set<number>();

/** For a cryo started by other means than cryo() (spawn, to kill it). */
export function noteCryoPid(pid: number): void {
  cryoPids.add(pid);
}

export function cryo(args: string[], opts: CryoOptions = {}): CryoResult {
  const n = ++seq;
  const outPath = path.join(scratch(), `${n}.out`);
  const errPath = path.join(scratch(), `${n}.err`);
  const outFd = fs.openSync(outPath, 'w');
  const errFd = fs.openSync(errPath, 'w');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'CRYO_FAIL_AT') env[k] = v;
  Object.assign(env, opts.env ?? {});
  const timeout = opts.timeoutMs ?? 60_000;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CRYO_BIN, ...args], {
    stdio: ['ignore', outFd, errFd, ...(opts.extraFds ?? [])],
    env,
    timeout,
    killSignal: 'SIGKILL',
    cwd: REPO_ROOT,
  });
  const ms = Date.now() - t0;
  if (r.pid) noteCryoPid(r.pid);
  fs.closeSync(outFd);
  fs.closeSync(errFd);
  const stdout = fs.readFileSync(outPath, 'utf8');
  const stderr = fs.readFileSync(errPath, 'utf8');
  fs.rmSync(outPath, { force: true });
  fs.rmSync(errPath, { force: true });
  const oi = args.indexOf('-o');
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return {
    argv: ['cryo', ...args],
    env: opts.env ?? {},
    code: r.status,
    signal: r.signal,
    timedOut,
    stdout,
    stderr: stderr + (r.error && !timedOut ? `\n[harness: ${String(r.error)}]` : ''),
    ms,
    logFile: oi >= 0 ? args[oi + 1] : undefined,
  };
}

function tail(text: string, max: number): string {
  return text.length > max ? '[...]\n' + text.slice(-max) : text;
}

/** Everything about a CLI run, for assertion messages (command, exit, stderr, stdout, -o log tail). */
export function cryoReport(r: CryoResult, logTail = 8000): string {
  const env = Object.entries(r.env)
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  let s =
    `$ ${env}${r.argv.join(' ')}\n` +
    `exit: ${r.timedOut ? 'TIMED OUT' : r.code ?? 'signal ' + r.signal} after ${r.ms} ms\n` +
    `--- stderr ---\n${tail(r.stderr, 4000)}\n--- stdout ---\n${tail(r.stdout, 2000)}\n`;
  if (r.logFile) {
    let log = '<no log file>';
    try {
      log = tail(fs.readFileSync(r.logFile, 'utf8'), logTail);
    } catch {
      // missing
    }
    s += `--- ${r.logFile} (tail) ---\n${log}\n`;
  }
  return s + '--- end of cryo output ---';
}

/** stderr of a failed run must be exactly one non-empty line. Returns a problem or null. */
export function oneLineErrorProblem(r: CryoResult): string | null {
  const lines = r.stderr.split('\n').filter((l) => l.trim().length > 0);
  if (lines.length === 0) return 'stderr is empty: expected a one-line error';
  if (lines.length > 1) return `stderr has ${lines.length} lines: expected a one-line error`;
  return null;
}

export interface DumpOptions {
  leaveRunning?: boolean;
  env?: Record<string, string>;
  /** image dir (default: a new dir under the target's root named img-LABEL) */
  dir?: string;
  /** more dump options (--file-locks ...) */
  extraArgs?: string[];
}

export interface DumpRun {
  dir: string;
  res: CryoResult;
}

/**
 * `cryo dump -t PID -D DIR [--leave-running] -v4 -o LOG`. DIR is created first with mode 0700
 * (an existing empty dir is what CRIU's CLI expects; an engine that writes elsewhere and renames
 * over it works too).
 */
export function dump(t: Target, label: string, opts: DumpOptions = {}): DumpRun {
  const dir = opts.dir ?? path.join(t.root, `img-${label}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = path.join(t.root, `dump-${label}.log`);
  const args = ['dump', '-t', String(t.pid), '-D', dir];
  if (opts.leaveRunning) args.push('--leave-running');
  args.push(...(opts.extraArgs ?? []), '-v4', '-o', log);
  return { dir, res: cryo(args, { env: opts.env }) };
}

export interface RestoreRun {
  res: CryoResult;
  pidfile: string;
  /** PID read from the pidfile, null if missing/invalid */
  pidFromFile: number | null;
}

/** `cryo restore -D DIR -d --pidfile FILE -v4 -o LOG`. */
export function restore(t: Target, dir: string, label: string, opts: { env?: Record<string, string>; extraArgs?: string[]; extraFds?: number[] } = {}): RestoreRun {
  const pidfile = path.join(t.root, `pidfile-${label}`);
  fs.rmSync(pidfile, { force: true });
  const log = path.join(t.root, `restore-${label}.log`);
  const res = cryo(['restore', '-D', dir, '-d', '--pidfile', pidfile, ...(opts.extraArgs ?? []), '-v4', '-o', log], { env: opts.env, extraFds: opts.extraFds });
  let pidFromFile: number | null = null;
  try {
    const n = Number(fs.readFileSync(pidfile, 'utf8').trim());
    pidFromFile = Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    // no pidfile
  }
  return { res, pidfile, pidFromFile };
}

/** Step names from `cryo dump|restore --list-fail-steps`; throws a descriptive error otherwise. */
export function listFailSteps(cmd: 'dump' | 'restore'): string[] {
  const r = cryo([cmd, '--list-fail-steps'], { timeoutMs: 30_000 });
  if (r.code !== 0)
    throw new Error(
      `\`cryo ${cmd} --list-fail-steps\` is not available (CRYO_FAIL_AT step names cannot be listed):\n${cryoReport(r)}`,
    );
  const steps = r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (!steps.length) throw new Error(`\`cryo ${cmd} --list-fail-steps\` printed no step names:\n${cryoReport(r)}`);
  const bad = steps.filter((s) => !/^[A-Za-z0-9_.:/-]+$/.test(s));
  if (bad.length) throw new Error(`\`cryo ${cmd} --list-fail-steps\` printed lines that are not step names: ${JSON.stringify(bad)}`);
  return steps;
}

// ---- images ----------------------------------------------------------------------------------

/** Files in an image dir that crit must decode: all regular files but pages-*.img, tmpfs tar streams, *.log and cryo's manifest. */
export function imageFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    // cryo-manifest.json is cryo's own (JSON, not a CRIU image; CRIU ignores it).
    .filter((f) => !/^(pages|ifaddr|route6?|nftables)-\d+\.img$/.test(f) && !/^tmpfs-dev-\d+\.tar\.gz\.img$/.test(f) && !f.endsWith('.log') && f !== 'cryo-manifest.json')
    .sort();
}

function critDecode(file: string): Promise<{ file: string; code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(CRIT, ['decode', '-i', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', (e) => resolve({ file, code: -1, out, err: err + String(e) }));
    p.on('close', (code) => resolve({ file, code, out, err }));
  });
}

/**
 * `crit decode -i FILE` every image in DIR (4 at a time). Throws an Error naming every file that
 * does not decode, with crit's output. Returns the decoded JSON by file name.
 */
export async function critDecodeAll(dir: string): Promise<Map<string, unknown>> {
  const files = imageFiles(dir);
  if (!files.length) throw new Error(`image dir ${dir} holds no images (${JSON.stringify(fs.readdirSync(dir))})`);
  const results: Awaited<ReturnType<typeof critDecode>>[] = [];
  for (let i = 0; i < files.length; i += 4) {
    results.push(...(await Promise.all(files.slice(i, i + 4).map((f) => critDecode(path.join(dir, f))))));
  }
  const decoded = new Map<string, unknown>();
  const problems: string[] = [];
  for (const r of results) {
    const name = path.basename(r.file);
    if (r.code !== 0) {
      problems.push(`${name}: crit exit ${r.code}\n${tail(r.err, 1500)}`);
      continue;
    }
    try {
      decoded.set(name, JSON.parse(r.out));
    } catch (e) {
      problems.push(`${name}: crit output is not JSON (${String(e)})`);
    }
  }
  if (problems.length)
    throw new Error(`crit decode failed for ${problems.length} of ${files.length} image(s) in ${dir}:\n${problems.join('\n')}`);
  return decoded;
}

/** Problems with the modes of an image dir (0700) and its files (0600); [] when fine. */
export function imageModeProblems(dir: string): string[] {
  const out: string[] = [];
  const dm = fs.statSync(dir).mode & 0o777;
  if (dm !== 0o700) out.push(`image dir ${dir} has mode 0${dm.toString(8)}, expected 0700`);
  for (const f of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, f));
    const m = st.mode & 0o777;
    if (st.isFile() && m !== 0o600) out.push(`${f} has mode 0${m.toString(8)}, expected 0600`);
    if (st.isDirectory() && m !== 0o700) out.push(`${f}/ has mode 0${m.toString(8)}, expected 0700`);
  }
  return out;
}

/**
 * Check a single-process dump of PID: the files every such dump has exist, every image decodes
 * with crit, pstree names PID as the only task, modes are 0700/0600. Throws with details.
 */
export async function checkImages(dir: string, pid: number): Promise<void> {
  const files = fs.readdirSync(dir);
  const required = ['inventory.img', 'pstree.img', `core-${pid}.img`, `mm-${pid}.img`, `pagemap-${pid}.img`];
  const missing = required.filter((f) => !files.includes(f));
  if (missing.length) throw new Error(`image dir ${dir} lacks ${missing.join(', ')}; it holds: ${files.sort().join(' ')}`);
  const decoded = await critDecodeAll(dir);
  const pstree = decoded.get('pstree.img') as { entries?: { pid?: number }[] } | undefined;
  const pids = (pstree?.entries ?? []).map((e) => e.pid);
  if (pids.length !== 1 || pids[0] !== pid)
    throw new Error(`pstree.img lists pids ${JSON.stringify(pids)}, expected [${pid}]`);
  const modes = imageModeProblems(dir);
  if (modes.length) throw new Error(`image permissions:\n${modes.join('\n')}`);
}
