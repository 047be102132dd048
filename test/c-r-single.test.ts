// Checkpoint/restore of single processes, end to end through the CLI, as root, on the real kernel.
//
// Targets (test/targets/*.c and a few real programs) set up a state, print READY, and after
// restore verify that state themselves when the harness creates a `go` file (PASS / FAIL: ...).
// For every target:
//   baseline                 start -> READY -> go -> PASS with no checkpoint at all (if this
//                            fails, the target or the machine is at fault, not the engine)
//   dump + restore           dump (kills the target), restore, go -> PASS
//   dump --leave-running     dump, the original keeps running; kill it, restore, go -> PASS
//   two cycles               dump + restore twice, then go -> PASS
// After every dump: the usual image files exist, each decodes with crit, pstree names the PID,
// the dir is 0700 and files 0600. After every restore: same PID (also in --pidfile), same
// cmdline, its own session, not stopped or traced; /proc/PID/maps seen from outside equals the
// one before the first dump (targets whose layout is stable).
// Then: failure injection (CRYO_FAIL_AT=<step> for every step listed by
// `cryo dump|restore --list-fail-steps`) and restores from damaged images.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget,
  checkImages,
  cleanup,
  cryoReport,
  currentSyscall,
  describePid,
  diffMaps,
  dump,
  findProcesses,
  goAndWaitResult,
  killTarget,
  listFailSteps,
  mapsSnapshot,
  oneLineErrorProblem,
  pidExists,
  procStat,
  readCwd,
  restore,
  runningProblem,
  sleep,
  startTarget,
  targetReport,
  waitFor,
  waitForLine,
  waitPidGone,
  type CryoResult,
  type Target,
} from './lib/index.js';

// ---- subjects ---------------------------------------------------------------------------------

type Mode = 'baseline' | 'kill' | 'leave-running' | 'two-cycles';

interface VerifyContext {
  mode: Mode;
  /** what subject.mark() returned right after the last restore (or at READY for baseline) */
  mark: number;
}

interface Subject {
  name: string;
  /** start it and wait until it is ready to be checkpointed */
  start(): Promise<Target>;
  /** /proc/PID/maps must not change while it waits (compared before dump / after restore) */
  stableMaps: boolean;
  /** a position in its output, taken right after the last restore */
  mark(t: Target): number;
  /** final check after the last restore; throws (assert) with the full context on failure */
  verify(t: Target, ctx: VerifyContext): Promise<void>;
}

function report(title: string, t: Target, runs: CryoResult[] = []): string {
  return [title, targetReport(t), ...runs.map((r) => cryoReport(r))].join('\n');
}

async function verifyGo(t: Target): Promise<void> {
  const r = await goAndWaitResult(t);
  if (!r.pass) assert.fail(report(`target ${t.name} reported ${r.line}`, t));
}

function cTarget(name: string, extra?: (t: Target, ctx: VerifyContext) => void): Subject {
  return {
    name,
    stableMaps: true,
    async start() {
      const t = await startTarget([buildTarget(name)], { name });
      await waitForLine(t, 'READY');
      return t;
    },
    mark: (t) => t.log().length,
    async verify(t, ctx) {
      await verifyGo(t);
      extra?.(t, ctx);
    },
  };
}

/**
 * counter: the "count N" lines must increase, and the final "count N (go)" must not be below the
 * last of them. For --leave-running only the lines after the restore point count: the original
 * kept printing after the dump until it was killed.
 */
function checkCounterLog(t: Target, ctx: VerifyContext): void {
  const log = t.log();
  const part = ctx.mode === 'leave-running' ? log.slice(ctx.mark) : log;
  const lines = [...part.matchAll(/^count (\d+)( \(go\))?$/gm)].map((m) => ({ n: Number(m[1]), go: !!m[2] }));
  for (let i = 1; i < lines.length; i++) {
    const prev = lines[i - 1]!.n;
    const cur = lines[i]!;
    if (cur.n < prev || (cur.n === prev && !cur.go))
      assert.fail(
        report(
          `counter log goes back from ${prev} to ${cur.n} (` +
            (ctx.mode === 'leave-running'
              ? 'after the restore point'
              : 'the target ran between the memory snapshot and the kill, or memory was rolled back') +
            ')',
          t,
        ),
      );
  }
  const min = ctx.mode === 'leave-running' ? 1 : 3;
  if (lines.length < min) assert.fail(report(`counter printed too few lines to judge (${lines.length})`, t));
}

