// Files of the kernel's own filesystems kept open by a program (procfs, sysfs, cgroupfs: read
// again and again, as monitors and supervisors do) come back opened again by their paths, and
// read what they would have read without the restore: the process's own /proc/self/status (its
// PID), /proc/meminfo, a /proc/PID directory (of itself and of its child, in the tree), a cgroup
// file. Their size and mtime are the moment's and are not held against them (before, the restore
// failed: 'changed since the dump'). A /proc file of a process outside the tree is refused
// (refusals.test.ts).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cryoReport, dump, restore } from './lib/index.js';
import { allGone, checkRestore, cleanupTrees, expectPass, readyPython } from './lib/tree.js';

after(cleanupTrees);

const PROGRAM = [
  'import os, sys, time, glob',
  'me = os.getpid()',
  'kid = os.fork()',
  'if kid == 0:',
  '    while os.getppid() == me: time.sleep(0.05)',
  '    os._exit(0)',
  'status = open("/proc/self/status"); status.read()',
  'meminfo = open("/proc/meminfo"); meminfo.read()',
  'own = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)',
  'kidstat = open("/proc/%d/stat" % kid)',
  'cg = [p for p in glob.glob("/sys/fs/cgroup/*/cgroup.procs") + glob.glob("/sys/fs/cgroup/cgroup.procs")][:1]',
  'cgf = open(cg[0]) if cg else None',
  'def ok():',
  '    status.seek(0); pid = [l.split()[1] for l in status.read().splitlines() if l.startswith("Pid:")]',
  '    meminfo.seek(0); mem = meminfo.read()',
  '    kidstat.seek(0); k = kidstat.read().split()[0]',
  '    bad = []',
  '    if pid != [str(me)]: bad.append("status %r" % pid)',
  '    if "MemTotal:" not in mem: bad.append("meminfo")',
  '    if "status" not in os.listdir(own): bad.append("/proc/self dir")',
  '    if k != str(kid): bad.append("kid stat %r" % k)',
  '    if cgf is not None:',
  '        cgf.seek(0)',
  '        if not cgf.read().strip(): bad.append("cgroup file empty")',
  '    return bad',
  'assert not ok(), ok()',
  'print("READY", flush=True)',
  'while not os.path.exists("go"): time.sleep(0.01)',
  'bad = ok()',
  'print("PASS" if not bad else "FAIL: %s" % bad, flush=True)',
];

describe('files of procfs, sysfs and cgroupfs held open', () => {
  for (const mode of ['kill', 'leave-running'] as const) {
    it(`come back reading what they read (${mode})`, async () => {
      const { t } = await readyPython(`pseudofs-${mode}`, PROGRAM);
      const d = dump(t, mode, { leaveRunning: mode === 'leave-running' });
      assert.equal(d.res.code, 0, cryoReport(d.res));
      if (mode === 'kill') {
        await allGone([t.pid]);
        checkRestore(t, restore(t, d.dir, mode));
      }
      await expectPass(t);
    });
  }

});
