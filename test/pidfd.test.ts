// pidfds, the kind added through the fd-kind interface (src/resources/files/pidfd.ts): a target
// holding pidfds to its live child, to itself, to itself as a thread and to a reaped child is
// checkpointed and restored, and checks after restore that each pidfd refers to the same
// process or to a dead one. A pidfd to a process outside the tree is refused, named.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  cryo, cryoReport, dump, restore, cleanupTrees, descendants, readyTarget, readyPython, dumpAndKill, checkRestore, expectPass,
  runningProblem,
} from './lib/index.js';

after(cleanupTrees);

interface FileEntry {
  type: string | number;
  id: number;
  pidfd?: { flags: number; nspid: number; ino: number };
}

describe('pidfds', () => {
  it('to a live child, to itself, to itself as a thread and to a dead child: the same after restore', async () => {
    const t = await readyTarget('pidfd');
    const m = /child (\d+) fd \d+, dead (\d+)/.exec(t.log());
    assert.ok(m, t.log());
    const [child, dead] = [Number(m[1]), Number(m[2])];
    const tree = descendants(t.pid);
    assert.deepEqual(tree, [t.pid, child], 'the target and its live child');

    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 0, cryoReport(c));

    const { dir } = await dumpAndKill(t, tree);
    // crit 3.17 predates CRIU's pidfd_entry (it drops the field): read it with cryo's own show.
    const shown = cryo(['show', `${dir}/files.img`]);
    assert.equal(shown.code, 0, cryoReport(shown));
    const files = (JSON.parse(shown.stdout) as { entries: FileEntry[] }).entries;
    const pids = files.filter((f) => f.pidfd).map((f) => f.pidfd!.nspid).sort((a, b) => a - b);
    assert.deepEqual(pids, [-1, t.pid, t.pid, child].sort((a, b) => a - b), `pidfd entries: ${JSON.stringify(files.filter((f) => f.pidfd))}`);
    assert.ok(!pids.includes(dead), 'the dead child is recorded as dead, not by its old PID');

    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(descendants(t.pid), [t.pid, child], 'the child is back with its PID');
    await expectPass(t);
  });

  it('dump --leave-running finds the pidfds unchanged and the target goes on with them', async () => {
    const t = await readyTarget('pidfd');
    descendants(t.pid);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 2 tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    assert.equal(runningProblem(t), null, 'the target runs on');
    await expectPass(t);
  });

  it('a pidfd to a process outside the tree is refused, named, and the process runs on', async () => {
    const { t } = await readyPython('pidfd-outside', [
      'import os, time',
      'fd = os.pidfd_open(1)',
      'print("READY", fd, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS", flush=True)',
    ]);
    const fd = Number(/READY (\d+)/.exec(t.log())![1]);
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c)); // 3: refused
    assert.match(c.stdout, new RegExp(`pid ${t.pid} fd ${fd}: pidfd of pid 1, which is outside the dumped tree — not supported`));
    const d = dump(t, 'outside');
    assert.notEqual(d.res.code, 0, cryoReport(d.res));
    assert.match(d.res.stderr, /pidfd of pid 1, which is outside the dumped tree/);
    assert.equal(runningProblem(t), null, 'the refused target runs on');
    await expectPass(t);
  });

  it("a pidfd to a sibling (made after its holder by the restore) is refused by check and dump, and the tree runs on", async () => {
    const { t } = await readyPython('pidfd-sibling', [
      'import os, time',
      'b = os.fork()',
      'if b == 0:',
      '    time.sleep(1e6)',
      'a = os.fork()',
      'if a == 0:',
      '    fd = os.pidfd_open(b)',
      '    open("a-ready", "w").write(str(fd))',
      '    time.sleep(1e6)',
      'while not os.path.exists("a-ready"): time.sleep(0.01)',
      'print("READY", a, b, open("a-ready").read(), flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'os.kill(a, 9); os.kill(b, 9); os.waitpid(a, 0); os.waitpid(b, 0)',
      'print("PASS", flush=True)',
    ]);
    const [, a, b, fd] = /READY (\d+) (\d+) (\d+)/.exec(t.log())!;
    descendants(t.pid);
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c)); // 3: refused
    assert.match(c.stdout, new RegExp(`pid ${a} fd ${fd}: pidfd of pid ${b}, which is neither an ancestor nor a descendant of its holder`));
    const d = dump(t, 'sibling');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(runningProblem(t), null, 'the refused tree runs on');
    await expectPass(t);
  });
});
