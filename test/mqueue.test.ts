// POSIX message queues, the kind added through the fd-kind interface (src/resources/files/mqueue.ts):
// a python target holds one queue by two fds (read-write, and write-only non-blocking) with
// messages of mixed priorities, one empty and one with a NUL byte. After a dump that kills it and
// a restore, it receives every message in priority order with the same contents and priorities,
// and finds the same attributes, owner and mode; a --leave-running dump leaves the queue as it
// was. A restore that finds a queue of that name already there is refused, named, and leaves no
// process. (A queue with a notification registered, or unlinked, is refused in refusals.test.ts.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { allGone, cryo, cryoReport, dump, restore, cleanupTrees, checkRestore, expectPass, readyPython, runningProblem, targetReport } from './lib/index.js';

const names: string[] = [];

/** Runs python with ctypes' libc as `libc` (the mq_* calls are in glibc's libc since 2.34). */
function py(lines: string[]): string {
  return execFileSync('/usr/bin/python3', ['-c', ['import ctypes, os', 'libc = ctypes.CDLL(None, use_errno=True)', ...lines].join('\n')], { encoding: 'utf8' });
}

function unlinkQueue(name: string): void {
  py([`libc.mq_unlink(${JSON.stringify(name)}.encode())`]);
}

after(async () => {
  await cleanupTrees();
  for (const n of names) unlinkQueue(n);
});

// Sent in this order; received highest priority first, oldest first within one.
const MESSAGES: [string, number][] = [['low-1', 1], ['high', 9], ['', 0], ['low-2', 1], ['mid\\x00bin', 5]];
const RECEIVED: [string, number][] = [['high', 9], ['mid\\x00bin', 5], ['low-1', 1], ['low-2', 1], ['', 0]];

async function queueHolder(label: string) {
  const name = `/cryo-test-${process.pid}-${label}`;
  names.push(name);
  const { t, ready } = await readyPython(`mqueue-${label}`, [
    'import ctypes, os, time',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'class Attr(ctypes.Structure):',
    '    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]',
    `name = ${JSON.stringify(name)}.encode()`,
    'os.umask(0)',
    'fd = libc.mq_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640, ctypes.byref(Attr(0, 7, 64, 0)))',
    'assert fd >= 0, ctypes.get_errno()',
    'wr = libc.mq_open(name, os.O_WRONLY | os.O_NONBLOCK)',
    'assert wr >= 0, ctypes.get_errno()',
    ...MESSAGES.map(([m, p]) => `assert libc.mq_send(wr, b"${m}", len(b"${m}"), ${p}) == 0, ctypes.get_errno()`),
    'print(f"READY {fd} {wr}", flush=True)',
    'while not os.path.exists("go"): time.sleep(0.01)',
    'def attrs(q):',
    '    a = Attr()',
    '    assert libc.mq_getattr(q, ctypes.byref(a)) == 0',
    '    return (a.flags & os.O_NONBLOCK != 0, a.maxmsg, a.msgsize, a.curmsgs)',
    'problems = []',
    'if attrs(fd) != (False, 7, 64, 5): problems.append(f"fd {fd}: {attrs(fd)}")',
    'if attrs(wr) != (True, 7, 64, 5): problems.append(f"fd {wr}: {attrs(wr)}")',
    'st = os.fstat(fd)',
    'if (st.st_mode & 0o7777, st.st_uid) != (0o640, 0): problems.append(f"mode {st.st_mode:o} uid {st.st_uid}")',
    'got = []',
    'buf = ctypes.create_string_buffer(64)',
    'prio = ctypes.c_uint()',
    'for _ in range(5):',
    '    n = libc.mq_receive(fd, buf, 64, ctypes.byref(prio))',
    '    got.append((buf.raw[:n], prio.value) if n >= 0 else ("errno", ctypes.get_errno()))',
    `want = [${RECEIVED.map(([m, p]) => `(b"${m}", ${p})`).join(', ')}]`,
    'if got != want: problems.append(f"received {got}")',
    'if libc.mq_send(wr, b"x", 1, 0) != 0: problems.append(f"the write-only fd cannot send: {ctypes.get_errno()}")',
    'libc.mq_unlink(name)',
    'print("PASS" if not problems else "FAIL: " + "; ".join(problems), flush=True)',
  ]);
  const [, fd, wr] = ready.split(' ').map(Number);
  return { t, name, fd: fd!, wr: wr! };
}

