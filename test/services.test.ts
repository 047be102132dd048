// Real services through checkpoint/restore (Redis, a Node.js HTTP server, python's http.server),
// the socket images compared with what CRIU writes, and `cryo check` / `cryo dump` refusing what
// cannot be checkpointed (an io_uring, an established TCP connection) without touching the target.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget, TARGETS_SRC, cleanupTrees, critDecodeAll, cryo, cryoReport, dump, goAndWaitResult, restore, startTarget,
  waitFor, waitForLine, allGone, checkRestore, killTarget, family, readyTarget, expectPass, readyPython, dumpAndKill, descendants, type Target,
} from './lib/index.js';

after(cleanupTrees);

/** `cryo check -t PID -v`: exit code and output (-v: every resource is listed, not only the blockers). */
function check(pid: number): { code: number; out: string } {
  const r = cryo(['check', '-t', String(pid), '-v']);
  return { code: r.code ?? -1, out: r.stdout + r.stderr };
}

/** Waits until `cryo check` has nothing against the target (a client's connection may linger). */
async function checkpointable(t: Target): Promise<string> {
  let last = '';
  const ok = await waitFor(() => {
    const c = check(t.pid);
    last = c.out;
    return c.code === 0;
  }, 10_000, 200);
  assert.ok(ok, `cryo check -t ${t.pid} keeps refusing:\n${last}`);
  return last;
}

