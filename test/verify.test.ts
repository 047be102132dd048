// Restore verifies before it resumes, and dump --leave-running proves its target unchanged.
//
// - the pure parts: /proc/PID/limits parsing and the snapshot comparison;
// - the observer sees a change made to a running target from outside (what the --leave-running
//   proof relies on), and sees nothing once it is undone;
// - fault injection: CRYO_SKIP=<step> makes the restore leave one thing out; the verification
//   refuses the restore naming the difference, and nothing of the tree is left; with
//   --verify=warn the tree is restored, running, and the difference printed;
// - every C target of the c/r tests, dumped with --leave-running: the before/after comparison
//   runs, finds nothing, and the target then reports PASS.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  cleanupTrees, cryo, cryoReport, dump, dumpAndKill, descendants, expectPass, findProcesses, goAndWaitResult, oneLineErrorProblem,
  procStat, readCwd, readyTarget, readyPython, runningProblem, statusField, targetReport, waitFor, waitPidGone, type Target,
} from './lib/index.js';
import { parseLimits, RLIM_INFINITY } from '../src/proc/limits.js';
import { diffSnapshots, formatDifference, type Snapshot, type Value } from '../src/resources/observe/snapshot.js';
import { snapshotTree, treeChanges } from '../src/dump/unchanged.js';
import { prlimit } from '../src/sys/index.js';
import { readCheckpoint } from '../src/restore/images.js';
import { expectedSnapshot } from '../src/restore/verify-expect.js';
import { FIXTURES } from './lib/build.js';

after(cleanupTrees);

const RLIMIT_NOFILE = 7;

describe('verify: pure parts', () => {
  it('parseLimits reads every row: names with spaces, numbers, unlimited', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max cpu time              unlimited            unlimited            seconds   ',
      'Max open files            1024                 4096                 files     ',
      'Max nice priority         0                    0                    ',
    ].join('\n');
    assert.deepEqual(parseLimits(text), [
      { name: 'Max cpu time', cur: RLIM_INFINITY, max: RLIM_INFINITY },
      { name: 'Max open files', cur: 1024n, max: 4096n },
      { name: 'Max nice priority', cur: 0n, max: 0n },
    ]);
  });

  it('diffSnapshots names a missing flag, an unexpected one, a changed value, a lower bound and an absent key', () => {
    const expected: Snapshot = new Map<string, Value>([
      ['fd 3 (pipe)', { set: ['O_RDONLY', 'O_NONBLOCK'] }],
      ['mapping 1000-2000 VmFlags', { set: ['dd'], only: ['dd', 'dc'] }],
      ['SigBlk', { set: [] }],
      ['pgid', '42'],
      ['fd 4 (timerfd) ticks', { atLeast: 3n }],
      ['fd 5 (file) pos', '10'],
    ]);
    const got: Snapshot = new Map<string, Value>([
      ['fd 3 (pipe)', { set: ['O_RDONLY'] }],
      ['mapping 1000-2000 VmFlags', { set: ['rd', 'wr', 'dd', 'dc'] }],
      ['SigBlk', { set: ['SIGUSR1'] }],
      ['pgid', '43'],
      ['fd 4 (timerfd) ticks', '2'],
      ['cwd', '/'],
    ]);
    const lines = diffSnapshots(42, expected, got, { keys: 'expected' }).map(formatDifference);
    assert.deepEqual(lines, [
      'pid 42 fd 3 (pipe): O_NONBLOCK expected, absent',
      'pid 42 mapping 1000-2000 VmFlags: no dc expected, dc',
      'pid 42 SigBlk: no SIGUSR1 expected, SIGUSR1',
      'pid 42 pgid: 42 expected, 43',
      'pid 42 fd 4 (timerfd) ticks: >= 3 expected, 2',
      'pid 42 fd 5 (file) pos: 10 expected, absent',
    ]);
    // Both ways (the --leave-running comparison): what only the second snapshot has counts too.
    const both = diffSnapshots(42, new Map([['pgid', '42']]), new Map([['pgid', '42'], ['cwd', '/']]), { keys: 'both' });
    assert.deepEqual(both.map(formatDifference), ['pid 42 cwd: absent expected, /']);
  });

  it('--leave-running leaves out what a running target changes itself, and nothing else', () => {
    const snap = (pos1: string, pos3: string, pending: string[], ticks: string): Snapshot =>
      new Map<string, Value>([
        ['fd 1 (file)', { set: ['O_WRONLY', 'O_APPEND'] }],
        ['fd 1 (file) pos', pos1],
        ['fd 3 (file)', { set: ['O_RDWR'] }],
        ['fd 3 (file) pos', pos3],
        ['tid 43 SigPnd', { set: pending }],
        ['ShdPnd', { set: pending }],
        ['fd 4 (timerfd) ticks', ticks],
      ]);
    const before = new Map([[42, snap('10', '0', [], '1')]]);
    assert.deepEqual(treeChanges(before, new Map([[42, snap('99', '0', ['SIGALRM'], '5')]])), [], 'appends, signals in flight, expirations');
    const moved = treeChanges(before, new Map([[42, snap('10', '7', [], '1')]])).map(formatDifference);
    assert.deepEqual(moved, ['pid 42 fd 3 (file) pos: 0 expected, 7']);
    // Processes that end or start meanwhile are the program's business (a churning tree).
    assert.deepEqual(treeChanges(before, new Map([[43, snap('10', '0', [], '1')]])).map(formatDifference), []);
  });

  it('what a CRIU 4.2 image says a restore must show: only what it records', () => {
    const ckpt = readCheckpoint(path.join(FIXTURES, 'py-threads-pipe-socket'));
    const img = ckpt.tasks[0]!;
    const s = expectedSnapshot(ckpt, img, undefined);
    assert.deepEqual(s.get('threads'), { set: ['24803', '24805', '24806', '24807'] });
    assert.deepEqual(s.get('SigIgn'), { set: ['SIGINT', 'SIGQUIT', 'SIGPIPE', 'SIGXFSZ'] });
    assert.deepEqual(s.get('fd 3 (pipe)'), { set: ['O_RDONLY', 'FD_CLOEXEC'] });
    assert.equal(s.get('fd 5 (socket) SO_RCVBUF'), '212992');
    // CRIU 4.2 writes no so_mark for a unix socket: nothing is expected of it.
    assert.equal(s.has('fd 5 (socket) SO_MARK'), false);
    assert.equal(s.get('fd 0 (device) path'), '/dev/null');
    // One range per VMA of mm.img, but the kernel's own ([vvar], [vdso] ...): where the restore
    // maps them (resources/mm/vdso-image.ts), in the running kernel's layout.
    const kernel = img.mm.vmas.filter((v) => v.status & ((1 << 3) | (1 << 12))).length;
    const vmas = img.mm.vmas.length - kernel + img.memory.vdso!.mapped.length;
    assert.equal((s.get('mappings') as { set: string[] }).set.length, vmas, 'one range per VMA of mm.img');
  });
});

