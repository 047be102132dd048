// A tree in a cgroup of its own (cgroup v2), frozen through cgroup.freeze (--freeze-cgroup):
// a tree that forks all the time (test/targets/forker.c) dumped consistently, left
// running or restored into its cgroup; the refusals (the root cgroup, a process of another tree
// in the cgroup, a threaded cgroup, a cgroup frozen by someone else) named by check and dump;
// every exit path thaws (a failed dump at each step, SIGKILL of cryo while frozen: the guard).
// Cgroups are made below a parent of this test's own (test/lib/cgroup.ts) and removed after.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, checkRestore, expectPass, listFailSteps,
  runningProblem, critDecodeAll, statusField, descendants, sleep, waitFor, pidExists, REPO_ROOT, CRYO_BIN,
  makeCgroup, cgroupProcs, cgroupFile, cgroupFrozen, cgroupOf, removeTestCgroups, type Target,
} from './lib/index.js';

after(async () => {
  await cleanupTrees();
  const left = await removeTestCgroups();
  assert.deepEqual(left, [], 'every test cgroup removed');
});

/** Starts test/targets/NAME.c in cgroup `dir` (launch moves itself there before the exec). */
async function readyIn(dir: string, name: string, args: string[] = []): Promise<Target> {
  const t = await startTarget([buildTarget(name), ...args], { name, env: { CRYO_LAUNCH_CGROUP: dir } });
  await waitForLine(t, 'READY', 30_000);
  assert.equal(cgroupOf(t.pid), dir);
  return t;
}

/** The cgroup is as we found it: not frozen, nothing traced by cryo. */
function thawed(dir: string, t: Target): void {
  assert.equal(cgroupFile(dir, 'cgroup.freeze'), '0', `${dir} thawed`);
  assert.equal(cgroupFrozen(dir), '0', `${dir}: cgroup.events frozen 0`);
  for (const p of descendants(t.pid)) {
    const tracer = statusField(p, 'TracerPid');
    assert.ok(tracer === null || tracer === '0', `pid ${p} traced by ${tracer}`);
  }
}

const FREEZE = ['--freeze-cgroup'];

