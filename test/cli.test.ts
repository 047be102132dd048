// The CLI as scripts and new users meet it: --json results (parsed, fields asserted) of check,
// dump and restore on real processes, the exit code of each class (128+signal: safety.test.ts),
// the library entry, and first-contact messages. The progress line: progress.test.ts.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type * as Cryo from '../src/index.js';
import {
  cleanup, cryo, cryoReport, readyTarget, readyPython, expectPass, killTarget, waitPidGone, statusField, CRYO_BIN,
  missingLine, type CryoResult, type Target,
} from './lib/index.js';

after(cleanup);

/** stdout is exactly one line holding one JSON object: the result. */
function json(r: CryoResult): Record<string, any> {
  const lines = r.stdout.split('\n').filter((l) => l.length);
  assert.equal(lines.length, 1, `--json prints one line on stdout\n${cryoReport(r)}`);
  const v = JSON.parse(lines[0]!);
  assert.equal(typeof v, 'object', cryoReport(r));
  return v;
}

/** A python target holding a packet socket: a blocker cryo names. */
async function packetTarget(): Promise<{ t: Target; fd: number }> {
  const { t, ready } = await readyPython('packet', [
    'import socket, os, time',
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)',
    'print("READY", s.fileno(), flush=True)',
    'while not os.path.exists("go"): time.sleep(0.01)',
    'print("PASS", flush=True)',
  ]);
  return { t, fd: Number(ready.split(' ')[1]) };
}

function untouched(t: Target): void {
  assert.equal(statusField(t.pid, 'TracerPid'), '0', 'not traced');
  assert.match(statusField(t.pid, 'State') ?? '', /^[SR]/, 'still running');
}

