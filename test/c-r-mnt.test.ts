// A busybox container in mount, PID, UTS and IPC namespaces of its own (test/lib/container.ts:
// pivot_root into a rootfs built from busybox-static, proc, a tmpfs with files, /dev as a tmpfs
// with device nodes, devpts, mqueue, sysfs read-only, a bind of a rootfs directory, a sysfs
// hidden under a tmpfs): dumped, killed and restored with the same PIDs, the same mountinfo
// (modulo ids), the tmpfs contents, the counter going on and httpd answering; restored again
// after its rootfs moved (--root); with bind mounts from the host (--external); failures at
// the mount steps leave the container running or nothing behind; what cannot be restored is
// refused by check and dump, named.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  cryo, cryoReport, dump, restore, cleanupTrees, checkRestore, critDecodeAll, pidExists, waitFor, runningProblem,
  startContainer, killContainers, httpGet, counter, normalMountinfo, lastingPids, nsenterMnt, hostMountsUnder, busyboxIsStatic, descendants,
  type Container,
} from './lib/index.js';

after(async () => {
  killContainers();
  await cleanupTrees();
});

before(() => assert.ok(busyboxIsStatic(), '/bin/busybox must be the static one (Debian busybox-static)'));

/** After a dump: unshare and every task of the container gone, so their PIDs are free. */
async function waitGone(c: Container, pids: number[]): Promise<void> {
  for (const pid of [c.unshare.pid, ...pids]) assert.ok(await waitFor(() => !pidExists(pid), 10_000), `pid ${pid} still there after the dump`);
}

/** A dump that kills the container, checked: images decode with crit and hold the mounts. */
async function dumpKilled(c: Container, label: string, extraArgs: string[] = []): Promise<{ dir: string; pids: number[]; before: number }> {
  const pids = descendants(c.t.pid);
  const before = counter(c.t.pid);
  const d = dump(c.t, label, { extraArgs });
  assert.equal(d.res.code, 0, cryoReport(d.res));
  await critDecodeAll(d.dir);
  const names = fs.readdirSync(d.dir);
  assert.ok(names.some((n) => /^mountpoints-\d+\.img$/.test(n)), names.join(' '));
  assert.equal(names.filter((n) => /^tmpfs-dev-\d+\.tar\.gz\.img$/.test(n)).length, 3, `a tar of /tmp, /dev and /mnt: ${names.join(' ')}`);
  await waitGone(c, pids);
  return { dir: d.dir, pids, before };
}

/** What the restored container must show again. */
async function expectRunningAgain(c: Container, wanted: { mounts: string[]; pids: string[]; before: number }, rootPath?: { from: string; to: string }): Promise<void> {
  assert.deepEqual(lastingPids(c.t.pid), wanted.pids, 'the init and httpd have their host PIDs and their PIDs inside again');
  assert.deepEqual(normalMountinfo(c.t.pid), rootPath ? wanted.mounts.map((l) => l.replace(` ${rootPath.from} `, ` ${rootPath.to} `).replace(` ${rootPath.from}/`, ` ${rootPath.to}/`)) : wanted.mounts);
  const now = counter(c.t.pid);
  assert.ok(now >= wanted.before, `the counter goes on from where it was (${now} >= ${wanted.before}), not from 0`);
  assert.ok(await waitFor(() => counter(c.t.pid) > now, 10_000), 'the counter counts again');
  assert.match(await httpGet(c.port), new RegExp(`hello from ${c.token}`));
  // Inside, through nsenter into the restored mount and PID namespaces.
  assert.equal(nsenterMnt(c.t.pid, ['/bin/cat', '/tmp/keep', '/tmp/dir/sub/f', '/tmp/link', '/mnt/over']), 'data\ndeep\ndata\nover\n');
  const ls = nsenterMnt(c.t.pid, ['/bin/ls', '-ln', '/tmp/dir/sub/f', '/dev/null', '/dev/urandom']);
  assert.match(ls, /-rw-r----- .* \/tmp\/dir\/sub\/f/);
  assert.match(ls, /crw-rw-rw- .* 1, +3 .* \/dev\/null/);
  assert.match(ls, /crw-rw-rw- .* 1, +9 .* \/dev\/urandom/);
  const ps = nsenterMnt(c.t.pid, ['/bin/ps', '-o', 'pid,args']);
  assert.match(ps, /^\s*1 \/bin\/sh \/init\.sh$/m, ps);
  assert.match(ps, /busybox httpd/, ps);
  assert.equal(nsenterMnt(c.t.pid, ['/bin/cat', '/www2/index.html']), `hello from ${c.token}\n`, 'the bind of a rootfs directory');
  assert.deepEqual(hostMountsUnder(c.base), [], 'no mount of the container shows in the host');
}