describe('the observer sees a running target changed from outside', () => {
  it('a lowered RLIMIT_NOFILE is named; once undone, nothing is', async () => {
    const t = await readyTarget('memory');
    const before = snapshotTree(t.pid);
    assert.equal(before.size, 1);
    assert.deepEqual(treeChanges(before, snapshotTree(t.pid)).map(formatDifference), [], 'two snapshots of an idle target');
    const old = prlimit(t.pid, RLIMIT_NOFILE);
    prlimit(t.pid, RLIMIT_NOFILE, { cur: 100n, max: old.max });
    try {
      const lines = treeChanges(before, snapshotTree(t.pid)).map(formatDifference);
      assert.deepEqual(lines, [`pid ${t.pid} limit Max open files: ${old.cur}/${old.max} expected, 100/${old.max}`]);
    } finally {
      prlimit(t.pid, RLIMIT_NOFILE, old);
    }
    assert.deepEqual(treeChanges(before, snapshotTree(t.pid)).map(formatDifference), []);
    await expectPass(t);
  });
});

// ---- fault injection ------------------------------------------------------------------------

/** `cryo restore -D DIR -d ARGS -v4 -o LOG` with `env`. */
function restoreWith(t: Target, dir: string, label: string, args: string[], env: Record<string, string>) {
  return cryo(['restore', '-D', dir, '-d', ...args, '-v4', '-o', path.join(t.root, `restore-${label}.log`)], { env });
}

