// A tree in its own PID, UTS and IPC namespaces (`unshare --fork --pid --uts --ipc`, the
// target being the namespaces' init, PID 1 inside): checkpointed and restored through the CLI.
// The target (test/targets/nsinit.c) and its two children check their PIDs inside, the
// hostname, the semaphore values, the messages in order with their types, the shm contents and
// the ipc ids themselves; the test checks the host PIDs and NSpid of every task, the images
// with crit, and `nsenter -t PID -u hostname` against the restored tree. A fork after the restore
// takes the PID it would have taken (the namespace's last PID is kept).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, expectPass,
  runningProblem, critDecodeAll, statusField, readyPython, pidExists, waitFor, type Target,
} from './lib/index.js';

after(cleanupTrees);

/** unshare's child, the namespaces' init, as the Target the harness follows (same cwd and log). */
async function readyNsInit(): Promise<{ unshare: Target; t: Target }> {
  const unshare = await startTarget(['/usr/bin/unshare', '--fork', '--pid', '--uts', '--ipc', buildTarget('nsinit')], { name: 'nsinit' });
  await waitForLine(unshare, 'READY', 30_000);
  const kids = descendants(unshare.pid).slice(1);
  const init = kids.find((p) => statusField(p, 'NSpid')?.split(/\s+/).pop() === '1');
  assert.ok(init, `no init among ${kids.join(' ')}\n${unshare.log()}`);
  const t: Target = { ...unshare, pid: init, argv: [buildTarget('nsinit')] };
  return { unshare, t };
}

/** Every task of the tree with its NSpid (host PID, PID inside). */
function nsPids(root: number): string[] {
  return descendants(root).map((p) => `${p}: ${statusField(p, 'NSpid')}`);
}

function hostnameInside(pid: number): string {
  return execFileSync('nsenter', ['-t', String(pid), '-u', 'hostname'], { encoding: 'utf8' }).trim();
}

