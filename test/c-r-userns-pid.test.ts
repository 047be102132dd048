// A rootless-style container: a user namespace with a PID namespace of its own owned by it
// (`unshare --user --map-root-user --pid --fork`), its init PID 1 inside (issue 13). Checkpointed
// (killed) and restored: the same PIDs inside and outside, the same maps, the PID namespace still
// owned by the user namespace (NS_GET_USERNS, checked inside and outside), the program goes on,
// a fork after the restore takes the next PID inside, and root inside can mount a proc of its
// PID namespace that shows only its own processes; a busybox root with its own mount namespace
// and /proc (pivot_root) keeps its mounts; a restore failed at its user namespace or fork step
// leaves no process, and the next one works.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  killPids,
  startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, expectPass,
  statusField, pidExists, makeTempDir, waitFor, type Target,
} from './lib/index.js';

after(cleanupTrees);

const PY_OWNED = [
  'def owned(kind):',
  "    fd = os.open('/proc/self/ns/' + kind, os.O_RDONLY)",
  '    owner = fcntl.ioctl(fd, 0xb701)  # NS_GET_USERNS',
  "    ok = os.fstat(owner).st_ino == os.stat('/proc/self/ns/user').st_ino",
  '    os.close(owner); os.close(fd)',
  '    return ok',
];

/** The init (PID 1 inside) forks a worker (PID 2) and counts into `count` until `go`; then checks itself. */
const SCRIPT = [
  'import os, time, fcntl, ctypes',
  'os.setsid()',
  ...PY_OWNED,
  "assert os.getpid() == 1 and owned('pid') and owned('uts'), (os.getpid(), owned('pid'))",
  'kid = os.fork()',
  'if kid == 0:',
  '    while True: time.sleep(0.05)',
  "maps = [open('/proc/self/' + f).read() for f in ('uid_map', 'gid_map', 'setgroups')]",
  'print("READY", flush=True)',
  'n = 0',
  'while not os.path.exists("go"):',
  "    n += 1; open('count.tmp', 'w').write(str(n)); os.rename('count.tmp', 'count'); time.sleep(0.02)",
  "assert (os.getpid(), os.getppid(), kid) == (1, 0, 2), (os.getpid(), os.getppid(), kid)",
  "assert [open('/proc/self/' + f).read() for f in ('uid_map', 'gid_map', 'setgroups')] == maps",
  "assert owned('pid') and owned('uts') and os.getresuid() == (0, 0, 0)",
  'os.kill(kid, 0)',
  'k = os.fork()',
  'if k == 0: os._exit(0)',
  'os.waitpid(k, 0)',
  "assert k == 3, 'a fork after the restore got PID %d inside' % k",
  'libc = ctypes.CDLL(None, use_errno=True)',
  '# Root inside: a mount namespace of its own (owned by the user namespace) and a proc of its PID namespace.',
  'assert libc.unshare(0x20000) == 0, os.strerror(ctypes.get_errno())',
  "assert libc.mount(b'none', b'/', None, 0x44000, None) == 0, os.strerror(ctypes.get_errno())  # MS_REC|MS_PRIVATE",
  "assert libc.mount(b'proc', b'/proc', b'proc', 0, None) == 0, os.strerror(ctypes.get_errno())",
  "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())",
  'assert pids == [1, 2], pids',
  'print("PASS", flush=True)',
];

const ARGV = ['/usr/bin/unshare', '--user', '--map-root-user', '--pid', '--uts', '--fork', '/usr/bin/python3', '-c', SCRIPT.join('\n')];

async function readyTree(): Promise<{ unshare: Target; t: Target; kid: number }> {
  const unshare = await startTarget(ARGV, { name: 'userns-pid' });
  await waitForLine(unshare, 'READY', 30_000);
  const [root, kid] = descendants(unshare.pid).slice(1);
  assert.ok(root && kid, `no init and worker under ${unshare.pid}\n${unshare.log()}`);
  return { unshare, t: { ...unshare, pid: root, argv: ARGV.slice(6) }, kid };
}

const nsLink = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
const mapOf = (pid: number, f: string) => fs.readFileSync(`/proc/${pid}/${f}`, 'utf8').trim().split(/\s+/).join(' ');

