// A pty pair checkpointed and restored with the processes that hold it, through the CLI
// (test/targets/crpty.c): the master in packet mode and the slave twice in the root, a child
// session whose controlling terminal is the slave (with /dev/tty open), its child's group in the
// foreground, odd termios and window, data queued both ways. After restore the processes check
// the index, termios, window, controlling tty and foreground group themselves and pass data both
// ways; the images decode with crit (files.img, tty-info.img, tty-data.img). The same after a
// --leave-running dump. Consoles and other terminal devices stay refused, named.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  cryo, cryoReport, dump, restore, cleanupTrees, descendants, readyTarget, readyPython, dumpAndKill, checkRestore, expectPass,
  runningProblem,
} from './lib/index.js';
import { waitPidGone } from './lib/proc.js';

after(cleanupTrees);

interface TtyInfo {
  id: number;
  type: string;
  packet_mode?: boolean;
  sid: number;
  pgrp: number;
  pty?: { index: number };
  winsize?: { ws_row: number; ws_col: number };
}

function kids(log: string): { c: number; g: number; index: number } {
  const m = /KIDS c=(\d+) g=(\d+) index=(\d+)/.exec(log);
  assert.ok(m, log);
  return { c: Number(m[1]), g: Number(m[2]), index: Number(m[3]) };
}

