// A tree in a cgroup namespace of its own (`unshare --cgroup --fork`, started in a cgroup v2 of
// its own, the child moved by itself into a cgroup below it): checkpointed and restored through
// the CLI. The target (test/targets/cgns.c) and its child check that /proc/self/cgroup ("0::/",
// "0::/sub") and the cgroup2 mount's root in mountinfo read as before; the test checks the
// cgns_prefix of cgroup.img (crit), the host paths and namespaces after the restore, `nsenter -C`
// into the restored namespace, a failed restore at its step, and refuses a task moved outside the
// namespace's root, named.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, expectPass,
  critDecodeAll, pidExists, runningProblem, makeCgroup, cgroupOf, v2Mount, removeTestCgroups, startContainer, killContainers,
  normalMountinfo, nsenterMnt, waitFor, type Target,
} from './lib/index.js';

after(async () => {
  killContainers();
  await cleanupTrees();
  assert.deepEqual(await removeTestCgroups(), [], 'every test cgroup removed');
});

/** unshare (in a new cgroup) and its child, the root of the tree in its new cgroup namespace. */
async function readyCgns(): Promise<{ unshare: Target; t: Target; kid: number; dir: string; sub: string }> {
  const dir = makeCgroup('cgns');
  const sub = path.join(dir, 'sub');
  fs.mkdirSync(sub);
  const argv = ['/usr/bin/unshare', '--cgroup', '--fork', buildTarget('cgns'), sub, '/sub'];
  const unshare = await startTarget(argv, { name: 'cgns', env: { CRYO_LAUNCH_CGROUP: dir } });
  await waitForLine(unshare, 'READY', 30_000);
  const [, root, kid] = descendants(unshare.pid);
  assert.ok(root && kid, `no root and child under unshare ${unshare.pid}\n${unshare.log()}`);
  return { unshare, t: { ...unshare, pid: root, argv: argv.slice(3) }, kid, dir, sub };
}

const cgNs = (pid: number) => fs.readlinkSync(`/proc/${pid}/ns/cgroup`);

async function goneAll(pids: number[]): Promise<void> {
  for (const pid of pids) for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('c/r in a cgroup namespace of its own', () => {
  it('check -t approves it; a task moved outside the namespace\'s root is refused by check and dump, named', async () => {
    const { t, kid, sub } = await readyCgns();
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /ns   cgroup .* — ok \(its own: saved and made again\)/);
    assert.match(c.stdout, /ns   cgroup .* — ok \(the tree root's\)/, "the child shares the root's cgroup namespace");
    const outside = makeCgroup('cgns-outside');
    fs.writeFileSync(path.join(outside, 'cgroup.procs'), String(kid));
    const refused = cryo(['check', '-t', String(t.pid)]);
    assert.equal(refused.code, 3, cryoReport(refused));
    assert.match(refused.stdout, new RegExp(`pid ${kid}: .*cgroup .*${path.basename(outside)} is outside the tree's cgroup namespace`), refused.stdout);
    const d = dump(t, 'outside');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(runningProblem(t), null, 'the refused tree runs on');
    fs.writeFileSync(path.join(sub, 'cgroup.procs'), String(kid));
    await expectPass(t);
  });

  it('dumped (killed) and restored: the same cgroups and view inside, one new namespace rooted where it was', async () => {
    const { unshare, t, kid, dir, sub } = await readyCgns();
    const d = dump(t, 'k');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const images = await critDecodeAll(d.dir);
    const inHierarchy = `/${path.relative(v2Mount(), dir)}`;
    const cg = JSON.stringify(images.get('cgroup.img'));
    for (const p of [inHierarchy, `${inHierarchy}/sub`]) {
      assert.match(cg, new RegExp(`\\{"name": ?"", ?"path": ?"${p}", ?"cgns_prefix": ?${inHierarchy.length}\\}`), cg);
    }
    await goneAll([unshare.pid, t.pid, kid]);
    checkRestore(t, restore(t, d.dir, 'k'));
    assert.equal(cgroupOf(t.pid), dir);
    assert.equal(cgroupOf(kid), sub);
    assert.notEqual(cgNs(t.pid), fs.readlinkSync('/proc/self/ns/cgroup'), 'a namespace of its own');
    assert.equal(cgNs(kid), cgNs(t.pid), "the child in the root's namespace");
    const inside = execFileSync('nsenter', ['-t', String(t.pid), '-C', 'cat', `/proc/${t.pid}/cgroup`, `/proc/${kid}/cgroup`], { encoding: 'utf8' });
    assert.match(inside, /^0::\/$/m, inside);
    assert.match(inside, /^0::\/sub$/m, inside);
    await expectPass(t);
  });

  it('dump --leave-running: nothing changes, the same namespace and cgroups, and the tree goes on', async () => {
    const { t, kid, dir, sub } = await readyCgns();
    const ns = cgNs(t.pid);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 2 tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    await critDecodeAll(d.dir);
    assert.equal(runningProblem(t), null, 'the root runs on');
    assert.deepEqual([cgNs(t.pid), cgNs(kid), cgroupOf(t.pid), cgroupOf(kid)], [ns, ns, dir, sub]);
    await expectPass(t);
  });

  it('a restore that fails at its cgroup namespace step leaves no process behind, and the next one works', async () => {
    const { unshare, t, kid } = await readyCgns();
    const d = dump(t, 'f');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await goneAll([unshare.pid, t.pid, kid]);
    const bad = restore(t, d.dir, 'f', { env: { CRYO_FAIL_AT: 'restore:cgns' } });
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /injected failure at restore:cgns/);
    for (const pid of [t.pid, kid]) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
    checkRestore(t, restore(t, d.dir, 'f2'));
    await expectPass(t);
  });

  it('a container in a cgroup of its own with cgroup2 mounted inside its namespace: the same mount root and view after the restore', async () => {
    const dir = makeCgroup('cgns-box');
    const c = await startContainer(['mount -t cgroup2 none $R/sys/fs/cgroup'], { cgroup: dir });
    const mounts = normalMountinfo(c.t.pid);
    // cryo sees the mount's root as the namespace's root, the container's cgroup.
    assert.ok(mounts.some((l) => l.includes(` /${path.relative(v2Mount(), dir)} /sys/fs/cgroup `) && l.includes(' - cgroup2 ')), mounts.join('\n'));
    const chk = cryo(['check', '-t', String(c.t.pid), '-v']);
    assert.equal(chk.code, 0, cryoReport(chk));
    assert.match(chk.stdout, /\/sys\/fs\/cgroup \(cgroup2\) — ok \(made anew\)/, chk.stdout);
    const pids = descendants(c.t.pid);
    const d = dump(c.t, 'box');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await critDecodeAll(d.dir);
    for (const pid of [c.unshare.pid, ...pids]) assert.ok(await waitFor(() => !pidExists(pid), 10_000), `pid ${pid} still there after the dump`);
    checkRestore(c.t, restore(c.t, d.dir, 'box'));
    assert.deepEqual(normalMountinfo(c.t.pid), mounts);
    assert.equal(cgroupOf(c.t.pid), dir);
    assert.match(nsenterMnt(c.t.pid, ['-C', '/bin/busybox', 'cat', '/proc/1/cgroup']), /^0::\/$/m);
  });
});
