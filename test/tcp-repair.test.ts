// TCP repair and the network lock on real connections. A target (tcpconn.c) holds a client and a
// server connected over loopback with data in flight both ways; the test takes the client's
// socket (pidfd_getfd), locks the network, dumps the connection through images CRIU's crit
// reads, closes every copy of the original silently (repair mode), recreates the connection in
// this process from the images, and then talks to the target's server on it: the server checks
// every byte's position in both streams and a clean EOF. (The lock itself: netlock.test.ts.)
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { buildTarget, cleanup, critDecodeAll, killTarget, makeTempDir, startTarget, waitFor, waitForLine, sleep, type Target } from './lib/index.js';
import {
  AF, SOL, SO, TCP_OPT, TCP_STATE, F, O, E, sys, sysTry, decodeInetAddr, getsockname,
  getsockoptInt, setsockoptInt, pidfdOpen, pidfdGetfd, closeFd, tcpInfoHead, tcpRepairOn, getRepairWindow, selectRepairQueue, getQueueSeq,
  TCP_QUEUE, TCP_REPAIR_OPT, TCPI_OPT, shutdown,
} from '../src/sys/index.js';
import { encodeImage, decodeImage } from '../src/image/io.js';
import { inet_sk_entrySchema, type inet_sk_entry } from '../src/image/gen/sk-inet_pb.js';
import { inspectInet } from '../src/resources/files/inet.js';
import {
  dumpTcpConnection, inRepair, createTcpConnection, leaveRepair, releaseRepair, encodeTcpStreamImage, decodeTcpStreamImage, recordEnds,
  type TcpConnectionRecord,
} from '../src/resources/net/tcp-repair.js';
import { lockNetwork, type NetworkLock } from '../src/resources/net/netlock.js';

after(cleanup);

const EXTRA = 100000; // as in tcpconn.c

/** Byte i of stream direction d (0 client->server, 1 server->client), as tcpconn.c makes it. */
function pattern(i: number, d: number): number {
  return ((Math.imul(i, 0x9e3779b1) >>> 24) ^ (i >>> 8) ^ (d * 0x5a)) & 0xff;
}

function patternBuf(from: number, len: number, d: number): Buffer {
  const b = Buffer.alloc(len);
  for (let k = 0; k < len; k++) b[k] = pattern(from + k, d);
  return b;
}

function firstMismatch(b: Buffer, from: number, d: number): number {
  for (let k = 0; k < b.length; k++) if (b[k] !== pattern(from + k, d)) return k;
  return -1;
}

function field(line: string, name: string): number {
  const m = new RegExp(`${name}=(\\d+)`).exec(line);
  assert.ok(m, `no ${name}= in "${line}"`);
  return Number(m[1]);
}

/** Record -> inetsk.img + tcp-stream-INO.img (crit must decode both) -> record. */
async function throughImages(rec: TcpConnectionRecord): Promise<TcpConnectionRecord> {
  const dir = makeTempDir('cryo-tcp-img-');
  const streamFile = `tcp-stream-${rec.sk.ino.toString(16)}.img`;
  fs.writeFileSync(path.join(dir, 'inetsk.img'), encodeImage('INETSK', [create(inet_sk_entrySchema, rec.sk)]));
  fs.writeFileSync(path.join(dir, streamFile), encodeTcpStreamImage(rec));
  const crit = await critDecodeAll(dir);
  const critStream = (crit.get(streamFile) as { entries: Array<Record<string, unknown>> }).entries[0]!;
  assert.equal(critStream.inq_len, rec.stream.inqLen, 'crit reads our inq_len');
  assert.equal(critStream.outq_len, rec.stream.outqLen, 'crit reads our outq_len');
  const sk = decodeImage(fs.readFileSync(path.join(dir, 'inetsk.img')), 'inetsk.img').messages[0] as inet_sk_entry;
  const s = decodeTcpStreamImage(fs.readFileSync(path.join(dir, streamFile)), streamFile);
  assert.ok(s.inq.equals(rec.inq) && s.outq.equals(rec.outq), 'queue bytes survive the image');
  return { sk: sk as unknown as TcpConnectionRecord['sk'], stream: s.stream as unknown as TcpConnectionRecord['stream'], inq: s.inq, outq: s.outq };
}