describe('c/r in PID, UTS and IPC namespaces of its own', () => {
  it('check -t names each namespace with its verdict', async () => {
    const { t } = await readyNsInit();
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    for (const kind of ['pid', 'uts', 'ipc']) assert.match(c.stdout, new RegExp(`ns   ${kind} .* — ok \\(its own: saved and made again\\)`));
    assert.match(c.stdout, /ns   mnt .* — ok \(cryo's own\)/);
    assert.match(c.stdout, /ns   pid .* — ok \(the tree root's\)/, 'the children share the root\'s PID namespace');
    // A child of the init is not its namespace's init: refused, named.
    const child = descendants(t.pid)[1]!;
    const refused = cryo(['check', '-t', String(child)]);
    assert.equal(refused.code, 3, cryoReport(refused));
    assert.match(refused.stdout, /PID 2 in its PID namespace, not its init/);
    await expectPass(t);
  });

  it('dumped (killed) and restored: same PIDs inside and outside, hostname, semaphores, messages, shm, ids', async () => {
    const { unshare, t } = await readyNsInit();
    const before = nsPids(t.pid);
    assert.equal(before.length, 3, before.join('\n'));
    assert.equal(hostnameInside(t.pid), 'cryo-ns-host');
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const images = await critDecodeAll(d.dir);
    const names = fs.readdirSync(d.dir);
    for (const prefix of ['utsns-', 'ipcns-var-', 'ipcns-sem-', 'ipcns-msg-', 'ipcns-shm-']) assert.ok(names.some((n) => n.startsWith(prefix)), `${prefix}*.img in ${names.join(' ')}`);
    assert.ok(images.size > 0);
    const uts = cryo(['show', `${d.dir}/${names.find((n) => n.startsWith('utsns-'))}`]);
    assert.match(uts.stdout, /"nodename": "cryo-ns-host"/);
    const pstree = cryo(['show', `${d.dir}/pstree.img`]);
    assert.match(pstree.stdout, /"cryo_ns_pid": \[\s*1\s*\]/, pstree.stdout);
    // unshare sees its child die and goes; then the PIDs are free.
    for (const pid of [unshare.pid, ...before.map((l) => Number(l.split(':')[0]))]) {
      for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
    }
    checkRestore(t, restore(t, d.dir, '1'));
    assert.deepEqual(nsPids(t.pid), before, 'every task has its host PID and its PID inside again');
    assert.equal(hostnameInside(t.pid), 'cryo-ns-host', 'nsenter into the restored UTS namespace');
    await expectPass(t);
  });

  it('dump --leave-running: nothing changes and the tree goes on', async () => {
    const { t } = await readyNsInit();
    const before = nsPids(t.pid);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 3 tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    await critDecodeAll(d.dir);
    assert.equal(runningProblem(t), null, 'the init runs on');
    assert.deepEqual(nsPids(t.pid), before);
    await expectPass(t);
  });

  it('a restore that fails in the namespaces step leaves no process behind, and the next one works', async () => {
    const { unshare, t } = await readyNsInit();
    const pids = descendants(t.pid);
    const d = dump(t, 'f');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    for (const pid of [unshare.pid, ...pids]) {
      for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
    }
    const bad = restore(t, d.dir, 'f', { env: { CRYO_FAIL_AT: 'restore:namespaces' } });
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /injected failure at restore:namespaces/);
    for (const pid of pids) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
    checkRestore(t, restore(t, d.dir, 'f2'));
    await expectPass(t);
  });

  it("a task that unshared a namespace of its own under a root in the host's is refused, named, and runs on", async () => {
    const { t } = await readyPython('ns-elsewhere', [
      'import os, subprocess, time',
      "kid = subprocess.Popen(['/usr/bin/unshare', '--uts', '/bin/sleep', '1000'])",
      "while open(f'/proc/{kid.pid}/comm').read().strip() != 'sleep': time.sleep(0.01)",
      'print("READY", kid.pid, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'kid.kill(); kid.wait()',
      'print("PASS", flush=True)',
    ]);
    const kid = Number(/READY (\d+)/.exec(t.log())![1]);
    descendants(t.pid);
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`pid ${kid}: in a uts namespace \\(uts:\\[\\d+\\]\\) that is neither cryo's nor the tree root's`));
    const d = dump(t, 'elsewhere');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(runningProblem(t), null, 'the refused tree runs on');
    await expectPass(t);
  });

  it('a task inside the PID namespace whose session leader is gone is refused by check and dump, named (the restore cannot stand in for the leader there)', async () => {
    const script = [
      'import os, sys, time',
      'r, w = os.pipe()',
      'kid = os.fork()',
      'if kid == 0:',
      '    os.setsid()',
      '    if os.fork() == 0:',
      '        os.close(r); os.write(w, str(os.getpid()).encode()); os.close(w)',
      '        while True: time.sleep(1)',
      '    os._exit(0)',
      'os.waitpid(kid, 0); os.close(w)',
      'inside = int(os.read(r, 32))',
      'print("READY", inside, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'os.kill(inside, 9); os.waitpid(inside, 0)',
      'print("PASS", flush=True)',
    ];
    const unshare = await startTarget(['/usr/bin/unshare', '--fork', '--pid', '--uts', '--ipc', '/usr/bin/python3', '-c', script.join('\n')], { name: 'ns-gone-leader' });
    await waitForLine(unshare, 'READY', 30_000);
    const kids = descendants(unshare.pid).slice(1);
    const init = kids.find((p) => statusField(p, 'NSpid')?.split(/\s+/).pop() === '1');
    assert.ok(init, `no init among ${kids.join(' ')}\n${unshare.log()}`);
    const orphan = kids.find((p) => p !== init)!;
    const t: Target = { ...unshare, pid: init };
    const c = cryo(['check', '-t', String(init)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`pid ${orphan}: in a session or process group whose leader is gone, inside a PID namespace of its own`), cryoReport(c));
    const d = dump(t, 'gone-leader');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(statusField(init, 'TracerPid'), '0', 'not traced');
    await expectPass(t);
  });

  it("the PID namespace's last PID: a fork after the restore takes the PID it would have taken, not the lowest free one", async () => {
    const script = [
      'import os, time',
      // Children 2..6 come and go: the namespace's last PID is 6, and PIDs 2..6 are free again.
      'for _ in range(5):',
      '    k = os.fork()',
      '    if k == 0: os._exit(0)',
      '    os.waitpid(k, 0)',
      'print("READY", k, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'k2 = os.fork()',
      'if k2 == 0: os._exit(0)',
      'os.waitpid(k2, 0)',
      "print('PASS' if k2 == k + 1 else 'FAIL: forked PID %d after %d' % (k2, k), flush=True)",
    ];
    const unshare = await startTarget(['/usr/bin/unshare', '--fork', '--pid', '/usr/bin/python3', '-c', script.join('\n')], { name: 'ns-last-pid' });
    await waitForLine(unshare, 'READY', 30_000);
    const init = descendants(unshare.pid).slice(1).find((p) => statusField(p, 'NSpid')?.split(/\s+/).pop() === '1');
    assert.ok(init, unshare.log());
    const t: Target = { ...unshare, pid: init };
    const d = dump(t, 'last-pid', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryo(['show', `${d.dir}/pstree.img`]).stdout, /"cryo_ns_last_pid": 6/, 'the last PID is saved; reading it left the namespace as it was');
    const again = dump(t, 'last-pid2');
    assert.equal(again.res.code, 0, cryoReport(again.res));
    assert.match(cryo(['show', `${again.dir}/pstree.img`]).stdout, /"cryo_ns_last_pid": 6/, 'the first dump left the last PID where it was');
    for (const pid of [unshare.pid, init]) assert.ok(await waitFor(() => !pidExists(pid), 10_000), `pid ${pid} still there after the dump`);
    checkRestore(t, restore(t, again.dir, 'last-pid'));
    await expectPass(t);
  });

  it('a root with UTS and IPC namespaces of its own in the host PID namespace: hostname and a queue come back', async () => {
    const { t } = await readyPython('uts-only', [
      'import os, socket, time, ctypes',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'assert libc.unshare(0x4000000 | 0x8000000) == 0  # CLONE_NEWUTS | CLONE_NEWIPC',
      "socket.sethostname('cryo-uts-only')",
      'q = libc.msgget(0x4e53aa01, 0o1000 | 0o600)',
      "buf = ctypes.create_string_buffer(b'\\x07' + b'\\0' * 7 + b'kept')",
      'assert libc.msgsnd(q, buf, 4, 0) == 0',
      'print("READY", q, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'out = ctypes.create_string_buffer(64)',
      'n = libc.msgrcv(q, out, 56, 0, 0o4000)',
      "ok = socket.gethostname() == 'cryo-uts-only' and libc.msgget(0x4e53aa01, 0) == q and n == 4 and out.raw[8:12] == b'kept' and out.raw[0] == 7",
      "print('PASS' if ok else f'FAIL: host {socket.gethostname()} n {n} {out.raw[:12]!r}', flush=True)",
    ]);
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /ns   pid .* — ok \(cryo's own\)/);
    assert.match(c.stdout, /ns   uts .* — ok \(its own: saved and made again\)/);
    const d = dump(t, 'u');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await critDecodeAll(d.dir);
    for (let i = 0; i < 500 && fs.existsSync(`/proc/${t.pid}`); i++) await new Promise((r) => setTimeout(r, 10));
    checkRestore(t, restore(t, d.dir, 'u'));
    assert.equal(hostnameInside(t.pid), 'cryo-uts-only');
    await expectPass(t);
  });
});
