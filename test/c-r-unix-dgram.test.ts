// Unix datagram and seqpacket queues as programs use them: a server's queue of requests from
// named clients (recvfrom gives each sender's name, and the server replies to it), empty
// messages among them, senders in the tree, alive outside it, or gone (a stale socket file, a
// freed abstract name, a removed directory); a seqpacket queue holding empty records whose peer
// has closed (records, then EOF); an empty datagram at the head that the program peeked at;
// sockets bound in a directory removed since (their names kept, no file made) and one whose
// removed path a client outside the tree has bound since (the client's file left alone).
// After the restore the server reads every message in order with its sender, replies, and the
// client outside the tree gets its replies; a --leave-running dump leaves the queues as they were,
// and a dump after it (and after a check) still finds the empty messages those walks hid.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  checkRestore, cleanupTrees, cryo, dump, dumpAndKill, restore, cryoReport, targetReport, startTarget, waitForLine, goAndWaitResult,
  readyPython, type Target,
} from './lib/index.js';

after(cleanupTrees);

const SERVER = [
  'import os, socket, time, errno',
  'U, D, SP = socket.AF_UNIX, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET',
  'd = os.getcwd(); me = str(os.getpid())',
  'srv = socket.socket(U, D); srv.bind(d + "/srv")',
  'def named(n):',
  '    s = socket.socket(U, D); s.bind(n); return s',
  'expected = []',
  'def send(s, data, name):',
  '    s.sendto(data, d + "/srv"); expected.append((data, name))',
  'p = named(d + "/in-path"); a = named(b"\\0cryo-t-in-abs-" + me.encode()); u = socket.socket(U, D)',
  'send(p, b"from a path", d + "/in-path"); send(a, b"", b"\\0cryo-t-in-abs-" + me.encode())',
  'send(u, b"unnamed", None); send(p, b"", d + "/in-path"); send(a, b"from an abstract name", b"\\0cryo-t-in-abs-" + me.encode())',
  'g = named(d + "/gone"); send(g, b"gone path", d + "/gone"); g.close()',
  'ga = named(b"\\0cryo-t-gone-" + me.encode()); send(ga, b"", b"\\0cryo-t-gone-" + me.encode()); ga.close()',
  'os.mkdir(d + "/sub"); gd = named(d + "/sub/x"); send(gd, b"gone dir", d + "/sub/x"); gd.close(); os.unlink(d + "/sub/x"); os.rmdir(d + "/sub")',
  'gone_errors = {d + "/gone": errno.ECONNREFUSED, b"\\0cryo-t-gone-" + me.encode(): errno.ECONNREFUSED, d + "/sub/x": errno.ENOENT}',
  'sa, sb = socket.socketpair(U, SP)',
  'for m in [b"a", b"", b"", b"b"]: sa.send(m)',
  'sa.close()',
  'pa, pb = socket.socketpair(U, D); pa.send(b""); pa.send(b"after"); assert pb.recv(10, socket.MSG_PEEK) == b""',
  'os.mkdir(d + "/run"); rd = named(d + "/run/d.sock"); rl = socket.socket(U, socket.SOCK_STREAM); rl.bind(d + "/run/l.sock"); rl.listen(4)',
  'import shutil; shutil.rmtree(d + "/run")',
  'taken = named(d + "/taken"); os.unlink(d + "/taken")',
  'print("LISTENING", flush=True)',
  'while not os.path.exists("client-sent"): time.sleep(0.01)',
  'for data in [b"outside path", b"", b"outside abstract"]:',
  '    expected.append((data, d + "/client" if data != b"outside abstract" else b"\\0cryo-t-client-" + me.encode()))',
  'print("READY", flush=True)',
  'while not os.path.exists("go"): time.sleep(0.01)',
  'bad = []',
  'srv.setblocking(False)',
  'for data, name in expected:',
  '    try: got, frm = srv.recvfrom(100)',
  '    except BlockingIOError: bad.append(f"{data!r} from {name!r} missing"); break',
  '    if (got, frm) != (data, name): bad.append(f"got {got!r} from {frm!r}, expected {data!r} from {name!r}")',
  '    elif name in gone_errors:',
  '        try: srv.sendto(b"reply", name); bad.append(f"a reply to gone {name!r} was sent")',
  '        except OSError as e:',
  '            if e.errno != gone_errors[name]: bad.append(f"a reply to gone {name!r}: {e}, expected {os.strerror(gone_errors[name])}")',
  '    elif name and "client" in str(name): srv.sendto(b"reply to " + got, name)',
  'try: extra = srv.recvfrom(100); bad.append(f"an extra datagram {extra!r}")',
  'except BlockingIOError: pass',
  'sb.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1); sb.setblocking(False)',
  'for m in [b"a", b"", b"", b"b"]:',
  '    got, anc, _, _ = sb.recvmsg(10, 64)',
  '    if got != m or not anc: bad.append(f"seqpacket: got {got!r} (ancillary {len(anc)}), expected record {m!r}")',
  'got, anc, _, _ = sb.recvmsg(10, 64)',
  'if got or anc: bad.append(f"seqpacket: got {got!r} (ancillary {len(anc)}), expected EOF")',
  'pb.setblocking(False)',
  'for m in [b"", b"after"]:',
  '    got = pb.recv(10)',
  '    if got != m: bad.append(f"peeked pair: got {got!r}, expected {m!r}")',
  'try: pb.recv(10); bad.append("peeked pair: an extra datagram")',
  'except BlockingIOError: pass',
  'for sk, name in [(rd, d + "/run/d.sock"), (rl, d + "/run/l.sock"), (taken, d + "/taken")]:',
  '    if sk.getsockname() != name: bad.append(f"bound to {sk.getsockname()!r}, expected {name!r} (its file removed)")',
  'if os.path.exists(d + "/run"): bad.append("the removed directory is back")',
  'srv.sendto(b"to the client at taken", d + "/taken")',
  'print("PASS" if not bad else "FAIL: " + "; ".join(bad), flush=True)',
];