/** One side of a conversation: write stream bytes [from, to) of direction outDir, read bytes [0, inTo) of inDir, then FIN and EOF. */
interface End {
  name: string;
  fd: number;
  from: number;
  to: number;
  outDir: number;
  inTo: number;
  inDir: number;
}

/** Drives every end until each has written its part, sent FIN and read its peer's stream to EOF, checking every byte's position. */
async function converse(ends: End[]): Promise<void> {
  const st = ends.map((e) => {
    sys('fcntl', [e.fd, F.SETFL, O.RDWR | O.NONBLOCK]);
    return { e, out: patternBuf(e.from, e.to - e.from, e.outDir), wrote: 0, got: 0, fin: false, eof: false };
  });
  const inBuf = Buffer.alloc(65536);
  const deadline = Date.now() + 180_000;
  while (st.some((x) => !x.eof)) {
    let progress = false;
    for (const x of st) {
      const { e } = x;
      if (x.wrote < x.out.length) {
        const chunk = x.out.subarray(x.wrote);
        const r = sysTry('write', [e.fd, chunk, chunk.length]);
        if (r.ret > 0) { x.wrote += r.ret; progress = true; } else assert.equal(r.errno, E.EAGAIN, `${e.name}: write: errno ${r.errno}`);
      } else if (!x.fin) {
        shutdown(e.fd, 1, 'SHUT_WR');
        x.fin = true;
      }
      if (x.eof) continue;
      const r = sysTry('read', [e.fd, inBuf, inBuf.length]);
      if (r.ret > 0) {
        const b = inBuf.subarray(0, r.ret);
        const bad = firstMismatch(b, x.got, e.inDir);
        assert.equal(bad, -1, `${e.name}: byte ${x.got + bad} is ${b[bad]}, expected ${pattern(x.got + bad, e.inDir)}`);
        x.got += r.ret;
        progress = true;
      } else if (r.ret === 0) {
        assert.equal(x.got, e.inTo, `${e.name}: EOF after ${x.got} bytes, expected ${e.inTo}`);
        x.eof = true;
      } else assert.equal(r.errno, E.EAGAIN, `${e.name}: read: errno ${r.errno} after ${x.got} bytes`);
    }
    assert.ok(Date.now() < deadline, `no end of the exchange: ${st.map((x) => `${x.e.name} wrote ${x.wrote}/${x.out.length}, read ${x.got}/${x.e.inTo}`).join('; ')}`);
    if (!progress) await sleep(5);
  }
}

