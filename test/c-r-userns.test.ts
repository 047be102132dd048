// A tree in a user namespace of its own, restored with the same maps (issue 13). The target
// (test/targets/userns.c) maps 0..65535 inside to 100000.. outside and owns its UTS, IPC and
// network namespaces; its root is uid 0 inside, its worker uids 1000/1001/1002 with groups; each
// checks its own maps, ids, groups and capabilities after the restore, the root that its
// namespaces are owned by its user namespace. The test checks the ids from outside, the images
// (crit: userns-N.img, creds as ids inside), `unshare --user --map-root-user` (setgroups deny),
// a busybox root in a mount namespace owned by it (same mounts, a tmpfs mounted inside after the
// restore), what is refused before anything is touched, and that a failed restore leaves no process.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  killPids,
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, expectPass,
  critDecodeAll, statusField, pidExists, runningProblem, makeCgroup, removeTestCgroups, makeTempDir, waitFor, type Target,
} from './lib/index.js';

after(async () => {
  await cleanupTrees();
  assert.deepEqual(await removeTestCgroups(), [], 'every test cgroup removed');
});

const MAP = '0 100000 65536';

/** The launcher's grandchild, the root (its child waits outside the tree), and the worker. */
async function readyUserns(): Promise<{ launcher: Target; t: Target; worker: number; outside: number[] }> {
  const argv = [buildTarget('userns'), MAP, MAP];
  const launcher = await startTarget(argv, { name: 'userns' });
  await waitForLine(launcher, 'READY', 30_000);
  const [, middle, root, worker] = descendants(launcher.pid);
  assert.ok(middle && root && worker, `no root and worker under ${launcher.pid}\n${launcher.log()}`);
  return { launcher, t: { ...launcher, pid: root }, worker, outside: [launcher.pid, middle] };
}

const userNs = (pid: number | 'self') => fs.readlinkSync(`/proc/${pid}/ns/${'user'}`);

