// The image fuzzer: seeded mutations (test/lib/mutate.ts) of a real checkpoint of a process tree
// with data in flight (test/targets/pipes.c), each restored through the CLI. Two modes:
//  - cryo: the images as cryo wrote them (manifest, pages checksummed with --verify-pages). A
//    restore either refuses with one line, or restores a tree that passes its own self-check.
//  - criu: the same images without cryo-manifest.json, as CRIU would have written them: only the
//    decoders and graph checks stand between the damage and the kernel. A mutation of data the
//    images cannot vouch for (a byte of memory, the contents of a pipe) restores "successfully"
//    by design there, so a restore that succeeds is not judged; the tree is killed.
// In both: no crash (a stack trace or anything but one `cryo: ...` line), no hang, no process
// left behind by a failed restore. Every failure prints a one-line reproduction.
// CRYO_FUZZ_N=cases (default 160), CRYO_FUZZ_SEED=base seed (default 1), CRYO_FUZZ_CASE=one case.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  buildTarget, cleanup, cryo, cryoReport, dump, findProcesses, readCwd, sleep, startTarget, waitFor, waitForLine, type CryoResult, type Target,
} from './lib/index.js';
import { descendants } from './lib/tree.js';
import { Rng, mutate } from './lib/mutate.js';

const N = Number(process.env.CRYO_FUZZ_N ?? 160);
const SEED = Number(process.env.CRYO_FUZZ_SEED ?? 1);
const ONLY = process.env.CRYO_FUZZ_CASE === undefined ? undefined : Number(process.env.CRYO_FUZZ_CASE);
type Mode = 'cryo' | 'criu';

let t: Target;
let bin: string;
let pristine: string;

/** A process of our target's: runs its binary or in its temp dir (never anything else). */
function ours(pid: number): boolean {
  if (pid === process.pid) return false;
  const cwd = readCwd(pid);
  if (cwd !== null && cwd.startsWith(t.root)) return true;
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) === bin;
  } catch {
    return false;
  }
}

async function killOurs(): Promise<void> {
  for (const pid of findProcesses(ours)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitFor(() => findProcesses(ours).length === 0, 15_000, 20);
}

/** What is wrong with a failed restore's output: one `cryo: ` line, no stack trace. */
function messageProblem(r: CryoResult): string | null {
  const lines = r.stderr.split('\n').filter((l) => l.trim());
  if (lines.length !== 1) return `${lines.length} lines of error output (a crash?): ${JSON.stringify(r.stderr.slice(0, 600))}`;
  if (!/^(cryo|error): /.test(lines[0]!)) return `error output is not a cryo error line: ${lines[0]}`;
  return null;
}

/** Runs one case; returns a problem (one line) or null. */
async function runCase(i: number, mode: Mode): Promise<{ what: string; problem: string | null; restored: boolean }> {
  const dir = path.join(t.root, `fuzz-${i}`);
  fs.cpSync(pristine, dir, { recursive: true });
  if (mode === 'criu') fs.rmSync(path.join(dir, 'cryo-manifest.json'));
  // Case -1: the pristine images themselves.
  const what = i < 0 ? 'none' : (mutate(dir, new Rng(SEED * 100_003 + i)) ?? 'no mutation applicable');
  fs.rmSync(path.join(t.dir, 'go'), { force: true });
  fs.writeFileSync(t.logPath, '');
  const pidfile = path.join(t.root, 'fuzz.pid');
  fs.rmSync(pidfile, { force: true });
  try {
    const r = cryo(['restore', '-D', dir, '-d', '--pidfile', pidfile], { timeoutMs: 30_000, env: { CRYO_PID_WAIT_MS: '5000' } });
    if (r.timedOut) return { what, problem: 'restore hung (killed after 30 s)', restored: false };
    if (r.code !== 0) {
      const msg = messageProblem(r);
      if (msg) return { what, problem: msg, restored: false };
      if (i < 0) return { what, problem: `the pristine images do not restore: ${r.stderr.trim()}`, restored: false };
      // A failed detached restore kills what it made; init reaps it (slowly, here).
      if (!(await waitFor(() => findProcesses(ours).length === 0, 10_000, 20))) {
        return { what, problem: `processes left behind by a failed restore: ${findProcesses(ours).join(' ')} (${r.stderr.trim()})`, restored: false };
      }
      return { what, problem: null, restored: false };
    }
    if (mode === 'criu') return { what, problem: null, restored: true };
    fs.writeFileSync(path.join(t.dir, 'go'), '');
    let line: string;
    try {
      line = await waitForLine(t, ['PASS', 'FAIL'], 15_000);
    } catch (e) {
      return { what, problem: `restore succeeded but the tree did not report: ${(e as Error).message.split('\n')[0]}`, restored: true };
    }
    if (!line.startsWith('PASS')) return { what, problem: `restore succeeded but the tree reported ${line}`, restored: true };
    return { what, problem: null, restored: true };
  } finally {
    await killOurs();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('image fuzzer', { concurrency: false }, () => {
  before(async () => {
    bin = buildTarget('pipes');
    t = await startTarget([bin], { name: 'pipes' });
    await waitForLine(t, 'READY', 30_000);
    const pids = descendants(t.pid);
    const d = dump(t, 'pristine', { extraArgs: ['--verify-pages'] });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    pristine = d.dir;
    for (const pid of pids) assert.ok(await waitFor(() => !fs.existsSync(`/proc/${pid}`), 15_000), `pid ${pid} gone after the dump`);
    // The pristine images restore and pass: a failure below is the mutation's.
    const ok = await runCase(-1, 'cryo');
    assert.equal(ok.problem, null, `the unmutated images: ${ok.problem}`);
    assert.ok(ok.restored, 'the unmutated images restore');
  });
  after(async () => {
    if (t) await killOurs();
    await cleanup();
  });

  for (const mode of ['cryo', 'criu'] as const) {
    it(`${mode} images: ${ONLY === undefined ? Math.ceil(N / 2) : 'one'} mutations, no crash, hang or stray process${mode === 'cryo' ? ', no restore that fails its check' : ''}`, { timeout: 600_000 }, async () => {
      const failures: string[] = [];
      let restored = 0;
      const cases = ONLY === undefined ? Array.from({ length: N }, (_, i) => i).filter((i) => (i % 2 === 0) === (mode === 'cryo')) : [ONLY];
      for (const i of cases) {
        if (ONLY !== undefined && (i % 2 === 0) !== (mode === 'cryo')) continue;
        const res = await runCase(i, mode);
        if (res.restored) restored++;
        if (process.env.CRYO_FUZZ_VERBOSE) process.stdout.write(`# case ${i} (${mode}): ${res.what}: ${res.restored ? 'restored' : 'refused'}${res.problem ? ` PROBLEM ${res.problem}` : ''}\n`);
        if (res.problem) {
          failures.push(`case ${i} (${mode}): ${res.what}: ${res.problem} — reproduce: CRYO_FUZZ_SEED=${SEED} CRYO_FUZZ_CASE=${i} node --test --test-concurrency=1 dist/test/image-fuzz.test.js`);
        }
        await sleep(0);
      }
      process.stdout.write(`# fuzz ${mode}: ${cases.length} cases, ${restored} restored, ${failures.length} failures\n`);
      assert.deepEqual(failures, [], failures.join('\n'));
    });
  }
});
