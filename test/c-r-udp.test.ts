// Datagrams waiting in UDP sockets at the dump come back in the same queues, in order, each from
// the same sender (IPv4, IPv6, a dual-stack socket with an IPv4 sender, a connected socket, a
// datagram near the 64 KiB limit); a --leave-running dump leaves the queues as they were.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { checkRestore, cleanupTrees, dump, dumpAndKill, expectPass, readyPython, restore, cryoReport, targetReport } from './lib/index.js';

after(cleanupTrees);

const SCRIPT = [
  'import os, socket, time',
  'def bound(family, host):',
  '    s = socket.socket(family, socket.SOCK_DGRAM); s.bind((host, 0)); return s',
  'v4 = bound(socket.AF_INET, "127.0.0.1")',
  'v6 = bound(socket.AF_INET6, "::1")',
  'dual = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); dual.bind(("::", 0))',
  'conn = bound(socket.AF_INET, "127.0.0.1")',
  'a4, b4 = bound(socket.AF_INET, "127.0.0.1"), bound(socket.AF_INET, "127.0.0.2")',
  'a6 = bound(socket.AF_INET6, "::1")',
  'peer = bound(socket.AF_INET, "127.0.0.1"); conn.connect(peer.getsockname()); peer.connect(conn.getsockname())',
  'big = bytes(i % 251 for i in range(60000))',
  'sent = {',
  '  "v4": [(a4, b"first"), (b4, b"second from another address"), (a4, big), (a4, b"last")],',
  '  "v6": [(a6, b"six"), (a6, b"sixty")],',
  '  "dual": [(a4, b"mapped")],',
  '  "conn": [(peer, b"from the peer"), (peer, b"again")],',
  '}',
  'socks = {"v4": v4, "v6": v6, "dual": dual, "conn": conn}',
  'for name, msgs in sent.items():',
  '    port = socks[name].getsockname()[1]',
  '    for src, data in msgs:',
  '        if name == "conn": src.send(data)',
  '        else: src.sendto(data, ("127.0.0.1" if src.family == socket.AF_INET else "::1", port))',
  'print("READY", flush=True)',
  'while not os.path.exists("go"): time.sleep(0.01)',
  'bad = []',
  'def norm(a): return (a[0].removeprefix("::ffff:"), a[1])',
  'for name, msgs in sent.items():',
  '    s = socks[name]; s.setblocking(False)',
  '    for src, data in msgs:',
  '        try: got, frm = s.recvfrom(65536)',
  '        except BlockingIOError: bad.append(f"{name}: {len(data)} bytes missing"); break',
  '        if got != data: bad.append(f"{name}: got {got[:20]!r}, expected {data[:20]!r}")',
  '        if norm(frm) != norm(src.getsockname()): bad.append(f"{name}: from {frm}, expected {src.getsockname()}")',
  '    try: extra = s.recv(65536); bad.append(f"{name}: an extra datagram {extra[:20]!r}")',
  '    except BlockingIOError: pass',
  'print("PASS" if not bad else "FAIL: " + "; ".join(bad), flush=True)',
];

describe('UDP receive queues', () => {
  it('dumped (killed) and restored: every datagram back, in order, from its sender', { timeout: 90_000 }, async () => {
    const { t } = await readyPython('udp-queues', SCRIPT);
    const { dir, images } = await dumpAndKill(t, [t.pid]);
    assert.ok(images.has('files.img'), 'files.img decodes with crit');
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('--leave-running: the queues are left as they were', { timeout: 60_000 }, async () => {
    const { t } = await readyPython('udp-queues-lr', SCRIPT);
    const d = dump(t, 'lr', { leaveRunning: true });
    assert.equal(d.res.code, 0, `${cryoReport(d.res)}\n${targetReport(t)}`);
    await expectPass(t);
  });
});
