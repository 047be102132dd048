// Each thread's CPU affinity and I/O priority come back (CRIU keeps neither); threads that left
// them alone still run anywhere, with no I/O priority. --leave-running leaves them as they were.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { checkRestore, cleanupTrees, cryoReport, dump, dumpAndKill, expectPass, readyPython, restore, targetReport } from './lib/index.js';

after(cleanupTrees);

const SCRIPT = [
  'import ctypes, os, threading, time',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'def ioprio(): return libc.syscall(252, 1, threading.get_native_id())',
  'def set_ioprio(v): assert libc.syscall(251, 1, threading.get_native_id(), v) == 0',
  'cpus = sorted(os.sched_getaffinity(0))',
  'assert len(cpus) >= 2, cpus',
  'BE5, IDLE = (2 << 13) | 5, 3 << 13',
  'results, ready = {}, threading.Barrier(3)',
  'go = threading.Event()',
  'def pinned():',
  '    os.sched_setaffinity(0, {cpus[0]}); set_ioprio(IDLE); ready.wait(); go.wait()',
  '    results["pinned"] = (sorted(os.sched_getaffinity(0)), ioprio()) == ([cpus[0]], IDLE)',
  'def free():',
  '    ready.wait(); go.wait()',
  '    results["free"] = (sorted(os.sched_getaffinity(0)), ioprio()) == (cpus, 0)',
  'ts = [threading.Thread(target=f) for f in (pinned, free)]',
  '[t.start() for t in ts]',
  'ready.wait()',
  'os.sched_setaffinity(0, {cpus[-1]}); set_ioprio(BE5)  # after the threads were made: they do not inherit it',
  'print("READY", flush=True)',
  'while not os.path.exists("go"): time.sleep(0.01)',
  'go.set(); [t.join() for t in ts]',
  'results["main"] = (sorted(os.sched_getaffinity(0)), ioprio()) == ([cpus[-1]], BE5)',
  'bad = [k for k, v in results.items() if not v]',
  'print("PASS" if not bad and len(results) == 3 else f"FAIL: placement lost in {bad} {results}", flush=True)',
];

describe('CPU affinity and I/O priority per thread', () => {
  it('dumped (killed) and restored', { timeout: 90_000 }, async () => {
    const { t } = await readyPython('placement', SCRIPT);
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('--leave-running', { timeout: 60_000 }, async () => {
    const { t } = await readyPython('placement-lr', SCRIPT);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, `${cryoReport(d.res)}\n${targetReport(t)}`);
    await expectPass(t);
  });
});