/** Processes of this target's tree: its PIDs, or anything running in its temp dir. */
function leftovers(t: Target, pids: number[]): number[] {
  return findProcesses((pid) => {
    if (pids.includes(pid)) return true;
    if (pid === process.pid) return false;
    const cwd = readCwd(pid);
    return cwd !== null && (cwd === t.root || cwd.startsWith(t.root + '/'));
  });
}

const SKIPS = [
  { step: 'pipe-nonblock', target: 'pipes', difference: /pid \d+ fd \d+ \(pipe\): O_NONBLOCK expected, absent/ },
  // The VMA left writable merges with its writable neighbour: it is named as gone.
  { step: 'mprotect', target: 'memory', difference: /pid \d+ mapping [0-9a-f]+-[0-9a-f]+: r-.p expected, (rw.p|absent)/ },
  { step: 'sigaction', target: 'signals', difference: /pid \d+ SigCgt: SIG\w+ expected, absent/ },
  { step: 'sk-rcvbuf', target: 'sockets', difference: /pid \d+ fd \d+ \(socket\) SO_RCVBUF: 200000 expected, \d+/ },
  { step: 'sk-proto-opts', target: 'sockopts', difference: /pid \d+ fd \d+ \(socket\) (IP|IPV6|SO|TCP|UDP)_\w+: \S+ expected, \S+/ },
];

describe('fault injection: a restore that gets one thing wrong', () => {
  it('restore --list-skip-steps lists the CRYO_SKIP steps', () => {
    const r = cryo(['restore', '--list-skip-steps']);
    assert.equal(r.code, 0, cryoReport(r));
    // scratch-unmap is shown by the dump's tests, netns-route by c-r-netns, mnt-propagation by
    // c-r-mnt-propagation, userns-owner by c-r-userns.
    assert.deepEqual(r.stdout.trim().split('\n'), [...SKIPS.map((s) => s.step), 'scratch-unmap', 'netns-route', 'mnt-propagation', 'userns-owner']);
  });

  for (const s of SKIPS) {
    it(`CRYO_SKIP=${s.step} (${s.target}): refused with the difference named, nothing left; --verify=warn runs it and prints it; =off is silent`, { timeout: 120_000 }, async () => {
      const t = await readyTarget(s.target);
      const pids = descendants(t.pid);
      const { dir } = await dumpAndKill(t, pids);

      const refused = restoreWith(t, dir, 'on', [], { CRYO_SKIP: s.step });
      assert.notEqual(refused.code, 0, `restore with CRYO_SKIP=${s.step} succeeded\n${cryoReport(refused)}`);
      assert.match(refused.stderr, s.difference, cryoReport(refused));
      assert.match(refused.stderr, /nothing was resumed/, cryoReport(refused));
      assert.equal(oneLineErrorProblem(refused), null, cryoReport(refused));
      const clean = await waitFor(() => leftovers(t, pids).length === 0, 15_000, 50);
      assert.ok(clean, `left behind after the refused restore: ${leftovers(t, pids).join(', ')}\n${cryoReport(refused)}`);

      const warned = restoreWith(t, dir, 'warn', ['--verify=warn'], { CRYO_SKIP: s.step });
      assert.equal(warned.code, 0, cryoReport(warned));
      assert.match(warned.stderr, new RegExp(`restored state differs: ${s.difference.source}`), cryoReport(warned));
      const restored = descendants(t.pid);
      assert.deepEqual([...restored].sort(), [...pids].sort(), 'the whole tree is back');
      assert.equal(runningProblem(t), null, `${cryoReport(warned)}\n${targetReport(t)}`);
      for (const pid of restored) assert.equal(statusField(pid, 'TracerPid'), '0', `pid ${pid} is still traced`);
      for (const pid of restored) process.kill(pid, 'SIGKILL');
      for (const pid of restored) assert.ok(await waitPidGone(pid), `pid ${pid} did not go away`);

      // --verify=off: the same wrong restore goes through without a word.
      const unchecked = restoreWith(t, dir, 'off', ['--verify=off'], { CRYO_SKIP: s.step });
      assert.equal(unchecked.code, 0, cryoReport(unchecked));
      assert.doesNotMatch(unchecked.stderr, /differs/, cryoReport(unchecked));
      assert.equal(runningProblem(t), null, `${cryoReport(unchecked)}\n${targetReport(t)}`);
      const again = descendants(t.pid);
      for (const pid of again) process.kill(pid, 'SIGKILL');
      for (const pid of again) assert.ok(await waitPidGone(pid), `pid ${pid} did not go away`);
    });
  }
});