/** One HTTP GET on a new connection that is closed afterwards. */
function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${path} on port ${port} timed out`)));
  });
}

function threadsOf(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map(Number);
}

type Entry = Record<string, unknown>;
function filesOfType(images: Map<string, unknown>, type: string): Entry[] {
  const files = images.get('files.img') as { entries: Entry[] };
  return files.entries.filter((e) => e.type === type);
}

describe('socket images', () => {
  it('unix and inet entries carry the fields CRIU writes; queued bytes are in sk-queues.img', async () => {
    const t = await startTarget([buildTarget('sockets')], { name: 'sockets-images' });
    await waitForLine(t, 'READY', 10_000);
    const d = dump(t, 'img', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    const images = await critDecodeAll(d.dir);
    const unix = filesOfType(images, 'UNIXSK').map((e) => e.usk as Entry);
    const inet = filesOfType(images, 'INETSK').map((e) => e.isk as Entry);
    assert.equal(unix.length, 22, 'unix sockets (one of them only in flight)');
    assert.equal(inet.length, 5, 'inet sockets');
    // CRIU's required fields, always written; optional ones where CRIU writes them too.
    const usk = ['id', 'ino', 'type', 'state', 'flags', 'uflags', 'backlog', 'peer', 'fown', 'opts', 'name'];
    const isk = ['id', 'ino', 'family', 'type', 'proto', 'state', 'src_port', 'dst_port', 'flags', 'backlog', 'src_addr', 'fown', 'opts'];
    const opts = ['so_sndbuf', 'so_rcvbuf', 'so_snd_tmo_sec', 'so_snd_tmo_usec', 'so_rcv_tmo_sec', 'so_rcv_tmo_usec', 'reuseaddr'];
    for (const e of unix) for (const k of usk) assert.ok(k in e, `unix entry ${e.ino} lacks ${k}: ${JSON.stringify(e)}`);
    for (const e of inet) for (const k of isk) assert.ok(k in e, `inet entry ${e.ino} lacks ${k}: ${JSON.stringify(e)}`);
    for (const e of [...unix, ...inet]) for (const k of opts) assert.ok(k in (e.opts as Entry), `opts of ${e.ino} lack ${k}`);
    // crit without --pretty: socket types, states and families as numbers, addresses as the
    // 32-bit words CRIU stores (127.0.0.1 is 0x0100007f).
    const LISTEN = 10;
    const LOOPBACK = 0x0100007f;
    const listener = unix.find((e) => e.state === LISTEN)!;
    assert.equal(listener.backlog, 7);
    assert.match(String(listener.name), /listen\.sock/);
    assert.equal(((listener.file_perms as Entry).mode as number) & 0o777, 0o640, 'file_perms of the bound path');
    assert.deepEqual(unix.filter((e) => e.shutdown).map((e) => e.shutdown).sort(), ['BOTH', 'READ', 'WRITE']);
    const tcp6 = inet.find((e) => e.family === 10)!;
    assert.equal(tcp6.v6only, false);
    assert.deepEqual(tcp6.src_addr, [0, 0, 0, 0]);
    assert.equal(tcp6.state, LISTEN);
    assert.equal(tcp6.backlog, 9);
    const udp = inet.find((e) => e.proto === 17 && e.state === 1)!;
    assert.deepEqual(udp.dst_addr, [LOOPBACK]);
    assert.deepEqual(udp.src_addr, [LOOPBACK]);
    // The stream pair's 60 KiB + "tail" and every datagram, each tied to its socket.
    const queues = (images.get('sk-queues.img') as { entries: Entry[] }).entries;
    const byId = new Map<number, number>();
    for (const q of queues) byId.set(q.id_for as number, (byId.get(q.id_for as number) ?? 0) + (q.length as number));
    assert.ok([...byId.values()].includes(60 * 1024 + 4), `queued bytes per socket: ${JSON.stringify([...byId])}`);
    assert.ok([...byId.values()].includes(1 + 1000 + 5000), 'the three datagrams');
    // Fds in flight: the file ids they got, as CRIU's scm entries.
    const scm = queues.filter((q) => q.scm).map((q) => (q.scm as { type: number; rights: number[] }[])[0]!);
    assert.deepEqual(scm.map((c) => [c.type, c.rights.length]).sort(), [[1, 1], [1, 3]]);
    const types = new Map(((images.get('files.img') as { entries: Entry[] }).entries).map((e) => [e.id as number, e.type]));
    assert.deepEqual(scm.find((c) => c.rights.length === 3)!.rights.map((id) => types.get(id)), ['REG', 'PIPE', 'UNIXSK']);
    const res = await goAndWaitResult(t);
    assert.ok(res.pass, `--leave-running original: ${res.line}`);
  });
});

describe('epoll', () => {
  it('an epoll watching another epoll reports the inner one ready after restore', async () => {
    const { t } = await readyPython('epoll-nested', [
      'import select, os, time',
      'r, w = os.pipe()',
      'inner = select.epoll(); inner.register(r, select.EPOLLIN)',
      'outer = select.epoll(); outer.register(inner.fileno(), select.EPOLLIN)',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'before = outer.poll(0); os.write(w, b"x"); after = outer.poll(1); inner_ev = inner.poll(0)',
      'ok = before == [] and after == [(inner.fileno(), select.EPOLLIN)] and inner_ev == [(r, select.EPOLLIN)]',
      'print("PASS" if ok else f"FAIL: {before} {after} {inner_ev}", flush=True)',
    ]);
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('one-shot watches that fired stay disarmed until re-armed: a drained pipe, a writable socket; one on a listener with nothing waiting is named', async () => {
    const { t } = await readyPython('epoll-oneshot', [
      'import select, os, socket, time',
      'ONE = select.EPOLLIN | select.EPOLLONESHOT',
      'r, w = os.pipe(); os.write(w, b"x")',
      'a, b = socket.socketpair()',
      'ep = select.epoll(); ep.register(r, ONE); ep.register(a.fileno(), ONE | select.EPOLLOUT)',
      'fired = sorted(fd for fd, _ in ep.poll(0)); os.read(r, 1)  # both fired; the pipe drained: ready for nothing',
      'assert fired == sorted([r, a.fileno()]), fired',
      'lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen()',
      'print(f"READY {ep.fileno()} {lst.getsockname()[1]}", flush=True)',
      'while not os.path.exists("listener"): time.sleep(0.01)',
      'ep2 = select.epoll(); ep2.register(lst.fileno(), ONE)',
      'c = socket.create_connection(lst.getsockname()); assert ep2.poll(1) == [(lst.fileno(), select.EPOLLIN)]',
      'conn, _ = lst.accept(); c.close(); conn.close()  # the listener watch fired, nothing waits in its queue',
      'print(f"LISTENER {ep2.fileno()}", flush=True)',
      'while not os.path.exists("unarmed"): time.sleep(0.01)',
      'ep2.close()',
      'print("UNARMED", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'def events(fd):',
      '    return {int(l.split()[1]): int(l.split()[3], 16) for l in open(f"/proc/self/fdinfo/{ep.fileno()}") if l.startswith("tfd:")}.get(fd)',
      'shown = (events(r), events(a.fileno()))',
      'os.write(w, b"y"); b.send(b"z")',
      'quiet = ep.poll(0.2)  # disarmed: neither the byte nor the message wakes it',
      'ep.modify(r, ONE); ep.modify(a.fileno(), ONE)',
      'rearmed = sorted(fd for fd, _ in ep.poll(1))',
      'ok = shown == (select.EPOLLONESHOT, select.EPOLLONESHOT) and quiet == [] and rearmed == sorted([r, a.fileno()]) and os.read(r, 2) == b"y"',
      'print("PASS" if ok else f"FAIL: {shown} {quiet} {rearmed}", flush=True)',
    ]);
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 0, cryoReport(c));
    fs.writeFileSync(path.join(t.dir, 'listener'), '');
    const ep2 = Number((await waitForLine(t, 'LISTENER ')).split(' ')[1]);
    const refused = cryo(['check', '-t', String(t.pid)]);
    assert.equal(refused.code, 3, cryoReport(refused));
    assert.match(refused.stdout, new RegExp(`^pid ${t.pid} fd ${ep2}: epoll instance has a one-shot registration of fd \\d+ \\(socket:\\[\\d+\\]\\) that fired and waits to be re-armed, on a file ready for nothing now`, 'm'), cryoReport(refused));
    fs.writeFileSync(path.join(t.dir, 'unarmed'), '');
    await waitForLine(t, 'UNARMED');
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });
});

describe('inotify', () => {
  it('events not read at the dump are named in its log (no peek: they are not saved); the watch goes on after restore', async () => {
    const { t } = await readyPython('inotify-queued', [
      'import ctypes, os, struct, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'fd = libc.inotify_init1(os.O_NONBLOCK); os.mkdir("w")',
      'wd = libc.inotify_add_watch(fd, b"w", 0x100)  # IN_CREATE',
      'open("w/before", "w").close()',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'open("w/after", "w").close()',
      'data = os.read(fd, 4096); names = []',
      'o = 0',
      'while o < len(data):',
      '    _, _, _, n = struct.unpack_from("iIII", data, o); names.append(data[o+16:o+16+n].rstrip(b"\\0")); o += 16 + n',
      'print("PASS" if names == [b"after"] else f"FAIL: {names}", flush=True)',
    ]);
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.match(d.res.stderr + fs.readFileSync(path.join(t.root, 'dump-1.log'), 'utf8'), /fd \d+: 32 bytes of inotify events not read yet are not saved/, cryoReport(d.res));
    await allGone([t.pid]);
    checkRestore(t, restore(t, d.dir, '1'));
    await expectPass(t);
  });
});

describe('unix peers outside the tree', () => {
  it('refused by default, reconnected by name with --ext-unix-sk', async () => {
    // The "server" is not part of the dumped tree: it accepts connections and logs what it gets.
    const server = [
      'import socket, os',
      'l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); l.bind(os.path.abspath("srv.sock")); l.listen()',
      'print("READY", flush=True)',
      'while True:',
      '    c, _ = l.accept(); data = c.recv(100)',
      '    print("GOT", data.decode(), flush=True)',
    ].join('\n');
    const srv = await startTarget(['/usr/bin/python3', '-c', server], { name: 'ext-server' });
    await waitForLine(srv, 'READY', 10_000);
    const path = `${srv.dir}/srv.sock`;
    const client = [
      'import socket, os, time',
      `s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(${JSON.stringify(path)})`,
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      's.send(b"after-restore"); print("PASS", flush=True)',
    ].join('\n');
    const t = await startTarget(['/usr/bin/python3', '-c', client], { name: 'ext-client' });
    await waitForLine(t, 'READY', 10_000);
    const c = check(t.pid);
    assert.equal(c.code, 3, c.out);
    assert.ok(c.out.includes(`its peer ${path} is outside the dumped tree (pass --ext-unix-sk`), c.out);
    const d = dump(t, '1', { extraArgs: ['--ext-unix-sk'] });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await critDecodeAll(d.dir);
    await allGone([t.pid]);
    checkRestore(t, restore(t, d.dir, '1'));
    await expectPass(t);
    assert.ok(await waitFor(() => srv.log().includes('GOT after-restore'), 5000), `the server got: ${srv.log()}`);
  });
});

describe('refused before anything is touched', () => {
  it('an io_uring instance: check and dump name it, the process runs on', async () => {
    const t = await readyTarget('iouring');
    const c = check(t.pid);
    assert.equal(c.code, 3, c.out);
    assert.match(c.out, new RegExp(`pid ${t.pid} fd \\d+: io_uring instance — not supported`));
    const d = dump(t, 'refused');
    assert.notEqual(d.res.code, 0);
    assert.match(d.res.stderr, /io_uring instance/);
    assert.equal(fs.readdirSync(d.dir).length, 0, 'no images left behind');
    await expectPass(t);
  });

  // (One closed but still held through a dup in the same task is restored: the fdstate target.)
  it('epoll targets held only by another task of the tree (a fork that closed or kept them) still fire', async () => {
    const { t, ready } = await readyPython('epoll-elsewhere', [
      'import select, os, time, sys',
      '# The parent watches r1, then leaves it to its child A only; child B inherits ep2 watching r2',
      '# and closes r2, which only the parent keeps (a forked worker of an asyncio program).',
      'r1, w1 = os.pipe(); ep1 = select.epoll(); ep1.register(r1, select.EPOLLIN)',
      'a = os.fork()',
      'if a == 0:',
      '    time.sleep(1e6)',
      'os.close(r1)',
      'r2, w2 = os.pipe(); ep2 = select.epoll(); ep2.register(r2, select.EPOLLIN | select.EPOLLET)',
      'b = os.fork()',
      'if b == 0:',
      '    os.close(r2)',
      '    while not os.path.exists("go"): time.sleep(0.01)',
      '    os.write(w2, b"x")',
      '    ev = ep2.poll(5)',
      '    os._exit(0 if ev == [(r2, select.EPOLLIN)] else 1)',
      'ep2.close()',
      'print("READY", r1, r2, a, b, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'quiet = ep1.poll(0)',
      'os.write(w1, b"y")',
      'ev = ep1.poll(5)',
      '_, st = os.waitpid(b, 0)',
      'ok = quiet == [] and ev == [(r1, select.EPOLLIN)] and st == 0',
      'print("PASS" if ok else f"FAIL: before {quiet} after {ev} child B status {st}", flush=True)',
    ]);
    const [, , , a, b] = ready.split(' ').map(Number);
    descendants(t.pid); // its children too, for the cleanup
    const c = check(t.pid);
    assert.equal(c.code, 0, c.out);
    const { dir } = await dumpAndKill(t, [t.pid, a!, b!]);
    // cryo's own fields (CRIU's crit does not know them): as cryo shows the image.
    const shown = cryo(['show', `${dir}/files.img`]);
    assert.equal(shown.code, 0, cryoReport(shown));
    const tfds = (JSON.parse(shown.stdout) as { entries: Entry[] }).entries
      .filter((e) => e.type === 'EVENTPOLL').flatMap((e) => (e.epfd as { tfd: Entry[] }).tfd);
    assert.ok(tfds.some((x) => x.cryo_holder_pid === a), `a target held by child A: ${JSON.stringify(tfds)}`);
    assert.ok(tfds.some((x) => x.cryo_holder_pid === t.pid), `a target held by the parent: ${JSON.stringify(tfds)}`);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });

  it('an epoll target no task of the tree has open any more: named', async () => {
    const { t, ready } = await readyPython('epoll-stale', [
      'import select, os, time, socket',
      '# A pipe end sent over a unix socket and closed: only the message in flight holds it.',
      'r, w = os.pipe()',
      'ep = select.epoll(); ep.register(r, select.EPOLLIN)',
      'x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)',
      'socket.send_fds(x, [b"m"], [r]); os.close(r)',
      'print("READY", r, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS", flush=True)',
    ]);
    const fd = ready.split(' ')[1];
    const c = check(t.pid);
    assert.equal(c.code, 3, c.out);
    assert.ok(c.out.includes(`epoll instance watches a file (registered as fd ${fd}) that no task of the tree has open any more`), c.out);
    await expectPass(t);
  });

  it('an established TCP connection without --tcp-established: named with its addresses and ports', async () => {
    const { t, ready } = await readyPython('tcp-established', [
      'import socket, os, time',
      'l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()',
      'c = socket.create_connection(l.getsockname()); s, _ = l.accept()',
      'print("READY", c.getsockname()[1], l.getsockname()[1], flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'c.send(b"x"); print("PASS" if s.recv(1) == b"x" else "FAIL: no byte", flush=True)',
    ]);
    const [, cport, lport] = ready.split(' ');
    const c = check(t.pid);
    assert.equal(c.code, 3, c.out);
    assert.ok(c.out.includes(`TCPv4 socket 127.0.0.1:${cport} -> 127.0.0.1:${lport} established`), c.out);
    assert.ok(c.out.includes(`TCPv4 socket 127.0.0.1:${lport} -> 127.0.0.1:${cport} established`), c.out);
    assert.ok(c.out.includes(`TCPv4 socket 127.0.0.1:${lport} listening — ok`), c.out);
    const d = dump(t, 'refused');
    assert.equal(d.res.code, 3, cryoReport(d.res));
    // Refused without the flag that covers it (c-r-tcp.test.ts checkpoints such connections).
    assert.match(d.res.stderr, /established: a TCP connection \(--tcp-established checkpoints it, --tcp-close restores it closed\)/);
    await expectPass(t);
  });
});

/** A free TCP port on loopback (the kernel picks it; the listener is closed again). */
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

describe('services', () => {
  it('redis-server with 100k keys: same DBSIZE, GET/SET work, new clients connect', async () => {
    const port = await freePort();
    const argv = ['/usr/bin/redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--enable-debug-command', 'yes'];
    const t = await startTarget(argv, { name: 'redis', retitles: true });
    assert.ok(await waitFor(() => /Ready to accept connections/.test(t.log()), 10_000), `redis did not start\n${t.log()}`);
    assert.equal(redisCli(port, 'DEBUG', 'POPULATE', '100000'), 'OK');
    assert.equal(redisCli(port, 'SET', 'greeting', 'hello'), 'OK');
    assert.equal(redisCli(port, 'DBSIZE'), '100001');
    const report = await checkpointable(t);
    assert.match(report, /TCPv4 socket 127\.0\.0\.1:\d+ listening — ok/);
    const tids = threadsOf(t.pid);
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(threadsOf(t.pid).sort(), tids.sort(), 'same threads');
    assert.equal(redisCli(port, 'DBSIZE'), '100001');
    assert.equal(redisCli(port, 'GET', 'greeting'), 'hello');
    assert.equal(redisCli(port, 'GET', 'key:99999'), 'value:99999');
    assert.equal(redisCli(port, 'SET', 'after', 'restore'), 'OK');
    assert.equal(redisCli(port, 'GET', 'after'), 'restore');
    assert.ok(killTarget(t));
  });

  it('a Node.js HTTP server answers with the state it held in memory', async () => {
    const script = [
      "const http = require('http'), fs = require('fs');",
      'let hits = 0; const table = Array.from({ length: 100000 }, (_, i) => i * 3);',
      'const s = http.createServer((req, res) => { hits++; res.setHeader("Connection", "close");',
      '  res.end(JSON.stringify({ hits, sum: table.reduce((a, b) => a + b, 0) })); });',
      "s.listen(0, '127.0.0.1', () => { fs.writeFileSync('port', String(s.address().port)); console.log('READY'); });",
    ].join('\n');
    const t = await startTarget([process.execPath, '-e', script], { name: 'node-http' });
    await waitForLine(t, 'READY', 10_000);
    const port = Number(fs.readFileSync(`${t.dir}/port`, 'utf8'));
    for (let i = 1; i <= 3; i++) assert.deepEqual(JSON.parse((await get(port)).body), { hits: i, sum: 3 * 99999 * 100000 / 2 });
    await checkpointable(t);
    const { dir, images } = await dumpAndKill(t, [t.pid]);
    assert.equal(filesOfType(images, 'INETSK').length, 1, 'one listening socket');
    checkRestore(t, restore(t, dir, '1'));
    for (let i = 4; i <= 6; i++) assert.deepEqual(JSON.parse((await get(port)).body), { hits: i, sum: 3 * 99999 * 100000 / 2 });
  });

  it('python3 -m http.server serves its directory after restore', async () => {
    const t = await startTarget(['/usr/bin/python3', '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1'], { name: 'http.server' });
    fs.writeFileSync(`${t.dir}/hello.txt`, 'served by a restored process\n');
    const line = await waitForLine(t, 'Serving HTTP', 10_000);
    const port = Number(/port (\d+)/.exec(line)![1]);
    assert.equal((await get(port, '/hello.txt')).body, 'served by a restored process\n');
    await checkpointable(t);
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    const r = await get(port, '/hello.txt');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'served by a restored process\n');
  });

  it('a python3 multiprocessing pool: workers alive and computing after restore', async () => {
    const { t } = await readyPython('mp-pool', [
      'import multiprocessing as mp, os, time',
      'def square(x): return x * x',
      "if __name__ == '__main__':",
      '    pool = mp.Pool(3)',
      '    assert sum(pool.map(square, range(100))) == 328350',
      '    print("READY", flush=True)',
      '    while not os.path.exists("go"): time.sleep(0.01)',
      '    r = sum(pool.map(square, range(1000)))',
      '    print("PASS" if r == 332833500 else f"FAIL: {r}", flush=True)',
      '    pool.close(); pool.join()',
    ]);
    const before = family(t.pid);
    assert.equal(before.length, 4, 'the parent and 3 workers');
    const { dir } = await dumpAndKill(t, before.map((r) => r.pid));
    assert.ok(fs.readdirSync(dir).some((f) => f.startsWith('ghost-file-')), "the pool's semaphores (deleted /dev/shm files) are saved");
    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(family(t.pid).map((r) => r.pid), before.map((r) => r.pid), 'same workers');
    await expectPass(t);
  });

  for (const method of ['forkserver', 'spawn'] as const) {
    it(`python3 multiprocessing under ${method}: its queue and lock (named semaphores the parent maps unlinked) stay shared`, async () => {
      const t = await startTarget(['/usr/bin/python3', path.join(TARGETS_SRC, 'mp-queue.py'), method], { name: `mp-${method}` });
      await waitForLine(t, 'READY', 20_000);
      const sems = fs.readFileSync(`/proc/${t.pid}/maps`, 'utf8').split('\n').filter((l) => /\/dev\/shm\/sem\..* \(deleted\)$/.test(l));
      assert.ok(sems.length >= 3, `the parent maps its semaphores by unlinked names:\n${sems.join('\n')}`);
      const before = descendants(t.pid);
      const { dir } = await dumpAndKill(t, before);
      checkRestore(t, restore(t, dir, '1'));
      await expectPass(t);
      assert.deepEqual(descendants(t.pid).sort(), [...before].sort(), 'the same processes after the restore and the work (none ended, the forkserver not started again)');
    });
  }
});
