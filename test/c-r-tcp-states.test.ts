// TCP connections in their closing states, checkpointed and restored through the CLI
// (--tcp-established) with both ends in one real program (tcpclose.c), which brought them there
// itself and checks its own state afterwards: the states hold across the restore, each end
// reads the other's whole stream to its EOF, every byte at its position. FIN_WAIT2 with
// CLOSE_WAIT (a half-closed connection with data flowing the other way), FIN_WAIT1 (our FIN
// queued behind unsent bytes), LAST_ACK, CLOSING; IPv4 and IPv6; kill and --leave-running. The
// images decode with crit and hold the states; no lock and no socket in repair mode remains.
// A connect in progress (SYN_SENT, tcpsynsent.c) to a server of the test whose answers are
// dropped meanwhile completes after the restore, on one connection that carries both streams;
// without --tcp-established it is refused, named. A listener with connections waiting in its
// accept queue is refused by check and dump, named with the reason (none is lost silently);
// with --skip-in-flight (CRIU's) they are dropped, and the program's client connects again.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget, cryo, cryoReport, critDecodeAll, dump, restore, goAndWaitResult, startTarget, waitForLine, runningProblem, targetReport, type Target,
} from './lib/index.js';
import { allGone, checkRestore, cleanupTrees, readyPython, expectPass } from './lib/tree.js';
import { cryoTables, removeNewTables, socketsInRepair } from './lib/tcp-c-r.js';
import { dropArriving, firstMismatch, patternBuf } from './lib/tcp-stream.js';
import { TCP_STATE } from '../src/sys/index.js';

const tablesBefore = cryoTables();
after(async () => {
  await cleanupTrees();
  removeNewTables(tablesBefore);
});

const TCP = ['--tcp-established'];
type Mode = 'half' | 'fin1' | 'lastack' | 'closing';
/** The states tcpclose.c brings each end to: [a (the client), b (the accepted end)]. */
const NAMES: Record<Mode, string> = { half: 'FIN_WAIT2 / CLOSE_WAIT', fin1: 'FIN_WAIT1 / ESTABLISHED', lastack: 'FIN_WAIT2 / LAST_ACK', closing: 'FIN_WAIT2 / CLOSING' };
const STATES: Record<Mode, [number, number]> = {
  half: [TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSE_WAIT],
  fin1: [TCP_STATE.FIN_WAIT1, TCP_STATE.ESTABLISHED],
  lastack: [TCP_STATE.FIN_WAIT2, TCP_STATE.LAST_ACK],
  closing: [TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSING],
};

async function start(family: '4' | '6', mode: Mode): Promise<Target> {
  const t = await startTarget([buildTarget('tcpclose'), family, mode], { name: `tcpclose${family}${mode}` });
  const ready = await waitForLine(t, 'READY', 60_000);
  assert.match(ready, new RegExp(`a=${STATES[mode][0]} b=${STATES[mode][1]} `), `the program reached its states\n${t.log()}`);
  return t;
}

/** The states of the connections in files.img, each with its tcp-stream image present. */
async function imageStates(dir: string): Promise<number[]> {
  const images = await critDecodeAll(dir);
  const files = (images.get('files.img') as { entries: Array<Record<string, unknown>> }).entries.filter((e) => e.type === 'INETSK');
  const out: number[] = [];
  for (const f of files) {
    const sk = f.isk as { state: number; ino: number };
    assert.ok(images.has(`tcp-stream-${sk.ino.toString(16)}.img`), `tcp-stream image of socket ${sk.ino} (state ${sk.state})`);
    out.push(sk.state);
  }
  return out.sort((x, y) => x - y);
}

function noLeftovers(t: Target): void {
  assert.deepEqual(cryoTables().filter((n) => !tablesBefore.includes(n)), [], 'no network lock of ours left');
  assert.deepEqual(socketsInRepair(t.pid), [], 'no socket left in repair mode');
}

async function passes(t: Target): Promise<void> {
  const r = await goAndWaitResult(t, 120_000);
  assert.ok(r.pass, `${r.line}\n${targetReport(t)}`);
}

