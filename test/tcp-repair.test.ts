// TCP repair and the network lock on real connections. A target (tcpconn.c) holds a client and a
// server connected over loopback with data in flight both ways; the test takes the client's
// socket (pidfd_getfd), locks the network, dumps the connection through images CRIU's crit
// reads, closes every copy of the original silently (repair mode), recreates the connection in
// this process from the images, and then talks to the target's server on it: the server checks
// every byte's position in both streams and a clean EOF. (The lock itself: netlock.test.ts.)
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { buildTarget, cleanup, killTarget, startTarget, waitForLine } from './lib/index.js';
import { field, firstMismatch, throughImages, talkAndCheck, dropArriving } from './lib/tcp-stream.js';
import {
  AF, SOL, SO, TCP_OPT, TCP_STATE, decodeInetAddr, getsockname, getsockoptInt, pidfdOpen, pidfdGetfd, closeFd, tcpInfoHead,
  tcpRepairOn, getRepairWindow, selectRepairQueue, getQueueSeq, TCP_QUEUE, TCP_REPAIR_OPT, TCPI_OPT,
} from '../src/sys/index.js';
import { inspectInet } from '../src/resources/files/inet.js';
import { dumpTcpConnection, inRepair, createTcpConnection, leaveRepair, releaseRepair, recordEnds } from '../src/resources/net/tcp-repair.js';
import { lockNetwork, type NetworkLock } from '../src/resources/net/netlock.js';

after(cleanup);

/**
 * recreate: the dump's copy is closed silently and the connection is rebuilt from the images.
 * leave-running: a dump that fails after repair mode was entered, then one that succeeds; the
 * socket is released (as `dump --leave-running` does) and the original connection goes on.
 */
