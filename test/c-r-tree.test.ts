// Checkpoint/restore of threads and process trees, as root, through the CLI. Each target checks
// its own state after restore; the test compares the tree's shape (ps) and its memory use (sum
// of Pss) before the dump and after the restore.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import {
  buildTarget, cleanupTrees, cryo, cryoReport, dump, restore, startTarget,
  waitFor, waitForLine, waitPidGone, pidExists, sleep, session, family, shape, pssKb, allGone, dumpTree, checkRestore,
  readyTarget, expectPass, descendants, readyPython, dumpAndKill,
} from './lib/index.js';

after(cleanupTrees);

describe('threads', () => {
  it('12 threads keep their TIDs, counters and blocked syscalls (dump, restore)', async () => {
    const t = await readyTarget('threads');
    const tids = fs.readdirSync(`/proc/${t.pid}/task`).map(Number).sort();
    const { dir } = await dumpAndKill(t, [t.pid]);
    for (const tid of tids) assert.ok(fs.existsSync(`${dir}/core-${tid}.img`), `core-${tid}.img`);
    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(fs.readdirSync(`/proc/${t.pid}/task`).map(Number).sort(), tids, 'same TIDs');
    await expectPass(t);
  });

  it('a thread frozen inside an rseq critical section resumes at its abort handler', async () => {
    const t = await startTarget([buildTarget('rseqcs')], { name: 'rseqcs' });
    const abort = BigInt('0x' + /abort=([0-9a-f]+)/.exec(await waitForLine(t, 'READY', 10_000))![1]);
    const spinner = fs.readdirSync(`/proc/${t.pid}/task`).map(Number).find((tid) => tid !== t.pid)!;
    const { dir, images } = await dumpAndKill(t, [t.pid]);
    const core = images.get(`core-${spinner}.img`) as { entries: { thread_info: { gpregs: { ip: number | string } } }[] };
    assert.equal(BigInt(core.entries[0]!.thread_info.gpregs.ip), abort, 'the saved ip is the abort handler');
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('children and threads that come and go during the freeze: every dump succeeds, the restore goes on', async () => {
    const t = await readyTarget('churn');
    for (let i = 0; i < 8; i++) {
      const d = dump(t, `churn-${i}`, { leaveRunning: true });
      assert.equal(d.res.code, 0, `dump ${i} of a churning tree failed\n${cryoReport(d.res)}`);
    }
    const d = dump(t, 'last');
    assert.equal(d.res.code, 0, `final dump failed\n${cryoReport(d.res)}`);
    assert.ok(await waitPidGone(t.pid), 'dumped tree is gone');
    checkRestore(t, restore(t, d.dir, 'last'));
    await expectPass(t);
  });

  it('python3 with 8 threads goes on working', async () => {
    const { t } = await readyPython('python3-threads', [
      'import os, threading, time',
      'counts = [0] * 8',
      'def work(i):',
      '    while True:',
      '        counts[i] += 1',
      '        time.sleep(0.005)',
      'for i in range(8): threading.Thread(target=work, args=(i,), daemon=True).start()',
      'time.sleep(0.2)',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'before = list(counts); time.sleep(0.3)',
      'print("PASS" if all(c > b for c, b in zip(counts, before)) else f"FAIL: {before} {counts}", flush=True)',
    ]);
    assert.equal(fs.readdirSync(`/proc/${t.pid}/task`).length, 9);
    const d = dump(t, '1', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    process.kill(t.pid, 'SIGKILL');
    await allGone([t.pid]);
    checkRestore(t, restore(t, d.dir, '1'));
    await expectPass(t);
  });
});

describe('node', () => {
  it('a Node.js process (threads, epoll, eventfd, pipes) goes on counting with no step lost', async () => {
    const script = 'let i = 0; setInterval(() => require("fs").appendFileSync("out.txt", ++i + "\\n"), 10);';
    const t = await startTarget([process.execPath, '-e', script], { name: 'node' });
    const out = `${t.dir}/out.txt`;
    const lines = () => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').trim().split('\n').map(Number) : []);
    assert.ok(await waitFor(() => lines().length > 20, 10_000), 'node runs');
    assert.ok(fs.readdirSync(`/proc/${t.pid}/task`).length > 1, 'node has threads');
    const dir = await dumpTree(t, [t.pid]);
    const atDump = lines().length;
    checkRestore(t, restore(t, dir, '1'));
    assert.ok(await waitFor(() => lines().length > atDump + 20, 10_000), 'it counts on after restore');
    lines().forEach((n, i) => assert.equal(n, i + 1, `line ${i + 1} is ${n}: a step lost or repeated`));
  });
});

describe('pipes to processes outside the tree', () => {
  it('a job writing into a pipe read outside the tree: named by check and dump, refused without --inherit-fd, restored with it', async () => {
    const py = 'import sys, time\nprint("READY", file=sys.stderr, flush=True)\nn = 0\nwhile True:\n    n += 1\n    print(n, flush=True)\n    time.sleep(0.02)';
    const t = await startTarget(['/bin/sh', '-c', `python3 -u -c '${py}' | cat > piped.log`], { name: 'pipe-out' });
    await waitForLine(t, 'READY', 10_000);
    const kids = family(t.pid).filter((r) => r.pid !== t.pid);
    const job = kids.find((r) => r.comm.startsWith('python'))!;
    const reader = kids.find((r) => r.comm === 'cat')!;
    assert.ok(job && reader, `python and cat under sh: ${JSON.stringify(kids)}`);
    const chk = cryo(['check', '-t', String(job.pid)]);
    assert.equal(chk.code, 0, cryoReport(chk));
    assert.match(chk.stdout, new RegExp(`fd 1[: ].*pipe to pid ${reader.pid} \\(cat\\), outside the tree.*--inherit-fd`), chk.stdout);
    const key = /--inherit-fd fd\[N\]:(pipe:\[\d+\])/.exec(chk.stdout)![1]!;
    const jobTarget = { ...t, pid: job.pid };
    // At the default level the dump says so on stderr too (a warning), before the restore needs it.
    const lr = cryo(['dump', '-t', String(job.pid), '-D', `${t.root}/img-lr`, '--leave-running']);
    assert.equal(lr.code, 0, cryoReport(lr));
    assert.match(lr.stderr, new RegExp(`Warn: pid ${job.pid} fd 1: pipe to pid ${reader.pid} \\(cat\\).*--inherit-fd`), cryoReport(lr));
    const d = dump(jobTarget, 'job');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(fs.readFileSync(`${t.root}/dump-job.log`, 'utf8'), new RegExp(`pipe to pid ${reader.pid} \\(cat\\).*--inherit-fd`));
    assert.ok(await waitPidGone(job.pid), 'dumped job is gone');

    const refused = restore(jobTarget, d.dir, 'no-inherit');
    assert.notEqual(refused.res.code, 0, 'a restore without --inherit-fd is refused');
    assert.match(refused.res.stderr, new RegExp(`--inherit-fd 'fd\\[N\\]:${key.replace(/[[\]]/g, '\\$&')}'`), cryoReport(refused.res));
    assert.ok(!pidExists(job.pid), 'nothing was restored');

    const fifo = `${t.root}/new-reader`;
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const rd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const wr = fs.openSync(fifo, fs.constants.O_WRONLY);
    try {
      const ok = restore(jobTarget, d.dir, 'inherit', { extraArgs: ['--inherit-fd', `fd[3]:${key}`], extraFds: [wr] });
      checkRestore(jobTarget, ok);
      fs.closeSync(wr);
      let got = '';
      const buf = Buffer.alloc(4096);
      assert.ok(await waitFor(() => {
        try {
          const n = fs.readSync(rd, buf, 0, buf.length, null);
          got += buf.subarray(0, n).toString();
        } catch {
          /* EAGAIN: nothing yet */
        }
        return got.split('\n').filter(Boolean).length >= 5;
      }, 5000), `the restored job writes into the new reader: '${got}'`);
      const first = Number(got.split('\n')[0]);
      const before = fs.readFileSync(`${t.dir}/piped.log`, 'utf8').trim().split('\n').map(Number);
      assert.ok(first > before[before.length - 1]! - 1, `it counts on from ${before[before.length - 1]} (got ${first})`);
    } finally {
      fs.closeSync(rd);
    }
  });
});

describe('process trees', () => {
  it("bash -c 'sleep 1000 & sleep 1000 & wait': same tree, and bash still reaps its children", async () => {
    const t = await startTarget(['/bin/bash', '-c', 'sleep 1000 & sleep 1000 & wait'], { name: 'bash-tree' });
    // Both children must have exec'd sleep (a child still named bash is about to change).
    assert.ok(await waitFor(() => session(t.pid).filter((r) => r.comm === 'sleep').length === 2, 5000), 'bash started two sleeps');
    const before = session(t.pid);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    checkRestore(t, restore(t, dir, '1'));
    const afterRows = session(t.pid);
    assert.equal(shape(afterRows, t.pid), shape(before, t.pid));
    const kid = before.find((r) => r.pid !== t.pid)!.pid;
    process.kill(kid, 'SIGTERM');
    assert.ok(await waitPidGone(kid, 5000), 'bash reaped the killed sleep (no zombie left)');
    assert.ok(pidExists(t.pid), 'bash waits on for the other one');
  });

  it('a 3-level tree with two zombies (one leading its group), a stopped child, two process groups and 1 GiB shared copy-on-write', async () => {
    const t = await startTarget([buildTarget('tree'), '1024'], { name: 'tree' });
    await waitForLine(t, 'READY', 30_000);
    const before = session(t.pid);
    assert.equal(before.length, 9, shape(before, t.pid));
    const pssBefore = pssKb(before.map((r) => r.pid));
    const dir = await dumpTree(t, before.map((r) => r.pid));
    checkRestore(t, restore(t, dir, '1'));
    const afterRows = session(t.pid);
    assert.equal(shape(afterRows, t.pid), shape(before, t.pid), 'same pid, ppid, pgid, sid, state and name');
    const pssAfter = pssKb(afterRows.map((r) => r.pid));
    assert.ok(
      Math.abs(pssAfter - pssBefore) <= pssBefore * 0.1,
      `memory use (sum of Pss) was ${pssBefore} kB, is ${pssAfter} kB after restore`,
    );
    await expectPass(t);
  });

  it('a process group and a session whose leaders are gone are re-created around their members', async () => {
    const t = await readyTarget('orphans');
    const before = family(t.pid);
    assert.equal(before.length, 3, shape(before, t.pid));
    assert.ok(before.some((r) => r.pgid !== r.pid && !pidExists(r.pgid)), 'a member of a group whose leader is gone');
    assert.ok(before.some((r) => r.sid !== r.pid && !pidExists(r.sid)), 'a member of a session whose leader is gone');
    const dir = await dumpTree(t, before.map((r) => r.pid));
    checkRestore(t, restore(t, dir, '1'));
    const afterRows = family(t.pid);
    assert.equal(shape(afterRows, t.pid), shape(before, t.pid), 'same pid, ppid, pgid, sid, state and name');
    for (const r of afterRows) if (r.pid !== t.pid) assert.ok(!pidExists(r.pgid) || r.pgid === t.pid, `helper ${r.pgid} is gone`);
    await expectPass(t);
  });

  it('pipes between a parent and its child: data in flight, half-closed, O_NONBLOCK, size', async () => {
    const t = await readyTarget('pipes');
    const before = family(t.pid);
    assert.equal(before.length, 2);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    assert.ok(fs.existsSync(`${dir}/pipes-data.img`), 'pipes-data.img written');
    checkRestore(t, restore(t, dir, '1'));
    assert.equal(shape(family(t.pid), t.pid), shape(before, t.pid));
    await expectPass(t);
  });

  it('files deleted while open and mapped, and a removed directory, come back deleted, with their contents, shared as before', async () => {
    const t = await readyTarget('ghost');
    const before = family(t.pid);
    assert.equal(before.length, 2);
    // Over the limit: named as a blocker, and dump refuses.
    const small = cryo(['check', '-t', String(t.pid), '--ghost-limit', '4K']);
    assert.equal(small.code, 3, small.stdout);
    assert.match(small.stdout, /shared\.bin was deleted while in use and is 65536 bytes, over the ghost limit of 4096/);
    const refused = cryo(['dump', '-t', String(t.pid), '-D', `${t.root}/img-small`, '--ghost-limit', '4K']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /over the ghost limit/);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    const ghosts = fs.readdirSync(dir).filter((f) => f.startsWith('ghost-file-'));
    assert.equal(ghosts.length, 5, `one ghost per deleted file, directory, FIFO or device node (the removed cwd shares the open one's): ${ghosts}`);
    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(fs.readdirSync(t.dir).filter((f) => f.endsWith('.bin') || f === 'gone.d'), [], 'deleted again');
    await expectPass(t);
  });

  it('a restore that fails once the deleted files are made again removes them again and leaves no task; the next one restores', async () => {
    const t = await readyTarget('ghost');
    const before = family(t.pid);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    // restore:files: in the root's restore, after they are made; restore:resume: with every task made.
    for (const step of ['restore:files', 'restore:resume']) {
      const bad = restore(t, dir, `fail-${step.replace(/\W/g, '-')}`, { env: { CRYO_FAIL_AT: step } });
      assert.notEqual(bad.res.code, 0, `${step}: ${cryoReport(bad.res)}`);
      assert.deepEqual(fs.readdirSync(t.dir).filter((f) => f.endsWith('.bin') || f === 'gone.d'), [], `${step}: no deleted file left behind`);
      assert.deepEqual(before.filter((r) => pidExists(r.pid)).map((r) => r.pid), [], `${step}: no task left`);
    }
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('a FIFO by path between a parent and its child: data in flight, O_NONBLOCK, EOF after the writer', async () => {
    const t = await readyTarget('fifo');
    const before = family(t.pid);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    assert.ok(fs.existsSync(`${dir}/fifo-data.img`), 'fifo-data.img written');
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('memfds: name, size, seals, contents, two descriptions and a mapping shared by parent and child', async () => {
    const t = await readyTarget('memfd');
    const before = family(t.pid);
    const { dir, images } = await dumpAndKill(t, before.map((r) => r.pid));
    const inodes = (images.get('memfd.img') as { entries: { name: string; size: number; seals: number }[] }).entries;
    assert.deepEqual(inodes.map((m) => m.name).sort(), ['cryo-test', 'map-only']);
    assert.equal(inodes.find((m) => m.name === 'cryo-test')!.size, 2 << 20);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('file locks (flock, POSIX, OFD) and leases are held by the same owners after restore (--file-locks)', async () => {
    const t = await readyTarget('locks');
    const before = family(t.pid);
    const plain = cryo(['check', '-t', String(t.pid)]);
    assert.equal(plain.code, 3, plain.stdout);
    assert.match(plain.stdout, /holds a flock write lock \(pass --file-locks/);
    assert.match(plain.stdout, /holds an OFD write lock/);
    const { dir, images } = await dumpAndKill(t, before.map((r) => r.pid), ['--file-locks']);
    const locks = (images.get('filelocks.img') as { entries: { flag: number; type: number; pid: number }[] }).entries;
    assert.ok(locks.some((l) => l.flag === 2) && locks.some((l) => l.flag === 1 && l.pid !== t.pid), JSON.stringify(locks));
    // The read lease is on a description the child shares (it shows through both fds, as the flock does).
    const leases = locks.filter((l) => l.flag === 8);
    assert.ok(leases.some((l) => l.type === 0 && l.pid === t.pid) && leases.some((l) => l.type === 1 && l.pid !== t.pid), `a read and a write lease: ${JSON.stringify(locks)}`);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('children sharing the fd table (CLONE_FILES) and cwd/umask (CLONE_FS) with their parent still share them', async () => {
    const t = await readyTarget('clonefiles');
    const before = family(t.pid);
    assert.equal(before.length, 3);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('fdinfo-')), ['fdinfo-2.img'], 'one fd table for the three (id 1 stands for cryo itself, as in CRIU)');
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('SysV shared memory (one segment removed while attached, one keyed) stays shared, same ids, key and contents', async () => {
    const t = await startTarget([buildTarget('sysvshm')], { name: 'sysvshm' });
    // The keyed segment outlives the target if the test fails: remove it then (by its key).
    after(() => void spawnSync('ipcrm', ['-M', String(0x43520000 | (t.pid & 0xffff))]));
    await waitForLine(t, 'READY', 10_000);
    const before = family(t.pid);
    const { dir, images } = await dumpAndKill(t, before.map((r) => r.pid));
    const shm = [...images.entries()].find(([name]) => name.startsWith('ipcns-shm-'));
    assert.ok(shm, 'ipcns-shm image written');
    assert.deepEqual((shm[1] as { entries: { size: number }[] }).entries.map((e) => e.size).sort((a, b) => a - b), [8192, 65536]);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('a child sharing memory and signal handlers (CLONE_VM | CLONE_SIGHAND) goes on sharing them', async () => {
    const t = await readyTarget('clonevm');
    const before = family(t.pid);
    assert.equal(before.length, 2);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('a parent still waiting in vfork() is refused, and both keep running', async () => {
    const t = await readyTarget('vforkwait');
    assert.ok(await waitFor(() => family(t.pid).length === 2, 5000), 'the vfork child exists');
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, c.stdout);
    assert.match(c.stdout, /vfork child whose parent \d+ still waits for it/);
    const d = dump(t, 'refused');
    assert.notEqual(d.res.code, 0);
    assert.equal(family(t.pid).length, 2, 'both still there');
  });

  it('a task left in a session of the tree that is not its parent\'s is refused before anything is touched', async () => {
    // L leads a session; its child M forks N, then M leads a session of its own: N stays in L's.
    const { t } = await readyPython('session-other', [
      'import os, time, sys',
      'if os.fork() == 0:',
      '    os.setsid()',
      '    if os.fork() == 0:',
      '        r, w = os.pipe()',
      '        if os.fork() == 0:',
      '            os.read(r, 1); time.sleep(1000)',
      '        os.setsid(); os.write(w, b"x"); time.sleep(1000)',
      '    time.sleep(1000)',
      'time.sleep(0.5); print("READY", flush=True); time.sleep(1000)',
    ]);
    assert.ok(await waitFor(() => descendants(t.pid).length === 4, 5000), 'the four processes exist');
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, c.stdout);
    assert.match(c.stdout, /in session \d+, whose leader is in the tree but is not the session of its parent/);
  });

  it('a shell pipeline (python3 | python3) goes on with no line lost or repeated', async () => {
    const writer = 'import time\ni = 0\nwhile True:\n    i += 1; print(i, flush=True); time.sleep(0.01)';
    const reader = 'import sys\nfor l in sys.stdin:\n    f = open("out.txt", "a"); f.write(l); f.close()';
    const t = await startTarget(['/bin/bash', '-c', `python3 -u -c '${writer}' | python3 -c '${reader}'`], { name: 'pipeline' });
    const out = `${t.dir}/out.txt`;
    const lines = () => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').trim().split('\n').map(Number) : []);
    assert.ok(await waitFor(() => lines().length > 20, 10_000), 'the pipeline runs');
    const before = family(t.pid);
    assert.equal(before.length, 3, shape(before, t.pid));
    const dir = await dumpTree(t, before.map((r) => r.pid));
    const atDump = lines().length;
    checkRestore(t, restore(t, dir, '1'));
    assert.ok(await waitFor(() => lines().length > atDump + 20, 10_000), 'lines keep coming after restore');
    const got = lines();
    got.forEach((n, i) => assert.equal(n, i + 1, `line ${i + 1} is ${n}: lost or repeated data`));
  });

  it('a restore failing after the whole tree was created leaves none of it behind', async () => {
    const t = await startTarget([buildTarget('tree'), '16'], { name: 'tree-fail' });
    await waitForLine(t, 'READY', 10_000);
    const before = session(t.pid);
    const dir = await dumpTree(t, before.map((r) => r.pid));
    const r = restore(t, dir, 'fail', { env: { CRYO_FAIL_AT: 'restore:regs' } });
    assert.notEqual(r.res.code, 0);
    await sleep(100);
    const left = before.filter((row) => pidExists(row.pid)).map((row) => row.pid);
    assert.deepEqual(left, [], `processes left behind: ${left.join(', ')}`);
    checkRestore(t, restore(t, dir, '2'));
    await expectPass(t);
  });
});