describe('c/r of a container with a mount namespace of its own', () => {
  it('check -t names each mount with its verdict', async () => {
    const c = await startContainer();
    const r = cryo(['check', '-t', String(c.t.pid), '-v']);
    assert.equal(r.code, 0, cryoReport(r));
    assert.match(r.stdout, /ns   mnt .* — ok \(its own: saved and made again\)/);
    for (const re of [/mount  \/ \(ext4|mount  \/ \(\w+\) — ok \(the root/, /mount  \/proc \(proc\) — ok \(made anew\)/, /mount  \/tmp \(tmpfs\) — ok \(made anew, contents saved\)/,
      /mount  \/dev\/pts \(devpts\) — ok \(made anew\)/, /mount  \/www2 \(\w+\) — ok \(a bind of a mount above\)/]) assert.match(r.stdout, re);
    assert.equal(runningProblem(c.t), null);
  });

  it('dumped, killed and restored: PIDs, mount tree, tmpfs contents, counter, httpd, nsenter', async () => {
    const c = await startContainer();
    const mounts = normalMountinfo(c.t.pid);
    const pids = lastingPids(c.t.pid);
    assert.equal(hostMountsUnder(c.base).length, 0, 'the host sees none of the container\'s mounts');
    const d = await dumpKilled(c, '1');
    checkRestore(c.t, restore(c.t, d.dir, '1'));
    await expectRunningAgain(c, { mounts, pids, before: d.before });
  });

  it('dump --leave-running: nothing of the container changes and it goes on', async () => {
    const c = await startContainer();
    const mounts = normalMountinfo(c.t.pid);
    const pids = lastingPids(c.t.pid);
    const d = dump(c.t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: \d+ tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    await critDecodeAll(d.dir);
    assert.equal(runningProblem(c.t), null);
    assert.deepEqual(lastingPids(c.t.pid), pids);
    assert.deepEqual(normalMountinfo(c.t.pid), mounts);
    const n = counter(c.t.pid);
    assert.ok(await waitFor(() => counter(c.t.pid) > n, 10_000), 'the counter goes on');
    assert.match(await httpGet(c.port), /hello from/);
  });

  it('restored after its rootfs moved elsewhere (--root)', async () => {
    const c = await startContainer();
    const mounts = normalMountinfo(c.t.pid);
    const pids = lastingPids(c.t.pid);
    const d = await dumpKilled(c, 'mv');
    const moved = path.join(c.base, 'moved-rootfs');
    fs.renameSync(c.rootfs, moved);
    // Without --root the old place is gone: refused before any task exists.
    const bad = restore(c.t, d.dir, 'mv0');
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /root .* is not a directory \(give its new place with --root DIR\)/);
    for (const pid of d.pids) assert.equal(pidExists(pid), false);
    checkRestore(c.t, restore(c.t, d.dir, 'mv', { extraArgs: ['--root', moved] }));
    await expectRunningAgain(c, { mounts, pids, before: d.before }, { from: c.rootfs, to: moved });
  });

  it('bind mounts of a host directory and file: refused unnamed, dumped with --external, bound from the path given at restore', async () => {
    const c = await startContainer([
      'mkdir -p $B/hostdir && echo from-host > $B/hostdir/f && echo host-file > $B/hostfile',
      'mount --bind $B/hostdir $R/data',
      'touch $R/etc/hostfile && mount --bind -o ro $B/hostfile $R/etc/hostfile',
      'mount -o remount,bind,ro $R/etc/hostfile',
    ]);
    const refused = cryo(['check', '-t', String(c.t.pid)]);
    assert.equal(refused.code, 3, cryoReport(refused));
    assert.match(refused.stdout, /mount \/data \(\w+ .*\): .* name it with --external mnt\[\/data\]:KEY/);
    const d0 = dump(c.t, 'ext0');
    assert.notEqual(d0.res.code, 0, cryoReport(d0.res));
    assert.match(d0.res.stderr, /mount \/etc\/hostfile/);
    assert.equal(runningProblem(c.t), null, 'a refused dump leaves the container running');
    const mounts = normalMountinfo(c.t.pid);
    const pids = lastingPids(c.t.pid);
    const d = await dumpKilled(c, 'ext', ['--external', 'mnt[/data]:data', '--ext-mount-map', '/etc/hostfile:hf']);
    const mnt = cryo(['show', path.join(d.dir, fs.readdirSync(d.dir).find((n) => n.startsWith('mountpoints-'))!)]);
    assert.match(mnt.stdout, /"ext_key": "data"/);
    // Elsewhere on this host: another directory for the key.
    const other = path.join(c.base, 'otherdir');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'f'), 'from-elsewhere\n');
    const missing = restore(c.t, d.dir, 'ext0');
    assert.notEqual(missing.res.code, 0);
    assert.match(missing.res.stderr, /mount \/data came from outside the container \(key data\): give it with --external mnt\[data\]:PATH/);
    checkRestore(c.t, restore(c.t, d.dir, 'ext', { extraArgs: ['--external', `mnt[data]:${other}`, '--external', `mnt[hf]:${path.join(c.base, 'hostfile')}`] }));
    assert.equal(nsenterMnt(c.t.pid, ['/bin/cat', '/data/f', '/etc/hostfile']), 'from-elsewhere\nhost-file\n');
    const rel = (l: string) => l.replace(/ \/\S*hostdir | \/\S*otherdir /, ' DIR ');
    assert.deepEqual(normalMountinfo(c.t.pid).map(rel), mounts.map(rel));
    assert.deepEqual(lastingPids(c.t.pid), pids);
    assert.match(execFileSync('nsenter', ['-t', String(c.t.pid), '-m', '/bin/sh', '-c', '(echo x > /etc/hostfile) 2>/dev/null || echo read-only'], { encoding: 'utf8' }), /read-only/);
  });

  it('a dump failing at its mounts step leaves the container running; a restore failing at its mounts step leaves no process and no mount', async () => {
    const c = await startContainer();
    const pids = lastingPids(c.t.pid);
    const bad = dump(c.t, 'fd', { env: { CRYO_FAIL_AT: 'dump:mounts' } });
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /injected failure at dump:mounts/);
    assert.equal(runningProblem(c.t), null);
    assert.deepEqual(lastingPids(c.t.pid), pids);
    const n = counter(c.t.pid);
    assert.ok(await waitFor(() => counter(c.t.pid) > n, 10_000), 'the counter goes on after the failed dump');
    const hostBefore = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const d = await dumpKilled(c, 'fr');
    const failed = restore(c.t, d.dir, 'fr', { env: { CRYO_FAIL_AT: 'restore:mounts' } });
    assert.notEqual(failed.res.code, 0, cryoReport(failed.res));
    assert.match(failed.res.stderr, /injected failure at restore:mounts/);
    for (const pid of d.pids) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
    assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(c.base)).length, 0);
    assert.equal(hostBefore.includes(c.base), false);
    checkRestore(c.t, restore(c.t, d.dir, 'fr2'));
    assert.deepEqual(lastingPids(c.t.pid), pids);
    assert.match(await httpGet(c.port), /hello from/);
  });

  it('refused by check and dump, named, and left running: a POSIX queue in its mqueue, a filesystem cryo cannot make, a tmpfs hidden under another mount', async () => {
    const c = await startContainer([
      'mkdir -p $R/ram && mount -t ramfs ramfs $R/ram',
      'mkdir -p $R/under/t && mount -t tmpfs tmpfs $R/under/t && echo lost > $R/under/t/x && mount -t tmpfs tmpfs $R/under',
    ]);
    // A queue made inside the container's IPC namespace.
    execFileSync('nsenter', ['-t', String(c.t.pid), '-m', '-i', '/bin/sh', '-c', ': > /dev/mqueue/cryo-q'], { encoding: 'utf8' });
    const r = cryo(['check', '-t', String(c.t.pid)]);
    assert.equal(r.code, 3, cryoReport(r));
    assert.match(r.stdout, /mount \/dev\/mqueue \(mqueue\) holds POSIX message queues \(cryo-q\)/);
    assert.match(r.stdout, /mount \/ram \(ramfs ramfs\): a ramfs filesystem, which cryo does not make again/);
    assert.match(r.stdout, /mount \/under\/t \(tmpfs tmpfs\): covered by mount \/under \(tmpfs\)/);
    const d = dump(c.t, 'refused');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.match(d.res.stderr, /POSIX message queues/);
    assert.equal(runningProblem(c.t), null);
    const n = counter(c.t.pid);
    assert.ok(await waitFor(() => counter(c.t.pid) > n, 10_000));
  });
});
