// cryo restores images written by CRIU 4.2 (shared/fixtures/criu-4.2-images), each from a copy in
// a temp dir, with its recorded PIDs: the restored processes are checked from outside (the tree:
// bash reaps its restored children) or check themselves (the python one: threads, pipe and socket
// data, on SIGUSR1; its clocks go on from the dumped ones when this boot's are behind them). Every restored PID is killed afterwards, and only if it runs what we restored.
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, cryo, cryoReport, describePid, makeTempDir, cleanup, pidExists, procStat, readCmdline, waitFor, waitPidGone, statusField } from './lib/index.js';
import { decodeImageAs, encodeImage } from '../src/image/io.js';
import { inventory_entrySchema } from '../src/image/gen/inventory_pb.js';
import { timens_entrySchema } from '../src/image/gen/timens_pb.js';
import { task_kobj_ids_entrySchema, core_entrySchema } from '../src/image/gen/core_pb.js';
import type { GenMessage } from '@bufbuild/protobuf/codegenv2';
import type { Message } from '@bufbuild/protobuf';

const SRV = '/srv/fixtures';
const restored: { pid: number; cmd: string }[] = [];
const made: string[] = [];

after(async () => {
  for (const r of restored) {
    if (readCmdline(r.pid)?.join(' ') !== r.cmd) continue;
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const r of restored) await waitPidGone(r.pid, 10_000);
  for (const f of made) fs.rmSync(f, { force: true });
  await cleanup();
});

/** The fixture's working directory (and files it names), made if missing. */
function provide(file?: { at: string; from: string }): void {
  if (!fs.existsSync(SRV)) fs.mkdirSync(SRV, { recursive: true, mode: 0o755 });
  if (file && !fs.existsSync(file.at)) {
    fs.copyFileSync(file.from, file.at);
    made.push(file.at);
  }
}

/** A private copy of a fixture, modes as cryo wants an image dir (0700/0600). */
function copyFixture(name: string): string {
  const dir = path.join(makeTempDir('cryo-criu-fixture-'), name);
  fs.cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  fs.chmodSync(dir, 0o700);
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o600);
  return dir;
}

/** Makes the host's clocks at the dump (timens-0.img) `sec` seconds. */
function setHostClocks(dir: string, sec: bigint): void {
  const file = path.join(dir, 'timens-0.img');
  const [m] = decodeImageAs(fs.readFileSync(file), timens_entrySchema);
  m!.monotonic = { ...m!.monotonic!, tvSec: sec, tvNsec: 0n };
  m!.boottime = { ...m!.boottime!, tvSec: sec, tvNsec: 0n };
  fs.writeFileSync(file, encodeImage('TIMENS', [m!]), { mode: 0o600 });
}

/**
 * Fails, naming the holder, when a PID the fixture needs is taken by a live process. A fixture's
 * PIDs are fixed; a kernel thread that got one on this boot (a kworker: it cannot be asked to
 * go) makes its restore impossible here. Then what is checked is the refusal: the restore fails
 * naming the PID, and the kernel thread is untouched. Returns whether the PIDs are free.
 */
async function needFree(pids: number[], fixture: string, t: TestContext): Promise<boolean> {
  for (const pid of pids) {
    // A process of an earlier test may still be on its way out (reaped by init).
    await waitFor(() => !pidExists(pid) || procStat(pid)?.state === 'Z', 5000);
    if (!pidExists(pid) || procStat(pid)?.state === 'Z') continue;
    const holder = describePid(pid);
    assert.ok(isKernelThread(pid), `PID ${pid}, recorded in the fixture, is taken by ${holder}: this machine cannot restore it`);
    const res = cryo(['restore', '-D', copyFixture(fixture), '-d', '-v4']);
    assert.notEqual(res.code, 0, `restored although PID ${pid} is ${holder}`);
    assert.match(res.stderr, new RegExp(`PID ${pid} is in use`), cryoReport(res));
    assert.ok(isKernelThread(pid), `the kernel thread ${pid} is gone or changed: ${describePid(pid)}`);
    t.diagnostic(`PID ${pid} is held by the kernel thread ${holder} on this boot: the restore was checked to refuse it, not run`);
    return false;
  }
  return true;
}

/** A kernel thread: kthreadd's child, no command line. */
function isKernelThread(pid: number): boolean {
  return procStat(pid)?.ppid === 2 && (readCmdline(pid)?.length ?? 0) === 0;
}

function restoreFixture(dir: string, root: number, cmd: string, extra: string[] = [], extraFds: number[] = []) {
  const pidfile = path.join(path.dirname(dir), 'pidfile');
  const res = cryo(['restore', '-D', dir, '-d', '--pidfile', pidfile, ...extra, '-v4', '-o', path.join(path.dirname(dir), 'restore.log')], { extraFds });
  if (res.code === 0) restored.push({ pid: root, cmd });
  return { res, pid: fs.existsSync(pidfile) ? Number(fs.readFileSync(pidfile, 'utf8')) : null };
}