describe('--json and the text layout of check', () => {
  it('check -t --json: the tree, each resource with a verdict, counts; text: the verdict, every resource only with -v', async () => {
    const t = await readyTarget('counter');
    const r = cryo(['check', '-t', String(t.pid), '--json']);
    assert.equal(r.code, 0, cryoReport(r));
    const c = json(r);
    assert.equal(c.command, 'check');
    assert.equal(c.verdict, 'ok');
    assert.equal(c.pid, t.pid);
    assert.deepEqual(c.blockers, []);
    assert.equal(c.tasks.length, 1);
    const task = c.tasks[0];
    assert.equal(task.pid, t.pid);
    assert.equal(task.state, 'running');
    assert.equal(task.threads, 1);
    assert.deepEqual(task.fds.map((f: { fd: number }) => f.fd).slice(0, 3), [0, 1, 2]);
    assert.ok(task.fds.every((f: { verdict: string }) => f.verdict === 'ok'), JSON.stringify(task.fds));
    const exe = fs.realpathSync(t.argv[0]!);
    assert.ok(task.maps.some((m: { what: string; detail: string }) => m.what === exe && m.detail === 'file-private'), JSON.stringify(task.maps));
    assert.ok(task.namespaces.length > 0 && task.namespaces.every((n: { verdict: string }) => n.verdict === 'ok'));
    assert.deepEqual(c.counts, { tasks: 1, threads: 1, fds: task.fds.length, maps: task.maps.length });

    const text = cryo(['check', '-t', String(t.pid)]);
    assert.equal(text.code, 0, cryoReport(text));
    assert.deepEqual(text.stdout.trim().split('\n'), [`pid ${t.pid} can be checkpointed (1 task, 1 thread, ${task.fds.length} fds, ${task.maps.length} mappings)`]);
    const verbose = cryo(['check', '-t', String(t.pid), '-v']);
    const lines = verbose.stdout.trim().split('\n');
    assert.equal(lines[0], text.stdout.trim(), 'the verdict first, then every resource');
    assert.ok(lines.some((l) => new RegExp(`^  map  0x[0-9a-f]+-0x[0-9a-f]+ ${exe} — ok \\(file-private\\)$`).test(l)), verbose.stdout);
    assert.ok(lines.some((l) => /^  fd 0 +\/dev\/null — ok$/.test(l)), verbose.stdout);
    await expectPass(t);
  });

  it('check -t of a tree with a blocker: exit 3, the blocker first, then the verdict; --json names it as data', async () => {
    const { t, fd } = await packetTarget();
    const text = cryo(['check', '-t', String(t.pid)]);
    assert.equal(text.code, 3, cryoReport(text));
    const lines = text.stdout.trim().split('\n');
    assert.deepEqual(lines, [`pid ${t.pid} fd ${fd}: packet socket — not supported yet`, `cannot checkpoint pid ${t.pid}: 1 blocker (every resource with -v)`]);
    const r = cryo(['check', '-t', String(t.pid), '--json']);
    assert.equal(r.code, 3, cryoReport(r));
    const c = json(r);
    assert.equal(c.verdict, 'refused');
    assert.equal(c.blockers.length, 1);
    assert.equal(c.blockers[0].pid, t.pid);
    assert.equal(c.blockers[0].fd, fd);
    assert.match(c.blockers[0].reason, /packet socket/);
    const f = c.tasks[0].fds.find((x: { fd: number }) => x.fd === fd);
    assert.equal(f.verdict, 'blocked');
    untouched(t);
    await expectPass(t);
  });

  it('dump --json and restore --json: verdict done, counts, timings, the image dir; the process goes on', async () => {
    const t = await readyTarget('counter');
    const dir = path.join(t.root, 'img-json');
    const d = cryo(['dump', '-t', String(t.pid), '-D', dir, '--json']);
    assert.equal(d.code, 0, cryoReport(d));
    const dj = json(d);
    assert.equal(dj.command, 'dump');
    assert.equal(dj.verdict, 'done');
    assert.equal(dj.pid, t.pid);
    assert.equal(dj.dir, dir);
    assert.deepEqual(dj.blockers, []);
    assert.equal(dj.counts.tasks, 1);
    assert.equal(dj.counts.threads, 1);
    assert.equal(dj.counts.fds, 3, 'stdin, stdout, stderr');
    assert.ok(dj.counts.pages > 0, JSON.stringify(dj.counts));
    assert.equal(dj.counts.bytes, dj.counts.pages * 4096);
    const pageBytes = fs.readdirSync(dir).filter((n) => /^pages-\d+\.img$/.test(n)).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
    assert.equal(dj.counts.bytes, pageBytes, 'the bytes written are the page images');
    assert.equal(typeof dj.timings.totalMs, 'number');
    assert.equal(typeof dj.timings.frozenMs, 'number');
    assert.equal(typeof dj.timings.phases, 'object');
    assert.equal(dj.error, undefined);
    assert.ok(await waitPidGone(t.pid), 'dumped and killed');

    const r = cryo(['restore', '-D', dir, '-d', '--json']);
    assert.equal(r.code, 0, cryoReport(r));
    const rj = json(r);
    assert.equal(rj.command, 'restore');
    assert.equal(rj.verdict, 'done');
    assert.equal(rj.pid, t.pid);
    assert.equal(rj.dir, dir);
    assert.deepEqual(rj.differences, []);
    assert.deepEqual(rj.counts, dj.counts, 'the restore reads back what the dump wrote');
    await expectPass(t);
  });
});

