// Nested PID namespaces: a tree in its own PID namespace (`unshare --fork --pid`, the target its
// init) in which one task unshares CLONE_NEWPID and forks the init of a second level, whose
// child clones a third with CLONE_NEWPID (test/targets/nestpid.c). Dumped and restored through
// the CLI: every task and thread has its PID at every level again (NSpid, read by the target from
// /proc/self/status and by the test from outside), a zombie at the third level, and where each
// parent's later children go (pid_for_children). What stays unsupported is refused, named.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, expectPass,
  runningProblem, critDecodeAll, statusField, pidExists, waitFor, startContainer, killContainers, nsenterMnt, counter, type Target,
} from './lib/index.js';

after(async () => {
  killContainers();
  await cleanupTrees();
});

async function start(argv: string[], name: string): Promise<{ unshare: Target; t: Target }> {
  const unshare = await startTarget(['/usr/bin/unshare', '--fork', '--pid', ...argv], { name });
  await waitForLine(unshare, 'READY', 30_000);
  const init = descendants(unshare.pid).slice(1).find((p) => statusField(p, 'NSpid')?.split(/\s+/).pop() === '1');
  assert.ok(init, `no init\n${unshare.log()}`);
  return { unshare, t: { ...unshare, pid: init, argv } };
}

/** Every task and thread of the tree with its NSpid, host PID first. */
function nsPids(root: number): string[] {
  const nspid = (p: number, tid: string) => /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${p}/task/${tid}/status`, 'utf8'))?.[1]?.trim();
  return descendants(root).flatMap((p) => fs.readdirSync(`/proc/${p}/task`).map((tid) => `${p}/${tid}: ${nspid(p, tid)}`)).sort();
}

async function waitGone(pids: number[]): Promise<void> {
  for (const pid of pids) {
    for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
  }
}

describe('c/r with PID namespaces nested below the root\'s', () => {
  it('check -t: each nested namespace and the unsharer\'s pid_for_children are ok', async () => {
    const { t } = await start([buildTarget('nestpid')], 'nestpid');
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    assert.equal(c.stdout.match(/ns   pid    pid:\[\d+\] — ok \(nested below the tree root's: made again\)/g)?.length, 3, c.stdout);
    assert.match(c.stdout, /ns   pid_for_children pid:\[\d+\] — ok \(nested below the tree root's: made again\)/);
    await expectPass(t);
  });

  it('dumped (killed) and restored: every PID at every level, threads, a zombie, pid_for_children', async () => {
    const { unshare, t } = await start([buildTarget('nestpid')], 'nestpid');
    const before = nsPids(t.pid);
    assert.ok(before.some((l) => /: \d+\t\d+\t\d+\t1$/.test(l)), `a task at the third level, its init\n${before.join('\n')}`);
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await critDecodeAll(d.dir);
    const pstree = JSON.parse(cryo(['show', `${d.dir}/pstree.img`]).stdout) as { entries: { pid: number; cryo_ns_pid?: number[]; cryo_ns_threads?: number[] }[] };
    const levels = pstree.entries.map((e) => e.cryo_ns_pid?.length ?? 0).sort();
    assert.deepEqual(levels, [1, 1, 2, 2, 3, 3], JSON.stringify(pstree.entries));
    // The unsharer's ids name the namespace of its child, the second level's init.
    const ids = pstree.entries.filter((e) => fs.existsSync(`${d.dir}/ids-${e.pid}.img`)).map((e) => ({
      pid: e.pid, nsPid: e.cryo_ns_pid ?? [],
      ids: (JSON.parse(cryo(['show', `${d.dir}/ids-${e.pid}.img`]).stdout) as { entries: { pid_ns_id: number; cryo_pid_for_children_ns_id?: number }[] }).entries[0]!,
    }));
    const unsharer = ids.filter((x) => x.ids.cryo_pid_for_children_ns_id !== undefined);
    assert.equal(unsharer.length, 1, JSON.stringify(ids));
    const l2init = ids.find((x) => x.nsPid.length === 2 && x.nsPid[1] === 1)!;
    assert.equal(unsharer[0]!.ids.cryo_pid_for_children_ns_id, l2init.ids.pid_ns_id);
    assert.equal(new Set(ids.map((x) => x.ids.pid_ns_id)).size, 3, 'three PID namespaces');
    await waitGone([unshare.pid, ...before.map((l) => Number(l.split('/')[0]))]);
    checkRestore(t, restore(t, d.dir, '1'));
    assert.deepEqual(nsPids(t.pid), before, 'every task and thread has its PID at every level again');
    await expectPass(t);
  });

  it('dump --leave-running: nothing changes and the tree goes on', async () => {
    const { t } = await start([buildTarget('nestpid')], 'nestpid');
    const before = nsPids(t.pid);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 5 tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    assert.equal(runningProblem(t), null);
    assert.deepEqual(nsPids(t.pid), before);
    await expectPass(t);
  });

  it('a restore that fails late leaves no process of any level behind, and the next one works', async () => {
    const { unshare, t } = await start([buildTarget('nestpid')], 'nestpid');
    const pids = descendants(t.pid);
    const d = dump(t, 'f');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await waitGone([unshare.pid, ...pids]);
    const bad = restore(t, d.dir, 'f', { env: { CRYO_FAIL_AT: 'restore:regs' } });
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /injected failure at restore:regs/);
    for (const pid of pids) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
    checkRestore(t, restore(t, d.dir, 'f2'));
    await expectPass(t);
  });

  it('a second task forked into a namespace after the unshare, a zombie that was an init and an unshare without a fork are refused by check and dump, named', async () => {
    const script = [
      'import ctypes, os, time',
      'os.setsid()',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'assert libc.unshare(0x20000000) == 0  # CLONE_NEWPID',
      'kids = []',
      'for i in range(2):',
      '    k = os.fork()',
      '    if k == 0:',
      '        while True: time.sleep(1)',
      '    kids.append(k)',
      'print("READY", *kids, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'for k in reversed(kids): os.kill(k, 9); os.waitpid(k, 0)  # the init of their namespace waits for the other to be reaped',
      'print("PASS", flush=True)',
    ];
    const { t } = await start(['/usr/bin/python3', '-c', script.join('\n')], 'nest-second-fork');
    const [first, second] = descendants(t.pid).slice(1);
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`pid ${second}: PID 2 in PID namespace pid:\\[\\d+\\] but forked by ${t.pid} outside it`), c.stdout);
    assert.doesNotMatch(c.stdout, new RegExp(`pid ${first}:`), 'the namespace\'s init itself is fine');
    const d = dump(t, 'second');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(runningProblem(t), null, 'the refused tree runs on');
    await expectPass(t);

    const zscript = [
      'import ctypes, os, time',
      'os.setsid()',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'assert libc.unshare(0x20000000) == 0  # CLONE_NEWPID',
      'k = os.fork()',
      'if k == 0: os._exit(3)',
      'while os.waitid(os.P_PID, k, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None: time.sleep(0.01)',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'os.waitpid(k, 0)',
      'print("PASS", flush=True)',
    ];
    const z = await start(['/usr/bin/python3', '-c', zscript.join('\n')], 'nest-zombie-init');
    const zc = cryo(['check', '-t', String(z.t.pid)]);
    assert.equal(zc.code, 3, cryoReport(zc));
    assert.match(zc.stdout, /zombie that was the init of a PID namespace of its own \(NSpid \d+ \d+ 1\)/, zc.stdout);
    assert.equal(dump(z.t, 'zombie').res.code, 3);
    assert.equal(runningProblem(z.t), null);
    await expectPass(z.t);

    // unshare(CLONE_NEWPID) and no fork yet: the next child would start the namespace.
    const u = await start(['/usr/bin/python3', '-c', [...script.slice(0, 4), 'print("READY", flush=True)', 'while not os.path.exists("go"): time.sleep(0.01)', 'print("PASS", flush=True)'].join('\n')], 'nest-no-fork');
    const uc = cryo(['check', '-t', String(u.t.pid)]);
    assert.equal(uc.code, 3, cryoReport(uc));
    assert.match(uc.stdout, /its next child would start a PID namespace it unshared \(unshare\(CLONE_NEWPID\), no fork since\)/);
    assert.equal(dump(u.t, 'no-fork').res.code, 3);
    assert.equal(runningProblem(u.t), null);
    await expectPass(u.t);
  });

  it('a busybox container whose init runs `unshare -p -f` inside: restored with the inner namespace, PIDs at every level as the container sees them', async () => {
    const c = await startContainer([], { initLines: ["unshare -p -f /bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/inner; sleep 0.3; done' &"] });
    const inner = (): number => Number(fs.readFileSync(`/proc/${c.t.pid}/root/tmp/inner`, 'utf8').trim() || 0);
    assert.ok(await waitFor(() => fs.existsSync(`/proc/${c.t.pid}/root/tmp/inner`), 10_000), 'the inner shell runs');
    // unshare (level 1) and the inner shell (the inner namespace's init), without the sleeps.
    const lasting = () => descendants(c.t.pid).filter((p) => ['unshare', 'sh'].includes(fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim()) && p !== c.t.pid);
    const inside = (pids: number[]) => pids.map((p) => {
      const l1 = statusField(p, 'NSpid')!.split(/\s+/)[1]!;
      return `${p}: ${statusField(p, 'NSpid')} | inside: ${/^NSpid:\s*(.*)$/m.exec(nsenterMnt(c.t.pid, ['/bin/cat', `/proc/${l1}/status`]))![1]!.trim()}`;
    });
    const pids = lasting();
    assert.equal(pids.length, 2, pids.join(' '));
    const before = inside(pids);
    assert.ok(before.some((l) => /\| inside: \d+\s+1$/.test(l)), `the inner init is PID 1 of its namespace, seen from the container\n${before.join('\n')}`);
    const all = descendants(c.t.pid);
    const was = inner();
    const d = dump(c.t, 'container');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await critDecodeAll(d.dir);
    for (const pid of [c.unshare.pid, ...all]) assert.ok(await waitFor(() => !pidExists(pid), 10_000), `pid ${pid} still there after the dump`);
    checkRestore(c.t, restore(c.t, d.dir, 'container'));
    assert.deepEqual(inside(lasting()), before, 'the same PIDs at every level, from the host and from inside the container');
    assert.ok(await waitFor(() => inner() > was, 10_000), 'the inner shell goes on counting');
    const outer = counter(c.t.pid);
    assert.ok(await waitFor(() => counter(c.t.pid) > outer, 10_000), 'the container\'s own counter too');
  });
});