// ---- --leave-running ----------------------------------------------------------------------------

/**
 * Every C target of c-r-single and c-r-tree but the refused-by-design ones (iouring, vforkwait).
 * threads' poll and nanosleep threads end on their own a few seconds after it starts: the proof
 * is taken under the freeze, so its thread set is fixed while it is compared.
 */
const LEAVE_RUNNING: { name: string; args?: string[]; dumpArgs?: string[] }[] = [
  ...['memory', 'regs', 'tls', 'signals', 'timers', 'files', 'task', 'vdso', 'rseq', 'evfds', 'sockets', 'inotify', 'fanotify', 'rseqcs', 'counter', 'threads', 'mdwe', 'sockopts', 'shmem'].map((name) => ({ name })),
  ...['orphans', 'pipes', 'ghost', 'fifo', 'memfd', 'clonefiles', 'sysvshm', 'clonevm'].map((name) => ({ name })),
  { name: 'locks', dumpArgs: ['--file-locks'] },
  { name: 'tree', args: ['16'] },
];

/** dump --leave-running: exit 0, the comparison ran and found nothing, the tree runs on. */
async function leaveRunningUnchanged(t: Target, dumpArgs: string[] = []): Promise<void> {
  // Zombies have no state to compare.
  const pids = descendants(t.pid).filter((pid) => procStat(pid)?.state !== 'Z');
  const d = dump(t, 'lr', { leaveRunning: true, extraArgs: dumpArgs });
  assert.equal(d.res.code, 0, `${cryoReport(d.res)}\n${targetReport(t)}`);
  assert.match(
    cryoReport(d.res, 100_000),
    new RegExp(`--leave-running: ${pids.length} tasks compared under the freeze in [\\d.]+ ms: 0 differences`),
    'the comparison under the freeze ran',
  );
  assert.equal(runningProblem(t), null, targetReport(t));
}

describe('dump --leave-running leaves every target unchanged', () => {
  for (const c of LEAVE_RUNNING) {
    it(c.name, { timeout: 120_000 }, async () => {
      const t = await readyTarget(c.name, c.args);
      await leaveRunningUnchanged(t, c.dumpArgs);
      await expectPass(t);
    });
  }

  // Known bug, fixed separately in src/ptrace/remote.ts: single-stepping with SIGTRAP blocked
  // makes the kernel reset its handler to SIG_DFL. The comparison catches it (SigCgt loses it).
  it('a SIGTRAP handler survives (python3: signal.signal(SIGTRAP, ...))', { timeout: 60_000 }, async () => {
    const { t } = await readyPython('sigtrap', [
      'import os, signal, time',
      'hits = []',
      'signal.signal(signal.SIGTRAP, lambda s, f: hits.append(s))',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'os.kill(os.getpid(), signal.SIGTRAP)',
      'time.sleep(0.05)',
      'print("PASS" if hits == [signal.SIGTRAP] else f"FAIL: handler lost ({hits})", flush=True)',
    ]);
    await leaveRunningUnchanged(t);
    await expectPass(t);
  });
});

describe('fault injection: a --leave-running dump that changes its target', () => {
  it('CRYO_SKIP=scratch-unmap: the dump fails naming the mapping it left, the images are complete, and the target itself sees that mapping', { timeout: 60_000 }, async () => {
    const t = await readyTarget('memory');
    const d = dump(t, 'lr-damage', { leaveRunning: true, env: { CRYO_SKIP: 'scratch-unmap' } });
    assert.equal(d.res.code, 1, `${cryoReport(d.res)}\n${targetReport(t)}`);
    assert.match(d.res.stderr, /changed the running tree \(the images are complete\): .*pid \d+ mapping [0-9a-f]+-[0-9a-f]+: absent expected, rwxp/, cryoReport(d.res));
    assert.equal(runningProblem(t), null, targetReport(t));
    assert.ok(fs.existsSync(path.join(d.dir, 'inventory.img')), 'the images were written before the release');
    // Not a false alarm: the target, comparing its own maps, finds the mapping the dump left.
    const r = await goAndWaitResult(t);
    assert.equal(r.pass, false, targetReport(t));
    assert.match(r.line, /\/proc\/self\/maps differs/, targetReport(t));
  });
});
