// TCP connections checkpointed and restored through the CLI (--tcp-established): tcpstream.c
// streams a counter pattern both ways and checks every byte itself (nothing lost, duplicated or
// reordered, no reset), with both ends in the dumped tree (v4, v6; kill and --leave-running) or
// the server outside it (the held network lock keeps the server's packets off while the client
// is dead); redis-server with a client outside the tree (this test's own connection) answers on
// the same connection after the restore. Without the flag check and dump refuse the connection,
// naming both addresses. Every image decodes with crit; no lock or repair-mode socket remains.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  cryo, cryoReport, critDecodeAll, dump, restore, goAndWaitResult, waitForLine, runningProblem, targetReport, startTarget,
  waitFor, killTarget, type Target,
} from './lib/index.js';
import { allGone, checkRestore, cleanupTrees } from './lib/tree.js';
import { cryoTables, removeNewTables, socketsInRepair, startPair, startOutside } from './lib/tcp-c-r.js';

const tablesBefore = cryoTables();
after(async () => {
  await cleanupTrees();
  removeNewTables(tablesBefore);
});

const TCP = ['--tcp-established'];

type Crit = { entries: Array<Record<string, unknown>> };

/** The images' TCP connections: files.img INETSK entries in a connection state, and their streams. */
function connections(images: Map<string, unknown>): { sk: Record<string, unknown>; stream: Record<string, unknown> }[] {
  const files = (images.get('files.img') as Crit).entries.filter((e) => e.type === 'INETSK' && (e.isk as { state: number }).state === 1);
  return files.map((f) => {
    const sk = f.isk as Record<string, unknown>;
    const name = `tcp-stream-${Number(sk.ino).toString(16)}.img`;
    assert.ok(images.has(name), `${name} for socket inode ${sk.ino}`);
    return { sk, stream: (images.get(name) as Crit).entries[0]! };
  });
}

/**
 * Every connection has received bytes not read yet and written bytes never sent (a closed
 * window: what was sent is acknowledged); with both ends in the images, each direction holds
 * more than the receiver's whole receive buffer (its queue plus the sender's).
 */
function assertInFlight(images: Map<string, unknown>, n: number): void {
  const conns = connections(images);
  assert.equal(conns.length, n, `${n} established connections in files.img`);
  for (const { sk, stream } of conns) {
    const s = stream as { inq_len: number; outq_len: number; unsq_len?: number };
    assert.ok(s.inq_len > 0, `socket ${sk.ino}: received bytes not read (inq_len ${s.inq_len})`);
    assert.ok((s.unsq_len ?? 0) > 0, `socket ${sk.ino}: bytes never sent (outq ${s.outq_len}, unsent ${s.unsq_len})`);
  }
  for (const rx of conns) {
    const tx = conns.find((c) => c.sk.src_port === rx.sk.dst_port && c.sk.dst_port === rx.sk.src_port);
    if (!tx) continue;
    const rcvbuf = (rx.sk.opts as { so_rcvbuf: number }).so_rcvbuf;
    const inFlight = (rx.stream.inq_len as number) + (tx.stream.outq_len as number);
    assert.ok(inFlight > rcvbuf, `${inFlight} bytes in flight towards port ${rx.sk.src_port}, more than its receive buffer (${rcvbuf})`);
  }
}

async function passes(t: Target): Promise<void> {
  const r = await goAndWaitResult(t, 180_000);
  assert.ok(r.pass, `${r.line}\n${targetReport(t)}`);
}

/** `inFlight`: the streams' queues must hold data (tcpstream.c); an idle redis client's are empty. */
async function killDumpRestore(t: Target, pids: number[], nConns: number, inFlight = true): Promise<void> {
  const d = dump(t, '1', { extraArgs: TCP });
  assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
  await allGone(pids);
  const images = await critDecodeAll(d.dir);
  if (inFlight) assertInFlight(images, nConns);
  else assert.equal(connections(images).length, nConns, `${nConns} established connection(s) in files.img`);
  // crit 3.17 predates inventory's dump_criu_run_id (it drops it): cryo show reads it.
  const shown = cryo(['show', path.join(d.dir, 'inventory.img')]);
  const inv = (JSON.parse(shown.stdout) as Crit).entries[0]!;
  assert.match(String(inv.dump_criu_run_id), /^cryoh-/, 'inventory.img names the lock kept for the restore');
  assert.deepEqual(cryoTables(), [inv.dump_criu_run_id], 'the kill-dump kept its lock, and only it');
  const without = restore(t, d.dir, 'no-flag');
  assert.equal(without.res.code, 1, `a restore without --tcp-established is refused\n${cryoReport(without.res)}`);
  assert.match(without.res.stderr, /TCP connection\(s\): restore them with --tcp-established/);
  checkRestore(t, restore(t, d.dir, '1', { extraArgs: TCP }));
  assert.deepEqual(cryoTables(), [], 'the restore removed the lock');
  for (const pid of pids) assert.deepEqual(socketsInRepair(pid), [], `pid ${pid}: no socket left in repair mode`);
}