describe('c/r ptys', () => {
  it('a pair with a session, its foreground group and queued data: dumped, restored, checked by its processes', async () => {
    const t = await readyTarget('crpty');
    const { c, g, index } = kids(t.log());
    const tree = descendants(t.pid);
    assert.deepEqual(tree, [t.pid, c, g]);
    const chk = cryo(['check', '-t', String(t.pid)]);
    assert.equal(chk.code, 0, cryoReport(chk));

    const { dir, images } = await dumpAndKill(t, tree);
    const infos = (images.get('tty-info.img') as { entries: TtyInfo[] }).entries;
    const master = infos.find((i) => i.id === index * 2 + 1);
    const slave = infos.find((i) => i.id === index * 2);
    assert.ok(master && slave, `tty-info entries: ${JSON.stringify(infos)}`);
    assert.equal(master.type, 'PTY');
    assert.equal(master.packet_mode, true);
    assert.deepEqual([slave.sid, slave.pgrp, master.sid, master.pgrp], [c, g, c, g], 'session and foreground group recorded');
    assert.deepEqual([slave.winsize?.ws_row, slave.winsize?.ws_col], [37, 101]);
    assert.ok(infos.some((i) => i.type === 'CTTY'), 'the /dev/tty fd has its CTTY record');
    const data = (images.get('tty-data.img') as { entries: { tty_id: number; data: string }[] }).entries;
    assert.deepEqual(data.map((d) => d.tty_id).sort(), [index * 2, index * 2 + 1].sort(), 'data queued both ways');
    const files = (images.get('files.img') as { entries: { type: string; tty?: { regf_id?: number } }[] }).entries;
    const ttys = files.filter((f) => f.type === 'TTY');
    assert.equal(ttys.length, 4, `master, two slaves, /dev/tty: ${JSON.stringify(ttys)}`);
    assert.ok(ttys.every((f) => f.tty?.regf_id), 'each names its path entry');

    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(descendants(t.pid), [t.pid, c, g], 'the session child and its child are back');
    await expectPass(t);
  });

  it('a master whose slave is closed keeps the data queued both ways: the input waits for the next open of the slave, the output for the master', async () => {
    const { t } = await readyPython('pty-slave-closed', [
      'import os, termios, time',
      'm, s = os.openpty(); name = os.ttyname(s)',
      'a = termios.tcgetattr(s); a[1] &= ~termios.OPOST; a[3] &= ~(termios.ECHO | termios.ICANON); termios.tcsetattr(s, termios.TCSANOW, a)',
      'os.write(m, b"typed")   # input for the slave',
      'os.write(s, b"said")    # output for the master',
      'time.sleep(0.2); os.close(s)',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      's = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)',
      'try: typed = os.read(s, 100)',
      'except BlockingIOError: typed = b""',
      'os.set_blocking(m, False)',
      'try: said = os.read(m, 100)',
      'except (BlockingIOError, OSError) as e: said = repr(e).encode()',
      'print("PASS" if (typed, said) == (b"typed", b"said") else f"FAIL: input {typed!r}, output {said!r}", flush=True)',
    ]);
    const chk = cryo(['check', '-t', String(t.pid)]);
    assert.equal(chk.code, 0, cryoReport(chk));
    const lr = dump(t, 'lr', { leaveRunning: true });
    assert.equal(lr.res.code, 0, cryoReport(lr.res));
    const { dir, images } = await dumpAndKill(t, [t.pid]);
    const data = (images.get('tty-data.img') as { entries: { tty_id: number }[] } | undefined)?.entries ?? [];
    assert.equal(data.length, 2, `queued both ways: ${JSON.stringify(data)}`);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('dump --leave-running leaves the pair, its queues and its session as they were', async () => {
    const t = await readyTarget('crpty');
    descendants(t.pid);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(cryoReport(d.res, 100_000), /--leave-running: 3 tasks compared under the freeze in [\d.]+ ms: 0 differences/);
    assert.equal(runningProblem(t), null, 'the target runs on');
    await expectPass(t);
  });

  it('a dump that fails after the queues were read leaves them queued; a restore that fails leaves nothing, and the next one works', async () => {
    const t = await readyTarget('crpty');
    const { c, g } = kids(t.log());
    const tree = descendants(t.pid);
    const failed = dump(t, 'fail', { env: { CRYO_FAIL_AT: 'dump:write' } });
    assert.equal(failed.res.code, 1, cryoReport(failed.res));
    assert.equal(runningProblem(t), null, 'the target runs on after the failed dump');
    const { dir } = await dumpAndKill(t, tree);
    // Fails once the session child exists (its terminal taken, the pair made): nothing stays.
    const bad = restore(t, dir, 'fail', { env: { CRYO_FAIL_AT: 'restore:creds' } });
    assert.equal(bad.res.code, 1, cryoReport(bad.res));
    for (const p of [t.pid, c, g]) assert.ok(await waitPidGone(p, 20_000), `pid ${p} left behind by the failed restore`);
    checkRestore(t, restore(t, dir, '2'));
    // The data queued before the failed dump is still there: the target reads it after restore.
    await expectPass(t);
  });

  it('a virtual console, a serial line and /dev/console stay refused, named', async () => {
    const { t } = await readyPython('tty-devices', [
      'import os, time',
      'fds = []',
      'for p in ("/dev/tty0", "/dev/ttyS0", "/dev/console"):',
      '    try: fds.append((p, os.open(p, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)))',
      '    except OSError: pass',
      'print("READY", " ".join(f"{p}={fd}" for p, fd in fds), flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS", flush=True)',
    ]);
    const opened = [...t.log().matchAll(/(\/dev\/\S+)=(\d+)/g)].map((m) => ({ path: m[1]!, fd: Number(m[2]) }));
    assert.ok(opened.length > 0, `none of the devices could be opened here: ${t.log()}`);
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    const kinds: Record<string, RegExp> = { '/dev/tty0': /virtual console \/dev\/tty0/, '/dev/ttyS0': /serial terminal \/dev\/ttyS0/, '/dev/console': /console \/dev\/console/ };
    for (const o of opened) assert.match(c.stdout, new RegExp(`pid ${t.pid} fd ${o.fd}: ${kinds[o.path]!.source} — not supported`), cryoReport(c));
    const d = dump(t, 'devices');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.equal(runningProblem(t), null, 'the refused target runs on');
    await expectPass(t);
  });
});
