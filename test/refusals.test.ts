// Objects whose fd looks like a plain file but cannot be opened again by its path are refused by
// check and by dump before anything is touched, named (a restore that found out later would
// have lost a killed tree): a POSIX message queue with a notification registered or unlinked
// (its /proc link is the queue's name, then a deleted one) and a file whose path was overmounted after it was opened; memfd_secret memory; an inotify watch on a
// deleted file that only a process outside the tree holds; a thread with an fd table or fs context
// of its own; a /proc file of a process outside the tree; huge pages of the hugetlb pool; a socket
// filter in eBPF; a process whose main thread exited while its other threads run on.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanupTrees, cryo, cryoReport, expectPass, readyPython, readyTarget, statusField, targetReport, waitForLine, type Target } from './lib/index.js';

/** The message queues the tests made, removed at the end even when a test failed before its target did. */
const queues: string[] = [];

after(async () => {
  await cleanupTrees();
  for (const q of queues) execFileSync('/usr/bin/python3', ['-c', `import ctypes; ctypes.CDLL(None).mq_unlink(${JSON.stringify(q)}.encode())`]);
});

/** check -t exits 3 naming `reason` for `fd`; dump exits 3 with the same; the target runs on untouched. */
function refusedBoth(t: Target, fd: number, reason: RegExp): void {
  const c = cryo(['check', '-t', String(t.pid)]);
  assert.equal(c.code, 3, cryoReport(c));
  assert.match(c.stdout, new RegExp(`^pid ${t.pid} fd ${fd}: ${reason.source}`, 'm'), cryoReport(c));
  const dir = path.join(t.root, 'img');
  const d = cryo(['dump', '-t', String(t.pid), '-D', dir]);
  assert.equal(d.code, 3, cryoReport(d));
  assert.match(d.stderr, new RegExp(`pid ${t.pid} fd ${fd}: ${reason.source}`), cryoReport(d));
  assert.equal(fs.existsSync(path.join(dir, 'inventory.img')), false, 'no image left that looks complete');
  assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
  assert.match(statusField(t.pid, 'State') ?? '', /^[SR]/, `still running\n${targetReport(t)}`);
}