/** A port nobody listens on now. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** One redis request on an open connection, and its reply (one line, or a bulk string). */
function ask(sock: net.Socket, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => done(new Error(`no answer to ${args.join(' ')} (got ${JSON.stringify(got)})`)), 20_000);
    const onData = (b: Buffer) => {
      got += b.toString('latin1');
      const bulk = /^\$(\d+)\r\n/.exec(got);
      if (bulk ? got.length >= bulk[0].length + Number(bulk[1]) + 2 : got.endsWith('\r\n')) done(null);
    };
    const onEnd = () => done(new Error(`the connection closed (got ${JSON.stringify(got)})`));
    const done = (e: Error | null) => {
      clearTimeout(timer);
      sock.off('data', onData).off('error', onEnd).off('end', onEnd);
      if (e) reject(e);
      else resolve(got.trim());
    };
    sock.on('data', onData).on('error', onEnd).on('end', onEnd);
    sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

describe('c/r tcp', () => {
  it('redis-server with a client outside the tree: the same connection answers after the restore', async () => {
    const port = await freePort();
    const argv = ['/usr/bin/redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    const t = await startTarget(argv, { name: 'redis-tcp', retitles: true });
    assert.ok(await waitFor(() => /Ready to accept connections/.test(t.log()), 10_000), `redis did not start\n${t.log()}`);
    const sock = net.connect(port, '127.0.0.1');
    try {
      await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
      assert.equal(await ask(sock, 'SET', 'greeting', 'before the dump'), '+OK');
      assert.equal(await ask(sock, 'CLIENT', 'SETNAME', 'the-one'), '+OK');
      await killDumpRestore(t, [t.pid], 1, false);
      assert.equal(await ask(sock, 'GET', 'greeting'), '$15\r\nbefore the dump');
      assert.equal(await ask(sock, 'CLIENT', 'GETNAME'), '$7\r\nthe-one', 'the server knows this connection as before');
      assert.equal(await ask(sock, 'INCR', 'n'), ':1');
    } finally {
      sock.destroy();
      killTarget(t);
    }
  });

  for (const family of ['4', '6'] as const) {
    it(`both ends in the tree (v${family}): dumped, killed, restored, the streams go on`, async () => {
      const { t, client } = await startPair(family);
      await killDumpRestore(t, [t.pid, client], 2);
      await passes(t);
    });
  }

  it('--leave-running: the connections go on, no lock and no repair mode left', async () => {
    const { t, client } = await startPair('4');
    const d = dump(t, 'lr', { leaveRunning: true, extraArgs: TCP });
    assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
    assertInFlight(await critDecodeAll(d.dir), 2);
    assert.deepEqual(cryoTables(), []);
    for (const pid of [t.pid, client]) assert.deepEqual(socketsInRepair(pid), [], `pid ${pid}`);
    assert.equal(runningProblem(t), null);
    await passes(t);
  });

  for (const family of ['4', '6'] as const) {
    it(`the server outside the tree (v${family}): the client keeps its connection across dump and restore`, async () => {
      const { server, client } = await startOutside(family);
      await killDumpRestore(client, [client.pid], 1);
      fs.writeFileSync(path.join(server.dir, 'go'), '');
      await passes(client);
      const r = await waitForLine(server, ['PASS', 'FAIL'], 60_000);
      assert.ok(r.startsWith('PASS'), `server: ${r}\n${targetReport(server)}`);
    });
  }

  it('without --tcp-established: check and dump name the connection with both addresses', async () => {
    const { t } = await startPair('6');
    const c = cryo(['check', '-t', String(t.pid), '-v']);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, /TCPv6 socket \[::1\]:\d+ -> \[::1\]:\d+ established: a TCP connection \(--tcp-established checkpoints it, --tcp-close restores it closed\)/);
    const ok = cryo(['check', '-t', String(t.pid), '-v', '--tcp-established']);
    assert.equal(ok.code, 0, cryoReport(ok));
    assert.match(ok.stdout, /TCPv6 socket \[::1\]:\d+ -> \[::1\]:\d+ established \(dumped in TCP repair mode: --tcp-established\)/);
    const d = dump(t, 'refused');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.match(d.res.stderr, /established: a TCP connection \(--tcp-established checkpoints it, --tcp-close restores it closed\)/);
    assert.equal(runningProblem(t), null);
    await passes(t);
  });
});
