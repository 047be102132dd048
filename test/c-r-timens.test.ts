// A tree in a time namespace of its own (`unshare --time --fork --monotonic 500 --boottime 1000`,
// the target being the root and its child in the same namespace): checkpointed and restored
// through the CLI. The target (test/targets/timens.c) and its child check that the offsets read
// the same, the clocks went on, and the vdso and the kernel agree; the test bounds the root's
// CLOCK_MONOTONIC by the host's plus the offset, reads the offsets and the clocks in
// timens-N.img (crit and cryo show), and checks a failed restore at its step leaves no process.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { decodeImage, encodeImage } from '../src/image/io.js';
import { timens_entrySchema, type timens_entry } from '../src/image/gen/timens_pb.js';
import { after, describe, it } from 'node:test';
import {
  buildTarget, startTarget, waitForLine, cryo, cryoReport, dump, restore, cleanupTrees, descendants, checkRestore, expectPass,
  critDecodeAll, readyPython, pidExists, runningProblem, type Target,
} from './lib/index.js';

after(cleanupTrees);

const OFFSETS = 'monotonic         500         0\nboottime         1000         0\n';

/** unshare's child (the root, in the new time namespace) as the Target the harness follows. */
async function readyTimens(args: string[] = [], moreNs: string[] = []): Promise<{ unshare: Target; t: Target; kid: number }> {
  const argv = ['/usr/bin/unshare', ...moreNs, '--time', '--fork', '--monotonic', '500', '--boottime', '1000', buildTarget('timens'), ...args];
  const unshare = await startTarget(argv, { name: 'timens' });
  await waitForLine(unshare, 'READY', 30_000);
  const [, root, kid] = descendants(unshare.pid);
  assert.ok(root && kid, `no root and child under unshare ${unshare.pid}\n${unshare.log()}`);
  return { unshare, t: { ...unshare, pid: root, argv: argv.slice(7 + moreNs.length) }, kid };
}

const timeNs = (pid: number) => fs.readlinkSync(`/proc/${pid}/ns/time`);