/** A real program appending increasing integers to ./out (python3, bash). */
function loopProgram(name: string, argv: string[]): Subject {
  const outOf = (t: Target) => path.join(t.dir, 'out');
  const numbers = (t: Target): number[] => {
    let text = '';
    try {
      text = fs.readFileSync(outOf(t), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map(Number);
  };
  return {
    name,
    stableMaps: false,
    async start() {
      const t = await startTarget(argv, { name });
      await waitForLine(t, 'READY');
      if (!(await waitFor(() => numbers(t).length >= 3, 5000)))
        assert.fail(report(`${name} did not start writing ./out`, t));
      return t;
    },
    mark: (t) => numbers(t).length,
    async verify(t, ctx) {
      const n0 = numbers(t).length;
      const grew = await waitFor(() => numbers(t).length >= n0 + 5, 5000);
      const nums = numbers(t);
      const shown = () => `./out: ${nums.length} lines: ${nums.slice(0, 5).join(',')} ... ${nums.slice(-40).join(',')}`;
      if (!grew) assert.fail(report(`${name} stopped appending to ./out (${n0} -> ${nums.length} lines in 5 s)\n${shown()}`, t));
      const problem = runningProblem(t);
      if (problem) assert.fail(report(`${name}: ${problem}`, t));
      if (ctx.mode === 'leave-running') {
        // the original kept writing after the dump; the restored one resumes from the dump point
        const after = nums.slice(ctx.mark);
        for (let i = 1; i < after.length; i++)
          if (after[i] !== after[i - 1]! + 1)
            assert.fail(report(`${name}: numbers after the restore point are not consecutive at ${i}\n${shown()}`, t));
        if (after.length && ctx.mark > 0 && after[0]! > nums[ctx.mark - 1]! + 1)
          assert.fail(report(`${name}: restored process skipped ahead to ${after[0]}\n${shown()}`, t));
      } else {
        for (let i = 0; i < nums.length; i++)
          if (nums[i] !== i + 1)
            assert.fail(
              report(`${name}: ./out line ${i + 1} is ${nums[i]}, expected ${i + 1} (lost, repeated or reset)\n${shown()}`, t),
            );
      }
    },
  };
}

const PY_SCRIPT = [
  'import time',
  "f = open('out', 'a')",
  "print('READY', flush=True)",
  'i = 0',
  'while True:',
  '    i += 1',
  "    f.write('%d\\n' % i)",
  '    f.flush()',
  '    time.sleep(0.05)',
].join('\n');

// bash has no builtin sleep here (no bash-builtins) and `sleep` would fork a child: busy-wait on
// $EPOCHREALTIME instead, so the process stays single and is often dumped outside a syscall.
const BASH_SCRIPT =
  'i=0; echo READY; while :; do i=$((i+1)); echo $i >> out; ' +
  't=$(( ${EPOCHREALTIME/./} + 50000 )); while (( ${EPOCHREALTIME/./} < t )); do :; done; done';

const SLEEP_SYSCALLS = new Set([230 /* clock_nanosleep */, 35 /* nanosleep */, 219 /* restart_syscall */]);

const sleepSubject: Subject = {
  name: 'sleep',
  stableMaps: true,
  async start() {
    const t = await startTarget(['sleep', '1000'], { name: 'sleep' });
    if (!(await waitFor(() => procStat(t.pid)?.state === 'S' && currentSyscall(t.pid) === 230, 5000)))
      assert.fail(report('sleep 1000 did not reach clock_nanosleep', t));
    return t;
  },
  mark: () => 0,
  async verify(t) {
    const sleeping = await waitFor(() => procStat(t.pid)?.state === 'S', 2000);
    if (!sleeping) assert.fail(report(`sleep is not sleeping after restore: ${describePid(t.pid)}`, t));
    await sleep(300);
    const problem = runningProblem(t);
    if (problem) assert.fail(report(`sleep: ${problem}`, t));
    const st = procStat(t.pid);
    const sc = currentSyscall(t.pid);
    if (st?.state !== 'S' || sc === null || !SLEEP_SYSCALLS.has(sc))
      assert.fail(report(`sleep is not back in a sleeping syscall: state ${st?.state}, syscall ${sc}`, t));
  },
};

const C_TARGETS = ['memory', 'regs', 'tls', 'signals', 'timers', 'ptimers', 'files', 'task', 'vdso', 'rseq', 'evfds', 'sockets', 'inotify', 'fanotify', 'rseqcs', 'fdstate', 'mapstate', 'sleepers', 'seccomp'];

const SUBJECTS: Subject[] = [
  ...C_TARGETS.map((n) => cTarget(n)),
  cTarget('counter', checkCounterLog),
  sleepSubject,
  loopProgram('python3', ['python3', '-c', PY_SCRIPT]),
  loopProgram('bash', ['bash', '-c', BASH_SCRIPT]),
];

// ---- steps ------------------------------------------------------------------------------------

async function dumpOk(t: Target, label: string, runs: CryoResult[], leaveRunning = false): Promise<string> {
  const d = dump(t, label, { leaveRunning });
  runs.push(d.res);
  if (d.res.code !== 0) assert.fail(report(`dump ${label} of ${t.name} failed`, t, runs));
  try {
    await checkImages(d.dir, t.pid);
  } catch (e) {
    assert.fail(report(`images of dump ${label}: ${(e as Error).message}`, t, runs));
  }
  if (leaveRunning) {
    await sleep(50);
    const p = runningProblem(t);
    if (p) assert.fail(report(`after dump --leave-running the original is not running normally: ${p}`, t, runs));
    if (/^FAIL/m.test(t.log())) assert.fail(report('the original reported FAIL after dump --leave-running', t, runs));
  } else if (!(await waitPidGone(t.pid))) {
    assert.fail(
      report(`dump ${label} (without --leave-running) exited 0 but PID ${t.pid} is still there: ${describePid(t.pid)}`, t, runs),
    );
  }
  return d.dir;
}

async function restoreOk(t: Target, dir: string, label: string, runs: CryoResult[]): Promise<void> {
  if (pidExists(t.pid)) assert.fail(report(`PID ${t.pid} is not free before restore ${label}: ${describePid(t.pid)}`, t, runs));
  const r = restore(t, dir, label);
  runs.push(r.res);
  if (r.res.code !== 0) assert.fail(report(`restore ${label} of ${t.name} failed`, t, runs));
  if (r.pidFromFile !== t.pid)
    assert.fail(report(`--pidfile holds ${r.pidFromFile}, expected the original PID ${t.pid}`, t, runs));
  const p = runningProblem(t);
  if (p) assert.fail(report(`after restore ${label}: ${p}`, t, runs));
}

async function killAndWait(t: Target, runs: CryoResult[]): Promise<void> {
  if (!killTarget(t)) assert.fail(report(`cannot kill ${describePid(t.pid)}: not our target`, t, runs));
  if (!(await waitPidGone(t.pid))) assert.fail(report(`killed PID ${t.pid} did not go away: ${describePid(t.pid)}`, t, runs));
}

function checkMaps(t: Target, before: string[], when: string, runs: CryoResult[]): void {
  const d = diffMaps(before, mapsSnapshot(t.pid));
  if (d) assert.fail(report(`/proc/${t.pid}/maps ${when} differs from before the dump: ${d}`, t, runs));
}

async function scenario(s: Subject, mode: Exclude<Mode, 'baseline'>): Promise<void> {
  const t = await s.start();
  const runs: CryoResult[] = [];
  const maps0 = mapsSnapshot(t.pid);
  if (mode === 'kill') {
    const dir = await dumpOk(t, 'a', runs);
    await restoreOk(t, dir, 'a', runs);
  } else if (mode === 'leave-running') {
    const dir = await dumpOk(t, 'b', runs, true);
    await killAndWait(t, runs);
    await restoreOk(t, dir, 'b', runs);
  } else {
    for (const label of ['c1', 'c2']) {
      const dir = await dumpOk(t, label, runs);
      await restoreOk(t, dir, label, runs);
      await sleep(150);
      const p = runningProblem(t);
      if (p) assert.fail(report(`150 ms after restore ${label}: ${p}`, t, runs));
      if (/^FAIL/m.test(t.log())) assert.fail(report(`target reported FAIL after restore ${label} (before go)`, t, runs));
    }
  }
  if (s.stableMaps) checkMaps(t, maps0, 'after restore', runs);
  const mark = s.mark(t);
  try {
    await s.verify(t, { mode, mark });
  } catch (e) {
    // add what cryo said (shorter log tails: the target's verdict is the main information)
    assert.fail(`${(e as Error).message}\n${runs.map((r) => cryoReport(r, 3000)).join('\n')}`);
  }
}

// ---- per-target tests -------------------------------------------------------------------------

after(cleanup);

describe('baseline: targets pass without checkpointing', () => {
  after(cleanup);
  for (const s of SUBJECTS) {
    it(s.name, { timeout: 60_000 }, async () => {
      const t = await s.start();
      await sleep(100);
      await s.verify(t, { mode: 'baseline', mark: s.mark(t) });
    });
  }
});

for (const s of SUBJECTS) {
  describe(`c/r ${s.name}`, () => {
    after(cleanup);
    it('dump (kill) + restore', { timeout: 120_000 }, () => scenario(s, 'kill'));
    it('dump --leave-running, kill the original, restore', { timeout: 120_000 }, () => scenario(s, 'leave-running'));
    it('two consecutive dump + restore cycles', { timeout: 180_000 }, () => scenario(s, 'two-cycles'));
  });
}

describe('cgroups', () => {
  after(cleanup);
  it('a process in cgroups of its own (v2 and the v1 pids controller) comes back in them, made again if gone', { timeout: 120_000 }, async () => {
    const t = await startC('counter');
    const name = `cryo-t-${t.pid}`;
    const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
    const dirs = [v2, '/sys/fs/cgroup/pids'].filter((d) => fs.existsSync(`${d}/cgroup.procs`)).map((d) => `${d}/${name}`);
    assert.ok(dirs.length > 0, 'no cgroup hierarchy to test with');
    try {
      for (const d of dirs) {
        fs.mkdirSync(d);
        fs.writeFileSync(`${d}/cgroup.procs`, String(t.pid));
      }
      const runs: CryoResult[] = [];
      const dir = await dumpOk(t, 'cg', runs);
      for (const d of dirs) fs.rmdirSync(d); // gone by the time of the restore: made again
      await restoreOk(t, dir, 'cg', runs);
      const cg = fs.readFileSync(`/proc/${t.pid}/cgroup`, 'utf8');
      if (dirs[0]!.startsWith(v2)) assert.match(cg, new RegExp(`^0::/${name}$`, 'm'), cg);
      if (dirs.some((d) => d.includes('/pids/'))) assert.match(cg, new RegExp(`:pids:/${name}$`, 'm'), cg);
      await verifyGo(t);
    } finally {
      killTarget(t);
      await waitPidGone(t.pid);
      for (const d of dirs) if (fs.existsSync(d)) fs.rmdirSync(d);
    }
  });
});

describe('waits resumed through restart_syscall', () => {
  after(cleanup);
  // A stop and continue (job control, or a --leave-running dump) makes the kernel resume each
  // timed wait through restart_syscall: the next dump finds that, not the original call.
  it('sleepers stopped and continued before the dump see no EINTR after restore', { timeout: 120_000 }, async () => {
    const t = await startC('sleepers');
    process.kill(t.pid, 'SIGSTOP');
    await sleep(50);
    process.kill(t.pid, 'SIGCONT');
    await sleep(100);
    const runs: CryoResult[] = [];
    const dir = await dumpOk(t, 'a', runs);
    await restoreOk(t, dir, 'a', runs);
    await verifyGo(t);
  });
});

// ---- failure injection ------------------------------------------------------------------------

/**
 * Processes left behind by a failed restore: the PID itself, or any process whose cwd is inside
 * this target's temp dir (not matched by cmdline: another test run may be using the same
 * cached binary at the same time).
 */
function leftovers(t: Target): number[] {
  return findProcesses((pid) => {
    if (pid === t.pid) return true;
    if (pid === process.pid) return false;
    const cwd = readCwd(pid);
    return cwd !== null && (cwd === t.root || cwd.startsWith(t.root + '/'));
  });
}

async function assertNoLeftovers(t: Target, what: string, runs: CryoResult[]): Promise<void> {
  if (await waitFor(() => leftovers(t).length === 0, 15000, 50)) return;
  const l = leftovers(t);
  assert.fail(report(`${what} left process(es) behind after 15 s:\n${l.map(describePid).join('\n')}`, t, runs));
}

const FAIL_TARGETS = ['memory', 'regs'];

async function startC(name: string): Promise<Target> {
  const t = await startTarget([buildTarget(name)], { name });
  await waitForLine(t, 'READY');
  return t;
}

describe('failure injection: a failed dump leaves the target running and intact', () => {
  after(cleanup);
  for (const name of FAIL_TARGETS) {
    it(name, { timeout: 600_000 }, async (tt) => {
      const steps = listFailSteps('dump'); // throws (fails this test) when the CLI lacks it
      for (const step of steps) {
        await tt.test(`CRYO_FAIL_AT=${step}`, { timeout: 60_000 }, async () => {
          const t = await startC(name);
          const runs: CryoResult[] = [];
          const maps0 = mapsSnapshot(t.pid);
          const d = dump(t, `fail-${step}`, { env: { CRYO_FAIL_AT: step } });
          runs.push(d.res);
          if (d.res.code === 0) assert.fail(report(`dump with CRYO_FAIL_AT=${step} exited 0`, t, runs));
          const one = oneLineErrorProblem(d.res);
          if (one) assert.fail(report(`failed dump (CRYO_FAIL_AT=${step}): ${one}`, t, runs));
          await sleep(100);
          const p = runningProblem(t);
          if (p) assert.fail(report(`after the failed dump (CRYO_FAIL_AT=${step}) the target is not running normally: ${p}`, t, runs));
          checkMaps(t, maps0, `after the failed dump (CRYO_FAIL_AT=${step})`, runs);
          const r = await goAndWaitResult(t);
          if (!r.pass) assert.fail(report(`after the failed dump (CRYO_FAIL_AT=${step}) the target reported ${r.line}`, t, runs));
        });
      }
    });
  }
});

describe('failure injection: a failed restore leaves no process behind', () => {
  after(cleanup);
  for (const name of FAIL_TARGETS) {
    it(name, { timeout: 900_000 }, async (tt) => {
      const steps = listFailSteps('restore');
      const t = await startC(name);
      const runs: CryoResult[] = [];
      const dir = await dumpOk(t, 'base', runs);
      for (const step of steps) {
        await tt.test(`CRYO_FAIL_AT=${step}`, { timeout: 60_000 }, async () => {
          const stepRuns = [...runs];
          const r = restore(t, dir, `fail-${step}`, { env: { CRYO_FAIL_AT: step } });
          stepRuns.push(r.res);
          if (r.res.code === 0) {
            killTarget(t);
            await waitPidGone(t.pid);
            assert.fail(report(`restore with CRYO_FAIL_AT=${step} exited 0`, t, stepRuns));
          }
          const one = oneLineErrorProblem(r.res);
          await assertNoLeftovers(t, `restore with CRYO_FAIL_AT=${step}`, stepRuns);
          if (one) assert.fail(report(`failed restore (CRYO_FAIL_AT=${step}): ${one}`, t, stepRuns));
        });
      }
      // the images are still good and the failed attempts did not spoil anything
      await assertNoLeftovers(t, 'the failed restores', runs);
      await restoreOk(t, dir, 'after-failures', runs);
      const r = await goAndWaitResult(t);
      if (!r.pass) assert.fail(report(`restore after the failed attempts: target reported ${r.line}`, t, runs));
    });
  }
});

// ---- damaged images ---------------------------------------------------------------------------

interface Damage {
  name: string;
  apply(dir: string, pid: number): void;
}

function u32At(file: string, offset: number): number {
  return fs.readFileSync(file).readUInt32LE(offset);
}

function setU32(file: string, offset: number, value: number): void {
  const b = fs.readFileSync(file);
  b.writeUInt32LE(value >>> 0, offset);
  fs.writeFileSync(file, b);
}

/** Deterministic garbage (xorshift32). */
function garbage(n: number, seed = 0x12345678): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function firstPagesFile(dir: string): string {
  const f = fs
    .readdirSync(dir)
    .filter((n) => /^pages-\d+\.img$/.test(n))
    .sort()[0];
  if (!f) throw new Error(`no pages-*.img in ${dir}`);
  return path.join(dir, f);
}

const DAMAGES: Damage[] = [
  {
    name: 'truncated core-PID.img',
    apply: (dir, pid) => {
      const f = path.join(dir, `core-${pid}.img`);
      fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2));
    },
  },
  { name: 'wrong magic in inventory.img', apply: (dir) => setU32(path.join(dir, 'inventory.img'), 0, 0xdeadbeef) },
  {
    // a valid magic, but the one of another image type (mm)
    name: 'core-PID.img carrying the mm image magic',
    apply: (dir, pid) => setU32(path.join(dir, `core-${pid}.img`), 4, u32At(path.join(dir, `mm-${pid}.img`), 4)),
  },
  { name: 'missing pagemap-PID.img', apply: (dir, pid) => fs.rmSync(path.join(dir, `pagemap-${pid}.img`)) },
  { name: 'missing mm-PID.img', apply: (dir, pid) => fs.rmSync(path.join(dir, `mm-${pid}.img`)) },
  {
    name: 'garbage after the magic in inventory.img',
    apply: (dir) => {
      const f = path.join(dir, 'inventory.img');
      const b = fs.readFileSync(f);
      garbage(b.length - 4).copy(b, 4);
      fs.writeFileSync(f, b);
    },
  },
  {
    name: 'truncated pages-N.img (fewer pages than pagemap promises)',
    apply: (dir) => {
      const f = firstPagesFile(dir);
      const size = fs.statSync(f).size;
      fs.truncateSync(f, Math.max(0, size - 2 * 4096));
    },
  },
];

