// Terminal refusals and CRIU's termios encoding, as pure functions fed with this machine's real
// device numbers; and a record applied to a pty cryo did not make (as runc hands in its console).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { openSync } from 'node:fs';
import { describe, it } from 'node:test';
import { closeFd, openPtyPeer, tcgets2, getWinsize, ioctlSetInt, TIOC, O } from '../src/sys/index.js';
import { dumpPtyEnd, ptyInfoEntry } from '../src/resources/tty/pty.js';
import { applyTtyParams } from '../src/resources/tty/create.js';
import { takeQueuedInput, takeQueuedOutput } from '../src/resources/tty/queue.js';
import { ttyBlockers, makeDev } from '../src/resources/tty/classify.js';
import { termiosToEntry, termiosFromEntry } from '../src/resources/tty/termios-record.js';

describe('terminal refusals and records (pure, on this machine\'s device numbers)', () => {
  it('refuses consoles, virtual consoles, serial lines and unknown character devices by name', () => {
    const tree = { pids: new Set([1000]), masterIndexes: new Set<number>(), shellJob: true };
    const expect: [string, RegExp][] = [
      ['/dev/console', /^console \/dev\/console/],
      ['/dev/tty1', /^virtual console \/dev\/tty1/],
      ['/dev/tty0', /^virtual console \/dev\/tty0/],
      ['/dev/ttyS0', /^serial terminal \/dev\/ttyS0/],
      ['/dev/null', /^terminal device \/dev\/null \(1:3\)/],
    ];
    for (const [dev, re] of expect) {
      const rdev = fs.statSync(dev).rdev;
      const [b] = ttyBlockers([{ pid: 1000, fd: 7, path: dev, rdev, sid: 0 }], tree);
      assert.ok(b, `${dev} is refused even with --shell-job`);
      assert.equal(b.kind, 'terminal');
      assert.equal(b.fd, 7);
      assert.match(b.reason, re);
    }
    // --shell-job takes one outside terminal, not two.
    const outside = [3, 4].map((i) => ({ pid: 1000, fd: i, path: `/dev/pts/${i}`, rdev: makeDev(136, i), index: i, sid: 0 }));
    assert.equal(ttyBlockers(outside.slice(0, 1), tree).length, 0);
    const two = ttyBlockers(outside, tree);
    assert.equal(two.length, 1);
    assert.match(two[0]!.reason, /2 terminals from outside/);
    // A session led from outside the tree needs --shell-job, with the hint.
    const led = ttyBlockers([{ pid: 1000, fd: 5, path: '/dev/ptmx', rdev: makeDev(5, 2), index: 9, sid: 999 }], { ...tree, masterIndexes: new Set([9]), shellJob: false });
    assert.equal(led.length, 1);
    assert.match(led[0]!.reason, /session 999, led from outside/);
    assert.match(led[0]!.hint!, /--shell-job/);
  });

  it('reads CRIU\'s packed c_cc, ignoring what CRIU\'s allocator left after the 32 bytes', () => {
    const t = { iflag: 0o2400, oflag: 5, cflag: 0o277, lflag: 0o105073, line: 0, cc: [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0], ispeed: 38400, ospeed: 38400 };
    const e = termiosToEntry(t);
    assert.equal(e.cCc.length, 19);
    assert.equal(e.cCc[0], (3 | (28 << 8) | (127 << 16) | (21 << 24)) >>> 0);
    assert.deepEqual(termiosFromEntry(e, 'x'), t);
    const noisy = termiosToEntry(t);
    for (let i = 8; i < 19; i++) noisy.cCc[i] = 0xdeadbeef;
    assert.deepEqual(termiosFromEntry(noisy, 'x'), t);
    const short = termiosToEntry(t);
    short.cCc.length = 18;
    assert.throws(() => termiosFromEntry(short, 'pty 3'), /pty 3: termios has 18 c_cc elements, 19 expected/);
  });

  it('applies a record to a terminal handed in from outside', () => {
    // As runc hands cryo its console master: a pty cryo did not make, at whatever index.
    const outside = openSync('/dev/ptmx', O.RDWR | O.NOCTTY | O.CLOEXEC);
    try {
      ioctlSetInt(outside, TIOC.TIOCSPTLCK, 0, 'unlock');
      const info = ptyInfoEntry({ ...dumpPtyEnd(outside), winsize: { row: 33, col: 77, xpixel: 0, ypixel: 0 } });
      info.termios!.cLflag &= ~0o10; // ECHO off
      applyTtyParams(outside, info);
      assert.deepEqual(getWinsize(outside), { row: 33, col: 77, xpixel: 0, ypixel: 0 });
      assert.equal(tcgets2(outside).lflag & 0o10, 0);
      const slave = openPtyPeer(outside, O.RDWR | O.NOCTTY | O.CLOEXEC);
      try {
        // The settings act: with ECHO off, what the master writes reaches the slave, no echo.
        fs.writeSync(outside, 'abc\n');
        assert.equal(takeQueuedInput(slave, tcgets2(slave)).data.toString(), 'abc\n');
        assert.equal(takeQueuedOutput(outside, false).data.length, 0, 'no echo');
      } finally {
        closeFd(slave);
      }
    } finally {
      closeFd(outside);
    }
  });
});