describe('an fd that cannot be opened again by its path is refused before anything is touched', () => {
  it('a /proc file of a process outside the tree (after a restore its PID would name another process or none)', async () => {
    const { t } = await readyPython('procfs-outside', [
      'import os, time',
      'f = os.open("/proc/1/status", os.O_RDONLY)',
      'print("READY fd=%d" % f, flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS", flush=True)',
    ]);
    const fd = Number(/fd=(\d+)/.exec(t.log())![1]);
    refusedBoth(t, fd, /\/proc\/1\/status: a \/proc file of pid 1, outside the dumped tree/);
    await expectPass(t);
  });

  for (const how of ['notify', 'unlinked'] as const) {
    it(`a POSIX message queue (mq_open) ${how === 'notify' ? 'with a notification registered' : 'unlinked'}: named as one`, { timeout: 60_000 }, async () => {
      const name = `/cryo-test-${process.pid}-${how}`;
      queues.push(name);
      const { t, ready } = await readyPython('mqueue', [
        'import ctypes, os, time',
        'libc = ctypes.CDLL(None, use_errno=True)',
        `name = ${JSON.stringify(name)}.encode()`,
        'fd = libc.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, None)',
        'assert fd >= 0, ctypes.get_errno()',
        'assert libc.mq_send(fd, b"kept", 4, 0) == 0',
        ...(how === 'unlinked'
          ? // Unlinked, the open queue lives on nameless (its /proc link reads as a deleted file).
            ['libc.mq_unlink(name)']
          : // struct sigevent with sigev_notify SIGEV_NONE (1): registered once the queue is not
            // empty (a message arriving in an empty queue fires it, and that unregisters it).
            ['sev = (ctypes.c_int * 16)()', 'sev[3] = 1', 'assert libc.mq_notify(fd, sev) == 0, ctypes.get_errno()']),
        'print(f"READY {fd}", flush=True)',
        'while not os.path.exists("go"): time.sleep(0.01)',
        'libc.mq_unlink(name)',
        'buf = ctypes.create_string_buffer(8192)',
        'n = libc.mq_receive(fd, buf, 8192, None)',
        'print("PASS" if buf.raw[:n] == b"kept" else f"FAIL: queue has {buf.raw[:n]!r}", flush=True)',
      ]);
      const fd = Number(ready.split(' ')[1]);
      refusedBoth(t, fd, how === 'notify'
        ? new RegExp(`POSIX message queue ${name} \\(mq_open\\) has a notification registered \\(mq_notify, for pid ${t.pid}\\)`)
        : new RegExp(`POSIX message queue ${name} \\(mq_open\\) was unlinked: it cannot be opened by name again`));
      await expectPass(t);
    });
  }

  it('a file whose directory was overmounted after it was opened: its path leads elsewhere', { timeout: 60_000 }, async () => {
    const { t, ready } = await readyPython('overmount', [
      'import os, time',
      'os.mkdir("d")',
      'with open("d/data", "w") as f: f.write("under the mount")',
      'fd = os.open("d/data", os.O_RDONLY)',
      'print(f"READY {fd}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'got = os.pread(fd, 100, 0)',
      'print("PASS" if got == b"under the mount" else f"FAIL: read {got!r}", flush=True)',
    ]);
    const fd = Number(ready.split(' ')[1]);
    const dir = path.join(t.dir, 'd');
    execFileSync('mount', ['-t', 'tmpfs', 'cryo-test', dir]);
    try {
      refusedBoth(t, fd, /.*\/d\/data: its path leads nowhere \(overmounted since it was opened/);
    } finally {
      execFileSync('umount', [dir]);
    }
    await expectPass(t);
  });

  it('an inotify watch on a deleted file that only a process outside the tree holds open: named', { timeout: 60_000 }, async () => {
    const { t, ready } = await readyPython('inotify-gone', [
      'import ctypes, os, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'fd = libc.inotify_init1(os.O_NONBLOCK)',
      'open("gone.txt", "w").close()',
      'wd = libc.inotify_add_watch(fd, b"gone.txt", 0x2)',  // IN_MODIFY
      'assert wd == 1, ctypes.get_errno()',
      'print(f"READY {fd}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS", flush=True)',
    ]);
    const fd = Number(ready.split(' ')[1]);
    // The kernel drops a watch when its file's last link and last opener go: ours keeps it.
    const file = path.join(t.dir, 'gone.txt');
    const held = fs.openSync(file, 'r');
    try {
      fs.unlinkSync(file);
      refusedBoth(t, fd, /inotify watch 1 on .*\/gone\.txt, deleted and open nowhere in the tree — not supported/);
    } finally {
      fs.closeSync(held);
    }
    await expectPass(t);
  });

  it('memfd_secret memory (its pages cannot be read from outside, by design): named', { timeout: 60_000 }, async () => {
    const { t, ready } = await readyPython('secretmem', [
      'import ctypes, os, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'fd = libc.syscall(447, 0)  # memfd_secret',
      'assert fd >= 0, ctypes.get_errno()',
      'os.ftruncate(fd, 4096)',
      'print(f"READY {fd}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS" if os.fstat(fd).st_size == 4096 else "FAIL: size changed", flush=True)',
    ]);
    const fd = Number(ready.split(' ')[1]);
    refusedBoth(t, fd, /memfd_secret memory — its pages cannot be read from outside the process, by design; not supported/);
    await expectPass(t);
  });

  it('a socket with an eBPF filter (SO_ATTACH_BPF: the kernel keeps no copy of its program to read back): named', { timeout: 60_000 }, async () => {
    const { t, ready } = await readyPython('ebpf-filter', [
      'import ctypes, os, socket, struct, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      '# r0 = 0; exit: a socket filter that drops everything',
      'insns = ctypes.create_string_buffer(struct.pack("<BBhiBBhi", 0xb7, 0, 0, 0, 0x95, 0, 0, 0))',
      'lic = ctypes.create_string_buffer(b"GPL")',
      'attr = ctypes.create_string_buffer(struct.pack("<IIQQ", 1, 2, ctypes.addressof(insns), ctypes.addressof(lic)) + bytes(96))',
      'prog = libc.syscall(321, 5, attr, ctypes.sizeof(attr))  # bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_SOCKET_FILTER',
      'assert prog >= 0, os.strerror(ctypes.get_errno())',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))',
      's.setsockopt(socket.SOL_SOCKET, 50, prog)  # SO_ATTACH_BPF',
      'os.close(prog)',
      'print(f"READY {s.fileno()}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", s.getsockname()); s.setblocking(False)',
      'try: s.recv(10); print("FAIL: the filter let a datagram through", flush=True)',
      'except BlockingIOError: print("PASS", flush=True)',
    ]);
    const fd = Number(ready.split(' ')[1]);
    refusedBoth(t, fd, /an eBPF socket filter \(SO_ATTACH_BPF\) — not supported: the kernel keeps no copy of its program to read back/);
    await expectPass(t);
  });
});