async function killAndRestore(family: '4' | '6', mode: Mode): Promise<void> {
  const t = await start(family, mode);
  const d = dump(t, 'kill', { extraArgs: TCP });
  assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
  await allGone([t.pid]);
  assert.deepEqual(await imageStates(d.dir), [...STATES[mode]].sort((x, y) => x - y), 'files.img holds both ends in their states');
  checkRestore(t, restore(t, d.dir, 'kill', { extraArgs: TCP }));
  noLeftovers(t);
  await passes(t);
}

describe('c/r tcp closing states', () => {
  for (const mode of ['half', 'fin1', 'lastack', 'closing'] as const) {
    it(`${mode} (${NAMES[mode]}), v4: dumped, killed, restored; both streams complete`, async () => {
      await killAndRestore('4', mode);
    });
  }

  for (const mode of ['half', 'closing'] as const) {
    it(`${mode}, v6`, async () => {
      await killAndRestore('6', mode);
    });
  }

  for (const mode of ['fin1', 'lastack'] as const) {
    it(`${mode}, --leave-running: the program goes on untouched`, async () => {
      const t = await start('4', mode);
      const d = dump(t, 'lr', { leaveRunning: true, extraArgs: TCP });
      assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
      assert.deepEqual(await imageStates(d.dir), [...STATES[mode]].sort((x, y) => x - y));
      assert.equal(runningProblem(t), null);
      noLeftovers(t);
      await passes(t);
    });
  }
});

/**
 * A server of the test for tcpsynsent.c: counts connections, checks the 100000 bytes of
 * direction 0, answers with 50000 of direction 1 and closes.
 */
async function synServer(family: '4' | '6'): Promise<{ port: number; conns: () => number; done: Promise<string | null>; close: () => void }> {
  let n = 0;
  let finish: (r: string | null) => void = () => {};
  const done = new Promise<string | null>((r) => (finish = r));
  const srv = net.createServer((sock) => {
    n++;
    const got: Buffer[] = [];
    sock.on('data', (b) => got.push(b));
    sock.on('error', (e) => finish(`server: ${e.message}`));
    sock.on('end', () => {
      const all = Buffer.concat(got);
      const bad = firstMismatch(all, 0, 0);
      if (all.length !== 100000 || bad >= 0) return finish(`server got ${all.length} bytes, first wrong at ${bad}`);
      sock.end(patternBuf(0, 50000, 1));
      finish(null);
    });
  });
  await new Promise<void>((r) => srv.listen(0, family === '4' ? '127.0.0.1' : '::1', r));
  return { port: (srv.address() as net.AddressInfo).port, conns: () => n, done, close: () => srv.close() };
}

describe('c/r tcp connect in progress', () => {
  for (const [family, leave] of [['4', false], ['6', false], ['4', true]] as const) {
    it(`SYN_SENT (v${family}${leave ? ', --leave-running' : ''}): the connect completes after the ${leave ? 'dump' : 'restore'}, same port, both streams whole`, async () => {
      const server = await synServer(family);
      const letThrough = dropArriving(server.port);
      try {
        const t = await startTarget([buildTarget('tcpsynsent'), family, String(server.port)], { name: `tcpsynsent${family}` });
        await waitForLine(t, 'READY', 60_000);
        const d = dump(t, leave ? 'lr' : 'kill', { extraArgs: TCP, leaveRunning: leave });
        assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
        if (!leave) await allGone([t.pid]);
        assert.deepEqual(await imageStates(d.dir), [TCP_STATE.SYN_SENT], 'files.img holds the connect in progress');
        if (!leave) checkRestore(t, restore(t, d.dir, 'kill', { extraArgs: TCP }));
        noLeftovers(t);
        letThrough();
        await passes(t);
        assert.equal(await server.done, null);
        assert.equal(server.conns(), 1, 'one connection reached the server');
      } finally {
        letThrough();
        server.close();
      }
    });
  }
});