describe('POSIX message queues', () => {
  it('dumped (killed) and restored: the same queue, attributes and messages in priority order, saved once', async () => {
    const { t, fd, wr, name } = await queueHolder('kill');
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 0, cryoReport(c));
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, `${cryoReport(d.res)}\n${targetReport(t)}`);
    await allGone([t.pid]);

    const files = JSON.parse(cryo(['show', `${d.dir}/files.img`]).stdout) as { entries: { id: number; cryo_mqueue?: { queue_id: number; flags: number } }[] };
    const fds = files.entries.filter((e) => e.cryo_mqueue);
    assert.equal(fds.length, 2, `two open file descriptions: ${JSON.stringify(files.entries)}`);
    assert.deepEqual(new Set(fds.map((e) => e.cryo_mqueue!.queue_id)).size, 1, 'both point at one queue');
    const shown = cryo(['show', `${d.dir}/cryo-mqueue.img`]);
    assert.equal(shown.code, 0, cryoReport(shown));
    const queues = (JSON.parse(shown.stdout) as { entries: { name: string; maxmsg: string | number; msgs: { prio: number }[] }[] }).entries;
    assert.equal(queues.length, 1, 'the queue is saved once');
    assert.equal(queues[0]!.name, name);
    assert.equal(Number(queues[0]!.maxmsg), 7);
    assert.deepEqual(queues[0]!.msgs.map((m) => m.prio ?? 0), RECEIVED.map(([, p]) => p), 'its messages in the order they are received');

    // A named queue outlives its holders: removed, as a restore elsewhere would find none.
    unlinkQueue(name);
    checkRestore(t, restore(t, d.dir, '1'));
    assert.match(py([`print(libc.mq_open(${JSON.stringify(name)}.encode(), os.O_RDONLY))`]).trim(), /^\d+$/, 'the queue is there again by its name');
    const log = t.log();
    assert.match(log, new RegExp(`READY ${fd} ${wr}`));
    await expectPass(t);
  });

  it('a restore that finds a queue of that name already there is refused, named, and leaves no process', async () => {
    const { t, name } = await queueHolder('exists');
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await allGone([t.pid]);
    // The dumped queue is still there (named queues outlive their holders).
    const r = restore(t, d.dir, 'exists');
    assert.notEqual(r.res.code, 0, cryoReport(r.res));
    assert.match(r.res.stderr, new RegExp(`POSIX message queue ${name} exists already`), cryoReport(r.res));
    assert.equal(runningProblem(t), `pid ${t.pid} does not exist`, 'no process left');
    // The queue found there was not the restore's to remove.
    assert.match(py([`print(libc.mq_open(${JSON.stringify(name)}.encode(), os.O_RDONLY))`]).trim(), /^\d+$/, 'the queue that was there is still there');
  });

  it('a restore that fails after making the queue removes it; then the restore goes through', async () => {
    const { t, name } = await queueHolder('fail');
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await allGone([t.pid]);
    unlinkQueue(name);
    const r = restore(t, d.dir, 'fail', { env: { CRYO_FAIL_AT: 'restore:resume' } });
    assert.notEqual(r.res.code, 0, cryoReport(r.res));
    assert.equal(runningProblem(t), `pid ${t.pid} does not exist`, 'no process left');
    assert.equal(py([`print(libc.mq_open(${JSON.stringify(name)}.encode(), os.O_RDONLY), ctypes.get_errno())`]).trim(), '-1 2', 'the queue the failed restore made is gone (ENOENT)');
    checkRestore(t, restore(t, d.dir, 'again'));
    await expectPass(t);
  });

  it('dump --leave-running leaves the queue as it was and the target goes on with it', async () => {
    const { t } = await queueHolder('lr');
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 1 tasks? compared under the freeze in [\d.]+ ms: 0 differences/);
    assert.equal(runningProblem(t), null, 'the target runs on');
    await expectPass(t);
  });
});
