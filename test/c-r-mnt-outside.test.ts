// A container's task holding files from outside its root: opened before `unshare --mount`, so on
// a mount of the host's (cryo's) mount namespace that the container cannot reach by path — its
// runtime's /dev/null as stdin, its log file. Their /proc links are host paths (d_path stops at
// the host namespace's root); inside the container's root the same path is nothing, or another
// file. The restore opens them from cryo's root, on the same mount: the same inode, the same link
// (a busybox root with no /dev/null at all, and one where /dev/null is a regular file). A file
// opened after the unshare but before pivot_root is on the old root's copy, detached by `umount
// -l`: refused by check and dump, named; so is a /dev/null of the container's own hidden since by
// a mount over /dev (a device is opened again by its path too), and a process that made its
// mount namespace itself, whose executable and libraries are the host's.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  killPids,
  startTarget, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, runningProblem, statusField,
  makeTempDir, waitFor, pidExists, busyboxIsStatic, BUSYBOX, type Target,
} from './lib/index.js';

after(async () => {
  await cleanupTrees();
});

interface Box {
  /** sh (holding the two host files) and its child unshare, outside the tree. */
  unshare: Target;
  t: Target;
  root: number;
  base: string;
  log: string;
}

/**
 * A busybox root (`devNull`: none, or a regular file at /dev/null) entered with unshare --fork
 * --pid --mount and pivot_root; fd 5 is the host's /dev/null and fd 6 a host log file (O_APPEND),
 * both opened before the unshare; `before`: more shell run after the unshare, before pivot_root
 * ($R the rootfs); `init`: more lines at the start of its init. Its init counts into /tmp/count until /tmp/go, then reports on its fds into /tmp/result.
 */