describe('huge pages of the hugetlb pool are refused, named (made again of small pages they would not be what the program asked for)', () => {
  const NR = '/proc/sys/vm/nr_hugepages';
  let saved: string | null = null;
  after(() => {
    if (saved !== null) fs.writeFileSync(NR, saved);
  });

  it('MAP_HUGETLB memory, private and shared, and an MFD_HUGETLB memfd: check -t and dump refuse each mapping, the process runs on', { timeout: 60_000 }, async () => {
    saved = fs.readFileSync(NR, 'utf8').trim();
    fs.writeFileSync(NR, String(Number(saved) + 3));
    const { t } = await readyPython('hugetlb', [
      'import mmap, os, time',
      'HUGE = 0x40000  # MAP_HUGETLB',
      'priv = mmap.mmap(-1, 2 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | HUGE); priv[0:5] = b"hello"',
      'shared = mmap.mmap(-1, 2 << 20, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS | HUGE); shared[0:5] = b"world"',
      'fd = os.memfd_create("huge", os.MFD_HUGETLB); os.ftruncate(fd, 2 << 20)',
      'mf = mmap.mmap(fd, 2 << 20); mf[0:4] = b"memf"',
      'print("READY", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'print("PASS" if (priv[0:5], shared[0:5], mf[0:4]) == (b"hello", b"world", b"memf") else "FAIL: contents changed", flush=True)',
    ]);
    const c = cryo(['check', '-t', String(t.pid), '--ghost-limit', '64M']);
    assert.equal(c.code, 3, cryoReport(c));
    const named = c.stdout.match(/mapping 0x[0-9a-f]+-0x[0-9a-f]+: huge pages of the hugetlb pool/g) ?? [];
    assert.equal(named.length, 3, cryoReport(c));
    const dir = path.join(t.root, 'img');
    const d = cryo(['dump', '-t', String(t.pid), '-D', dir, '--ghost-limit', '64M']);
    assert.equal(d.code, 3, cryoReport(d));
    assert.equal(fs.existsSync(path.join(dir, 'inventory.img')), false, 'no image left that looks complete');
    assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
    await expectPass(t);
  });
});