async function goneAll(pids: number[]): Promise<void> {
  for (const pid of pids) for (let i = 0; i < 500 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
}

/** The root's CLOCK_MONOTONIC after go lies between the host's before go and after PASS, plus 500 s. */
async function expectPassWithClock(t: Target): Promise<void> {
  const before = process.hrtime.bigint();
  await expectPass(t);
  const afterPass = process.hrtime.bigint();
  const m = /^CLOCK (\d+)$/m.exec(t.log().split('READY').pop()!);
  assert.ok(m, `no CLOCK line\n${t.log()}`);
  const inside = BigInt(m[1]!) - 500_000_000_000n;
  assert.ok(before <= inside && inside <= afterPass, `CLOCK_MONOTONIC inside less 500 s (${inside}) not within the host's ${before}..${afterPass}`);
}

describe('c/r in a time namespace of its own', () => {
  it('check -t approves it; a task whose children would go into another time namespace is refused, named', async () => {
    const { t } = await readyTimens();
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /ns   time .* — ok \(its own: saved and made again\)/);
    assert.match(c.stdout, /ns   time .* — ok \(the tree root's\)/, "the child shares the root's time namespace");
    await expectPass(t);
    const { t: py } = await readyPython('timens-unforked', [
      'import os, time, ctypes',
      'assert ctypes.CDLL(None, use_errno=True).unshare(0x80) == 0  # CLONE_NEWTIME, no fork',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS", flush=True)',
    ]);
    const refused = cryo(['check', '-t', String(py.pid)]);
    assert.equal(refused.code, 3, cryoReport(refused));
    assert.match(refused.stdout, /its children go into another time namespace \(time:\[\d+\], unshare\(CLONE_NEWTIME\)\)/);
    const d = dump(py, 'unforked');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(runningProblem(py), null, 'the refused tree runs on');
    await expectPass(py);
  });

  it('dumped (killed) and restored: the same offsets, clocks that went on, root and child in one new namespace', async () => {
    const { unshare, t, kid } = await readyTimens();
    const d = dump(t, 'k');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const images = await critDecodeAll(d.dir);
    const ids = cryo(['show', `${d.dir}/ids-${t.pid}.img`]);
    const id = /"time_ns_id": (\d+)/.exec(ids.stdout)?.[1];
    assert.ok(id && images.has(`timens-${id}.img`), `timens-${id}.img in ${[...images.keys()].join(' ')}`);
    const shown = cryo(['show', `${d.dir}/timens-${id}.img`]).stdout;
    assert.match(shown, /"cryo_monotonic_offset_ns": "?500000000000"?/, shown);
    assert.match(shown, /"cryo_boottime_offset_ns": "?1000000000000"?/, shown);
    await goneAll([unshare.pid, t.pid, kid]);
    checkRestore(t, restore(t, d.dir, 'k'));
    assert.equal(fs.readFileSync(`/proc/${t.pid}/timens_offsets`, 'utf8'), OFFSETS);
    assert.notEqual(timeNs(t.pid), fs.readlinkSync('/proc/self/ns/time'), 'a namespace of its own');
    assert.equal(timeNs(kid), timeNs(t.pid), 'the child in the root\'s namespace');
    await expectPassWithClock(t);
  });

  it('with PID, UTS and IPC namespaces of its own too (the root their init): restored in all of them, the same offsets', async () => {
    const { unshare, t, kid } = await readyTimens([], ['--pid', '--uts', '--ipc']);
    assert.equal(fs.readFileSync(`/proc/${t.pid}/status`, 'utf8').match(/^NSpid:\s+\d+\s+(\d+)$/m)?.[1], '1', 'the root is PID 1 inside');
    const d = dump(t, 'pid');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await goneAll([unshare.pid, t.pid, kid]);
    checkRestore(t, restore(t, d.dir, 'pid'));
    assert.equal(fs.readFileSync(`/proc/${t.pid}/timens_offsets`, 'utf8'), OFFSETS);
    for (const kind of ['time', 'pid', 'uts', 'ipc']) assert.notEqual(fs.readlinkSync(`/proc/${t.pid}/ns/${kind}`), fs.readlinkSync(`/proc/self/ns/${kind}`), kind);
    assert.equal(timeNs(kid), timeNs(t.pid));
    await expectPassWithClock(t);
  });

  it('dump --leave-running: nothing changes, the same namespace and offsets, and the tree goes on', async () => {
    const { t, kid } = await readyTimens();
    const ns = timeNs(t.pid);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 2 tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    await critDecodeAll(d.dir);
    assert.equal(runningProblem(t), null, 'the root runs on');
    assert.deepEqual([timeNs(t.pid), timeNs(kid)], [ns, ns]);
    assert.equal(fs.readFileSync(`/proc/${t.pid}/timens_offsets`, 'utf8'), OFFSETS);
    await expectPassWithClock(t);
  });

  it('images without cryo\'s offsets (as CRIU writes them): the offsets are the dumped clocks less the host\'s at the restore, the clocks go on', async () => {
    const { unshare, t, kid } = await readyTimens(['--any-offsets']);
    const d0 = process.hrtime.bigint();
    const d = dump(t, 'criu');
    const d1 = process.hrtime.bigint();
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const id = /"time_ns_id": (\d+)/.exec(cryo(['show', `${d.dir}/ids-${t.pid}.img`]).stdout)?.[1];
    const file = path.join(d.dir, `timens-${id}.img`);
    const [e] = decodeImage(fs.readFileSync(file), file).messages as timens_entry[];
    fs.writeFileSync(file, encodeImage('TIMENS', [create(timens_entrySchema, { monotonic: e!.monotonic, boottime: e!.boottime })]));
    fs.rmSync(path.join(d.dir, 'cryo-manifest.json'));
    assert.doesNotMatch(cryo(['show', file]).stdout, /cryo_/);
    await goneAll([unshare.pid, t.pid, kid]);
    const r0 = process.hrtime.bigint();
    checkRestore(t, restore(t, d.dir, 'criu'));
    const r1 = process.hrtime.bigint();
    const m = /^monotonic\s+(-?\d+)\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${t.pid}/timens_offsets`, 'utf8'))!;
    const offset = BigInt(m[1]!) * 1_000_000_000n + BigInt(m[2]!);
    // The dumped clock was the host's (between d0 and d1) plus 500 s; the offset is it less the host's (between r0 and r1).
    const lo = d0 + 500_000_000_000n - r1;
    const hi = d1 + 500_000_000_000n - r0;
    assert.ok(lo <= offset && offset <= hi, `monotonic offset ${offset} not within ${lo}..${hi}`);
    await expectPass(t);
  });

  it('a restore that fails at its time namespace step leaves no process behind, and the next one works', async () => {
    const { unshare, t, kid } = await readyTimens();
    const d = dump(t, 'f');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await goneAll([unshare.pid, t.pid, kid]);
    const bad = restore(t, d.dir, 'f', { env: { CRYO_FAIL_AT: 'restore:timens' } });
    assert.notEqual(bad.res.code, 0, cryoReport(bad.res));
    assert.match(bad.res.stderr, /injected failure at restore:timens/);
    for (const pid of [t.pid, kid]) assert.equal(pidExists(pid), false, `pid ${pid} left behind by the failed restore`);
    checkRestore(t, restore(t, d.dir, 'f2'));
    await expectPassWithClock(t);
  });
});