async function dumpAndRecreate(family: '4' | '6', mode: 'recreate' | 'leave-running', note: (msg: string) => void): Promise<void> {
  const af = family === '4' ? AF.INET : AF.INET6;
  const t = await startTarget([buildTarget('tcpconn'), family], { name: `tcpconn${family}` });
  let pidfd = -1;
  let dup = -1;
  let fresh = -1;
  let lock: NetworkLock | null = null;
  let lossy: (() => void) | null = null;
  try {
    const ready = await waitForLine(t, 'READY', 60_000);
    const s2c = field(ready, 's2c');
    pidfd = pidfdOpen(t.pid);
    dup = pidfdGetfd(pidfd, field(ready, 'client'));
    const info = inspectInet(dup, af);
    assert.equal(info.state, TCP_STATE.ESTABLISHED);
    const origOptions = tcpInfoHead(dup).options;
    // A lossy wire first: what the client writes now leaves it but never reaches the server
    // (the lock's own output rule would keep it from being sent at all: the kernel counts a
    // packet dropped on output as not sent).
    lossy = dropArriving(info.src.port);
    process.kill(t.pid, 'SIGUSR1');
    await waitForLine(t, 'SENT', 30_000);
    // The lock: from here nothing leaves either end (a packet the kernel cannot send on output
    // stays unsent in its queue); the client's corked write is never sent.
    lock = lockNetwork('nftables', [{ src: info.src, dst: info.dst! }]);
    lossy();
    process.kill(t.pid, 'SIGUSR1');
    const c2s = field(await waitForLine(t, 'WROTE', 30_000), 'c2s');

    if (mode === 'leave-running') {
      const dupFd = dup;
      assert.throws(() => inRepair(dupFd, () => {
        assert.ok(tcpRepairOn(dupFd));
        throw new Error('a dump step fails');
      }), /a dump step fails/);
      assert.ok(!tcpRepairOn(dup), 'a failed dump takes the socket out of repair mode');
      assert.equal(getsockoptInt(dup, SOL.SOCKET, SO.REUSEADDR), 1, 'and gives it its SO_REUSEADDR back');
    }
    const rec = dumpTcpConnection(dup, af, { ino: 0x1234 });
    const st = rec.stream;
    assert.ok(tcpRepairOn(dup), 'the dumped socket stays in repair mode');
    // The client read nothing: its receive queue is the server stream from byte 0.
    assert.ok(st.inqLen > 0 && st.inqLen < s2c, `inq_len ${st.inqLen} of ${s2c} server bytes`);
    assert.equal(firstMismatch(rec.inq, 0, 1), -1, 'receive queue bytes are the start of the server stream');
    // 20000 bytes were acknowledged before the lock; the rest is in the send queue, the corked
    // tail (and anything the window held back) never sent.
    assert.equal(st.outqLen, c2s - 20000, 'send queue = what the server has not acknowledged');
    assert.equal(firstMismatch(rec.outq, 20000, 0), -1, 'send queue bytes continue the client stream');
    assert.ok((st.unsqLen ?? 0) >= 700 && (st.unsqLen ?? 0) < st.outqLen, `unsent ${st.unsqLen} of ${st.outqLen}: both sent-unacked and unsent bytes`);
    assert.ok(st.mssClamp > 0 && st.optMask === origOptions && origOptions & TCPI_OPT.SACK, `mss ${st.mssClamp}, options ${st.optMask} (socket: ${origOptions})`);
    assert.deepEqual(rec.sk.tcpOpts, { nodelay: true, cork: true, keepcnt: 5, keepidle: 77, keepintvl: 11 });
    assert.equal(rec.sk.opts.soKeepalive, true);
    assert.equal(rec.sk.opts.reuseaddr, true, 'SO_REUSEADDR read before repair mode forces it');

    note(`server stream ${s2c} bytes before the dump, ${st.inqLen} of them in the client's receive queue; send queue ${st.outqLen} (${st.unsqLen} unsent); mss ${st.mssClamp}, options 0x${st.optMask.toString(16)}, wscale ${st.sndWscale}/${st.rcvWscale}`);
    const back = await throughImages(rec);
    // A restore while the original still exists fails (the 4-tuple is taken) and leaves no
    // socket behind; the original is not disturbed (the exchange below proves it).
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    assert.throws(() => createTcpConnection(back), /connect in repair mode\): EADDRNOTAVAIL/);
    assert.equal(fs.readdirSync('/proc/self/fd').length, fdsBefore, 'the half-built socket is closed');
    if (mode === 'leave-running') {
      assert.equal(releaseRepair(dup, rec.sk.opts.reuseaddr ?? false), 0);
      assert.ok(!tcpRepairOn(dup), 'released');
      assert.equal(getsockoptInt(dup, SOL.SOCKET, SO.REUSEADDR), 1, 'the task\'s SO_REUSEADDR is back');
      lock.release();
      lock = null;
      // The target hands its connection over to us, untouched by the dump.
      process.kill(t.pid, 'SIGUSR2');
      await waitForLine(t, 'CLOSED', 30_000);
      await talkAndCheck(t, dup, c2s, s2c);
      return;
    }
    process.kill(t.pid, 'SIGUSR2');
    await waitForLine(t, 'CLOSED', 30_000);
    // Our copy is the last: closing it in repair mode sends neither FIN nor RST.
    closeFd(dup);
    dup = -1;

    fresh = createTcpConnection(back);
    assert.ok(tcpRepairOn(fresh), 'a recreated connection starts in repair mode');
    selectRepairQueue(fresh, TCP_QUEUE.RECV);
    assert.equal(getQueueSeq(fresh), st.inqSeq, 'receive sequence where the dump left it');
    selectRepairQueue(fresh, TCP_QUEUE.SEND);
    assert.equal(getQueueSeq(fresh), st.outqSeq, 'send sequence where the dump left it');
    selectRepairQueue(fresh, TCP_QUEUE.NONE);
    const w = getRepairWindow(fresh);
    assert.deepEqual([w.sndWl1, w.sndWnd, w.maxWindow, w.rcvWnd, w.rcvWup], [st.sndWl1, st.sndWnd, st.maxWindow, st.rcvWnd, st.rcvWup], 'windows');
    const ti = tcpInfoHead(fresh);
    assert.equal(ti.state, TCP_STATE.ESTABLISHED);
    assert.equal(ti.options, st.optMask, 'handshake options');
    assert.equal(getsockoptInt(fresh, SOL.TCP, TCP_REPAIR_OPT.MAXSEG), st.mssClamp, 'mss clamp');
    const ts = getsockoptInt(fresh, SOL.TCP, TCP_REPAIR_OPT.TIMESTAMP) >>> 0;
    assert.ok(((ts - (st.timestamp ?? 0)) >>> 0) < 0x80000000, `timestamp clock went back: ${ts} < ${st.timestamp}`);
    for (const [opt, want] of [[TCP_OPT.NODELAY, 1], [TCP_OPT.CORK, 1], [TCP_OPT.KEEPIDLE, 77], [TCP_OPT.KEEPINTVL, 11], [TCP_OPT.KEEPCNT, 5]]) {
      assert.equal(getsockoptInt(fresh, SOL.TCP, opt!), want, `TCP option ${opt}`);
    }
    assert.equal(getsockoptInt(fresh, SOL.SOCKET, SO.KEEPALIVE), 1);
    assert.equal(getsockoptInt(fresh, SOL.SOCKET, SO.RCVBUF), rec.sk.opts.soRcvbuf, 'receive buffer');
    const ends = recordEnds(back.sk);
    assert.deepEqual(decodeInetAddr(getsockname(fresh)), ends.src, 'same local address and port');

    leaveRepair(fresh, back);
    assert.equal(getsockoptInt(fresh, SOL.SOCKET, SO.REUSEADDR), 1, 'SO_REUSEADDR as recorded after repair mode');
    lock.release();
    lock = null;
    await talkAndCheck(t, fresh, c2s, s2c);
  } finally {
    if (dup >= 0) {
      releaseRepair(dup, false);
      closeFd(dup);
    }
    if (fresh >= 0) closeFd(fresh);
    if (pidfd >= 0) closeFd(pidfd);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

describe('tcp repair', () => {
  it('an established IPv4 connection with data in flight both ways is dumped and recreated; the server sees every byte', async (tc) => {
    await dumpAndRecreate('4', 'recreate', (m) => tc.diagnostic(m));
  });
  it('the same over IPv6', async (tc) => {
    await dumpAndRecreate('6', 'recreate', (m) => tc.diagnostic(m));
  });
  it('a failed dump and a --leave-running dump leave repair mode: the original connection goes on (v4)', async (tc) => {
    await dumpAndRecreate('4', 'leave-running', (m) => tc.diagnostic(m));
  });
  it('the same over IPv6 (leave-running)', async (tc) => {
    await dumpAndRecreate('6', 'leave-running', (m) => tc.diagnostic(m));
  });
});
