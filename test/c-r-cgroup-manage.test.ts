// --manage-cgroups: a process in cgroups of its own (the v2 hierarchy, and where this machine is
// hybrid the v1 pids and cpu hierarchies, which carry those controllers here) with settings of
// its own: dumped, its cgroups removed, restored — the cgroups are made again at the same paths
// with the saved settings (read back from the files), and the process is in them before it
// runs; full writes the settings into cgroups that exist, soft leaves those alone, ignore
// leaves the process in cryo's cgroups; --cgroup-root moves them elsewhere; a restore failing
// after the cgroups were made removes them. Cgroups are made below parents of this test's own (test/lib/cgroup.ts), removed after.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, checkRestore, expectPass, critDecodeAll,
  waitFor, pidExists, makeCgroup, makeV1Cgroup, cgroupFile, cgroupOf, v1CgroupOf, v2Mount, removeTestCgroups, type Target,
} from './lib/index.js';

after(async () => {
  await cleanupTrees();
  const left = await removeTestCgroups();
  assert.deepEqual(left, [], 'every test cgroup removed');
});

/** The settings each test gives its cgroups: file -> value, per cgroup directory. */
interface Limits {
  dirs: string[];
  settings: [string, string, string][];
}

/** Cgroups of the test's own with settings: v2 (always), v1 pids and cpu where mounted. */
function limitedCgroups(name: string): Limits {
  const v2 = makeCgroup(name);
  const settings: [string, string, string][] = [[v2, 'cgroup.max.descendants', '7'], [v2, 'cgroup.max.depth', '3']];
  const dirs = [v2];
  const pids = makeV1Cgroup('pids', name);
  if (pids) {
    dirs.push(pids);
    settings.push([pids, 'pids.max', '57']);
  }
  const cpu = makeV1Cgroup('cpu', name);
  if (cpu) {
    dirs.push(cpu);
    settings.push([cpu, 'cpu.cfs_period_us', '200000'], [cpu, 'cpu.cfs_quota_us', '150000'], [cpu, 'cpu.shares', '512']);
  }
  for (const [dir, file, value] of settings) fs.writeFileSync(path.join(dir, file), value);
  return { dirs, settings };
}

async function readyIn(dirs: string[]): Promise<Target> {
  const t = await startTarget([buildTarget('counter')], { name: 'counter', env: { CRYO_LAUNCH_CGROUP: dirs.join(':') } });
  await waitForLine(t, 'READY', 30_000);
  return t;
}

function inCgroups(pid: number, l: Limits): void {
  assert.equal(cgroupOf(pid), l.dirs[0], 'v2 cgroup');
  for (const [controller, i] of [['pids', 1], ['cpu', 2]] as const) if (l.dirs[i]) assert.equal(v1CgroupOf(pid, controller), l.dirs[i], `${controller} cgroup`);
}

function settingsProblems(l: Limits): string[] {
  return l.settings.flatMap(([dir, file, value]) => {
    const now = cgroupFile(dir, file);
    return now === value ? [] : [`${dir}/${file}: ${now}, saved ${value}`];
  });
}

/** Dumps (killing) t with --manage-cgroups; waits until its PID is free. */
async function dumpManaged(t: Target, label: string): Promise<string> {
  const d = dump(t, label, { extraArgs: ['--manage-cgroups'] });
  assert.equal(d.res.code, 0, cryoReport(d.res));
  assert.ok(await waitFor(() => !pidExists(t.pid), 5000), 'the dump killed it');
  return d.dir;
}

/** Removes the (empty) cgroups, deepest first, as after a reboot or on another machine. */
async function removeDirs(dirs: string[]): Promise<void> {
  for (const d of dirs) assert.ok(await waitFor(() => {
    try {
      fs.rmdirSync(d);
      return true;
    } catch {
      return false;
    }
  }, 5000), `rmdir ${d}`);
}

