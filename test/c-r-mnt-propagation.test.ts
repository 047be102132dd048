// Mount propagation of a container (test/lib/container.ts's busybox one): its rootfs bound on the
// host and made shared there, the container entered with `unshare --propagation slave` (runc's
// rslave rootfs: the container's root receives the host's mount events under it, sends none),
// and inside a tmpfs shared with a bind of it (a peer group of two), a slave of that group, a
// private bind of it and an unbindable tmpfs. Dumped, killed and restored: the same mountinfo
// (peer groups and masters modulo their numbers; the host's group is the same group), and mount
// events made after the restore propagate, or not, as they did before the dump. Refused: a
// restore whose host group is gone (named, nothing left); and CRYO_SKIP shows the verification
// naming a mount left private.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  cryo, cryoReport, dump, restore, cleanupTrees, checkRestore, critDecodeAll, pidExists, waitFor,
  startContainer, killContainers, counter, normalMountinfo, lastingPids, nsenterMnt, busyboxIsStatic, descendants,
  type Container,
} from './lib/index.js';

/** Host mounts the tests made (each rootfs bound on itself), unmounted at the end. */
const hostMounts: string[] = [];

after(async () => {
  killContainers();
  // Before the temp dirs go: a rootfs still mounted on itself cannot be removed.
  for (const m of hostMounts.reverse()) execFileSync('umount', ['-R', '-l', m], { stdio: 'ignore' });
  await cleanupTrees();
});

before(() => assert.ok(busyboxIsStatic(), '/bin/busybox must be the static one (Debian busybox-static)'));

const SETUP = [
  'mkdir -p $R/sh1 $R/sh2 $R/sl $R/pv $R/ub $R/ubx $R/hev',
  'mount -t tmpfs -o size=1m tmpfs $R/sh1 && echo shared > $R/sh1/f && mount --make-shared $R/sh1',
  'mount --bind $R/sh1 $R/sh2',
  'mount --bind $R/sh1 $R/sl && mount --make-slave $R/sl',
  'mount --bind $R/sh1 $R/pv && mount --make-private $R/pv',
  'mount -t tmpfs -o size=1m tmpfs $R/ub && mount --make-unbindable $R/ub',
];

async function startPropagating(): Promise<Container> {
  const c = await startContainer(SETUP, {
    propagation: 'slave',
    hostSetup: ['mount --bind $R $R', 'mount --make-shared $R'],
  });
  hostMounts.push(c.rootfs);
  return c;
}

const mountPoints = (pid: number) => fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').map((l) => l.split(' ')[4]!);

/**
 * Mount events, and what each reached: a tmpfs under the shared /sh1, one under the slave /sl,
 * one the host mounts under the rootfs; a bind of the unbindable /ub. All undone after.
 */
function probe(c: Container): string[] {
  const inside = (script: string) => nsenterMnt(c.t.pid, ['/bin/sh', '-c', script]);
  const before = normalMountinfo(c.t.pid);
  inside('mkdir -p /sh1/ev /sl/ev2 && mount -t tmpfs tmpfs /sh1/ev && mount -t tmpfs tmpfs /sl/ev2');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', `${c.rootfs}/hev`]);
  const bind = inside('mount -o bind /ub /ubx 2>/dev/null && echo bound || echo refused').trim();
  const seen = new Set(mountPoints(c.t.pid));
  const out = ['/sh1/ev', '/sh2/ev', '/sl/ev', '/pv/ev', '/sl/ev2', '/sh1/ev2', '/sh2/ev2', '/hev'].map((p) => `${p} ${seen.has(p) ? 'mounted' : 'not'}`);
  out.push(`bind of /ub ${bind}`);
  execFileSync('umount', [`${c.rootfs}/hev`]);
  inside('umount /sl/ev2 && umount /sh1/ev && if [ "$(grep -c " /ubx " /proc/self/mountinfo)" != 0 ]; then umount /ubx; fi');
  assert.deepEqual(normalMountinfo(c.t.pid), before, 'the probe leaves the mounts as they were');
  return out;
}

const EXPECTED = [
  '/sh1/ev mounted', '/sh2/ev mounted', '/sl/ev mounted', '/pv/ev not', '/sl/ev2 mounted', '/sh1/ev2 not', '/sh2/ev2 not', '/hev mounted', 'bind of /ub refused',
];