async function startBox(name: string, devNull: 'none' | 'file', before: string[] = [], init: string[] = []): Promise<Box> {
  const base = makeTempDir(`cryo-outside-${name}-`);
  const R = path.join(base, 'rootfs');
  for (const d of ['bin', 'tmp', 'dev']) fs.mkdirSync(path.join(R, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(R, 'bin/busybox'));
  fs.chmodSync(path.join(R, 'bin/busybox'), 0o755);
  if (devNull === 'file') fs.writeFileSync(path.join(R, 'dev/null'), 'not the device\n');
  fs.writeFileSync(path.join(R, 'init.sh'), [
    ...init,
    'i=0',
    'while [ ! -e /tmp/go ]; do i=$((i+1)); echo $i > /tmp/count; /bin/busybox sleep 0.05; done',
    // Reading the device gives end of file at once; a regular file in its place would not.
    'n=$(/bin/busybox cat <&5 | /bin/busybox wc -c)',
    'echo "after restore $i" >&6',
    'echo "read5 $n" > /tmp/result',
    'exec /bin/busybox sleep 1000', '',
  ].join('\n'));
  const log = path.join(base, 'host.log');
  fs.writeFileSync(log, 'before\n');
  const setup = path.join(base, 'setup.sh');
  fs.writeFileSync(setup, [
    'set -e', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', `R=${R}`, 'mount --bind $R $R', 'mount -t tmpfs -o size=1m tmpfs $R/tmp',
    ...before,
    'cd $R; mkdir -p .old; pivot_root . .old; /bin/busybox umount -l /.old; /bin/busybox rmdir /.old',
    'exec /bin/busybox setsid /bin/busybox sh /init.sh 0<&- 1>&- 2>&-', '',
  ].join('\n'));
  const unshare = await startTarget(['/bin/sh', '-c', `exec 5</dev/null 6>>${log}; /usr/bin/unshare --fork --pid --mount /bin/sh ${setup}`], { name: `outside-${name}` });
  let root = 0;
  assert.ok(await waitFor(() => { root = descendants(unshare.pid)[2] ?? 0; return root > 0 && fs.existsSync(`/proc/${root}/root/tmp/count`); }, 30_000), unshare.log());
  return { unshare, t: { ...unshare, pid: root, argv: ['/bin/busybox', 'sh', '/init.sh'] }, root, base, log };
}

const sameFile = (a: string, b: string) => {
  const x = fs.statSync(a);
  const y = fs.statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
};

describe('c/r of a container holding files from outside its root', () => {
  it('the host\'s /dev/null and a host log file opened before the unshare: restored on the same mount, same inode and link', async (t) => {
    assert.ok(busyboxIsStatic(), '/bin/busybox must be the static one');
    for (const devNull of ['none', 'file'] as const) {
      await t.test(`/dev/null in the container's root: ${devNull}`, async () => {
        const b = await startBox(devNull, devNull);
        try {
          const fd = (n: number) => `/proc/${b.root}/fd/${n}`;
          assert.equal(fs.readlinkSync(fd(5)), '/dev/null');
          assert.equal(fs.readlinkSync(fd(6)), b.log);
          const c = cryo(['check', '-t', String(b.root)]);
          assert.equal(c.code, 0, cryoReport(c));
          const outside = descendants(b.unshare.pid).slice(0, 2);
          const d = dump(b.t, devNull);
          assert.equal(d.res.code, 0, cryoReport(d.res));
          killPids(outside);
          assert.ok(await waitFor(() => !pidExists(b.root) && !pidExists(b.unshare.pid), 10_000));
          checkRestore(b.t, restore(b.t, d.dir, devNull));
          assert.equal(fs.readlinkSync(fd(5)), '/dev/null');
          assert.ok(sameFile(fd(5), '/dev/null'), 'fd 5 is the host\'s /dev/null again');
          assert.equal(fs.readlinkSync(fd(6)), b.log);
          assert.ok(sameFile(fd(6), b.log), 'fd 6 is the host log file again');
          assert.match(fs.readFileSync(`/proc/${b.root}/fdinfo/6`, 'utf8'), /^flags:\s+0?[0-7]*2[0-7]{3}$/m, 'O_APPEND kept');
          const n = Number(fs.readFileSync(`/proc/${b.root}/root/tmp/count`, 'utf8'));
          assert.ok(await waitFor(() => Number(fs.readFileSync(`/proc/${b.root}/root/tmp/count`, 'utf8')) > n + 2, 10_000), 'the counter goes on');
          fs.writeFileSync(`/proc/${b.root}/root/tmp/go`, '');
          assert.ok(await waitFor(() => fs.existsSync(`/proc/${b.root}/root/tmp/result`), 10_000));
          assert.equal(fs.readFileSync(`/proc/${b.root}/root/tmp/result`, 'utf8'), 'read5 0\n');
          assert.match(fs.readFileSync(b.log, 'utf8'), /^before\nafter restore \d+\n$/);
        } finally {
          killPids([...descendants(b.unshare.pid), ...descendants(b.root).reverse()]);
        }
      });
    }
  });

  it('a file opened after the unshare, before pivot_root (on the detached old root), and a /dev/null overmounted since: refused by check and dump, named, and left running', async () => {
    // And a /dev/null of its own opened inside, then hidden by a tmpfs mounted over /dev: its path leads nowhere.
    const b = await startBox('detached', 'none', ['exec 7</dev/null 8<$R/../host.log', 'mount -t tmpfs tmpfs $R/dev', 'mknod -m 666 $R/dev/null c 1 3'],
      ['exec 4</dev/null', '/bin/busybox mount -t tmpfs tmpfs /dev']);
    try {
      // The links are paths on the old root's copies, which are no longer anywhere.
      const link = (n: number) => fs.readlinkSync(`/proc/${b.root}/fd/${n}`);
      const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const c = cryo(['check', '-t', String(b.root)]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, new RegExp(`pid ${b.root} fd 7: character device ${esc(link(7))}`), cryoReport(c));
      assert.match(c.stdout, new RegExp(`pid ${b.root} fd 8: ${esc(link(8))}: its path leads nowhere`), cryoReport(c));
      assert.equal(link(4), '/dev/null');
      assert.match(c.stdout, new RegExp(`pid ${b.root} fd 4: character device /dev/null: its path leads nowhere in the task's root`), cryoReport(c));
      const d = dump(b.t, 'detached');
      assert.equal(d.res.code, 3, cryoReport(d.res));
      assert.equal(statusField(b.root, 'TracerPid'), '0', 'not traced');
      assert.equal(runningProblem(b.t), null, 'the refused container runs on');
    } finally {
      killPids([...descendants(b.unshare.pid), ...descendants(b.root).reverse()]);
    }
  });

  it('a process that made its mount namespace itself (unshare and pivot_root in-process): its executable and libraries are the host\'s, refused by check and dump, named, and left running', async () => {
    const base = makeTempDir('cryo-outside-self-');
    const R = path.join(base, 'rootfs');
    for (const d of ['bin', 'tmp']) fs.mkdirSync(path.join(R, d), { recursive: true });
    const script = [
      'import os, ctypes, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'def ok(rc, what):',
      '    if rc != 0: raise OSError(ctypes.get_errno(), what)',
      'ok(libc.unshare(0x20000), "unshare")  # CLONE_NEWNS',
      'ok(libc.mount(b"none", b"/", None, 0x44000, None), "private")  # MS_REC | MS_PRIVATE',
      `ok(libc.mount(b"${R}", b"${R}", None, 0x1000, None), "bind")`,
      `ok(libc.mount(b"tmpfs", b"${R}/tmp", b"tmpfs", 0, None), "tmpfs")`,
      `os.chdir("${R}"); os.mkdir(".old")`,
      'ok(libc.syscall(155, b".", b".old"), "pivot_root")',
      'os.chdir("/"); ok(libc.umount2(b"/.old", 2), "umount"); os.rmdir("/.old")',
      'open("/tmp/ready", "w").close()',
      'while True: time.sleep(0.05)',
    ];
    const t = await startTarget(['/usr/bin/python3', '-c', script.join('\n')], { name: 'outside-self' });
    try {
      assert.ok(await waitFor(() => fs.existsSync(`/proc/${t.pid}/root/tmp/ready`), 30_000), t.log());
      const exe = fs.readlinkSync(`/proc/${t.pid}/exe`);
      const c = cryo(['check', '-t', String(t.pid)]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.ok(c.stdout.includes(`pid ${t.pid}: its executable ${exe}: its path leads nowhere in the container's root`), cryoReport(c));
      assert.match(c.stdout, new RegExp(`pid ${t.pid} mapping [0-9a-f]+-[0-9a-f]+: mapped file /\\S+: its path leads nowhere \\(and \\d+ more: `), cryoReport(c));
      const d = dump(t, 'self');
      assert.equal(d.res.code, 3, cryoReport(d.res));
      assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
      assert.equal(runningProblem(t), null, 'the refused process runs on');
    } finally {
      killPids([t.pid]);
    }
  });
});