describe("CRIU 4.2's images restored by cryo", () => {
  it('simple-sleep: sleep 1000 comes back with its PID, session, fds and a running state', async (t) => {
    provide();
    if (!(await needFree([26162], 'simple-sleep', t))) return;
    const dir = copyFixture('simple-sleep');
    setHostClocks(dir, 1n); // behind this boot's: time went on, as for a stopped process
    const cmd = 'sleep 1000';
    const { res, pid } = restoreFixture(dir, 26162, cmd);
    assert.equal(res.code, 0, cryoReport(res));
    assert.equal(fs.readlinkSync('/proc/26162/ns/time'), fs.readlinkSync('/proc/self/ns/time'), "the host's time namespace");
    assert.equal(pid, 26162);
    assert.equal(readCmdline(26162)?.join(' '), cmd);
    const st = procStat(26162)!;
    assert.ok(st.state === 'S' || st.state === 'R', `state ${st.state}`);
    assert.equal(st.pid, 26162);
    assert.deepEqual(fs.readdirSync('/proc/26162/fd').map(Number).sort((a, b) => a - b), [0, 1, 2, 10, 251]);
    assert.equal(fs.readlinkSync('/proc/26162/cwd'), SRV);
    // CRIU saved the vdso's pages: they are the running kernel's or a proxy, never written into it.
    assert.ok(fs.readFileSync('/proc/26162/maps', 'utf8').includes('[vdso]'));
    // fd 251 led to a pipe outside the dumped process: without --inherit-fd a pipe of its own.
    assert.match(fs.readlinkSync('/proc/26162/fd/251'), /^pipe:\[\d+\]$/);
    process.kill(26162, 'SIGKILL');
    assert.ok(await waitPidGone(26162, 10_000), describePid(26162));
  });

  it("simple-sleep's inherited pipe (fd 251) is ours with --inherit-fd fd[3]:pipe:[296888]", async (t) => {
    if (!(await needFree([26162], 'simple-sleep', t))) return;
    const dir = copyFixture('simple-sleep');
    // An fd of ours (node's pipe to cat, a socket) stands in for it: cryo gets it as its fd 3.
    const reader = spawn('cat', [], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      const wr = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
      const { res } = restoreFixture(dir, 26162, 'sleep 1000', ['--inherit-fd', 'fd[3]:pipe:[296888]'], [wr]);
      assert.equal(res.code, 0, cryoReport(res));
      assert.equal(fs.readlinkSync('/proc/26162/fd/251'), fs.readlinkSync(`/proc/self/fd/${wr}`), 'fd 251 is the one given');
    } finally {
      reader.kill('SIGKILL');
      if (readCmdline(26162)?.join(' ') === 'sleep 1000') process.kill(26162, 'SIGKILL');
      assert.ok(await waitPidGone(26162, 10_000), describePid(26162));
    }
  });

  it('what cryo cannot honour in a CRIU image is refused, named, before any task exists', async () => {
    /** A copy of simple-sleep with one message of one image changed. */
    const broken = <T extends Message>(file: string, schema: GenMessage<T>, change: (m: T) => void): string => {
      const dir = copyFixture('simple-sleep');
      const [m] = decodeImageAs(fs.readFileSync(path.join(dir, file)), schema);
      change(m!);
      fs.writeFileSync(path.join(dir, file), encodeImage(file === 'inventory.img' ? 'INVENTORY' : file.startsWith('ids') ? 'IDS' : 'CORE', [m!]), { mode: 0o600 });
      return dir;
    };
    const cases: [string, RegExp][] = [
      [broken('inventory.img', inventory_entrySchema, (i) => (i.pluginsEntry = { $typeName: 'plugins_entry', plugins: ['amdgpu_plugin'] } as never)), /inventory.img plugins_entry: .*amdgpu_plugin/],
      [broken('inventory.img', inventory_entrySchema, (i) => (i.fdinfoPerId = false)), /inventory.img fdinfo_per_id is not set/],
      // A namespace of its own needs its image (userns-N.img, netdev-N.img, utsns-N.img, timens-N.img).
      [broken('ids-26162.img', task_kobj_ids_entrySchema, (i) => (i.userNsId = 99)), /userns-99.img: no such image/],
      [broken('ids-26162.img', task_kobj_ids_entrySchema, (i) => (i.netNsId = 99)), /netdev-99.img: no such image/],
      [broken('ids-26162.img', task_kobj_ids_entrySchema, (i) => (i.utsNsId = 99)), /utsns-99.img: no such image/],
      [broken('ids-26162.img', task_kobj_ids_entrySchema, (i) => (i.timeNsId = 98)), /timens-98.img: no such image/],
      [broken('core-26162.img', core_entrySchema, (c) => (c.threadCore!.creds!.lsmProfile = 'unconfined_u:system_r')), /creds.lsm_profile "unconfined_u:system_r"/],
    ];
    for (const [dir, why] of cases) {
      const { res } = restoreFixture(dir, 26162, 'sleep 1000');
      assert.notEqual(res.code, 0, `restored anyway: ${why}`);
      assert.match(res.stderr, why);
      assert.ok(!pidExists(26162) || procStat(26162)?.state === 'Z' || readCmdline(26162)?.join(' ') !== 'sleep 1000', `a task was created: ${describePid(26162)}`);
    }
  });

  it('tree: bash and its two sleeps, same PIDs, group and session; bash still reaps them', async (t) => {
    provide();
    const pids = [26165, 26167, 26168];
    if (!(await needFree(pids, 'tree', t))) return;
    const dir = copyFixture('tree');
    const cmd = "bash -c sleep 1000 & sleep 1000 & wait";
    const { res } = restoreFixture(dir, 26165, cmd);
    assert.equal(res.code, 0, cryoReport(res));
    for (const k of [26167, 26168]) restored.push({ pid: k, cmd: 'sleep 1000' });
    for (const k of [26167, 26168]) {
      const st = procStat(k)!;
      assert.equal(st.ppid, 26165, `pid ${k}'s parent`);
      assert.equal(st.pgrp, 26165);
      assert.equal(st.session, 26165);
    }
    // bash's wait goes on: a child killed is reaped at once, and bash exits after the last one.
    process.kill(26167, 'SIGKILL');
    assert.ok(await waitFor(() => !pidExists(26167), 5000), `bash did not reap 26167: ${describePid(26167)}`);
    assert.ok(pidExists(26165) && procStat(26165)!.state !== 'Z', 'bash waits on');
    process.kill(26168, 'SIGKILL');
    assert.ok(await waitFor(() => !pidExists(26168), 5000), `bash did not reap 26168: ${describePid(26168)}`);
    assert.ok(await waitFor(() => !pidExists(26165) || procStat(26165)!.state === 'Z', 5000), 'bash exits once both are reaped');
  });

  it('py-threads-pipe-socket: python with 3 threads, a pipe and a socketpair checks itself: PASS', async (t) => {
    provide({ at: path.join(SRV, 'pyfixture.py'), from: path.join(FIXTURES, 'py-threads-pipe-socket.py') });
    const pids = [24803, 24805, 24806, 24807];
    if (!(await needFree(pids, 'py-threads-pipe-socket', t))) return;
    const result = path.join(SRV, 'pyfixture.result');
    fs.rmSync(result, { force: true });
    made.push(result);
    const dir = copyFixture('py-threads-pipe-socket');
    // Its threads sleep in clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) (Python's time.sleep):
    // with the host's clocks as dumped (timens-0.img) a day ahead of this boot's, they would
    // sleep a day; the restore gives the tree a time namespace whose clocks go on from there.
    const DAY = 86_400n;
    const uptime = BigInt(Math.floor(Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0])));
    setHostClocks(dir, uptime + DAY);
    const cmd = '/usr/bin/python3.11 /srv/fixtures/pyfixture.py';
    const { res } = restoreFixture(dir, 24803, cmd);
    assert.equal(res.code, 0, cryoReport(res));
    assert.notEqual(fs.readlinkSync('/proc/24803/ns/time'), fs.readlinkSync('/proc/self/ns/time'), 'a time namespace of its own');
    const mono = /^monotonic\s+(-?\d+)\s/m.exec(fs.readFileSync('/proc/24803/timens_offsets', 'utf8'));
    assert.ok(mono && BigInt(mono[1]!) > DAY - 60n && BigInt(mono[1]!) <= DAY, `monotonic offset about a day: ${mono?.[1]}`);
    assert.deepEqual(fs.readdirSync('/proc/24803/task').map(Number).sort(), pids, 'the same TIDs');
    process.kill(24803, 'SIGUSR1');
    assert.ok(await waitFor(() => fs.existsSync(result) && fs.readFileSync(result, 'utf8').includes('\n'), 10_000), 'no pyfixture.result');
    assert.equal(fs.readFileSync(result, 'utf8').trim(), 'PASS');
    assert.equal(statusField(24803, 'Threads'), '4');
  });

  it('threads: its binary, rebuilt here, is not the one dumped: refused by name, nothing left', async (t) => {
    provide();
    const pids = [26288, 26289, 26290, 26291, 26292];
    if (!(await needFree(pids, 'threads', t))) return;
    const exe = path.join(SRV, 'threads');
    const had = fs.existsSync(exe);
    if (!had) {
      const cc = spawnSync('cc', ['-O2', '-o', exe, path.join(FIXTURES, 'threads.c')], { encoding: 'utf8' });
      assert.equal(cc.status, 0, cc.stderr);
      made.push(exe);
    }
    const dir = copyFixture('threads');
    const { res } = restoreFixture(dir, 26288, '/srv/fixtures/threads');
    if (res.code === 0) {
      // The very binary (same build-id) was at hand: then it must run its four threads.
      assert.equal(statusField(26288, 'Threads'), '5');
      return;
    }
    assert.match(res.stderr, /\/srv\/fixtures\/threads/, cryoReport(res));
    for (const pid of pids) assert.ok(!pidExists(pid) || procStat(pid)!.state === 'Z', `pid ${pid} left behind: ${describePid(pid)}`);
  });
});
