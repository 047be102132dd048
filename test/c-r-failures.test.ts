// Failure injection (CRYO_FAIL_AT=<step> for every step listed by `cryo dump|restore
// --list-fail-steps`): a failed dump leaves the target running and intact, a failed restore
// leaves no process behind; and restores from damaged images fail cleanly.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  cleanup, describePid, dump, findProcesses, goAndWaitResult, killTarget, listFailSteps, mapsSnapshot, oneLineErrorProblem,
  readCwd, restore, runningProblem, sleep, waitFor, waitPidGone, type CryoResult, type Target,
} from './lib/index.js';
import { report, dumpOk, restoreOk, checkMaps, startC } from './lib/single.js';

after(cleanup);

function leftovers(t: Target): number[] {
  return findProcesses((pid) => {
    if (pid === t.pid) return true;
    if (pid === process.pid) return false;
    const cwd = readCwd(pid);
    return cwd !== null && (cwd === t.root || cwd.startsWith(t.root + '/'));
  });
}

async function assertNoLeftovers(t: Target, what: string, runs: CryoResult[]): Promise<void> {
  if (await waitFor(() => leftovers(t).length === 0, 15000, 50)) return;
  const l = leftovers(t);
  assert.fail(report(`${what} left process(es) behind after 15 s:\n${l.map(describePid).join('\n')}`, t, runs));
}

const FAIL_TARGETS = ['memory', 'regs'];

describe('failure injection: a failed dump leaves the target running and intact', () => {
  after(cleanup);
  for (const name of FAIL_TARGETS) {
    it(name, { timeout: 600_000 }, async (tt) => {
      const steps = listFailSteps('dump'); // throws (fails this test) when the CLI lacks it
      for (const step of steps) {
        await tt.test(`CRYO_FAIL_AT=${step}`, { timeout: 60_000 }, async () => {
          const t = await startC(name);
          const runs: CryoResult[] = [];
          const maps0 = mapsSnapshot(t.pid);
          const d = dump(t, `fail-${step}`, { env: { CRYO_FAIL_AT: step } });
          runs.push(d.res);
          if (d.res.code === 0) assert.fail(report(`dump with CRYO_FAIL_AT=${step} exited 0`, t, runs));
          const one = oneLineErrorProblem(d.res);
          if (one) assert.fail(report(`failed dump (CRYO_FAIL_AT=${step}): ${one}`, t, runs));
          await sleep(100);
          const p = runningProblem(t);
          if (p) assert.fail(report(`after the failed dump (CRYO_FAIL_AT=${step}) the target is not running normally: ${p}`, t, runs));
          checkMaps(t, maps0, `after the failed dump (CRYO_FAIL_AT=${step})`, runs);
          const r = await goAndWaitResult(t);
          if (!r.pass) assert.fail(report(`after the failed dump (CRYO_FAIL_AT=${step}) the target reported ${r.line}`, t, runs));
        });
      }
    });
  }
});

describe('failure injection: a failed restore leaves no process behind', () => {
  after(cleanup);
  for (const name of FAIL_TARGETS) {
    it(name, { timeout: 900_000 }, async (tt) => {
      const steps = listFailSteps('restore');
      const t = await startC(name);
      const runs: CryoResult[] = [];
      const dir = await dumpOk(t, 'base', runs);
      for (const step of steps) {
        await tt.test(`CRYO_FAIL_AT=${step}`, { timeout: 60_000 }, async () => {
          const stepRuns = [...runs];
          const r = restore(t, dir, `fail-${step}`, { env: { CRYO_FAIL_AT: step } });
          stepRuns.push(r.res);
          if (r.res.code === 0) {
            killTarget(t);
            await waitPidGone(t.pid);
            assert.fail(report(`restore with CRYO_FAIL_AT=${step} exited 0`, t, stepRuns));
          }
          const one = oneLineErrorProblem(r.res);
          await assertNoLeftovers(t, `restore with CRYO_FAIL_AT=${step}`, stepRuns);
          if (one) assert.fail(report(`failed restore (CRYO_FAIL_AT=${step}): ${one}`, t, stepRuns));
        });
      }
      // the images are still good and the failed attempts did not spoil anything
      await assertNoLeftovers(t, 'the failed restores', runs);
      await restoreOk(t, dir, 'after-failures', runs);
      const r = await goAndWaitResult(t);
      if (!r.pass) assert.fail(report(`restore after the failed attempts: target reported ${r.line}`, t, runs));
    });
  }
});

