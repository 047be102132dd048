// ptys, from outside: a real target (test/targets/ptys.c) holds four pairs in known states; the
// test takes each of its fds with pidfd_getfd, reads every end's state and queued data into
// CRIU's records (decoded by crit), kills the target, makes every pair again at the same index
// from the records alone, and shows the new pairs have the same settings and modes, hold the
// queued data and pass data both ways. Then makeControllingTty, injected into a second target
// (test/targets/ctty.c), gives its session the recreated terminal with its member group in the
// foreground, which that target checks itself. (tmux: pty-tmux.test.ts; pure refusals and
// records: tty-records.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, startTarget, waitForLine, goAndWaitResult, trackPid, makeTempDir, buildTarget, type Target } from './lib/index.js';
import { CRIT } from './lib/cryo.js';
import { sleep, waitPidGone } from './lib/proc.js';
import { pidfdOpen, pidfdGetfd, closeFd, ptyIndex, openPtyPeer, tcgets2, getWinsize, ioctlGetInt, TIOC, O, F, sys, SysError, E } from '../src/sys/index.js';
import { create } from '@bufbuild/protobuf';
import { encodeImage } from '../src/image/io.js';
import { fown_entrySchema } from '../src/image/gen/fown_pb.js';
import { TtyType, type tty_info_entry } from '../src/image/gen/tty_pb.js';
import { dumpPtyEnd, ptyInfoEntry, ttyFileEntry, ttyDataEntry, ptyInfoId, hasSettings, type PtyEnd } from '../src/resources/tty/pty.js';
import { createPtyPair, PtyIndexError, openMasterAt, type PtyPair } from '../src/resources/tty/create.js';
import { takeQueuedInput, takeQueuedOutput, putQueuedInput, putQueuedOutput } from '../src/resources/tty/queue.js';
import { cttyInfoEntry, acquireControllingTty, setForegroundGroup, remoteTtyCaller, openCttyInTask, CTTY_INFO_ID, type TtyCaller } from '../src/resources/tty/ctty.js';
import { ttyBlockers, type SeenTty } from '../src/resources/tty/classify.js';
import { parseStatTty, terminalSession, type StatTty } from '../src/proc/tty.js';
import { Tracee, Remote, Scratch, findSyscallInVdso } from '../src/ptrace/index.js';

after(cleanup);

interface PairLine {
  index: number; master: number; slave: number; pkt: number; locked: number; mexcl: number; sexcl: number;
  iflag: number; oflag: number; cflag: number; lflag: number; vmin: number; vtime: number; verase: number; vkill: number;
  rows: number; cols: number; xpix: number; ypix: number;
}

function parsePairs(log: string): Map<string, PairLine> {
  const out = new Map<string, PairLine>();
  for (const line of log.split('\n')) {
    const m = /^PAIR (\w) (.*)$/.exec(line);
    if (!m) continue;
    const v: Record<string, number> = {};
    for (const kv of m[2]!.split(' ')) {
      const [k, n] = kv.split('=');
      v[k!] = Number(n);
    }
    out.set(m[1]!, v as unknown as PairLine);
  }
  return out;
}

const VERASE = 2, VKILL = 3, VTIME = 5, VMIN = 6;

