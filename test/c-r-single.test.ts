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
// Failure injection and damaged images: c-r-failures.test.ts.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget,
  cleanup,
  cryoReport,
  currentSyscall,
  describePid,
  goAndWaitResult,
  killTarget,
  mapsSnapshot,
  procStat,
  runningProblem,
  sleep,
  startTarget,
  waitFor,
  waitForLine,
  waitPidGone,
  type CryoResult,
  type Target,
} from './lib/index.js';
import { report, dumpOk, restoreOk, killAndWait, checkMaps, startC } from './lib/single.js';

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

const C_TARGETS = ['memory', 'regs', 'tls', 'signals', 'timers', 'ptimers', 'files', 'task', 'vdso', 'rseq', 'evfds', 'sockets', 'inotify', 'fanotify', 'rseqcs', 'fdstate', 'mapstate', 'sleepers', 'seccomp', 'shmem', 'sockopts', 'mdwe', 'guards'];

const SUBJECTS: Subject[] = [
  ...C_TARGETS.map((n) => cTarget(n)),
  cTarget('counter', checkCounterLog),
  sleepSubject,
  loopProgram('python3', ['python3', '-c', PY_SCRIPT]),
  loopProgram('bash', ['bash', '-c', BASH_SCRIPT]),
];

// ---- steps ------------------------------------------------------------------------------------

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