describe('a thread that left its process\'s fd table or fs context is refused, named (it would come back with the leader\'s)', () => {
  for (const [flag, what, reason] of [
    [0x400, 'CLONE_FILES', /has an fd table of its own \(unshare\(CLONE_FILES\) in the thread\) — not supported yet/],
    [0x200, 'CLONE_FS', /has a cwd, root and umask of its own \(unshare\(CLONE_FS\) in the thread\) — not supported yet/],
  ] as const) {
    it(`unshare(${what}) in a thread: check -t and dump refuse it by its TID, the process runs on`, { timeout: 60_000 }, async () => {
      const { t, ready } = await readyPython(`thread-${what}`, [
        'import ctypes, os, threading, time',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'started = threading.Event()',
        'tid = []',
        'def run():',
        `    assert libc.unshare(${flag}) == 0, ctypes.get_errno()`,
        '    tid.append(threading.get_native_id()); started.set()',
        '    while not os.path.exists("go"): time.sleep(0.01)',
        'th = threading.Thread(target=run); th.start(); started.wait()',
        'print(f"READY {tid[0]}", flush=True)',
        'th.join()',
        'print("PASS", flush=True)',
      ]);
      const tid = Number(ready.split(' ')[1]);
      const c = cryo(['check', '-t', String(t.pid)]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, new RegExp(`^pid ${t.pid}: thread ${tid} ${reason.source}`, 'm'), cryoReport(c));
      const dir = path.join(t.root, 'img');
      const d = cryo(['dump', '-t', String(t.pid), '-D', dir]);
      assert.equal(d.code, 3, cryoReport(d));
      assert.match(d.stderr, new RegExp(`pid ${t.pid}: thread ${tid} ${reason.source}`), cryoReport(d));
      assert.equal(fs.existsSync(path.join(dir, 'inventory.img')), false, 'no image left that looks complete');
      assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
      await expectPass(t);
    });
  }
});

describe('an IP socket cryo cannot make again is named by its kind and protocol', () => {
  for (const [family, v, proto, name] of [['AF_INET', '4', 'IPPROTO_ICMP', 'ICMP'], ['AF_INET6', '6', 'IPPROTO_ICMPV6', 'ICMPv6']] as const) {
    it(`a raw IPv${v} socket for ${name}: "raw IPv${v} socket (protocol ${name})", with the address it is bound to`, { timeout: 60_000 }, async () => {
      const { t, ready } = await readyPython(`raw-${name}`, [
        'import os, socket, time',
        `s = socket.socket(socket.${family}, socket.SOCK_RAW, socket.${proto})`,
        `s.bind(('${v === '4' ? '127.0.0.1' : '::1'}', 0))`,
        'print(f"READY {s.fileno()}", flush=True)',
        'while not os.path.exists("go"): time.sleep(0.01)',
        'print("PASS" if s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_RAW else "FAIL", flush=True)',
      ]);
      const fd = Number(ready.split(' ')[1]);
      const where = v === '4' ? '127\\.0\\.0\\.1' : '\\[::1\\]';
      refusedBoth(t, fd, new RegExp(`raw IPv${v} socket \\(protocol ${name}\\), bound to ${where} — not supported`));
      await expectPass(t);
    });
  }
});