describe('--manage-cgroups', () => {
  it('cgroups gone at restore: made again at the same paths with their settings, the process in them', async () => {
    const l = limitedCgroups('gone');
    const t = await readyIn(l.dirs);
    inCgroups(t.pid, l);
    const dir = await dumpManaged(t, '1');
    const images = await critDecodeAll(dir);
    const cg = JSON.stringify(images.get('cgroup.img'));
    assert.match(cg, /"cgroup.max.descendants"/, 'crit shows the saved settings');
    if (l.dirs[1]) assert.match(cg, /"pids.max"/);
    await removeDirs(l.dirs);
    checkRestore(t, restore(t, dir, '1'));
    inCgroups(t.pid, l);
    assert.deepEqual(settingsProblems(l), []);
    await expectPass(t);
  });

  it('cgroups still there: soft leaves their settings, full writes the saved ones back', async () => {
    const l = limitedCgroups('kept');
    const t = await readyIn(l.dirs);
    const changed = (): void => {
      for (const [dir, file] of l.settings.filter(([, f]) => f === 'pids.max' || f === 'cgroup.max.descendants')) fs.writeFileSync(path.join(dir, file), file === 'pids.max' ? '99' : '9');
    };
    const soft = await dumpManaged(t, 'soft');
    changed();
    checkRestore(t, restore(t, soft, 'soft'));
    inCgroups(t.pid, l);
    assert.ok(settingsProblems(l).length >= 1, 'soft: the existing cgroups keep what they have now');
    for (const [dir, file, value] of l.settings) fs.writeFileSync(path.join(dir, file), value);
    const full = await dumpManaged(t, 'full');
    changed();
    checkRestore(t, restore(t, full, 'full', { extraArgs: ['--manage-cgroups', 'full'] }));
    assert.deepEqual(settingsProblems(l), [], 'full: the saved settings are back');
    await expectPass(t);
  });

  it('--cgroup-root: restored into other cgroups with the saved settings; a controller names one hierarchy, the others keep their paths', async () => {
    const l = limitedCgroups('croot');
    const t = await readyIn(l.dirs);
    const dir = await dumpManaged(t, '1');
    await removeDirs(l.dirs);
    // Deeper than before, below the test's own parents: made with their ancestors, removed after.
    const moved = (d: string, mount: string) => ({ dir: path.join(path.dirname(d), 'moved', `to-${path.basename(d)}`), rel: path.join(path.dirname(d), 'moved', `to-${path.basename(d)}`).slice(mount.length) });
    const v2 = moved(l.dirs[0]!, v2Mount());
    const pids = l.dirs[1] ? moved(l.dirs[1], path.dirname(path.dirname(l.dirs[1]))) : undefined;
    const unknown = restore(t, dir, 'bad', { extraArgs: ['--cgroup-root', 'nosuchcontroller:/x'] });
    assert.equal(unknown.res.code, 1, cryoReport(unknown.res));
    assert.match(unknown.res.stderr, /--cgroup-root nosuchcontroller:\/x: the root task was in no nosuchcontroller hierarchy/);
    assert.equal(pidExists(t.pid), false, 'refused: no process');
    assert.equal(cryo(['restore', '-D', dir, '--cgroup-root', 'relative/path']).code, 2, 'a path that is not absolute is bad usage');
    const args = ['--cgroup-root', `unified:${v2.rel}`, ...(pids ? ['--cgroup-root', `pids:${pids.rel}`] : [])];
    checkRestore(t, restore(t, dir, 'moved', { extraArgs: args }));
    assert.equal(cgroupOf(t.pid), v2.dir, 'v2: the new cgroup');
    assert.equal(fs.existsSync(l.dirs[0]!), false, 'the dumped v2 cgroup is not made again');
    const want = l.settings.map(([d, file, value]) => [d === l.dirs[0] ? v2.dir : d === l.dirs[1] ? pids!.dir : d, file, value] as [string, string, string]);
    assert.deepEqual(settingsProblems({ dirs: [], settings: want }), [], 'the saved settings went with their cgroups');
    if (pids) assert.equal(v1CgroupOf(t.pid, 'pids'), pids.dir, 'v1 pids: moved by its own spec');
    if (l.dirs[2]) assert.equal(v1CgroupOf(t.pid, 'cpu'), l.dirs[2], 'v1 cpu: named by no spec, at its dumped path again');
    await expectPass(t);
  });

  it('ignore: the process stays in the restorer\'s cgroups', async () => {
    const l = limitedCgroups('ignore');
    const t = await readyIn(l.dirs);
    const dir = await dumpManaged(t, '1');
    checkRestore(t, restore(t, dir, '1', { extraArgs: ['--manage-cgroups', 'ignore'] }));
    assert.equal(cgroupOf(t.pid), cgroupOf(process.pid), 'v2: the restorer\'s');
    if (l.dirs[1]) assert.equal(v1CgroupOf(t.pid, 'pids'), v1CgroupOf(process.pid, 'pids'));
    await expectPass(t);
  });

  it('a restore failing after the cgroups were made removes them, and leaves no process', async () => {
    const l = limitedCgroups('fail');
    const t = await readyIn(l.dirs);
    const dir = await dumpManaged(t, '1');
    await removeDirs(l.dirs);
    for (const step of ['restore:cgroups', 'restore:fork', 'restore:mm']) {
      const r = restore(t, dir, step.replace(/\W/g, '-'), { env: { CRYO_FAIL_AT: step } });
      assert.equal(r.res.code, 1, `${step}\n${cryoReport(r.res)}`);
      assert.equal(pidExists(t.pid), false, `${step}: no process`);
      for (const d of l.dirs) assert.equal(fs.existsSync(d), false, `${step}: ${d} removed`);
    }
    checkRestore(t, restore(t, dir, 'ok'));
    assert.deepEqual(settingsProblems(l), []);
    await expectPass(t);
  });

  it('refused, named: a thread in a cgroup of its own (threaded cgroup)', async () => {
    const parent = makeCgroup('dt');
    const threads = makeCgroup('th', parent);
    fs.writeFileSync(path.join(threads, 'cgroup.type'), 'threaded');
    const py = await startTarget(['/usr/bin/python3', '-c', [
      'import threading, time, os, sys',
      `def run():\n    open(${JSON.stringify(path.join(threads, 'cgroup.threads'))}, 'w').write(str(threading.get_native_id()))\n    time.sleep(1e6)`,
      'threading.Thread(target=run, daemon=True).start()',
      'time.sleep(0.5)',
      'print("READY", flush=True)',
      'time.sleep(1e6)',
    ].join('\n')], { name: 'pythreads', env: { CRYO_LAUNCH_CGROUP: parent } });
    await waitForLine(py, 'READY', 30_000);
    const c = cryo(['check', '-t', String(py.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`thread \\d+ is in cgroup \\(v2\\):${threads.slice(v2Mount().length)} than its process`));
    const d = dump(py, '1');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.ok(pidExists(py.pid), 'refused: left running');
  });
});