describe('damaged images: restore fails cleanly', () => {
  after(cleanup);
  it('memory', { timeout: 600_000 }, async (tt) => {
    const t = await startC('memory');
    const runs: CryoResult[] = [];
    const dir = await dumpOk(t, 'pristine', runs);
    for (const dmg of DAMAGES) {
      await tt.test(dmg.name, { timeout: 60_000 }, async () => {
        const bad = path.join(t.root, `img-bad-${DAMAGES.indexOf(dmg)}`);
        fs.cpSync(dir, bad, { recursive: true });
        dmg.apply(bad, t.pid);
        const stepRuns = [...runs];
        const r = restore(t, bad, `bad-${DAMAGES.indexOf(dmg)}`);
        stepRuns.push(r.res);
        if (r.res.code === 0) {
          killTarget(t);
          await waitPidGone(t.pid);
          assert.fail(report(`restore from images with ${dmg.name} exited 0`, t, stepRuns));
        }
        await assertNoLeftovers(t, `restore from images with ${dmg.name}`, stepRuns);
        const one = oneLineErrorProblem(r.res);
        if (one) assert.fail(report(`restore from images with ${dmg.name}: ${one}`, t, stepRuns));
      });
    }
    await assertNoLeftovers(t, 'the restores from damaged images', runs);
    await restoreOk(t, dir, 'pristine', runs);
    const r = await goAndWaitResult(t);
    if (!r.pass) assert.fail(report(`restore from the pristine images: target reported ${r.line}`, t, runs));
  });
});