/** The target's client would now uncork (the corked 700 bytes go out); then both sides talk. */
async function talkAndCheck(t: Target, fd: number, c2s: number, s2c: number): Promise<void> {
  setsockoptInt(fd, SOL.TCP, TCP_OPT.CORK, 0);
  fs.writeFileSync(path.join(t.dir, 'go'), '');
  try {
    await converse([{ name: 'client', fd, from: c2s, to: c2s + EXTRA, outDir: 0, inTo: s2c + EXTRA, inDir: 1 }]);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- target log ---\n${t.log()}`, { cause: e });
  }
  const res = await waitForLine(t, ['PASS', 'FAIL'], 60_000);
  assert.ok(res.startsWith('PASS'), t.log());
}

/**
 * Drops, on input only, TCP packets from local port `port` (a table of the test's own, not
 * named like cryo's locks); returns its removal.
 */
function dropArriving(port: number): () => void {
  const name = `cryotest-${process.pid}-${port}`;
  const nft = (args: string[], input?: string) => {
    const r = spawnSync('nft', args, { input, encoding: 'utf8' });
    assert.equal(r.status, 0, `nft ${args.join(' ')}: ${r.stderr}`);
  };
  nft(['-f', '-'], `table inet ${name} { chain input { type filter hook input priority -300; policy accept; tcp sport ${port} drop; }\n}\n`);
  let gone = false;
  return () => {
    if (!gone) nft(['delete', 'table', 'inet', name]);
    gone = true;
  };
}

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

    note(`server stream ${s2c} bytes before the dump, ${st.inqLen} of them in the client's receive queue; send queue ${st.outqLen} (${st.unsqLen} unsent); mss ${st.mssClamp}, options 0x${st.optMask.toString(16)}, wscale ${st.sndWscale}/${st.rcvWscale}`);
    const back = await throughImages(rec);
    if (mode === 'leave-running') {
      assert.equal(releaseRepair(dup), 0);
      assert.ok(!tcpRepairOn(dup), 'released');
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

    leaveRepair(fresh);
    lock.release();
    lock = null;
    await talkAndCheck(t, fresh, c2s, s2c);
  } finally {
    if (dup >= 0) {
      releaseRepair(dup);
      closeFd(dup);
    }
    if (fresh >= 0) closeFd(fresh);
    if (pidfd >= 0) closeFd(pidfd);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

/** Both ends in the tree: the client and the server socket are dumped, closed, recreated, and talk to each other. */
async function bothEnds(family: '4' | '6', note: (msg: string) => void): Promise<void> {
  const af = family === '4' ? AF.INET : AF.INET6;
  const t = await startTarget([buildTarget('tcpconn'), family, 'both'], { name: `tcpboth${family}` });
  const fds: number[] = [];
  const dups: number[] = [];
  let lock: NetworkLock | null = null;
  let lossy: (() => void) | null = null;
  try {
    const ready = await waitForLine(t, 'READY', 60_000);
    const s2c = field(ready, 's2c');
    const pidfd = pidfdOpen(t.pid);
    fds.push(pidfd);
    const cli = pidfdGetfd(pidfd, field(ready, 'client'));
    dups.push(cli);
    const srv = pidfdGetfd(pidfd, field(ready, 'server'));
    dups.push(srv);
    const info = inspectInet(cli, af);
    lossy = dropArriving(info.src.port);
    process.kill(t.pid, 'SIGUSR1');
    await waitForLine(t, 'SENT', 30_000);
    lock = lockNetwork('nftables', [{ src: info.src, dst: info.dst! }]);
    lossy();
    process.kill(t.pid, 'SIGUSR1');
    const c2s = field(await waitForLine(t, 'WROTE', 30_000), 'c2s');

    let ms = performance.now();
    const recC = dumpTcpConnection(cli, af, { ino: 0x1001 });
    const recS = dumpTcpConnection(srv, af, { ino: 0x1002 });
    ms = performance.now() - ms;
    // The two dumps agree: each side's unacknowledged data starts where its peer stopped receiving.
    assert.equal((recC.stream.outqSeq - recC.stream.outqLen) >>> 0, recS.stream.inqSeq, 'client snd_una = server rcv_nxt');
    assert.equal((recS.stream.outqSeq - recS.stream.outqLen) >>> 0, recC.stream.inqSeq, 'server snd_una = client rcv_nxt');
    assert.equal(recS.stream.inqLen, 20000, 'the server holds the 20000 bytes it acknowledged');
    assert.equal(firstMismatch(recS.inq, 0, 0), -1, 'server receive queue = client stream from 0');
    assert.equal(recC.stream.inqLen + recS.stream.outqLen, s2c, 'client receive queue + server send queue = the whole server stream');
    assert.equal(firstMismatch(recS.outq, recC.stream.inqLen, 1), -1, 'server send queue continues where the client receive queue ends');
    note(`dumped both ends in ${ms.toFixed(1)} ms: server send queue ${recS.stream.outqLen} bytes (${recS.stream.unsqLen} unsent), client receive queue ${recC.stream.inqLen}`);
    const backC = await throughImages(recC);
    const backS = await throughImages(recS);
    process.kill(t.pid, 'SIGUSR2');
    assert.ok((await waitForLine(t, ['PASS', 'FAIL'], 30_000)).startsWith('PASS'), t.log());
    for (const d of dups.splice(0)) closeFd(d); // in repair mode: silently

    ms = performance.now();
    const fc = createTcpConnection(backC);
    fds.push(fc);
    const fsrv = createTcpConnection(backS);
    fds.push(fsrv);
    ms = performance.now() - ms;
    note(`recreated both ends in ${ms.toFixed(1)} ms`);
    leaveRepair(fc);
    leaveRepair(fsrv);
    lock.release();
    lock = null;
    setsockoptInt(fc, SOL.TCP, TCP_OPT.CORK, 0);
    await converse([
      { name: 'client', fd: fc, from: c2s, to: c2s + EXTRA, outDir: 0, inTo: s2c + EXTRA, inDir: 1 },
      { name: 'server', fd: fsrv, from: s2c, to: s2c + EXTRA, outDir: 1, inTo: c2s + EXTRA, inDir: 0 },
    ]);
  } finally {
    for (const d of dups) {
      releaseRepair(d);
      closeFd(d);
    }
    for (const f of fds) closeFd(f);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

/** A connection this side has half-closed (FIN_WAIT2, the server in CLOSE_WAIT) goes on receiving after it is recreated. */
async function halfClosed(family: '4' | '6'): Promise<void> {
  const af = family === '4' ? AF.INET : AF.INET6;
  const t = await startTarget([buildTarget('tcpconn'), family, 'half'], { name: `tcphalf${family}` });
  const fds: number[] = [];
  let dup = -1;
  let lock: NetworkLock | null = null;
  try {
    const ready = await waitForLine(t, 'READY', 60_000);
    const s2c = field(ready, 's2c');
    const c2s = field(await waitForLine(t, 'WROTE', 30_000), 'c2s');
    const pidfd = pidfdOpen(t.pid);
    fds.push(pidfd);
    dup = pidfdGetfd(pidfd, field(ready, 'client'));
    const info = inspectInet(dup, af);
    assert.equal(info.state, TCP_STATE.FIN_WAIT2);
    lock = lockNetwork('nftables', [{ src: info.src, dst: info.dst! }]);
    const rec = dumpTcpConnection(dup, af, { ino: 0x2001 });
    assert.equal(rec.sk.state, TCP_STATE.FIN_WAIT2);
    assert.equal(rec.stream.outqLen, 0, 'everything we sent, FIN included, was acknowledged');
    assert.ok(rec.stream.inqLen > 0 && firstMismatch(rec.inq, 0, 1) === -1, 'receive queue = server stream from 0');
    const back = await throughImages(rec);
    process.kill(t.pid, 'SIGUSR2');
    await waitForLine(t, 'CLOSED', 30_000);
    closeFd(dup);
    dup = -1;
    const fresh = createTcpConnection(back);
    fds.push(fresh);
    assert.equal(tcpInfoHead(fresh).state, TCP_STATE.FIN_WAIT1, 'recreated with our FIN in flight again');
    leaveRepair(fresh);
    lock.release();
    lock = null;
    // The server (CLOSE_WAIT) acknowledges the duplicate FIN: we are half-closed as before.
    assert.ok(await waitFor(() => tcpInfoHead(fresh).state === TCP_STATE.FIN_WAIT2, 60_000, 20), `state ${tcpInfoHead(fresh).state}, not FIN_WAIT2`);
    fs.writeFileSync(path.join(t.dir, 'go'), '');
    try {
      await converse([{ name: 'client', fd: fresh, from: c2s, to: c2s, outDir: 0, inTo: s2c + EXTRA, inDir: 1 }]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- target log ---\n${t.log()}`, { cause: e });
    }
    const res = await waitForLine(t, ['PASS', 'FAIL'], 60_000);
    assert.ok(res.startsWith('PASS'), t.log());
  } finally {
    if (dup >= 0) {
      releaseRepair(dup);
      closeFd(dup);
    }
    for (const f of fds) closeFd(f);
    lock?.release();
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
  it('both ends in the tree (v4): client and server are dumped, recreated and talk to each other', async (tc) => {
    await bothEnds('4', (m) => tc.diagnostic(m));
  });
  it('both ends in the tree (v6)', async (tc) => {
    await bothEnds('6', (m) => tc.diagnostic(m));
  });
  it('a connection half-closed by this side (FIN_WAIT2) is recreated and goes on receiving (v4)', async () => {
    await halfClosed('4');
  });
  it('half-closed over IPv6', async () => {
    await halfClosed('6');
  });
  it('a failed dump and a --leave-running dump leave repair mode: the original connection goes on (v4)', async (tc) => {
    await dumpAndRecreate('4', 'leave-running', (m) => tc.diagnostic(m));
  });
  it('the same over IPv6 (leave-running)', async (tc) => {
    await dumpAndRecreate('6', 'leave-running', (m) => tc.diagnostic(m));
  });
});