function statTty(pid: number): StatTty {
  return parseStatTty(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** What the test keeps of the original pairs: the records only (and what it expects of them). */
interface Dumped {
  index: number;
  master?: PtyEnd;
  slave?: PtyEnd;
  masterInfo?: tty_info_entry;
  slaveInfo?: tty_info_entry;
  fromMaster: Buffer;
  fromSlave: Buffer;
  masterHungUp: boolean;
}

const dumped = new Map<string, Dumped>();
const made = new Map<string, PtyPair>();
let target: Target;

function closeMade(): void {
  for (const p of made.values()) {
    if (p.slave >= 0) closeFd(p.slave);
    if (p.master >= 0) closeFd(p.master);
  }
  made.clear();
}

describe('ptys from outside', () => {
  after(closeMade);

  it('reads every end of a live target into CRIU records, matching what the target sees', async () => {
    target = await startTarget([buildTarget('ptys')], { name: 'ptys' });
    await waitForLine(target, 'READY', 20000);
    const log = target.log();
    const pairs = parsePairs(log);
    const sess = /^SESSION child=(\d+) grandchild=(\d+) slavefd=(\d+) ttyfd=(\d+)/m.exec(log)!;
    const [child, grandchild, childSlaveFd, childTtyFd] = sess.slice(1).map(Number) as [number, number, number, number];
    trackPid(child, target.argv, target.root);
    trackPid(grandchild, target.argv, target.root);
    const slavesA = /^SLAVES A (\d+) (\d+)/m.exec(log)!.slice(1).map(Number) as [number, number];
    const stats = [target.pid, child, grandchild].map(statTty);

    const pidfd = pidfdOpen(target.pid);
    const cpidfd = pidfdOpen(child);
    const take = (fd: number, from = pidfd) => pidfdGetfd(from, fd);
    const ours: number[] = [];
    try {
      for (const [name, p] of pairs) {
        const m = take(p.master);
        ours.push(m);
        const d: Dumped = { index: p.index, fromMaster: Buffer.alloc(0), fromSlave: Buffer.alloc(0), masterHungUp: false };
        d.master = dumpPtyEnd(m);
        let s = -1;
        if (p.slave >= 0) {
          s = take(p.slave);
          ours.push(s);
          d.slave = dumpPtyEnd(s, { session: terminalSession(stats, fs.fstatSync(s).rdev) });
        }
        // What the target set and sees, as read from outside.
        for (const e of [d.master, d.slave].filter((x): x is PtyEnd => !!x)) {
          const what = `pair ${name} ${e.end}`;
          assert.equal(e.index, p.index, `${what} index`);
          assert.deepEqual([e.termios.iflag, e.termios.oflag, e.termios.cflag, e.termios.lflag], [p.iflag, p.oflag, p.cflag, p.lflag], `${what} termios flags`);
          assert.deepEqual([e.termios.cc[VMIN], e.termios.cc[VTIME], e.termios.cc[VERASE], e.termios.cc[VKILL]], [p.vmin, p.vtime, p.verase, p.vkill], `${what} c_cc`);
          assert.deepEqual(e.winsize, { row: p.rows, col: p.cols, xpixel: p.xpix, ypixel: p.ypix }, `${what} window`);
        }
        assert.equal(d.master.packetMode, p.pkt === 1, `pair ${name} packet mode`);
        assert.equal(d.master.locked, p.locked === 1, `pair ${name} lock`);
        assert.equal(d.master.exclusive, p.mexcl === 1, `pair ${name} master exclusive`);
        if (d.slave) assert.equal(d.slave.exclusive, p.sexcl === 1, `pair ${name} slave exclusive`);
        // Queued data, taken last (it is consumed).
        const out = takeQueuedOutput(m, d.master.packetMode);
        d.fromMaster = out.data;
        d.masterHungUp = out.hungUp;
        if (s >= 0) d.fromSlave = takeQueuedInput(s, d.slave!.termios).data;
        // As dump --leave-running must: put it back into the original, where it reads the same.
        // Input only in raw mode: in canonical mode a pending partial line (A's "partial") stays
        // in the kernel, and what is put back would queue behind it (see queue.ts).
        if (s >= 0) {
          const raw = (d.slave!.termios.lflag & 2) === 0;
          for (let round = 0; round < 2; round++) {
            putQueuedOutput(s, d.fromMaster);
            if (raw) putQueuedInput(s, d.fromSlave);
            if (round === 1) break;
            assert.deepEqual(takeQueuedOutput(m, d.master.packetMode).data, d.fromMaster, `pair ${name}: output put back`);
            if (raw) assert.deepEqual(takeQueuedInput(s, d.slave!.termios).data, d.fromSlave, `pair ${name}: input put back`);
          }
        }
        d.masterInfo = ptyInfoEntry(d.master);
        if (d.slave) d.slaveInfo = ptyInfoEntry(d.slave);
        dumped.set(name, d);
      }

      // E: a slave whose master was closed: hung up, no settings to read (reads give EOF).
      const hung = /^HUNG E index=(\d+) slave=(\d+)/m.exec(log)!.slice(1).map(Number) as [number, number];
      const se = take(hung[1]);
      ours.push(se);
      const e = dumpPtyEnd(se);
      assert.deepEqual([e.hungUp, e.index, e.end], [true, hung[0], 'slave'], 'pair E: a hung-up slave');
      assert.equal(fs.readSync(se, Buffer.alloc(8)), 0, 'pair E: the original reads EOF');
      const eInfo = ptyInfoEntry(e);
      assert.equal(hasSettings(eInfo), false, 'pair E: the record carries no settings (CRIU: a hung terminal)');
      dumped.set('E', { index: e.index, slave: e, slaveInfo: eInfo, fromMaster: Buffer.alloc(0), fromSlave: Buffer.alloc(0), masterHungUp: false });

      const a = dumped.get('A')!;
      // Session and foreground group: through the master, and for the slave from /proc.
      assert.deepEqual([a.master!.sid, a.master!.pgrp], [child, grandchild], 'pair A master: session and foreground group');
      assert.deepEqual([a.slave!.sid, a.slave!.pgrp], [child, grandchild], 'pair A slave: session and foreground group from /proc');
      assert.equal(a.slave!.queued.readable, 'typed line\n'.length, 'pair A slave: FIONREAD counts the complete line only');
      assert.equal(a.fromSlave.toString(), 'typed line\n', 'pair A input queue (the partial line is not recoverable)');
      assert.equal(a.fromMaster.toString(), 'typed line\r\npartial', 'pair A output queue (the echo)');
      const b = dumped.get('B')!;
      assert.equal(b.master!.termios.ospeed, 9600, 'pair B speed (termios2)');
      assert.deepEqual(b.fromMaster, Buffer.from('out-B\x01\x02\xff', 'latin1'), 'pair B output queue, packet headers stripped');
      assert.equal(b.fromSlave.toString(), 'in-B', 'pair B input queue');
      // The slave opened twice: one terminal, two descriptions with their own flags.
      const sa2 = take(slavesA[1]);
      ours.push(sa2);
      const second = dumpPtyEnd(sa2, { session: terminalSession(stats, fs.fstatSync(sa2).rdev) });
      assert.equal(ptyInfoId(second.index, second.end), a.slaveInfo!.id, 'both slave descriptions of A share one tty_info');
      assert.deepEqual(second.termios, a.slave!.termios);
      const sa1 = take(slavesA[0]);
      ours.push(sa1);
      const flagsOf = (fd: number) => sys('fcntl', [fd, F.GETFL]);
      assert.deepEqual([flagsOf(sa1) & O.NONBLOCK, flagsOf(sa2) & O.NONBLOCK], [0, O.NONBLOCK], 'each description keeps its own flags (tty_file_entry.flags)');
      const c = dumped.get('C')!;
      assert.equal(c.fromMaster.toString(), 'bye', 'pair C: output written before the slave closed');
      assert.equal(c.masterHungUp, true, 'pair C: the master reads EIO (slave closed)');
      assert.equal(dumped.get('A')!.masterHungUp, false);

      // The session child's /dev/tty and its own slave fd.
      const ctty = take(childTtyFd, cpidfd);
      ours.push(ctty);
      const cttyInfo = cttyInfoEntry(ctty, terminalSession(stats, statTty(child).ttyNr));
      assert.equal(cttyInfo.type, TtyType.CTTY);
      assert.equal(cttyInfo.id, CTTY_INFO_ID);
      assert.deepEqual([cttyInfo.sid, cttyInfo.pgrp], [child, grandchild]);
      assert.deepEqual(cttyInfo.termios, a.slaveInfo!.termios, '/dev/tty reads the settings of pair A');

      // Refusals, on the real fds: the whole tree is fine; the session child alone holds a
      // terminal from outside (its master is in the parent) and needs --shell-job.
      const seen: SeenTty[] = [];
      for (const [pid, fds] of [[target.pid, [...pairs.values()].flatMap((p) => [p.master, p.slave]).concat(slavesA[1], hung[1])], [child, [childSlaveFd, childTtyFd]]] as const) {
        const pf = pid === target.pid ? pidfd : cpidfd;
        for (const fd of fds) {
          if (fd < 0) continue;
          const f = take(fd, pf);
          const rdev = fs.fstatSync(f).rdev;
          const isMaster = fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/ptmx';
          const st = isMaster || fd === hung[1] ? dumpPtyEnd(f) : null;
          seen.push({ pid, fd, path: fs.readlinkSync(`/proc/${pid}/fd/${fd}`), rdev, index: st?.index, sid: st?.sid ?? terminalSession(stats, rdev)?.sid ?? 0, cttyRdev: statTty(pid).ttyNr, hungUp: st?.hungUp });
          closeFd(f);
        }
      }
      const all = new Set([...pairs.values()].map((p) => p.index));
      assert.deepEqual(ttyBlockers(seen, { pids: new Set([target.pid, child, grandchild]), masterIndexes: all, shellJob: false }), []);
      const alone = ttyBlockers(seen.filter((s) => s.pid === child), { pids: new Set([child, grandchild]), masterIndexes: new Set(), shellJob: false });
      assert.equal(alone.length, 2, JSON.stringify(alone));
      assert.ok(alone.every((x) => x.kind === 'terminal' && /outside/.test(x.reason) && /--shell-job/.test(x.hint ?? '')), JSON.stringify(alone));
      assert.deepEqual(ttyBlockers(seen.filter((s) => s.pid === child), { pids: new Set([child, grandchild]), masterIndexes: new Set(), shellJob: true }), []);

      // crit reads the records: tty-info.img, tty.img, tty-data.img.
      const dir = makeTempDir('cryo-pty-img-');
      const infos = [...dumped.values()].flatMap((d) => [d.masterInfo, d.slaveInfo]).filter((x): x is tty_info_entry => !!x);
      const fown = create(fown_entrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
      fs.writeFileSync(path.join(dir, 'tty-info.img'), encodeImage('TTY_INFO', [...infos, cttyInfo]));
      fs.writeFileSync(path.join(dir, 'tty.img'), encodeImage('TTY_FILES', infos.map((i, n) => ttyFileEntry(n + 1, i.id, O.RDWR, fown))));
      fs.writeFileSync(path.join(dir, 'tty-data.img'), encodeImage('TTY_DATA', [ttyDataEntry(ptyInfoId(b.index, 'master'), b.fromMaster)]));
      const crit = (f: string) => {
        const r = spawnSync(CRIT, ['decode', '-i', path.join(dir, f)], { encoding: 'utf8' });
        assert.equal(r.status, 0, `crit decode ${f}: ${r.stderr}`);
        return JSON.parse(r.stdout) as { entries: Record<string, unknown>[] };
      };
      const decoded = crit('tty-info.img').entries;
      assert.equal(decoded.length, infos.length + 1);
      const critA = decoded.find((e) => e.id === ptyInfoId(a.index, 'slave')) as { termios: { c_cc: number[] }; winsize: unknown; pty: { index: number }; sid: number; pgrp: number; type: string };
      assert.equal(critA.type, 'PTY');
      assert.deepEqual([critA.pty.index, critA.sid, critA.pgrp], [a.index, child, grandchild]);
      // CRIU's c_cc layout: glibc's c_cc bytes packed four to an element.
      const cc = a.slave!.termios.cc;
      assert.equal(critA.termios.c_cc.length, 19);
      assert.equal(critA.termios.c_cc[0], (cc[0]! | (cc[1]! << 8) | (cc[2]! << 16) | (cc[3]! << 24)) >>> 0);
      assert.equal(crit('tty.img').entries.length, infos.length);
      assert.equal(crit('tty-data.img').entries.length, 1);
    } finally {
      for (const f of ours) closeFd(f);
      closeFd(pidfd);
      closeFd(cpidfd);
    }
  });

  it('makes every pair again at its index, from the records, with the same state and data', async () => {
    assert.ok(dumped.size === 5, 'needs the records of the previous test');
    for (const pid of [target.pid]) process.kill(pid, 'SIGKILL');
    await waitPidGone(target.pid);
    await cleanup(); // kills the session child and its group child (tracked by PID)
    // Each index is free once every fd of it is closed (the session child's too).
    for (const d of dumped.values()) {
      for (let i = 0; i < 500 && fs.existsSync(`/dev/pts/${d.index}`); i++) await sleep(10);
    }
    for (const [name, d] of dumped) {
      const pair = createPtyPair({ index: d.index, master: d.masterInfo, slave: d.slaveInfo, fromMaster: d.fromMaster, fromSlave: d.fromSlave });
      made.set(name, pair);
      if (name === 'E') {
        assert.equal(pair.master, -1);
        assert.throws(() => tcgets2(pair.slave), (x: unknown) => x instanceof SysError && x.errno === E.EIO, 'E: hung up again');
        assert.equal(fs.readSync(pair.slave, Buffer.alloc(8)), 0, 'E: reads EOF like the original');
        assert.equal(fs.fstatSync(pair.slave).rdev, d.slave!.rdev, 'E: the same device (index)');
        continue;
      }
      assert.equal(ptyIndex(pair.master), d.index, `pair ${name}: same index`);
      const now = dumpPtyEnd(pair.master);
      const was = d.master!;
      assert.deepEqual(now.termios, was.termios, `pair ${name}: termios`);
      assert.deepEqual(now.lockedTermios, was.lockedTermios, `pair ${name}: locked termios`);
      assert.deepEqual(now.winsize, was.winsize, `pair ${name}: window`);
      assert.deepEqual([now.packetMode, now.locked, now.exclusive], [was.packetMode, was.locked, was.exclusive], `pair ${name}: packet, lock, exclusive`);
      if (d.slave) {
        assert.ok(pair.slave >= 0, `pair ${name}: a slave`);
        const ns = dumpPtyEnd(pair.slave);
        assert.equal(ns.exclusive, d.slave.exclusive, `pair ${name}: slave exclusive`);
        assert.deepEqual(ns.node && { uid: ns.node.uid, gid: ns.node.gid }, d.slave.node && { uid: d.slave.node.uid, gid: d.slave.node.gid }, `pair ${name}: slave node owner`);
      } else assert.equal(pair.slave, -1);
    }

    // Queued data is back, and data passes both ways.
    const a = made.get('A')!;
    const ta = tcgets2(a.slave);
    assert.equal(takeQueuedInput(a.slave, ta).data.toString(), 'typed line\n', 'A: queued input');
    assert.equal(takeQueuedOutput(a.master, false).data.toString(), 'typed line\r\npartial', 'A: queued output');
    fs.writeSync(a.master, 'hello\n');
    assert.equal(takeQueuedInput(a.slave, ta).data.toString(), 'hello\n', 'A: master -> slave');
    fs.writeSync(a.slave, 'world\n');
    assert.equal(takeQueuedOutput(a.master, false).data.toString(), 'hello\r\nworld\r\n', 'A: echo, then slave -> master (ONLCR)');

    // A second description of A's slave (as the target had): the same terminal, its own flags.
    const again = openPtyPeer(a.master, O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC);
    try {
      fs.writeSync(a.master, 'both\n');
      assert.equal(takeQueuedInput(again, ta).data.toString(), 'both\n', 'A: the second slave description reads the same terminal');
      assert.equal(sys('fcntl', [again, F.GETFL]) & O.NONBLOCK, O.NONBLOCK);
      takeQueuedOutput(a.master, false); // the echo
    } finally {
      closeFd(again);
    }

    const b = made.get('B')!;
    const tb = tcgets2(b.slave);
    assert.deepEqual(takeQueuedOutput(b.master, true).data, Buffer.from('out-B\x01\x02\xff', 'latin1'), 'B: queued output');
    assert.equal(takeQueuedInput(b.slave, tb).data.toString(), 'in-B', 'B: queued input');
    fs.writeSync(b.master, 'x\ny\x03');
    assert.deepEqual(takeQueuedInput(b.slave, tb).data, Buffer.from('x\ny\x03'), 'B: raw master -> slave');
    fs.writeSync(b.slave, 'abc\n');
    const readB = Buffer.alloc(16);
    const n = fs.readSync(b.master, readB);
    assert.deepEqual(readB.subarray(0, n), Buffer.from('\0abc\n'), 'B: slave -> master in packet mode (TIOCPKT_DATA header, no OPOST)');

    const c = made.get('C')!;
    const outC = takeQueuedOutput(c.master, false);
    assert.deepEqual([outC.data.toString(), outC.hungUp], ['bye', true], 'C: the data, then EIO like a master whose slave closed');

    const dd = made.get('D')!;
    assert.equal(ioctlGetInt(dd.master, TIOC.TIOCGPTLCK, 'lock'), 1, 'D: locked');
    assert.throws(() => openPtyPeer(dd.master, O.RDWR | O.NOCTTY), (e: unknown) => e instanceof SysError && e.errno === E.EIO, 'D: a locked pty gives no slave');

    // The index of a live pair is refused, by name.
    assert.throws(() => openMasterAt(a.index), (e: unknown) => e instanceof PtyIndexError && e.message.includes(`pty index ${a.index}`));
    assert.deepEqual(getWinsize(a.master), dumped.get('A')!.master!.winsize);
  });

  it('the controlling-terminal helpers, injected into a session leader, give its session the terminal and its member group the foreground', async () => {
    const a = made.get('A');
    assert.ok(a, 'needs pair A from the previous test');
    const t = await startTarget([buildTarget('ctty')], { name: 'ctty' });
    fs.writeFileSync(path.join(t.dir, 'fds'), `${process.pid} ${a.slave}\n`);
    const fd = Number(/^LEADER pid=\d+ fd=(\d+)/m.exec(await waitForLine(t, 'LEADER', 20000))![1]);
    // As a restore must: the leader's TIOCSCTTY before its session's other tasks exist, ...
    inject(t.pid, (caller, remote, scratch) => {
      acquireControllingTty(caller, fd);
      openCttyInTask(remote, scratch, O.RDWR | O.CLOEXEC, 21); // a /dev/tty fd of the task's own
    });
    fs.writeFileSync(path.join(t.dir, 'ctty-set'), '');
    const member = Number(/^MEMBER (\d+)/m.exec(await waitForLine(t, 'MEMBER', 20000))![1]);
    trackPid(member, t.argv, t.root);
    await waitForLine(t, 'READY', 20000);
    // ... the foreground group once its group exists.
    inject(t.pid, (caller) => setForegroundGroup(caller, fd, member));
    // The test is outside the session: through the master it sees the same thing.
    assert.equal(ioctlGetInt(a.master, TIOC.TIOCGSID, 'sid'), t.pid);
    assert.equal(ioctlGetInt(a.master, TIOC.TIOCGPGRP, 'pgrp'), member);
    fs.writeSync(a.master, 'ping\n');
    const res = goAndWaitResult(t, 20000);
    let seen = '';
    for (let i = 0; i < 2000 && !seen.includes(`pong ${member}\r\n`); i++) {
      seen += takeQueuedOutput(a.master, false).data.toString();
      await sleep(10);
    }
    const r = await res;
    assert.ok(r.pass, r.log);
    assert.ok(seen.includes(`pong ${member}\r\n`), `the member's answer through the terminal: ${JSON.stringify(seen)}`);
  });
});

/** Runs `fn` with a TtyCaller injecting into the stopped task `pid`, then lets it go on. */
function inject(pid: number, fn: (caller: TtyCaller, remote: Remote, scratch: Scratch) => void): void {
  const tracee = Tracee.seize(pid, pid);
  try {
    const remote = new Remote(tracee, findSyscallInVdso(pid));
    const scratch = Scratch.map(remote, 1);
    try {
      fn(remoteTtyCaller(remote, scratch), remote, scratch);
    } finally {
      scratch.unmap();
      remote.restore();
    }
  } finally {
    tracee.release();
  }
}