describe('--freeze-cgroup', () => {
  it('a tree that forks all the time: dumped with --leave-running (3 times), then killed and restored into its cgroup', async () => {
    const cg = makeCgroup('forker');
    const t = await readyIn(cg, 'forker', ['4', '12']);
    const c = cryo(['check', '-t', String(t.pid), ...FREEZE]);
    assert.equal(c.code, 0, cryoReport(c));
    for (let i = 1; i <= 3; i++) {
      const d = dump(t, `lr${i}`, { leaveRunning: true, extraArgs: FREEZE });
      assert.equal(d.res.code, 0, cryoReport(d.res));
      assert.match(fs.readFileSync(path.join(t.root, `dump-lr${i}.log`), 'utf8'), new RegExp(`cgroup ${cg} frozen in`));
      thawed(cg, t);
      assert.equal(runningProblem(t), null);
    }
    const d = dump(t, 'kill', { extraArgs: FREEZE });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await critDecodeAll(d.dir);
    const pstree = cryo(['show', path.join(d.dir, 'pstree.img')]);
    const pids = [...pstree.stdout.matchAll(/"pid": (\d+)/g)].map((m) => Number(m[1]));
    assert.ok(pids.length >= 17, `the root, 4 spawners, 12 idle and the spawners' children: ${pids.join(' ')}`);
    for (const p of pids) assert.ok(await waitFor(() => !pidExists(p), 5000), `pid ${p} gone after the dump`);
    assert.deepEqual(cgroupProcs(cg), [], 'the dump killed every process of the cgroup');
    checkRestore(t, restore(t, d.dir, 'kill'));
    // The root and its 16 children live until go (the spawners' own children come and go).
    const kids = fs.readFileSync(`/proc/${t.pid}/task/${t.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(kids.length, 16, `the root's children after restore: ${kids.join(' ')}`);
    for (const p of [t.pid, ...kids]) assert.equal(cgroupOf(p), cg, `restored pid ${p} in its cgroup`);
    await expectPass(t);
  });

  it('refused, named: the root cgroup, a process of another tree in the cgroup, a threaded cgroup', async () => {
    const plain = await startTarget([buildTarget('counter')], { name: 'counter' });
    await waitForLine(plain, 'READY', 30_000);
    const r1 = cryo(['check', '-t', String(plain.pid), ...FREEZE]);
    assert.equal(r1.code, 3, cryoReport(r1));
    assert.match(r1.stdout, /--freeze-cgroup: the tree is in the root cgroup of .*, not in a cgroup of its own/);
    const r1d = dump(plain, 'root', { extraArgs: FREEZE });
    assert.equal(r1d.res.code, 3, cryoReport(r1d.res));
    assert.equal(runningProblem(plain), null);

    const shared = makeCgroup('shared');
    const a = await readyIn(shared, 'counter');
    const b = await readyIn(shared, 'counter');
    const r2 = cryo(['check', '-t', String(a.pid), ...FREEZE]);
    assert.equal(r2.code, 3, cryoReport(r2));
    assert.match(r2.stdout, new RegExp(`pid ${b.pid}: --freeze-cgroup: in ${shared} but not in the tree of ${a.pid}`));
    // Without the flag the same tree is fine: it is not frozen through the cgroup then.
    assert.equal(cryo(['check', '-t', String(a.pid)]).code, 0);

    const dt = makeCgroup('domthreaded');
    fs.writeFileSync(path.join(makeCgroup('threads', dt), 'cgroup.type'), 'threaded');
    const c = await readyIn(dt, 'counter');
    const r3 = cryo(['check', '-t', String(c.pid), ...FREEZE]);
    assert.equal(r3.code, 3, cryoReport(r3));
    assert.match(r3.stdout, /is a domain threaded cgroup \(cgroup.type\) — threaded cgroups are not supported/);
    for (const x of [plain, a, b, c]) await expectPass(x);
  });

  it('a cgroup frozen by someone else: check and dump refuse it, named, with or without the flag (no hang)', async () => {
    const cg = makeCgroup('frozen');
    const t = await readyIn(cg, 'counter');
    fs.writeFileSync(path.join(cg, 'cgroup.freeze'), '1');
    assert.ok(await waitFor(() => cgroupFrozen(cg) === '1', 5000));
    for (const extra of [[], FREEZE]) {
      const c = cryo(['check', '-t', String(t.pid), ...extra]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, new RegExp(`its cgroup is frozen \\(${cg}/cgroup.freeze is 1\\) by someone else`));
      const d = dump(t, `frozen${extra.length}`, { extraArgs: extra });
      assert.equal(d.res.code, 3, cryoReport(d.res));
      assert.equal(cgroupFile(cg, 'cgroup.freeze'), '1', 'left as it was: frozen');
    }
    fs.writeFileSync(path.join(cg, 'cgroup.freeze'), '0');
    await expectPass(t);
  });

  it('a dump failing at any step thaws the cgroup and leaves the tree running', { timeout: 300_000 }, async () => {
    const cg = makeCgroup('fail');
    const t = await readyIn(cg, 'forker', ['2', '4']);
    for (const step of listFailSteps('dump')) {
      const d = dump(t, `fail-${step.replace(/\W/g, '-')}`, { extraArgs: FREEZE, env: { CRYO_FAIL_AT: step } });
      assert.equal(d.res.code, 1, `${step}\n${cryoReport(d.res)}`);
      thawed(cg, t);
      assert.equal(runningProblem(t), null, step);
    }
    await expectPass(t);
  });

  it('cryo killed (SIGKILL) while the cgroup is frozen: the guard thaws it', async () => {
    const cg = makeCgroup('guard');
    const t = await readyIn(cg, 'forker', ['2', '4']);
    // A process that starts the guard, freezes the cgroup as a dump does, and dies by SIGKILL.
    const freeze = path.join(REPO_ROOT, 'dist', 'src', 'resources', 'cgroup', 'freeze.js');
    const guard = path.join(REPO_ROOT, 'dist', 'src', 'resources', 'cgroup', 'freeze-guard.js');
    const script = `const { CgroupFreeze } = await import(${JSON.stringify(freeze)});
      const { FreezeGuard } = await import(${JSON.stringify(guard)});
      FreezeGuard.start(${JSON.stringify(cg)});
      new CgroupFreeze({ dir: ${JSON.stringify(cg)} }).freeze();
      process.stdout.write('frozen\\n');
      process.kill(process.pid, 'SIGKILL');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    assert.equal(r.stdout, 'frozen\n', 'it froze the cgroup before it died');
    assert.ok(await waitFor(() => cgroupFile(cg, 'cgroup.freeze') === '0' && cgroupFrozen(cg) === '0', 5000), 'the guard thawed the cgroup');
    // The CLI killed at random moments of a --freeze-cgroup dump: never left frozen or traced.
    for (let i = 0; i < 6; i++) {
      const dir = path.join(t.root, `img-kill${i}`);
      fs.mkdirSync(dir, { mode: 0o700 });
      const child = spawn(process.execPath, [CRYO_BIN, 'dump', '-t', String(t.pid), '-D', dir, '--leave-running', ...FREEZE], { stdio: 'ignore' });
      const ends = new Promise<void>((res) => child.once('exit', () => res()));
      const until = Date.now() + 150 + Math.random() * 500;
      while (Date.now() < until && child.exitCode === null) {
        await sleep(1);
      }
      child.kill('SIGKILL');
      await ends;
      assert.ok(await waitFor(() => cgroupFile(cg, 'cgroup.freeze') === '0' && cgroupFrozen(cg) === '0', 5000), `trial ${i}: thawed`);
      assert.ok(await waitFor(() => descendants(t.pid).every((p) => ['0', null].includes(statusField(p, 'TracerPid'))), 5000), `trial ${i}: untraced`);
      assert.equal(runningProblem(t), null, `trial ${i}`);
    }
    await expectPass(t);
  });
});
