// A terminal from outside the tree (CRIU's `dump --external tty[RDEV:DEV]`, `restore
// --inherit-fd fd[N]:tty[RDEV:DEV]`), as runc's console is: a python3 session leader whose
// controlling terminal is the slave of a pty this test owns (its master stays here), with an fd
// on it and one on /dev/tty. Without the flag check and dump refuse it, naming the --external key
// to give; with it the dump records CRIU's EXT_TTY (crit decodes it); a restore without the
// --inherit-fd is refused, naming it; with another pty of the test's handed in (its slave, or its
// master), the program finds that terminal as its controlling tty, in the foreground, on both fds,
// writes to it (the test reads it on its master) and reads what the test types. A --leave-running
// dump leaves it on its own terminal, working; a pty whose master is in the tree cannot be named.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cryo, cryoReport, critDecodeAll, dump, restore, OwnedPty, type Target } from './lib/index.js';
import { allGone, checkRestore, cleanupTrees, expectPass, readyPython } from './lib/tree.js';
import { O } from '../src/sys/index.js';

after(cleanupTrees);

/** The program: its terminal is `tty`; after the restore the file `expect` names the one it must have. */
function program(tty: string): string[] {
  return [
    'import os, time',
    `fd = os.open(${JSON.stringify(tty)}, os.O_RDWR)  # a session leader without one: its controlling terminal now`,
    "ctty = os.open('/dev/tty', os.O_RDWR)",
    "print('READY', flush=True)",
    "while not os.path.exists('go'): time.sleep(0.01)",
    "want = open('expect').read().strip()",
    'problems = []',
    "stat = open('/proc/self/stat').read()",
    'tty_nr = int(stat[stat.rindex(")") + 2:].split()[4])',
    "if tty_nr != os.stat(want).st_rdev: problems.append(f'controlling terminal {tty_nr:#x}, not {want}')",
    "if os.ttyname(fd) != want: problems.append(f'fd {fd} is {os.ttyname(fd)}, not {want}')",
    "if os.getsid(0) != os.getpid(): problems.append('no longer its session leader')",
    'for name, f in (("its fd", fd), ("/dev/tty", ctty)):',
    '    try:',
    "        if os.tcgetpgrp(f) != os.getpgrp(): problems.append(f'{name}: foreground group {os.tcgetpgrp(f)}, not its own')",
    '    except OSError as e:',
    "        problems.append(f'{name}: {e}')",
    "os.write(ctty, b'HELLO FROM THE RESTORED PROGRAM\\n')",
    'line = os.read(fd, 100)',
    "if line != b'typed after the restore\\n': problems.append(f'read {line!r}')",
    "print('PASS' if not problems else 'FAIL: ' + '; '.join(problems), flush=True)",
  ];
}

function keyOf(ttyPath: string): string {
  const st = fs.statSync(ttyPath);
  return `tty[${st.rdev.toString(16)}:${st.dev.toString(16)}]`;
}

const esc = (s: string) => s.replace(/[[\]]/g, '\\$&');

async function dumped(a: OwnedPty): Promise<{ t: Target; dir: string; key: string }> {
  const { t } = await readyPython('ext-tty', program(a.path));
  const key = keyOf(a.path);
  const c = cryo(['check', '-t', String(t.pid)]);
  assert.equal(c.code, 3, cryoReport(c));
  assert.match(c.stdout, new RegExp(`${esc(a.path)} from outside the tree .*--external ${esc(key)} to hand a terminal in at restore \\(--inherit-fd fd\\[N\\]:${esc(key)}\\)`));
  const ok = cryo(['check', '-t', String(t.pid), '--external', key]);
  assert.equal(ok.code, 0, cryoReport(ok));
  const d = dump(t, 'ext', { extraArgs: ['--external', key] });
  assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
  await allGone([t.pid]);
  const infos = ((await critDecodeAll(d.dir)).get('tty-info.img') as { entries: Array<Record<string, unknown>> }).entries;
  const st = fs.statSync(a.path);
  const ext = infos.filter((i) => i.type === 'EXT_TTY');
  assert.equal(ext.length, 1, `one EXT_TTY in tty-info.img: ${JSON.stringify(infos)}`);
  assert.equal(ext[0]!.rdev, st.rdev);
  assert.equal(ext[0]!.dev, st.dev);
  assert.equal(ext[0]!.sid, t.pid, 'the session it controls');
  return { t, dir: d.dir, key };
}

describe('c/r a terminal from outside: --external tty[RDEV:DEV], --inherit-fd fd[N]:tty[RDEV:DEV]', () => {
  for (const given of ['slave', 'master'] as const) {
    it(`handed in as a pty ${given}: the program's controlling terminal, both ways`, async () => {
      const a = new OwnedPty();
      const b = new OwnedPty();
      let slave = -1;
      try {
        const { t, dir, key } = await dumped(a);
        const without = restore(t, dir, 'no-inherit');
        assert.equal(without.res.code, 1, cryoReport(without.res));
        assert.match(without.res.stderr, new RegExp(`--inherit-fd 'fd\\[N\\]:${esc(key)}'`));
        fs.writeFileSync(path.join(t.dir, 'expect'), b.path);
        const fd = given === 'master' ? b.master : (slave = fs.openSync(b.path, O.RDWR | O.NOCTTY));
        checkRestore(t, restore(t, dir, given, { extraArgs: ['--inherit-fd', `fd[3]:${key}`], extraFds: [fd] }));
        const pass = expectPass(t);
        await b.waitFor(/HELLO FROM THE RESTORED PROGRAM/);
        b.type('typed after the restore\n');
        await pass;
      } finally {
        if (slave >= 0) fs.closeSync(slave);
        a.close();
        b.close();
      }
    });
  }

  it('--leave-running with --external: the program keeps its terminal, untouched', async () => {
    const a = new OwnedPty();
    try {
      const { t } = await readyPython('ext-tty-lr', program(a.path));
      const d = dump(t, 'lr', { leaveRunning: true, extraArgs: ['--external', keyOf(a.path)] });
      assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
      fs.writeFileSync(path.join(t.dir, 'expect'), a.path);
      const pass = expectPass(t);
      await a.waitFor(/HELLO FROM THE RESTORED PROGRAM/);
      a.type('typed after the restore\n');
      await pass;
    } finally {
      a.close();
    }
  });

  it('a pty whose master is in the tree cannot be named --external: refused, named', async () => {
    const { t, ready } = await readyPython('ext-tty-own', [
      'import os, time',
      'm, s = os.openpty()',
      "print(f'READY {os.ttyname(s)}', flush=True)",
      "while not os.path.exists('go'): time.sleep(0.01)",
      "print('PASS', flush=True)",
    ]);
    const slavePath = ready.split(' ')[1]!;
    const key = keyOf(slavePath);
    const c = cryo(['check', '-t', String(t.pid), '--external', key]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`terminal ${esc(slavePath)} is named with --external ${esc(key)}, but its master is in the tree`));
    await expectPass(t);
  });
});