/** A client outside the dumped tree, bound to a path and an abstract name, waiting for replies. */
function clientScript(server: Target): string[] {
  return [
    'import os, socket, sys',
    `d = ${JSON.stringify(server.dir)}; me = "${server.pid}"`,
    'U, D = socket.AF_UNIX, socket.SOCK_DGRAM',
    'p = socket.socket(U, D); p.bind(d + "/client"); ab = socket.socket(U, D); ab.bind(b"\\0cryo-t-client-" + me.encode())',
    'p.sendto(b"outside path", d + "/srv"); p.sendto(b"", d + "/srv"); ab.sendto(b"outside abstract", d + "/srv")',
    'tk = socket.socket(U, D); tk.bind(d + "/taken")',
    'open(d + "/client-sent", "w").close()',
    'print("READY", flush=True)',
    'p.settimeout(60); ab.settimeout(60)',
    'got = sorted([p.recvfrom(100), p.recvfrom(100), ab.recvfrom(100)])',
    'want = sorted([(b"reply to outside path", d + "/srv"), (b"reply to ", d + "/srv"), (b"reply to outside abstract", d + "/srv")])',
    'tk.settimeout(60); t = tk.recv(100)',
    'print("PASS" if got == want and t == b"to the client at taken" else f"FAIL: got {got}, at taken {t!r}", flush=True)',
  ];
}

async function serverAndClient(name: string): Promise<{ server: Target; client: Target }> {
  const server = await startTarget(['/usr/bin/python3', '-c', SERVER.join('\n')], { name });
  await waitForLine(server, 'LISTENING', 10_000);
  const { t: client } = await readyPython(`${name}-client`, clientScript(server));
  await waitForLine(server, 'READY', 10_000);
  return { server, client };
}

async function bothPass(server: Target, client: Target): Promise<void> {
  const res = await goAndWaitResult(server);
  assert.ok(res.pass, `${res.line}\n${targetReport(server)}`);
  const line = await waitForLine(client, ['PASS', 'FAIL'], 60_000);
  assert.equal(line, 'PASS', targetReport(client));
}

describe('unix datagram queues: senders, empty messages', () => {
  it('dumped (killed) and restored: every message in order from its sender, replies reach the client outside', { timeout: 120_000 }, async () => {
    const { server, client } = await serverAndClient('unix-dgram');
    const { dir, images } = await dumpAndKill(server, [server.pid]);
    assert.ok(images.has('sk-queues.img'), 'sk-queues.img decodes with crit');
    checkRestore(server, restore(server, dir, '1'));
    await bothPass(server, client);
  });

  it('--leave-running leaves the queues as they were: after it and a check, a dump and restore still has them all', { timeout: 120_000 }, async () => {
    // The first two walk the queues and leave the empty messages marked peeked, which hides them
    // from every later peek at an offset: the last dump gets them back from cryo's notes.
    const { server, client } = await serverAndClient('unix-dgram-lr');
    const d = dump(server, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, `${cryoReport(d.res)}\n${targetReport(server)}`);
    const c = cryo(['check', '-t', String(server.pid)]);
    assert.equal(c.code, 0, cryoReport(c));
    const { dir } = await dumpAndKill(server, [server.pid]);
    checkRestore(server, restore(server, dir, '2'));
    await bothPass(server, client);
  });

  it('--leave-running: the program goes on with its queues as they were', { timeout: 90_000 }, async () => {
    const { server, client } = await serverAndClient('unix-dgram-lr2');
    const d = dump(server, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, `${cryoReport(d.res)}\n${targetReport(server)}`);
    await bothPass(server, client);
  });
});
