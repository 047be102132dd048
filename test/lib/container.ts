// A busybox container for the mount-namespace tests and bench/container.ts: a rootfs built at
// test time from Debian's busybox-static, entered with `unshare --fork --pid --mount --uts
// --ipc --cgroup` and pivot_root by a setup script (the new namespace's PID 1) that mounts proc, a
// tmpfs /tmp with a file in it, /dev as a tmpfs with device nodes, devpts (its own instance),
// mqueue, sysfs read-only, a bind of a directory of the rootfs, a sysfs hidden under a tmpfs
// mounted over it, and whatever `setup` adds; then it execs the container's init (setsid
// /bin/sh /init.sh): a counter writing into /tmp/count and `busybox httpd` on a loopback port
// of the host's network namespace.
//
// Every mount is made inside the new mount namespace (unshare makes it private), so the host
// never sees one; the processes are killed by PID, and only when their root holds this
// container's token file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startTarget, makeTempDir, type Target } from './target.js';
import { statusField, waitFor, pidExists } from './proc.js';
import { descendants } from './tree.js';

export const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'sleep', 'cat', 'echo', 'ls', 'httpd', 'setsid', 'mkdir', 'ps', 'umount', 'rmdir', 'wget', 'mount', 'unshare'];

export interface Container {
  /** unshare, the container's parent outside it (gone once the init dies). */
  unshare: Target;
  /** The container's init (PID 1 inside), as the harness follows it. */
  t: Target;
  /** Where its rootfs is (the directory bound as its root). */
  rootfs: string;
  /** The temp dir holding rootfs, the setup script and anything the test adds. */
  base: string;
  port: number;
  token: string;
}

const live = new Set<{ pid: number; token: string }>();

/** A free TCP port on 127.0.0.1 (listened on and closed). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The busybox binary is the static one (a dynamic one would not run inside the rootfs). */
export function busyboxIsStatic(): boolean {
  try {
    return !fs.readFileSync(BUSYBOX).includes(Buffer.from('/lib64/ld-linux'));
  } catch {
    return false;
  }
}

function buildRootfs(root: string, port: number, token: string, net: boolean, initLines: string[]): void {
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp', 'www', 'www2', 'etc', 'mnt/hidden', 'data']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'www/index.html'), `hello from ${token}\n`);
  fs.writeFileSync(path.join(root, '.cryo-test-token'), token);
  fs.writeFileSync(path.join(root, 'init.sh'), [
    '#!/bin/sh',
    'exec </dev/null >/tmp/init.log 2>&1',
    // In a network namespace of its own httpd serves on every address there (the test gives it one).
    `busybox httpd -f -p ${net ? '' : '127.0.0.1:'}${port} -h /www &`,
    ...initLines,
    'i=0',
    'while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.3; done',
    '',
  ].join('\n'), { mode: 0o755 });
}

/**
 * Starts a container; `setup`: more shell lines run before pivot_root ($R is the rootfs, $B
 * the base dir, both host paths). `net`: in a network namespace of its own too (lo up, nothing
 * else: the caller adds its links; httpd is not waited for on the host's loopback then). `cgroup`:
 * started in that cgroup v2 directory (the root of its cgroup namespace then). `initLines`: more
 * lines of init.sh, run inside after httpd is started (background what must go on). `hostSetup`:
 * shell lines run in the host's mount namespace before the unshare ($R, $B as for `setup`; what
 * they mount is the caller's to unmount). `propagation`: unshare's --propagation (default private).
 */
