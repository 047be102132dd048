// --tcp-close (CRIU's meaning): TCP connections are let go instead of refused or repaired. A
// real client and server in one python3 program (a connection with bytes the client has not
// read, a half-closed one in FIN_WAIT2 / CLOSE_WAIT, and one to a server of this test outside
// the tree) is dumped with --tcp-close and killed, with no network lock made; the images say so
// (inventory tcp_close, no tcp-stream image) and decode with crit; a restore without the flag is
// refused as CRIU's is; with it every connection comes back as a socket the peer closed: the
// program finds it readable, reads end of file, gets EPIPE on a write, and carries on: its
// listener still listens and serves a new connection. A restore --tcp-close of images dumped in
// repair mode (--tcp-established, killed) closes them too and removes the lock the dump kept.
// check -t says what covers a connection; without either flag the refusal names both.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cryo, cryoReport, critDecodeAll, dump, restore, runningProblem } from './lib/index.js';
import { allGone, checkRestore, cleanupTrees, expectPass, readyPython } from './lib/tree.js';
import { cryoTables, removeNewTables, socketsInRepair } from './lib/tcp-c-r.js';

const tablesBefore = cryoTables();
after(async () => {
  await cleanupTrees();
  removeNewTables(tablesBefore);
});

type Crit = { entries: Array<Record<string, unknown>> };