describe('c/r tcp refusals', () => {
  it('SYN_SENT without --tcp-established: check and dump name the connect in progress with both addresses', async () => {
    const server = await synServer('4');
    const letThrough = dropArriving(server.port);
    try {
      const t = await startTarget([buildTarget('tcpsynsent'), '4', String(server.port)], { name: 'tcpsynsent-refused' });
      await waitForLine(t, 'READY', 60_000);
      const c = cryo(['check', '-t', String(t.pid), '-v']);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, new RegExp(`TCPv4 socket 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${server.port} syn-sent: a TCP connection \\(--tcp-established checkpoints it, --tcp-close restores it closed\\)`));
      const d = dump(t, 'refused');
      assert.equal(d.res.code, 3, cryoReport(d.res));
      assert.match(d.res.stderr, /syn-sent: a TCP connection/);
      assert.equal(runningProblem(t), null);
      letThrough();
      await passes(t);
    } finally {
      letThrough();
      server.close();
    }
  });

  it('a listener with connections in its accept queue: check and dump refuse it, naming why; nothing is lost', async () => {
    // The program accepts its two waiting connections only after go and checks what each carries.
    const { t } = await readyPython('tcppending', [
      'import socket, os, time',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)',
      'cs = [socket.create_connection(s.getsockname()) for _ in range(2)]',
      'for i, c in enumerate(cs): c.sendall(b"hello %d" % i)',
      'time.sleep(0.2)',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'got = sorted(s.accept()[0].recv(100) for _ in range(2))',
      'print("PASS" if got == [b"hello 0", b"hello 1"] else "FAIL: %r" % got, flush=True)',
    ]);
    for (const flags of [[], TCP]) {
      const c = cryo(['check', '-t', String(t.pid), '-v', ...flags]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, /TCPv4 socket 127\.0\.0\.1:\d+ listening: 2 connection\(s\) waiting in its accept queue — cannot be restored \(no kernel call puts a connection back into an accept queue\) \(let the program accept them before the dump, or --skip-in-flight drops them \(their clients are reset\)\)/);
    }
    const d = dump(t, 'refused', { extraArgs: TCP });
    assert.equal(d.res.code, 3, cryoReport(d.res));
    assert.match(d.res.stderr, /2 connection\(s\) waiting in its accept queue/);
    assert.equal(runningProblem(t), null);
    await expectPass(t);
  });

  it('--skip-in-flight: the waiting connection is dropped, its client (in the tree) is reset and connects again', async () => {
    // After the restore the program finds its accept queue empty, its client's connection reset
    // (RST from the listener: no accepted end matches it), and a new connection accepted.
    const { t } = await readyPython('tcpinflight', [
      'import socket, os, time',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)',
      'c = socket.create_connection(s.getsockname()); c.sendall(b"lost")',
      'time.sleep(0.2)',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      's.settimeout(1)',
      'try:',
      '    s.accept(); print("FAIL: a dropped connection was accepted", flush=True); raise SystemExit(1)',
      'except socket.timeout: pass',
      'c.settimeout(5)',
      'try:',
      '    c.sendall(b"more"); r = c.recv(10); print("FAIL: the dropped connection answered %r" % r, flush=True); raise SystemExit(1)',
      'except (ConnectionResetError, BrokenPipeError): pass',
      's.settimeout(5)',
      'c2 = socket.create_connection(s.getsockname()); c2.sendall(b"again")',
      'a, _ = s.accept(); got = a.recv(10)',
      'print("PASS" if got == b"again" else "FAIL: %r" % got, flush=True)',
    ]);
    const flags = [...TCP, '--skip-in-flight'];
    const c = cryo(['check', '-t', String(t.pid), '-v', ...flags]);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /TCPv4 socket 127\.0\.0\.1:\d+ listening \(1 not accepted yet: dropped, --skip-in-flight\)/);
    const d = dump(t, 'kill', { extraArgs: flags });
    assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
    assert.match(fs.readFileSync(path.join(t.root, 'dump-kill.log'), 'utf8'), /1 connection\(s\) not yet accepted are dropped \(--skip-in-flight\)/, 'the log names what was dropped');
    await allGone([t.pid]);
    checkRestore(t, restore(t, d.dir, 'kill', { extraArgs: TCP }));
    noLeftovers(t);
    await passes(t);
  });
});