async function dumpKilled(c: Container, label: string): Promise<{ dir: string; pids: number[] }> {
  const pids = descendants(c.t.pid);
  const d = dump(c.t, label);
  assert.equal(d.res.code, 0, cryoReport(d.res));
  await critDecodeAll(d.dir);
  for (const pid of [c.unshare.pid, ...pids]) assert.ok(await waitFor(() => !pidExists(pid), 10_000), `pid ${pid} still there after the dump`);
  return { dir: d.dir, pids };
}

describe('c/r of a container with shared, slave, private and unbindable mounts', () => {
  it('dumped, killed and restored: the same propagation, and mount events propagate as before', async () => {
    const c = await startPropagating();
    const mounts = normalMountinfo(c.t.pid);
    assert.match(mounts[0]!, / master:0 - /, `the root is a slave of the host's group: ${mounts[0]}`);
    for (const [mp, want] of [['/sh1', / shared:1 - /], ['/sh2', / shared:1 - /], ['/sl', / master:1 - /], ['/pv', / [^ :]+ - /], ['/ub', / unbindable - /]] as const) {
      const line = mounts.find((l) => l.split(' ')[3] === mp);
      assert.ok(line, `${mp} in ${mounts.join('\n')}`);
      assert.match(line, want);
    }
    assert.deepEqual(probe(c), EXPECTED, 'before the dump');
    const r = cryo(['check', '-t', String(c.t.pid), '-v']);
    assert.equal(r.code, 0, cryoReport(r));
    for (const re of [/mount  \/ \(\w+\) — ok \(the root: .*, master:host:\d+\)/, /mount  \/sh1 \(tmpfs\) — ok \(made anew, contents saved, shared:#1\)/,
      /mount  \/sh2 \(tmpfs\) — ok \(a bind of a mount above, shared:#1\)/, /mount  \/sl \(tmpfs\) — ok \(a bind of a mount above, master:#1\)/,
      /mount  \/pv \(tmpfs\) — ok \(a bind of a mount above\)/, /mount  \/ub \(tmpfs\) — ok \(made anew, contents saved, unbindable\)/]) assert.match(r.stdout, re);
    const pids = lastingPids(c.t.pid);
    const d = await dumpKilled(c, 'p');
    const mnt = cryo(['show', `${d.dir}/${fs.readdirSync(d.dir).find((n) => n.startsWith('mountpoints-'))!}`]);
    assert.match(mnt.stdout, /"shared_id": \d+/);
    assert.match(mnt.stdout, /"master_id": \d+/);
    const res = restore(c.t, d.dir, 'p');
    checkRestore(c.t, res);
    assert.match(fs.readFileSync(`${c.t.root}/restore-p.log`, 'utf8'), /verified \d+ restored tasks/);
    assert.deepEqual(lastingPids(c.t.pid), pids);
    assert.deepEqual(normalMountinfo(c.t.pid), mounts, 'the same mounts with the same propagation');
    assert.deepEqual(probe(c), EXPECTED, 'after the restore');
    const n = counter(c.t.pid);
    assert.ok(await waitFor(() => counter(c.t.pid) > n, 10_000), 'the counter goes on');
  });

  it('refused when the host group its root received from is gone; a mount left private is named by the verification', async () => {
    const c = await startPropagating();
    const d = await dumpKilled(c, 'gone');
    // Left out on purpose: the verification names the mount and nothing is left.
    const skipped = restore(c.t, d.dir, 'skip', { env: { CRYO_SKIP: 'mnt-propagation' } });
    assert.notEqual(skipped.res.code, 0, cryoReport(skipped.res));
    assert.match(skipped.res.stderr, /mount \/ propagation: master:host:\d+ expected, private/);
    for (const pid of d.pids) assert.equal(pidExists(pid), false, `pid ${pid} left behind`);
    execFileSync('mount', ['--make-private', c.rootfs]);
    const bad = restore(c.t, d.dir, 'gone');
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /mount \/: a slave of peer group \d+, which has no mount in the container, nor one of cryo's namespace/);
    for (const pid of d.pids) assert.equal(pidExists(pid), false, `pid ${pid} left behind`);
  });
});