/** A server of the test, outside any dumped tree: it notes when its one client's connection ends. */
async function outsideServer(): Promise<{ port: number; ended: Promise<void>; close: () => void }> {
  let endedNow!: () => void;
  const ended = new Promise<void>((r) => (endedNow = r));
  const socks: net.Socket[] = [];
  const srv = net.createServer((s) => {
    socks.push(s);
    s.on('end', endedNow).on('error', endedNow).on('close', endedNow);
    s.write('hello from outside');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, ended, close: () => { for (const s of socks) s.destroy(); srv.close(); } };
}

/**
 * The program: the file `mode` holding "closed" (after a --tcp-close restore) or "open" (after
 * a --leave-running dump) says what it must find once told to go.
 */
function program(outsidePort: number): string[] {
  return [
    'import os, select, socket, time',
    'L = socket.socket(); L.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    "L.bind(('127.0.0.1', 0)); L.listen(8); port = L.getsockname()[1]",
    "C = socket.create_connection(('127.0.0.1', port)); S, _ = L.accept()",
    "C.sendall(b'ping'); assert S.recv(4) == b'ping'",
    "S.sendall(b'unread by the client')",
    // Half-closed: H sent its FIN (FIN_WAIT2), HS got it (CLOSE_WAIT).
    "H = socket.create_connection(('127.0.0.1', port)); HS, _ = L.accept(); H.shutdown(socket.SHUT_WR)",
    "O = socket.create_connection(('127.0.0.1', " + String(outsidePort) + '))',
    "assert O.recv(18) == b'hello from outside'",
    'time.sleep(0.2)',
    "print(f'READY {port}', flush=True)",
    "while not os.path.exists('go'): time.sleep(0.01)",
    "mode = open('mode').read().strip()",
    'problems = []',
    "ends = [('client', C), ('server', S), ('half-closed client', H), ('half-closed server', HS), ('to outside', O)]",
    "if mode == 'closed':",
    '    for name, s in ends:',
    '        r, _, _ = select.select([s], [], [], 5)',
    "        if not r: problems.append(f'{name}: not readable')",
    '        try:',
    '            got = s.recv(100)',
    "            if got != b'': problems.append(f'{name}: read {got!r}, not end of file')",
    '        except OSError as e:',
    "            problems.append(f'{name}: read: {e}')",
    '        try:',
    "            s.send(b'x'); problems.append(f'{name}: a write went through')",
    '        except BrokenPipeError:',
    '            pass',
    '        except OSError as e:',
    "            problems.append(f'{name}: write: {e}, not EPIPE')",
    'else:',
    "    if C.recv(20, socket.MSG_WAITALL) != b'unread by the client': problems.append('client: its unread bytes are gone')",
    "    S.sendall(b'more'); C.sendall(b'back')",
    "    if C.recv(4, socket.MSG_WAITALL) != b'more' or S.recv(4, socket.MSG_WAITALL) != b'back': problems.append('client/server: no exchange')",
    // It carries on: the listener serves a new connection either way.
    'N = socket.create_connection((\'127.0.0.1\', port), timeout=5); A, _ = L.accept()',
    "N.sendall(b'new'); A.sendall(b'ok')",
    "if A.recv(3, socket.MSG_WAITALL) != b'new' or N.recv(2, socket.MSG_WAITALL) != b'ok': problems.append('the listener no longer serves')",
    "print('PASS' if not problems else 'FAIL: ' + '; '.join(problems), flush=True)",
  ];
}

/** The connections files.img holds (INETSK entries in a connection state: established 1, FIN_WAIT2 5, CLOSE_WAIT 8). */
function connectionStates(images: Map<string, unknown>): number[] {
  return (images.get('files.img') as Crit).entries
    .filter((e) => e.type === 'INETSK')
    .map((e) => (e.isk as { state: number }).state)
    .filter((s) => s !== 10)
    .sort((a, b) => a - b);
}

describe('c/r tcp --tcp-close', () => {
  it('dumped with --tcp-close, killed: no lock; restored, every connection reads end of file and the listener serves', async () => {
    const outside = await outsideServer();
    try {
      const { t } = await readyPython('tcp-close', program(outside.port));
      const c = cryo(['check', '-t', String(t.pid), '-v', '--tcp-close']);
      assert.equal(c.code, 0, cryoReport(c));
      assert.match(c.stdout, /TCPv4 socket 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ established \(restored closed: --tcp-close\)/);
      assert.match(c.stdout, /fin-wait-2 \(restored closed: --tcp-close\)/);
      assert.match(c.stdout, /close-wait \(restored closed: --tcp-close\)/);
      const d = dump(t, 'close', { extraArgs: ['--tcp-close', '--tcp-established'] });
      assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
      assert.deepEqual(cryoTables(), [], 'no network lock for connections let go');
      await allGone([t.pid]);
      // The tree died with its sockets open: the kernel closed them, the outside server saw it.
      await outside.ended;
      const images = await critDecodeAll(d.dir);
      assert.deepEqual(connectionStates(images), [1, 1, 1, 5, 8], 'every connection in files.img, in its state');
      assert.equal([...images.keys()].filter((n) => n.startsWith('tcp-stream-')).length, 0, 'no tcp-stream image');
      const inv = (images.get('inventory.img') as Crit).entries[0]!;
      assert.equal(inv.tcp_close, true, 'inventory.img: tcp_close');
      const without = restore(t, d.dir, 'no-flag');
      assert.equal(without.res.code, 1, cryoReport(without.res));
      assert.match(without.res.stderr, /dumped with --tcp-close: restore with --tcp-close \(their 5 TCP connection\(s\) come back closed\)/);
      checkRestore(t, restore(t, d.dir, 'close', { extraArgs: ['--tcp-close'] }));
      assert.deepEqual(socketsInRepair(t.pid), [], 'no socket in repair mode');
      fs.writeFileSync(path.join(t.dir, 'mode'), 'closed');
      await expectPass(t);
    } finally {
      outside.close();
    }
  });

  it('dumped in repair mode (--tcp-established), restored with --tcp-close: closed, and the kept lock removed', async () => {
    const outside = await outsideServer();
    try {
      const { t } = await readyPython('tcp-est-close', program(outside.port));
      const d = dump(t, 'est', { extraArgs: ['--tcp-established'] });
      assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
      await allGone([t.pid]);
      assert.equal(cryoTables().length, 1, 'the kill-dump kept its lock');
      checkRestore(t, restore(t, d.dir, 'close', { extraArgs: ['--tcp-close'] }));
      assert.deepEqual(cryoTables(), [], 'the restore removed the lock');
      assert.deepEqual(socketsInRepair(t.pid), [], 'no socket in repair mode');
      fs.writeFileSync(path.join(t.dir, 'mode'), 'closed');
      await expectPass(t);
    } finally {
      outside.close();
    }
  });

  it('--leave-running with --tcp-close: the connections go on untouched; without a flag the refusal names both', async () => {
    const outside = await outsideServer();
    try {
      const { t } = await readyPython('tcp-close-lr', program(outside.port));
      const c = cryo(['check', '-t', String(t.pid)]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, /established: a TCP connection \(--tcp-established checkpoints it, --tcp-close restores it closed\)/);
      const d = dump(t, 'lr', { leaveRunning: true, extraArgs: ['--tcp-close'] });
      assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
      assert.deepEqual(cryoTables(), []);
      assert.equal(runningProblem(t), null);
      fs.writeFileSync(path.join(t.dir, 'mode'), 'open');
      await expectPass(t);
    } finally {
      outside.close();
    }
  });
});
