// Restoring into another kernel: a real dump of test/targets/vdso.c is given another kernel's
// vdso (all its code int3, its symbols resized, its data pages a page smaller), so the restore
// must map the running vdso elsewhere and turn the old entry points into jumps to it. The
// target then calls clock_gettime, gettimeofday, time, clock_getres and getcpu through the old
// addresses (it found them at setup, as glibc does) and checks them against the syscalls.
// A vdso exporting a function the running one lacks is refused before any task exists.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanup, cryoReport, dump, readyTarget, restore, goAndWaitResult, pidExists, waitPidGone, describePid, type Target } from './lib/index.js';
import { otherKernel } from './lib/vdso-alter.js';

after(cleanup);


async function dumped(): Promise<{ t: Target; dir: string }> {
  const t = await readyTarget('vdso');
  const d = dump(t, '1');
  assert.equal(d.res.code, 0, cryoReport(d.res));
  assert.ok(await waitPidGone(t.pid, 10_000), `the dumped target is still there: ${describePid(t.pid)}`);
  return { t, dir: d.dir };
}

describe("restore with another kernel's vdso", () => {
  it('the old vdso entry points jump to the running vdso: the target\'s clock calls through them are right', async () => {
    const { t, dir } = await dumped();
    otherKernel(dir, t.pid);
    const r = restore(t, dir, '1');
    assert.equal(r.res.code, 0, cryoReport(r.res));
    assert.equal(r.pidFromFile, t.pid);
    const log = fs.readFileSync(r.res.logFile!, 'utf8');
    assert.match(log, /vdso of another kernel at 0x[0-9a-f]+ proxied to the running one/);
    for (const sym of ['__vdso_clock_gettime', '__vdso_gettimeofday', '__vdso_time', '__vdso_getcpu', '__vdso_clock_getres']) {
      assert.ok(log.includes(sym) || log.includes(sym.replace('__vdso_', '')), `${sym} not patched: ${log.split('\n').find((l) => l.includes('proxied'))}`);
    }
    fs.writeFileSync(path.join(t.dir, 'otherkernel'), '');
    const res = await goAndWaitResult(t);
    assert.ok(res.pass, `${res.line}\n${res.log}`);
  });

  it('a vdso exporting a function the running one lacks is refused, named, before any task exists', async () => {
    const { t, dir } = await dumped();
    otherKernel(dir, t.pid, ['__vdso_getcpu', '__vdso_getcpX']);
    const r = restore(t, dir, '1');
    assert.notEqual(r.res.code, 0, 'restored anyway');
    assert.match(r.res.stderr, /is another kernel's: it exports (.*, )?__vdso_getcpX(, .*)?, which the running kernel's vdso lacks/);
    assert.ok(!pidExists(t.pid) || describePid(t.pid).includes('zombie'), `pid ${t.pid} exists: ${describePid(t.pid)}`);
  });
});