describe('exit codes', () => {
  it('3 refused: dump of a tree with a blocker names it, as text and as --json, and leaves it untouched', async () => {
    const { t, fd } = await packetTarget();
    const dir = path.join(t.root, 'img-refused');
    const d = cryo(['dump', '-t', String(t.pid), '-D', dir]);
    assert.equal(d.code, 3, cryoReport(d));
    assert.equal(d.stderr.trim(), `cryo: cannot checkpoint: pid ${t.pid} fd ${fd}: packet socket — not supported yet`);
    const j = cryo(['dump', '-t', String(t.pid), '-D', dir, '--json']);
    assert.equal(j.code, 3, cryoReport(j));
    const v = json(j);
    assert.equal(v.verdict, 'refused');
    assert.deepEqual(v.blockers.map((b: { pid: number; fd: number }) => [b.pid, b.fd]), [[t.pid, fd]]);
    assert.equal(v.counts, undefined);
    assert.ok(!fs.existsSync(path.join(dir, 'inventory.img')), 'no images');
    untouched(t);
    await expectPass(t);
  });

  it('1 failed: a PID that is not there, a directory that holds no images (--json says why)', () => {
    const gone = cryo(['dump', '-t', '999999999', '-D', '/tmp/cryo-none', '--json']);
    assert.equal(gone.code, 1, cryoReport(gone));
    const g = json(gone);
    assert.equal(g.verdict, 'failed');
    assert.match(g.error, /no process with PID 999999999/);
    const empty = fs.mkdtempSync('/tmp/cryo-cli-empty-');
    try {
      const r = cryo(['restore', '-D', empty, '--json']);
      assert.equal(r.code, 1, cryoReport(r));
      const v = json(r);
      assert.equal(v.verdict, 'failed');
      assert.match(v.error, /inventory\.img/);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr');
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('2 bad usage, one line each: unknown command or option, -t abc, -v9, a missing -t or -D', () => {
    const cases: [string[], RegExp][] = [
      [['bogus'], /unknown command 'bogus'/],
      [['dump', '--nope'], /unknown option '--nope'/],
      [['check', '-t', 'abc'], /not a PID: 'abc'/],
      [['dump', '-t', '1', '-D', '/tmp/x', '-v9'], /'9' is not a level: 0 .* 4/],
      [['dump', '-D', '/tmp/x'], /dump needs -t PID/],
      [['dump', '-t', '12345'], /dump needs -D DIR/],
      [['restore'], /restore needs -D DIR/],
    ];
    for (const [args, pattern] of cases) {
      const r = cryo(args);
      assert.equal(r.code, 2, `cryo ${args.join(' ')}\n${cryoReport(r)}`);
      assert.match(r.stderr, pattern, cryoReport(r));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${cryoReport(r)}`);
      assert.equal(r.stdout, '', cryoReport(r));
    }
  });

  it('0, and --help of each command teaches: an example and the exit codes', () => {
    for (const cmd of ['dump', 'restore', 'check', 'show', 'demo']) {
      const r = cryo([cmd, '--help']);
      assert.equal(r.code, 0, cryoReport(r));
      assert.match(r.stdout, new RegExp(`Example[s]?:\\n(  \\$ .*\\n)*  \\$ (sudo npx )?cryo ${cmd}`), r.stdout);
      assert.match(r.stdout, /Exit codes:\n {2}0 .*\n {2}1 .*failed.*\n {2}2 .*bad usage.*\n {2}3 .*refused/, r.stdout);
    }
    const k = cryo(['check']);
    assert.equal(k.code, 0, cryoReport(k));
    assert.match(k.stdout, /everything cryo needs is there/);
    const kj = json(cryo(['check', '--json']));
    assert.equal(kj.verdict, 'ok');
    assert.equal(kj.target, 'kernel');
    assert.ok(kj.probes.some((p: { name: string; ok: boolean }) => p.name === 'root' && p.ok), JSON.stringify(kj.probes));
  });
});

describe('first contact', () => {
  it("restore takes the flags scripts pass to CRIU's dump and restore alike (--file-locks, --ext-unix-sk)", async () => {
    const t = await readyTarget('locks');
    const dir = path.join(t.root, 'img-flags');
    const d = cryo(['dump', '-t', String(t.pid), '-D', dir, '--file-locks', '--ext-unix-sk']);
    assert.equal(d.code, 0, cryoReport(d));
    assert.ok(await waitPidGone(t.pid), 'the dump ended the process');
    const r = cryo(['restore', '-D', dir, '-d', '--file-locks', '--ext-unix-sk']);
    assert.equal(r.code, 0, cryoReport(r));
    await expectPass(t);
  });

  it('show of a directory or a missing file says so in words', () => {
    const d = cryo(['show', '/tmp']);
    assert.equal(d.code, 1);
    assert.equal(d.stderr.trim(), 'cryo: /tmp is a directory: show prints one image file (DIR/pstree.img, DIR/core-PID.img, ...)');
    const m = cryo(['show', '/tmp/cryo-no-such-image.img']);
    assert.equal(m.code, 1);
    assert.equal(m.stderr.trim(), 'cryo: /tmp/cryo-no-such-image.img: no such file (give one image file, e.g. DIR/pstree.img)');
  });

  it('-v4 -o LOG: the log says what the dump did, with its counts and times', async () => {
    const t = await readyTarget('counter');
    const dir = path.join(t.root, 'img-log');
    const log = path.join(t.root, 'dump.log');
    const d = cryo(['dump', '-t', String(t.pid), '-D', dir, '--leave-running', '-v4', '-o', log]);
    assert.equal(d.code, 0, cryoReport(d));
    const text = fs.readFileSync(log, 'utf8');
    assert.match(text, new RegExp(`dump of pid ${t.pid} into ${dir}`));
    assert.match(text, /step count: [\d.]+ ms/);
    assert.match(text, /dump done: 1 task, 1 thread, 3 fds, \d+ pages \([\d.]+ MiB\) in [\d.]+ ms/);
    const quiet = cryo(['check', '-t', String(t.pid), '-v0']);
    assert.equal(quiet.code, 0, cryoReport(quiet));
    await expectPass(t);
  });

  it('the demo (the README\'s first command after the set-up) counts on after its restore', () => {
    const r = cryo(['demo'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, cryoReport(r));
    assert.match(r.stdout, /checkpoint and restore worked/);
  });

  it('the suite\'s prerequisites are all here (npm test stops with one line when one is missing)', () => {
    assert.equal(missingLine(), null);
    const without = spawnSync(process.execPath, [path.join(path.dirname(CRYO_BIN), '..', 'dist', 'test', 'lib', 'prereq.js')], { env: { ...process.env, CRIT: '/nonexistent/crit' }, encoding: 'utf8' });
    assert.equal(without.status, 1);
    assert.deepEqual(without.stderr.trim().split('\n'), ['cryo tests: missing crit (the decoder every image is checked against): run `npm run setup` as root, or apt-get install criu']);
  });
});

describe('library API', () => {
  it("import { check } from 'cryo' (the package's own entry): the kernel, and a live target", async () => {
    // By the package name, through the package.json "exports" self-reference.
    const lib = (await import('cryo' as string)) as typeof Cryo;
    assert.equal(typeof lib.dump, 'function');
    assert.equal(typeof lib.restore, 'function');
    const k = lib.check();
    assert.equal(k.verdict, 'ok');
    assert.ok(k.target === 'kernel' && k.probes.some((p) => p.name === 'clone3 with set_tid' && p.ok));
    const t = await readyTarget('counter');
    const r = lib.check({ pid: t.pid });
    assert.equal(r.verdict, 'ok', JSON.stringify(r));
    assert.ok(r.target === 'tree' && r.verdict === 'ok');
    assert.equal(r.tasks[0]!.pid, t.pid);
    assert.equal(r.counts.tasks, 1);
    const { t: bad, fd } = await packetTarget();
    const refused = lib.check({ pid: bad.pid });
    assert.equal(refused.verdict, 'refused');
    assert.deepEqual(refused.blockers.map((b) => [b.pid, b.fd]), [[bad.pid, fd]]);
    assert.match(lib.blockerText(refused.blockers[0]!), new RegExp(`^pid ${bad.pid} fd ${fd}: packet socket`));
    const gone = lib.check({ pid: 999999999 });
    assert.equal(gone.verdict, 'failed');
    assert.ok('error' in gone && /no process with PID 999999999/.test(gone.error));
    untouched(t);
    await expectPass(t);
    await expectPass(bad);
    killTarget(t);
  });
});