export async function startContainer(setup: string[] = [], opts: { net?: boolean; cgroup?: string; initLines?: string[]; hostSetup?: string[]; propagation?: 'slave' } = {}): Promise<Container> {
  const net = opts.net ?? false;
  const base = makeTempDir('cryo-mnt-');
  const rootfs = path.join(base, 'rootfs');
  const token = `cryo-mnt-${process.pid}-${randomBytes(6).toString('hex')}`;
  const port = await freePort();
  buildRootfs(rootfs, port, token, net, opts.initLines ?? []);
  if (opts.hostSetup) execFileSync('/bin/sh', ['-ec', [`R=${rootfs}; B=${base}`, ...opts.hostSetup].join('\n')], { stdio: 'pipe' });
  const script = path.join(base, 'setup.sh');
  fs.writeFileSync(script, [
    '#!/bin/sh',
    'set -e',
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    `R=${rootfs}; B=${base}`,
    'mount --bind $R $R',
    'mount -t proc proc $R/proc',
    'mount -t tmpfs -o size=16m tmpfs $R/tmp',
    'echo data > $R/tmp/keep; mkdir -p $R/tmp/dir/sub; echo deep > $R/tmp/dir/sub/f; chmod 0640 $R/tmp/dir/sub/f; ln -s keep $R/tmp/link',
    'mount -t tmpfs -o mode=755,size=1m tmpfs $R/dev',
    'mknod -m 666 $R/dev/null c 1 3; mknod -m 666 $R/dev/zero c 1 5; mknod -m 666 $R/dev/urandom c 1 9',
    'mkdir $R/dev/pts $R/dev/mqueue',
    'mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts',
    'mount -t mqueue mqueue $R/dev/mqueue',
    'mount -t sysfs -o ro,nosuid,nodev,noexec sysfs $R/sys',
    'mount --bind $R/www $R/www2',
    // An overmounted path: a sysfs at /mnt/hidden, then a tmpfs over /mnt that hides it.
    'mount -t sysfs sysfs $R/mnt/hidden',
    'mount -t tmpfs -o size=1m tmpfs $R/mnt',
    'echo over > $R/mnt/over',
    ...(net ? ['ip link set lo up'] : []),
    ...setup,
    'cd $R; mkdir -p .old; pivot_root . .old; /bin/busybox umount -l /.old; /bin/busybox rmdir /.old',
    'exec /bin/busybox setsid /bin/sh /init.sh',
    '',
  ].join('\n'), { mode: 0o755 });
  const unshare = await startTarget(['/usr/bin/unshare', '--fork', '--pid', '--mount', '--uts', '--ipc', '--cgroup', ...(net ? ['--net'] : []), ...(opts.propagation ? ['--propagation', opts.propagation] : []), '/bin/sh', script], { name: 'container', ...(opts.cgroup ? { env: { CRYO_LAUNCH_CGROUP: opts.cgroup } } : {}) });
  let init = 0;
  const ok = await waitFor(() => {
    if (!pidExists(unshare.pid)) return true;
    init = descendants(unshare.pid).find((p) => statusField(p, 'NSpid')?.split(/\s+/).pop() === '1') ?? 0;
    return init > 0 && fs.existsSync(`/proc/${init}/root/tmp/count`) && fs.existsSync(`/proc/${init}/root/tmp/init.log`) && descendants(init).length >= 2;
  }, 30_000);
  assert.ok(ok && init > 0 && pidExists(init), `the container did not start\n${unshare.log()}`);
  live.add({ pid: init, token });
  const t: Target = { ...unshare, pid: init, argv: ['/bin/sh', '/init.sh'] };
  if (!net) await waitForHttp(port, 10_000);
  return { unshare, t, rootfs, base, port, token };
}

/** The container whose init is `pid` is this one (its root holds the token). */
export function isContainer(pid: number, token: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/root/.cryo-test-token`, 'utf8') === token;
  } catch {
    return false;
  }
}

/** Kills every container started here that still runs (its init, PID 1 inside, takes the rest). */
export function killContainers(): void {
  for (const c of live) {
    if (isContainer(c.pid, c.token)) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  live.clear();
}

export async function httpGet(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

export async function waitForHttp(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await httpGet(port);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export function counter(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/root/tmp/count`, 'utf8').trim());
}

/**
 * mountinfo without what a new mount tree numbers differently: mount ids (as indexes in the
 * list), device numbers of filesystems made anew, and peer group numbers (by first use).
 */
export function normalMountinfo(pid: number, rootPath?: { from: string; to: string }): string[] {
  const lines = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n');
  const ids = new Map<string, number>();
  lines.forEach((l, i) => ids.set(l.split(' ')[0]!, i));
  const groups = new Map<string, number>();
  return lines.map((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-');
    const opt = f.slice(6, sep).map((o) => o.replace(/^(shared|master):(\d+)$/, (_, k: string, n: string) => `${k}:${groups.get(n) ?? groups.set(n, groups.size).get(n)}`));
    let root = f[3]!;
    if (rootPath && root === rootPath.from) root = rootPath.to;
    return [ids.get(f[0]!) ?? 'outside', ids.get(f[1]!) ?? 'outside', root, f[4], f[5], ...opt, '-', ...f.slice(sep + 1)].join(' ');
  });
}

/**
 * Host and inside PIDs of the tasks that stay (the init and httpd). The counter's sleep comes
 * and goes: gone by the time it is read, forked by the init and not yet exec'd (the init's own
 * cmdline and comm then) or halfway through its exec, it is none of them.
 */
export function lastingPids(init: number): string[] {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return null; // ended meanwhile
    }
  };
  const own = read(`/proc/${init}/cmdline`);
  return descendants(init).filter((p) => {
    const comm = read(`/proc/${p}/comm`);
    const cmdline = read(`/proc/${p}/cmdline`);
    // Mid-exec, the new cmdline comes before the new comm.
    if (comm === null || cmdline === null || /^sleep/.test(comm) || /^(\S*\/)?sleep\0/.test(cmdline)) return false;
    return p === init || cmdline !== own;
  }).map((p) => `${p}: ${statusField(p, 'NSpid')}`);
}

export function nsenterMnt(pid: number, args: string[]): string {
  return execFileSync('nsenter', ['-t', String(pid), '-m', '-p', ...args], { encoding: 'utf8', timeout: 10_000 });
}

/** Mounts of cryo's own namespace that mention `dir` (none should: the container's are its own). */
export function hostMountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));
}