// ---- damaged images ---------------------------------------------------------------------------

interface Damage {
  name: string;
  apply(dir: string, pid: number): void;
}

function u32At(file: string, offset: number): number {
  return fs.readFileSync(file).readUInt32LE(offset);
}

function setU32(file: string, offset: number, value: number): void {
  const b = fs.readFileSync(file);
  b.writeUInt32LE(value >>> 0, offset);
  fs.writeFileSync(file, b);
}

/** Deterministic garbage (xorshift32). */
function garbage(n: number, seed = 0x12345678): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function firstPagesFile(dir: string): string {
  const f = fs
    .readdirSync(dir)
    .filter((n) => /^pages-\d+\.img$/.test(n))
    .sort()[0];
  if (!f) throw new Error(`no pages-*.img in ${dir}`);
  return path.join(dir, f);
}

const DAMAGES: Damage[] = [
  {
    name: 'truncated core-PID.img',
    apply: (dir, pid) => {
      const f = path.join(dir, `core-${pid}.img`);
      fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2));
    },
  },
  { name: 'wrong magic in inventory.img', apply: (dir) => setU32(path.join(dir, 'inventory.img'), 0, 0xdeadbeef) },
  {
    // a valid magic, but the one of another image type (mm)
    name: 'core-PID.img carrying the mm image magic',
    apply: (dir, pid) => setU32(path.join(dir, `core-${pid}.img`), 4, u32At(path.join(dir, `mm-${pid}.img`), 4)),
  },
  { name: 'missing pagemap-PID.img', apply: (dir, pid) => fs.rmSync(path.join(dir, `pagemap-${pid}.img`)) },
  { name: 'missing mm-PID.img', apply: (dir, pid) => fs.rmSync(path.join(dir, `mm-${pid}.img`)) },
  {
    name: 'garbage after the magic in inventory.img',
    apply: (dir) => {
      const f = path.join(dir, 'inventory.img');
      const b = fs.readFileSync(f);
      garbage(b.length - 4).copy(b, 4);
      fs.writeFileSync(f, b);
    },
  },
  {
    name: 'truncated pages-N.img (fewer pages than pagemap promises)',
    apply: (dir) => {
      const f = firstPagesFile(dir);
      const size = fs.statSync(f).size;
      fs.truncateSync(f, Math.max(0, size - 2 * 4096));
    },
  },
];

describe('damaged images: restore fails cleanly', () => {
  after(cleanup);
  it('memory', { timeout: 600_000 }, async (tt) => {
    const t = await startC('memory');
    const runs: CryoResult[] = [];
    const dir = await dumpOk(t, 'pristine', runs);
    for (const dmg of DAMAGES) {
      await tt.test(dmg.name, { timeout: 60_000 }, async () => {
        const bad = path.join(t.root, `img-bad-${DAMAGES.indexOf(dmg)}`);
        fs.cpSync(dir, bad, { recursive: true });
        dmg.apply(bad, t.pid);
        const stepRuns = [...runs];
        const r = restore(t, bad, `bad-${DAMAGES.indexOf(dmg)}`);
        stepRuns.push(r.res);
        if (r.res.code === 0) {
          killTarget(t);
          await waitPidGone(t.pid);
          assert.fail(report(`restore from images with ${dmg.name} exited 0`, t, stepRuns));
        }
        await assertNoLeftovers(t, `restore from images with ${dmg.name}`, stepRuns);
        const one = oneLineErrorProblem(r.res);
        if (one) assert.fail(report(`restore from images with ${dmg.name}: ${one}`, t, stepRuns));
      });
    }
    await assertNoLeftovers(t, 'the restores from damaged images', runs);
    await restoreOk(t, dir, 'pristine', runs);
    const r = await goAndWaitResult(t);
    if (!r.pass) assert.fail(report(`restore from the pristine images: target reported ${r.line}`, t, runs));
  });
});