async function goneAll(pids: number[]): Promise<void> {
  for (const pid of pids) for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('c/r in a user namespace of its own', () => {
  it('check -t names it with its maps; dumped (killed) and restored: same maps, ids inside and outside, namespaces it owns', async () => {
    const { t, worker, outside } = await readyUserns();
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /ns   user .* — ok \(its own: saved and made again\)/);
    assert.match(c.stdout, /ns   user .* — ok \(the tree root's\)/, 'the worker shares it');
    const d = dump(t, 'k');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const images = await critDecodeAll(d.dir);
    const id = /"user_ns_id": (\d+)/.exec(cryo(['show', `${d.dir}/ids-${t.pid}.img`]).stdout)?.[1];
    const userns = images.get(`userns-${id}.img`) as { entries: { uid_map: unknown[]; gid_map: unknown[] }[] } | undefined;
    assert.ok(userns, `userns-${id}.img in ${[...images.keys()].join(' ')}`);
    const extent = { first: 0, lower_first: 100000, count: 65536 };
    assert.deepEqual([userns.entries[0]!.uid_map, userns.entries[0]!.gid_map], [[extent], [extent]]);
    // Credentials as the tasks see them inside (CRIU's rule).
    const creds = (pid: number) => (images.get(`core-${pid}.img`) as { entries: { thread_core: { creds: Record<string, unknown> } }[] }).entries[0]!.thread_core.creds;
    assert.deepEqual([creds(t.pid).uid, creds(t.pid).gid], [0, 0]);
    assert.deepEqual([creds(worker).uid, creds(worker).euid, creds(worker).suid, creds(worker).gid, creds(worker).groups], [1000, 1001, 1002, 1000, [1000, 2000]]);
    killPids(outside);
    await goneAll([...outside, t.pid, worker]);
    checkRestore(t, restore(t, d.dir, 'k'));
    assert.notEqual(userNs(t.pid), userNs('self'));
    assert.equal(userNs(worker), userNs(t.pid));
    assert.equal(fs.readFileSync(`/proc/${t.pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), MAP);
    assert.equal(fs.readFileSync(`/proc/${t.pid}/gid_map`, 'utf8').trim().split(/\s+/).join(' '), MAP);
    assert.equal(statusField(t.pid, 'Uid')!.split(/\s+/).join(' '), '100000 100000 100000 100000');
    assert.equal(statusField(worker, 'Uid')!.split(/\s+/).join(' '), '101000 101001 101002 101001');
    assert.equal(statusField(worker, 'Groups')!.split(/\s+/).join(' '), '101000 102000');
    await expectPass(t);
  });

  it('unshare --user --map-root-user (setgroups deny): restored with it, root inside keeps its capabilities there', async () => {
    const script = [
      'import os, socket, time',
      "maps = [open('/proc/self/' + f).read() for f in ('uid_map', 'gid_map', 'setgroups')]",
      "socket.sethostname('cryo-userns-deny')",
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      "now = [open('/proc/self/' + f).read() for f in ('uid_map', 'gid_map', 'setgroups')]",
      "assert now == maps and maps[2].strip() == 'deny', (now, maps)",
      'assert os.getresuid() == (0, 0, 0) and os.getresgid() == (0, 0, 0) and os.getgroups() == [], (os.getresuid(), os.getgroups())',
      "assert socket.gethostname() == 'cryo-userns-deny'",
      "socket.sethostname('after')  # CAP_SYS_ADMIN in the UTS namespace its user namespace owns",
      'try:\n    os.setgroups([])\n    raise SystemExit("FAIL: setgroups allowed")\nexcept PermissionError:\n    pass',
      'print("PASS", flush=True)',
    ];
    const argv = ['/usr/bin/unshare', '--user', '--map-root-user', '--uts', '--fork', '/usr/bin/python3', '-c', script.join('\n')];
    const unshare = await startTarget(argv, { name: 'userns-deny' });
    await waitForLine(unshare, 'READY', 30_000);
    const root = descendants(unshare.pid)[1]!;
    const t: Target = { ...unshare, pid: root, argv: argv.slice(5) };
    const d = dump(t, 'deny');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const shown = cryo(['show', ...fs.readdirSync(d.dir).filter((f) => f.startsWith('userns-')).map((f) => `${d.dir}/${f}`)]).stdout;
    assert.match(shown, /"cryo_setgroups_deny": true/, shown);
    await goneAll([unshare.pid, root]);
    // Its UTS namespace put under cryo's user namespace on purpose (util/skip.ts): the verification names it, nothing is left.
    const wrong = restore(t, d.dir, 'owner', { env: { CRYO_SKIP: 'userns-owner' } });
    assert.notEqual(wrong.res.code, 0, cryoReport(wrong.res));
    assert.match(wrong.res.stderr, new RegExp(`pid ${root} ns uts owner: the tree's user:\\[\\d+\\] expected, cryo's user:\\[\\d+\\]`), cryoReport(wrong.res));
    assert.equal(pidExists(root), false, 'no process left by the refused restore');
    checkRestore(t, restore(t, d.dir, 'deny'));
    assert.equal(fs.readFileSync(`/proc/${root}/setgroups`, 'utf8').trim(), 'deny');
    await expectPass(t);
  });

  it('with time and cgroup namespaces owned by it: offsets, cgroup root, ownership; dump --leave-running changes nothing', async () => {
    const script = [
      'import os, socket, time, fcntl',
      'os.setsid()',
      'def owned(kind):',
      "    fd = os.open('/proc/self/ns/' + kind, os.O_RDONLY)",
      '    owner = fcntl.ioctl(fd, 0xb701)  # NS_GET_USERNS',
      "    ok = os.fstat(owner).st_ino == os.stat('/proc/self/ns/user').st_ino",
      '    os.close(owner); os.close(fd)',
      '    return ok',
      "kinds = ('uts', 'cgroup', 'time')",
      "assert all(owned(k) for k in kinds), [owned(k) for k in kinds]",
      "before = [open('/proc/self/' + f).read() for f in ('uid_map', 'gid_map', 'timens_offsets', 'cgroup')]",
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      "now = [open('/proc/self/' + f).read() for f in ('uid_map', 'gid_map', 'timens_offsets', 'cgroup')]",
      'assert now == before, (now, before)',
      "assert '500' in before[2] and before[3].endswith('::/\\n'), before",
      "assert all(owned(k) for k in kinds), [owned(k) for k in kinds]",
      "socket.sethostname('after')",
      'print("PASS", flush=True)',
    ];
    const dir = makeCgroup('userns');
    const argv = ['/usr/bin/unshare', '--user', '--map-root-user', '--uts', '--cgroup', '--time', '--monotonic', '500', '--fork', '/usr/bin/python3', '-c', script.join('\n')];
    const unshare = await startTarget(argv, { name: 'userns-time', env: { CRYO_LAUNCH_CGROUP: dir } });
    await waitForLine(unshare, 'READY', 30_000);
    const root = descendants(unshare.pid)[1]!;
    const t: Target = { ...unshare, pid: root, argv: argv.slice(9) };
    const lr = dump(t, 'lr', { leaveRunning: true });
    assert.equal(lr.res.code, 0, cryoReport(lr.res));
    assert.match(cryoReport(lr.res, 100_000), /--leave-running: 1 tasks? compared under the freeze in [\d.]+ ms: 0 differences/);
    assert.equal(runningProblem(t), null, 'the root runs on');
    const d = dump(t, 'k');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await goneAll([unshare.pid, root]);
    checkRestore(t, restore(t, d.dir, 'k'));
    assert.notEqual(userNs(root), userNs('self'));
    await expectPass(t);
  });

  it('with a mount namespace owned by it (pivot_root into a busybox root): same mounts, goes on, root inside can still mount', async () => {
    const base = makeTempDir('cryo-userns-mnt-');
    const R = path.join(base, 'rootfs');
    for (const d of ['bin', 'tmp', 'dev', 'old']) fs.mkdirSync(path.join(R, d), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(R, 'bin/busybox'));
    fs.chmodSync(path.join(R, 'bin/busybox'), 0o755);
    execFileSync('mknod', ['-m', '666', path.join(R, 'dev/null'), 'c', '1', '3']);
    fs.writeFileSync(path.join(R, 'init.sh'), [
      'i=0',
      'while [ ! -e /tmp/go ]; do i=$((i+1)); echo $i > /tmp/count; /bin/busybox sleep 0.05; done',
      // A tmpfs needs CAP_SYS_ADMIN in the user namespace that owns the mount namespace.
      '/bin/busybox mount -t tmpfs tmpfs /dev && echo MOUNTOK > /tmp/result || echo MOUNTFAIL > /tmp/result',
      'exec /bin/busybox sleep 1000', '',
    ].join('\n'));
    const setup = path.join(base, 'setup.sh');
    fs.writeFileSync(setup, [
      'set -e', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', `R=${R}`, 'mount --bind $R $R', 'mount -t tmpfs -o size=1m tmpfs $R/tmp',
      'cd $R; pivot_root . old; /bin/busybox umount -l /old',
      'exec /bin/busybox setsid /bin/busybox sh /init.sh 0<&- 1>&- 2>&-', '',
    ].join('\n'));
    const unshare = await startTarget(['/usr/bin/unshare', '--user', '--map-root-user', '--mount', '--fork', '/bin/sh', setup], { name: 'userns-mnt' });
    let root = 0;
    const count = () => Number(fs.readFileSync(`/proc/${root}/root/tmp/count`, 'utf8'));
    const mounts = (pid: number) => fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' ').replace(/ \d+:\d+ /, ' '));
    try {
      assert.ok(await waitFor(() => { root = descendants(unshare.pid)[1] ?? 0; return root > 0 && fs.existsSync(`/proc/${root}/root/tmp/count`); }, 30_000), unshare.log());
      const t: Target = { ...unshare, pid: root, argv: ['/bin/busybox', 'sh', '/init.sh'] };
      const before = mounts(root);
      assert.equal(before.length, 2, before.join('\n'));
      const n = count();
      const d = dump(t, 'mnt');
      assert.equal(d.res.code, 0, cryoReport(d.res));
      killPids([unshare.pid]);
      await goneAll([unshare.pid, root]);
      checkRestore(t, restore(t, d.dir, 'mnt'));
      assert.notEqual(userNs(root), userNs('self'));
      assert.deepEqual(mounts(root), before);
      assert.ok(await waitFor(() => count() > n + 2, 10_000), `the counter stayed at ${count()} (was ${n})`);
      fs.writeFileSync(`/proc/${root}/root/tmp/go`, '');
      assert.ok(await waitFor(() => fs.existsSync(`/proc/${root}/root/tmp/result`), 10_000));
      assert.equal(fs.readFileSync(`/proc/${root}/root/tmp/result`, 'utf8').trim(), 'MOUNTOK');
    } finally {
      // Its cwd is inside the container: cleanupTrees would not know it; killed by PID.
      if (root) killPids([...descendants(root)].reverse());
    }
  });

  it('refused before anything is touched, named: a nested user namespace, a nested PID namespace owned by it, several threads in it', async () => {
    const py = (lines: string[]) => ['/usr/bin/python3', '-c', ['import os, time, threading', 'os.setsid()', ...lines, 'print("READY", flush=True)', 'while not os.path.exists("go"): time.sleep(0.01)', 'print("PASS", flush=True)'].join('\n')];
    const cases: { name: string; argv: string[]; depth: number; reason: RegExp }[] = [
      { name: 'nested', argv: ['/usr/bin/unshare', '--user', '--map-root-user', '--fork', ...py(['import ctypes', 'assert ctypes.CDLL(None).unshare(0x10000000) == 0  # CLONE_NEWUSER, below the first'])], depth: 1, reason: /nested user namespaces are not supported/ },
      // unshare(CLONE_NEWPID) in the tree's user namespace and a fork: a nested PID namespace owned by it.
      { name: 'nestedpid', argv: ['/usr/bin/unshare', '--user', '--map-root-user', '--fork', ...py(['import ctypes', 'libc = ctypes.CDLL(None)', 'assert libc.unshare(0x20000000) == 0  # CLONE_NEWPID', 'if os.fork() == 0:', '    libc.prctl(1, 9)  # PR_SET_PDEATHSIG SIGKILL: ends with the root', '    time.sleep(3600)'])], depth: 1, reason: /PID namespace pid:\[\d+\] is owned by a user namespace of the tree's \(not cryo's\) — not supported yet/ },
      { name: 'threads', argv: ['/usr/bin/unshare', '--user', '--map-root-user', '--fork', ...py(['threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()'])], depth: 1, reason: /2 threads in the tree's own user namespace/ },
    ];
    for (const k of cases) {
      const first = await startTarget(k.argv, { name: `userns-${k.name}` });
      await waitForLine(first, 'READY', 30_000);
      const root = descendants(first.pid)[k.depth]!;
      const t: Target = { ...first, pid: root, argv: k.argv.slice(k.argv.indexOf('/usr/bin/python3')) };
      const c = cryo(['check', '-t', String(root)]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, k.reason, `${k.name}\n${cryoReport(c)}`);
      const d = dump(t, k.name);
      assert.equal(d.res.code, 3, cryoReport(d.res));
      assert.match(d.res.stderr, k.reason);
      assert.equal(statusField(root, 'TracerPid'), '0', 'not traced');
      assert.equal(runningProblem(t), null, `${k.name}: the refused tree runs on`);
      await expectPass(t);
    }
  });

  it('a restore that fails at its user namespace step leaves no process behind, and the next one works', async () => {
    const { t, worker, outside } = await readyUserns();
    const d = dump(t, 'f');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    killPids(outside);
    await goneAll([...outside, t.pid, worker]);
    const bad = restore(t, d.dir, 'f', { env: { CRYO_FAIL_AT: 'restore:userns' } });
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /injected failure at restore:userns/);
    for (const pid of [t.pid, worker]) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
    checkRestore(t, restore(t, d.dir, 'f2'));
    await expectPass(t);
  });
});
