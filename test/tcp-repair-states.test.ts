// TCP repair of the other shapes a connection takes: both ends inside the tree (dumped,
// cross-checked, recreated, talking to each other), and every closing state a socket with an fd
// can be in: FIN_WAIT1/2 (we closed), CLOSE_WAIT (the peer did: its FIN is replayed), LAST_ACK
// and CLOSING (both). Same target and helpers as tcp-repair.test.ts.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { buildTarget, cleanup, killTarget, startTarget, waitFor, waitForLine } from './lib/index.js';
import { EXTRA, field, firstMismatch, throughImages, converse, dropArriving } from './lib/tcp-stream.js';
import { AF, SOL, TCP_OPT, TCP_STATE, setsockoptInt, shutdown, pidfdOpen, pidfdGetfd, closeFd, tcpInfoHead } from '../src/sys/index.js';
import { inspectInet } from '../src/resources/files/inet.js';
import { dumpTcpConnection, createTcpConnection, leaveRepair, releaseRepair } from '../src/resources/net/tcp-repair.js';
import { lockNetwork, type NetworkLock } from '../src/resources/net/netlock.js';

after(cleanup);

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
    leaveRepair(fc, backC);
    leaveRepair(fsrv, backS);
    lock.release();
    lock = null;
    setsockoptInt(fc, SOL.TCP, TCP_OPT.CORK, 0);
    await converse([
      { name: 'client', fd: fc, from: c2s, to: c2s + EXTRA, outDir: 0, inTo: s2c + EXTRA, inDir: 1 },
      { name: 'server', fd: fsrv, from: s2c, to: s2c + EXTRA, outDir: 1, inTo: c2s + EXTRA, inDir: 0 },
    ]);
  } finally {
    for (const d of dups) {
      releaseRepair(d, false);
      closeFd(d);
    }
    for (const f of fds) closeFd(f);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

/**
 * half: a connection this side has half-closed (FIN_WAIT2, the server in CLOSE_WAIT) goes on
 * receiving after it is recreated; fin1 the same with the server's ACK of our FIN lost. peerclosed: one the server has half-closed (we are in
 * CLOSE_WAIT with its last bytes unread) reads them, then EOF, and goes on sending.
 */
async function halfClosed(family: '4' | '6', shape: 'half' | 'fin1' | 'peerclosed' = 'half'): Promise<void> {
  const af = family === '4' ? AF.INET : AF.INET6;
  const t = await startTarget([buildTarget('tcpconn'), family, shape], { name: `tcp${shape}${family}` });
  const state = shape === 'half' ? TCP_STATE.FIN_WAIT2 : shape === 'fin1' ? TCP_STATE.FIN_WAIT1 : TCP_STATE.CLOSE_WAIT;
  const ours = shape !== 'peerclosed';
  let lossy: (() => void) | null = null;
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
    assert.equal(info.state, shape === 'fin1' ? TCP_STATE.ESTABLISHED : state);
    if (shape === 'fin1') {
      // The server's ACK of our FIN is lost: we stay in FIN_WAIT1.
      lossy = dropArriving(info.dst!.port);
      shutdown(dup, 1, 'SHUT_WR');
      assert.ok(await waitFor(() => tcpInfoHead(dup).state === state, 30_000, 20), `state ${tcpInfoHead(dup).state}`);
    }
    lock = lockNetwork('nftables', [{ src: info.src, dst: info.dst! }]);
    lossy?.();
    const rec = dumpTcpConnection(dup, af, { ino: 0x2001 });
    assert.equal(rec.sk.state, state);
    if (ours) assert.equal(rec.stream.outqLen, 0, 'all data acknowledged; the FIN is not data');
    else assert.equal(rec.stream.inqLen, s2c, 'the server\'s last bytes wait unread before its FIN');
    assert.ok(rec.stream.inqLen > 0 && firstMismatch(rec.inq, 0, 1) === -1, 'receive queue = server stream from 0');
    const back = await throughImages(rec);
    process.kill(t.pid, 'SIGUSR2');
    await waitForLine(t, 'CLOSED', 30_000);
    closeFd(dup);
    dup = -1;
    const fresh = createTcpConnection(back);
    fds.push(fresh);
    assert.equal(tcpInfoHead(fresh).state, ours ? TCP_STATE.FIN_WAIT1 : TCP_STATE.CLOSE_WAIT, 'recreated with the FIN where it was');
    leaveRepair(fresh, back);
    lock.release();
    lock = null;
    // The server (CLOSE_WAIT) acknowledges the duplicate FIN: we are half-closed as before.
    if (ours) assert.ok(await waitFor(() => tcpInfoHead(fresh).state === TCP_STATE.FIN_WAIT2, 60_000, 20), `state ${tcpInfoHead(fresh).state}, not FIN_WAIT2`);
    fs.writeFileSync(path.join(t.dir, 'go'), '');
    try {
      const more = ours ? 0 : EXTRA;
      await converse([{ name: 'client', fd: fresh, from: c2s, to: c2s + more, outDir: 0, inTo: s2c + EXTRA - more, inDir: 1 }]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- target log ---\n${t.log()}`, { cause: e });
    }
    const res = await waitForLine(t, ['PASS', 'FAIL'], 60_000);
    assert.ok(res.startsWith('PASS'), t.log());
  } finally {
    if (dup >= 0) {
      releaseRepair(dup, false);
      closeFd(dup);
    }
    for (const f of fds) closeFd(f);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

/**
 * LAST_ACK: the server closed, then we did, and the server's ACK of our FIN is lost (dropped):
 * recreated in LAST_ACK, the connection hands over the server's last bytes and EOF, then our
 * FIN is acknowledged again (the server's side answers from TIME_WAIT) and it is closed.
 */
async function lastAck(family: '4' | '6'): Promise<void> {
  const af = family === '4' ? AF.INET : AF.INET6;
  const t = await startTarget([buildTarget('tcpconn'), family, 'lastack'], { name: `tcplastack${family}` });
  const fds: number[] = [];
  let dup = -1;
  let lock: NetworkLock | null = null;
  let lossy: (() => void) | null = null;
  try {
    const ready = await waitForLine(t, 'READY', 60_000);
    const s2c = field(ready, 's2c');
    const c2s = field(await waitForLine(t, 'WROTE', 30_000), 'c2s');
    const pidfd = pidfdOpen(t.pid);
    fds.push(pidfd);
    dup = pidfdGetfd(pidfd, field(ready, 'client'));
    const info = inspectInet(dup, af);
    assert.equal(info.state, TCP_STATE.CLOSE_WAIT);
    // What the server sends from now on is lost; then we close our side (on our copy of the
    // target's socket: the same socket), so our FIN reaches it but its ACK never comes back.
    lossy = dropArriving(info.dst!.port);
    shutdown(dup, 1, 'SHUT_WR');
    assert.ok(await waitFor(() => tcpInfoHead(dup).state === TCP_STATE.LAST_ACK, 30_000, 20), `state ${tcpInfoHead(dup).state}`);
    lock = lockNetwork('nftables', [{ src: info.src, dst: info.dst! }]);
    lossy();
    const rec = dumpTcpConnection(dup, af, { ino: 0x3001 });
    assert.equal(rec.sk.state, TCP_STATE.LAST_ACK);
    assert.equal(rec.stream.outqLen, 0, 'only our FIN is unacknowledged, and it is not data');
    assert.equal(rec.stream.inqLen, s2c);
    const back = await throughImages(rec);
    process.kill(t.pid, 'SIGUSR2');
    await waitForLine(t, 'CLOSED', 30_000);
    closeFd(dup);
    dup = -1;
    const fresh = createTcpConnection(back);
    fds.push(fresh);
    assert.equal(tcpInfoHead(fresh).state, TCP_STATE.LAST_ACK);
    leaveRepair(fresh, back);
    await converse([{ name: 'client', fd: fresh, from: c2s, to: c2s, outDir: 0, inTo: s2c, inDir: 1 }]);
    lock.release();
    lock = null;
    assert.ok(await waitFor(() => tcpInfoHead(fresh).state === TCP_STATE.CLOSE, 60_000, 20), `state ${tcpInfoHead(fresh).state}, not closed`);
    fs.writeFileSync(path.join(t.dir, 'go'), '');
    const res = await waitForLine(t, ['PASS', 'FAIL'], 60_000);
    assert.ok(res.startsWith('PASS'), t.log());
  } finally {
    if (dup >= 0) {
      releaseRepair(dup, false);
      closeFd(dup);
    }
    for (const f of fds) closeFd(f);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

/**
 * CLOSING: both sides shut down at once and our FIN is lost (dropped): recreated in CLOSING, our
 * side hands over the server's last bytes and EOF; once our FIN goes out again both sides close,
 * and the server (the target's socket, taken over by the test) reads every client byte, then EOF.
 */
async function closing(family: '4' | '6'): Promise<void> {
  const af = family === '4' ? AF.INET : AF.INET6;
  const t = await startTarget([buildTarget('tcpconn'), family, 'closing'], { name: `tcpclosing${family}` });
  const fds: number[] = [];
  let dup = -1;
  let lock: NetworkLock | null = null;
  let lossy: (() => void) | null = null;
  try {
    const ready = await waitForLine(t, 'READY', 60_000);
    const s2c = field(ready, 's2c');
    const c2s = field(await waitForLine(t, 'WROTE', 30_000), 'c2s');
    const pidfd = pidfdOpen(t.pid);
    fds.push(pidfd);
    dup = pidfdGetfd(pidfd, field(ready, 'client'));
    const srv = pidfdGetfd(pidfd, field(ready, 'server'));
    fds.push(srv);
    const info = inspectInet(dup, af);
    lossy = dropArriving(info.src.port);
    shutdown(dup, 1, 'SHUT_WR'); // lost on the way
    shutdown(srv, 1, 'SHUT_WR'); // arrives; our ACK of it is lost
    assert.ok(await waitFor(() => tcpInfoHead(dup).state === TCP_STATE.CLOSING, 30_000, 20), `state ${tcpInfoHead(dup).state}`);
    lock = lockNetwork('nftables', [{ src: info.src, dst: info.dst! }]);
    lossy();
    const rec = dumpTcpConnection(dup, af, { ino: 0x4001 });
    assert.equal(rec.sk.state, TCP_STATE.CLOSING);
    assert.equal(rec.stream.outqLen, 0, 'only our FIN is unacknowledged');
    assert.equal(rec.stream.inqLen, s2c);
    const back = await throughImages(rec);
    process.kill(t.pid, 'SIGUSR2');
    assert.ok((await waitForLine(t, ['PASS', 'FAIL'], 30_000)).startsWith('PASS'), t.log());
    closeFd(dup);
    dup = -1;
    const fresh = createTcpConnection(back);
    fds.push(fresh);
    assert.equal(tcpInfoHead(fresh).state, TCP_STATE.CLOSING);
    leaveRepair(fresh, back);
    await converse([{ name: 'client', fd: fresh, from: c2s, to: c2s, outDir: 0, inTo: s2c, inDir: 1 }]);
    lock.release();
    lock = null;
    await converse([{ name: 'server', fd: srv, from: s2c, to: s2c, outDir: 1, inTo: c2s, inDir: 0 }]);
    assert.ok(await waitFor(() => tcpInfoHead(fresh).state === TCP_STATE.CLOSE && tcpInfoHead(srv).state === TCP_STATE.CLOSE, 60_000, 20),
      `states ${tcpInfoHead(fresh).state} / ${tcpInfoHead(srv).state}, not closed`);
  } finally {
    if (dup >= 0) {
      releaseRepair(dup, false);
      closeFd(dup);
    }
    for (const f of fds) closeFd(f);
    lock?.release();
    lossy?.();
    killTarget(t);
  }
}

describe('tcp repair: both ends, half-closed', () => {
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
  it('FIN_WAIT1 (our FIN unacknowledged) is recreated, the FIN acknowledged again, receiving goes on (v4)', async () => {
    await halfClosed('4', 'fin1');
  });
  it('FIN_WAIT1 over IPv6', async () => {
    await halfClosed('6', 'fin1');
  });
  it('a connection the peer has closed (CLOSE_WAIT): its FIN is replayed, the last bytes then EOF are read, sending goes on (v4)', async () => {
    await halfClosed('4', 'peerclosed');
  });
  it('CLOSE_WAIT over IPv6', async () => {
    await halfClosed('6', 'peerclosed');
  });
  it('LAST_ACK (both FINs, ours unacknowledged) is recreated and closes (v4)', async () => {
    await lastAck('4');
  });
  it('LAST_ACK over IPv6', async () => {
    await lastAck('6');
  });
  it('CLOSING (FINs crossed, ours lost) is recreated and both sides close (v4)', async () => {
    await closing('4');
  });
  it('CLOSING over IPv6', async () => {
    await closing('6');
  });
});
