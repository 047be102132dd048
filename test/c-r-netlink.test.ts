// Netlink sockets (dbus-daemon holds an audit one, many daemons a route one for address and link
// changes) come back bound to the same port id, in the same multicast groups (past the first 32
// too) with the same options, and keep working: a dump request is answered, a notification of
// the group arrives. One with a message waiting (from the kernel: it cannot be queued again) is
// refused by check and dump, named, and the target runs on untouched.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { checkRestore, cleanupTrees, cryo, cryoReport, dumpAndKill, expectPass, readyPython, restore, statusField } from './lib/index.js';

after(cleanupTrees);

const PRELUDE = [
  'import os, socket, struct, subprocess, time',
  'SOL_NETLINK, EXT_ACK, ADD, LIST = 270, 11, 1, 9',
  'RTMGRP_IPV4_IFADDR = 0x10',
  'route = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)',
  'route.bind((0, RTMGRP_IPV4_IFADDR))',
  'route.setsockopt(SOL_NETLINK, ADD, 33)  # a group past the first 32 (RTNLGRP_BRVLAN)',
  'route.setsockopt(SOL_NETLINK, EXT_ACK, 1)',
  'genl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 16)  # generic netlink, unbound',
  'def groups(s): return s.getsockopt(SOL_NETLINK, LIST, 16)',
  'before = (route.getsockname(), groups(route), genl.getsockname())',
];

describe('netlink sockets', () => {
  it('dumped (killed) and restored: same port id, groups and options; requests answered, notifications arrive', { timeout: 90_000 }, async () => {
    const { t } = await readyPython('netlink', [
      ...PRELUDE,
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'bad = []',
      'after = (route.getsockname(), groups(route), genl.getsockname())',
      'if after != before: bad.append(f"names/groups {after} != {before}")',
      'if route.getsockopt(SOL_NETLINK, EXT_ACK) != 1: bad.append("NETLINK_EXT_ACK lost")',
      // RTM_GETLINK dump request: the answer names lo.
      'route.send(struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + struct.pack("=BxHiII", 0, 0, 0, 0, 0))',
      'route.settimeout(3)',
      'got = b""',
      'while True:',
      '    m = route.recv(65536); got += m',
      '    if struct.unpack_from("=IH", m)[1] in (2, 3): break  # NLMSG_ERROR / NLMSG_DONE',
      'if b"lo\\0" not in got: bad.append("RTM_GETLINK not answered with lo")',
      'subprocess.run(["ip", "addr", "add", "127.0.0.77/32", "dev", "lo"], check=True)',
      'try:',
      '    seen = False',
      '    end = time.time() + 3',
      '    while not seen and time.time() < end:',
      '        m = route.recv(65536)',
      '        seen = struct.unpack_from("=IH", m)[1] == 20 and socket.inet_aton("127.0.0.77") in m  # RTM_NEWADDR',
      '    if not seen: bad.append("no RTM_NEWADDR notification")',
      'finally:',
      '    subprocess.run(["ip", "addr", "del", "127.0.0.77/32", "dev", "lo"])',
      'print("PASS" if not bad else "FAIL: " + "; ".join(bad), flush=True)',
    ]);
    const { dir, images } = await dumpAndKill(t, [t.pid]);
    assert.ok(images.has('files.img'), 'files.img decodes with crit');
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('a message waiting in one is refused by check and dump, named; the target runs on', { timeout: 60_000 }, async () => {
    const { t, ready } = await readyPython('netlink-queued', [
      ...PRELUDE,
      'route.send(struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + struct.pack("=BxHiII", 0, 0, 0, 0, 0))',
      'time.sleep(0.1)',
      'print(f"READY {route.fileno()}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'route.settimeout(3)',
      'm = route.recv(65536)',
      'print("PASS" if struct.unpack_from("=IH", m)[1] == 16 else "FAIL: not the RTM_NEWLINK answer", flush=True)',
    ]);
    const fd = Number(ready.split(' ')[1]);
    const reason = `pid ${t.pid} fd ${fd}: netlink socket \\(route, port \\d+\\) has a message waiting to be read`;
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(reason), cryoReport(c));
    const d = cryo(['dump', '-t', String(t.pid), '-D', `${t.root}/img`]);
    assert.equal(d.code, 3, cryoReport(d));
    assert.match(d.stderr, new RegExp(reason), cryoReport(d));
    assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
    await expectPass(t);
  });
});