/** Inode of the user namespace owning task `pid`'s PID namespace (NS_GET_USERNS, through python). */
function pidNsOwner(pid: number): number {
  const py = `import os, fcntl\nfd = os.open('/proc/${pid}/ns/pid', os.O_RDONLY)\nprint(os.fstat(fcntl.ioctl(fd, 0xb701)).st_ino)`;
  return Number(execFileSync('/usr/bin/python3', ['-c', py], { encoding: 'utf8' }).trim());
}

async function gone(pids: number[]): Promise<void> {
  assert.ok(await waitFor(() => pids.every((p) => !pidExists(p)), 10_000), `still there: ${pids.filter(pidExists).join(' ')}`);
}

describe('c/r of a user namespace with a PID namespace of its own', () => {
  it('dumped (killed) and restored: PIDs inside and outside, maps, the PID namespace owned by the user namespace, a fork after, proc inside', async () => {
    const { unshare, t, kid } = await readyTree();
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /ns   pid .* — ok \(its own: saved and made again\)/);
    assert.match(c.stdout, /ns   user .* — ok \(its own: saved and made again\)/);
    const before = { nspid: [statusField(t.pid, 'NSpid'), statusField(kid, 'NSpid')], uid: mapOf(t.pid, 'uid_map'), gid: mapOf(t.pid, 'gid_map') };
    assert.deepEqual(before.nspid.map((l) => l!.split(/\s+/).pop()), ['1', '2']);
    assert.equal(pidNsOwner(t.pid), fs.statSync(`/proc/${t.pid}/ns/user`).ino);
    const d = dump(t, 'k');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await gone([unshare.pid, t.pid, kid]);
    checkRestore(t, restore(t, d.dir, 'k'));
    assert.deepEqual([statusField(t.pid, 'NSpid'), statusField(kid, 'NSpid')], before.nspid);
    assert.deepEqual([mapOf(t.pid, 'uid_map'), mapOf(t.pid, 'gid_map')], [before.uid, before.gid]);
    assert.notEqual(nsLink(t.pid, 'user'), nsLink('self', 'user'));
    assert.notEqual(nsLink(t.pid, 'pid'), nsLink('self', 'pid'));
    for (const kind of ['user', 'pid', 'pid_for_children', 'uts']) assert.equal(nsLink(kid, kind), nsLink(t.pid, kind), kind);
    assert.equal(pidNsOwner(t.pid), fs.statSync(`/proc/${t.pid}/ns/user`).ino, 'the PID namespace is owned by the user namespace');
    const count = () => Number(fs.readFileSync(path.join(t.dir, 'count'), 'utf8'));
    const n = count();
    assert.ok(await waitFor(() => count() > n + 3, 10_000), `the counter stayed at ${count()}`);
    await expectPass(t);
  });

  it('a busybox root in its own mount namespace with its proc (pivot_root): same mounts and PIDs, root inside mounts a proc that shows only the container', async () => {
    const base = makeTempDir('cryo-userns-pid-');
    const R = path.join(base, 'rootfs');
    for (const d of ['bin', 'tmp', 'proc', 'old', 'dev']) fs.mkdirSync(path.join(R, d), { recursive: true });
    // What ash gives a background job as its stdin (no device node can be made in a user namespace).
    fs.writeFileSync(path.join(R, 'dev/null'), '');
    fs.copyFileSync('/bin/busybox', path.join(R, 'bin/busybox'));
    fs.chmodSync(path.join(R, 'bin/busybox'), 0o755);
    const bb = '/bin/busybox';
    fs.writeFileSync(path.join(R, 'init.sh'), [
      `${bb} sleep 100000 &`,
      'i=0',
      `while [ ! -e /tmp/go ]; do i=$((i+1)); echo $i > /tmp/count; ${bb} sleep 0.05; done`,
      `echo $$ > /tmp/self; ${bb} mkdir /tmp/p && ${bb} mount -t proc proc /tmp/p && ${bb} ls /tmp/p > /tmp/pids && echo MOUNTOK > /tmp/result || echo MOUNTFAIL > /tmp/result`,
      `exec ${bb} sleep 100000`, '',
    ].join('\n'));
    const setup = path.join(base, 'setup.sh');
    fs.writeFileSync(setup, [
      'set -e', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', `R=${R}`, 'mount --bind $R $R', 'mount -t proc proc $R/proc', 'mount -t tmpfs -o size=1m tmpfs $R/tmp',
      `cd $R; pivot_root . old; ${bb} umount -l /old`,
      `exec ${bb} setsid ${bb} sh /init.sh 0<&- 1>&- 2>&-`, '',
    ].join('\n'));
    const unshare = await startTarget(['/usr/bin/unshare', '--user', '--map-root-user', '--pid', '--mount', '--fork', '/bin/sh', setup], { name: 'userns-pid-mnt' });
    let root = 0;
    const inRoot = (f: string) => fs.readFileSync(`/proc/${root}/root/tmp/${f}`, 'utf8');
    const mounts = (pid: number) => fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' ').replace(/ \d+:\d+ /, ' '));
    // The init and its long sleep (the counter's sleeps come and go).
    const lasting = () => [root, ...descendants(root).slice(1).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('100000'))].map((p) => `${p}: ${statusField(p, 'NSpid')}`);
    try {
      assert.ok(await waitFor(() => { root = descendants(unshare.pid)[1] ?? 0; return root > 0 && fs.existsSync(`/proc/${root}/root/tmp/count`) && lasting().length === 2; }, 30_000), unshare.log());
      const t: Target = { ...unshare, pid: root, argv: [bb, 'sh', '/init.sh'] };
      assert.equal(statusField(root, 'NSpid')!.split(/\s+/).pop(), '1');
      const before = { mounts: mounts(root), pids: lasting() };
      assert.equal(before.mounts.length, 3, before.mounts.join('\n'));
      assert.equal(before.pids.length, 2, before.pids.join('\n'));
      const n = Number(inRoot('count'));
      const d = dump(t, 'mnt');
      assert.equal(d.res.code, 0, cryoReport(d.res));
      killPids([unshare.pid]);
      await gone([unshare.pid, root]);
      checkRestore(t, restore(t, d.dir, 'mnt'));
      assert.deepEqual(mounts(root), before.mounts);
      assert.deepEqual(lasting(), before.pids);
      assert.equal(pidNsOwner(root), fs.statSync(`/proc/${root}/ns/user`).ino);
      assert.ok(await waitFor(() => Number(inRoot('count')) > n + 2, 10_000), `the counter stayed at ${inRoot('count')} (was ${n})`);
      fs.writeFileSync(`/proc/${root}/root/tmp/go`, '');
      assert.ok(await waitFor(() => fs.existsSync(`/proc/${root}/root/tmp/result`), 10_000));
      assert.equal(inRoot('result').trim(), 'MOUNTOK');
      assert.equal(inRoot('self').trim(), '1');
      // Its own processes only: the init, its sleep and the ls (the host has hundreds).
      const seen = inRoot('pids').split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
      const sleeper = Number(before.pids[1]!.split(/\s+/).pop());
      assert.ok(seen.includes(1) && seen.includes(sleeper) && seen.length <= 4, `pids seen inside: ${seen.join(' ')}`);
    } finally {
      // Its cwd is inside the container: cleanupTrees would not know it; killed by PID.
      if (root) killPids([...descendants(root)].reverse());
    }
  });

  for (const step of ['restore:userns', 'restore:fork']) {
    it(`a restore that fails at ${step} leaves no process behind, and the next one works`, async () => {
      const { unshare, t, kid } = await readyTree();
      const d = dump(t, 'f');
      assert.equal(d.res.code, 0, cryoReport(d.res));
      await gone([unshare.pid, t.pid, kid]);
      const bad = restore(t, d.dir, 'f', { env: { CRYO_FAIL_AT: step } });
      assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
      assert.match(bad.res.stderr, new RegExp(`injected failure at ${step}`));
      for (const pid of [t.pid, kid]) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
      checkRestore(t, restore(t, d.dir, 'f2'));
      assert.equal(statusField(kid, 'NSpid')!.split(/\s+/).pop(), '2');
      await expectPass(t);
    });
  }
});