describe('a task traced by another (a debugger, strace) is refused, naming the tracer', () => {
  it('a child PTRACE_SEIZEd by its parent: check -t and dump name the tracer by pid and name, both run on traced as before', { timeout: 60_000 }, async () => {
    const { t, ready } = await readyPython('traced', [
      'import ctypes, os, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'kid = os.fork()',
      'if kid == 0:',
      '    while True: time.sleep(1)',
      'assert libc.ptrace(0x4206, kid, None, None) == 0, ctypes.get_errno()  # PTRACE_SEIZE',
      'print(f"READY {kid}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'tracer = [l.split()[1] for l in open(f"/proc/{kid}/status") if l.startswith("TracerPid:")][0]',
      'state = open(f"/proc/{kid}/stat").read().rsplit(")", 1)[1].split()[0]',
      'print("PASS" if tracer == str(os.getpid()) and state == "S" else f"FAIL: tracer {tracer} state {state}", flush=True)',
    ]);
    const kid = Number(ready.split(' ')[1]);
    const reason = `pid ${kid}: already traced by pid ${t.pid} \\(python3[^)]*\\) \\(a debugger or strace: a task has one tracer\\) — not supported`;
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`^${reason}`, 'm'), cryoReport(c));
    assert.match(c.stdout, /detach the tracer first/, cryoReport(c));
    const dir = path.join(t.root, 'img');
    const d = cryo(['dump', '-t', String(t.pid), '-D', dir]);
    assert.equal(d.code, 3, cryoReport(d));
    assert.match(d.stderr, new RegExp(reason), cryoReport(d));
    assert.equal(fs.existsSync(path.join(dir, 'inventory.img')), false, 'no image left that looks complete');
    assert.equal(statusField(t.pid, 'TracerPid'), '0', 'the tracer itself not traced');
    try {
      await expectPass(t);
    } finally {
      process.kill(kid, 'SIGKILL'); // the traced child sleeps on after its parent's PASS
    }
  });
});

describe('a file unlinked from the name it was opened by but linked in another directory is refused, named', () => {
  it('an fd and a shared mapping of it: a copy would no longer be the file its other name opens', { timeout: 60_000 }, async () => {
    const { t } = await readyPython('linked-elsewhere', [
      'import mmap, os, time',
      'os.mkdir("a"); os.mkdir("b")',
      'with open("a/f", "wb") as f: f.write(b"x" * 4096)',
      'fd = os.open("a/f", os.O_RDWR)',
      'm = mmap.mmap(fd, 4096)',
      'os.link("a/f", "b/g"); os.unlink("a/f")',
      'print(f"READY {fd}", flush=True)',
      'while not os.path.exists("go"): time.sleep(0.01)',
      'm[0:1] = b"y"',
      'print("PASS" if open("b/g", "rb").read(1) == b"y" else "FAIL", flush=True)',
    ]);
    const why = `${t.dir}/a/f was unlinked but the file is still linked elsewhere \\(1 link, none in its directory\\) — not supported`;
    const c = cryo(['check', '-t', String(t.pid)]);
    assert.equal(c.code, 3, cryoReport(c));
    assert.match(c.stdout, new RegExp(`fd \\d+: ${why}`), cryoReport(c));
    assert.match(c.stdout, new RegExp(`mapping .*: ${why}`), cryoReport(c));
    const d = cryo(['dump', '-t', String(t.pid), '-D', path.join(t.root, 'img')]);
    assert.equal(d.code, 3, cryoReport(d));
    assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
    await expectPass(t);
  });
});

describe('a process whose main thread exited (pthread_exit) while its other threads run on is refused, named (its leader shows as a zombie)', () => {
  it('as the root of the tree and as a child: check and dump name it, it runs on', { timeout: 60_000 }, async () => {
    const t = await readyTarget('leaderexit', ['child']);
    const pid = Number((await waitForLine(t, 'READY ')).split(' ')[1]);
    assert.equal(statusField(pid, 'State')?.[0], 'Z', 'the leader shows as a zombie');
    const reason = new RegExp(`pid ${pid}: its main thread has exited \\(pthread_exit\\) and 1 other thread\\(s\\) run on — not supported yet`);
    for (const root of [pid, t.pid]) {
      const c = cryo(['check', '-t', String(root)]);
      assert.equal(c.code, 3, cryoReport(c));
      assert.match(c.stdout, new RegExp(`^${reason.source}`, 'm'), cryoReport(c));
      const dir = path.join(t.root, `img-${root}`);
      const d = cryo(['dump', '-t', String(root), '-D', dir]);
      assert.equal(d.code, 3, cryoReport(d));
      assert.match(d.stderr, reason, cryoReport(d));
      assert.equal(fs.existsSync(path.join(dir, 'inventory.img')), false, 'no image left that looks complete');
    }
    await expectPass(t);
  });
});
