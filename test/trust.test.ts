// What a restore trusts and the files cryo creates outside the image directory:
//  - images not owned by the restoring user, writable by others, or holding a symlink are
//    refused unless --trust-image (an image can make a root restore open any file and grant any
//    credentials);
//  - --pidfile and -o never follow a symlink planted at their name, never truncate a file cryo
//    did not create, and get modes 0644 / 0600 whatever the umask;
//  - messages that say what is wrong: permission denied, a missing capability, a bad -t value,
//    a kernel thread, a PID held by a live process (at once, without waiting for it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CRYO_BIN, REPO_ROOT, buildTarget, cleanup, cryo, cryoReport, dump, expectPass, killTarget, makeTempDir,
  oneLineErrorProblem, pidExists, restore, runningProblem, startTarget, waitForLine, waitPidGone, type CryoResult, type Target,
} from './lib/index.js';

let t: Target;
let pristine: string;

/** A copy of the pristine images to damage or re-own. */
function copyImages(label: string): string {
  const d = path.join(t.root, `img-${label}`);
  fs.cpSync(pristine, d, { recursive: true });
  return d;
}

function expectRefusal(r: CryoResult, pattern: RegExp, what: string): void {
  assert.notEqual(r.code, 0, `${what}: expected a refusal\n${cryoReport(r)}`);
  assert.equal(r.timedOut, false, `${what}: timed out\n${cryoReport(r)}`);
  assert.match(r.stderr, pattern, `${what}\n${cryoReport(r)}`);
  const one = oneLineErrorProblem(r);
  assert.equal(one, null, `${what}: ${one}\n${cryoReport(r)}`);
}

/** Runs the CLI under `setpriv ARGS` (another uid, fewer capabilities). */
function cryoAs(setpriv: string[], args: string[]): CryoResult {
  const t0 = Date.now();
  const r = spawnSync('/usr/bin/setpriv', [...setpriv, process.execPath, CRYO_BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { argv: ['setpriv', ...setpriv, 'cryo', ...args], env: {}, code: r.status, signal: r.signal, timedOut: false, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

async function restoreAndCheck(dir: string, label: string, extra: string[] = []): Promise<void> {
  const pidfile = path.join(t.root, `pid-${label}`);
  const r = cryo(['restore', '-D', dir, '-d', '--pidfile', pidfile, ...extra]);
  assert.equal(r.code, 0, cryoReport(r));
  assert.equal(runningProblem(t), null);
  killTarget(t);
  assert.ok(await waitPidGone(t.pid));
}

describe('trust and messages', { concurrency: false }, () => {
  before(async () => {
    t = await startTarget([buildTarget('counter')], { name: 'counter' });
    await waitForLine(t, 'READY', 10_000);
    const d = dump(t, 'pristine', { leaveRunning: true });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    pristine = d.dir;
  });
  after(cleanup);

  it('a PID held by the still running original fails at once, naming it, and leaves it running', () => {
    // A wait of 10 minutes would time the CLI out: the refusal must not wait for a live task.
    const r = cryo(['restore', '-D', pristine, '-d'], { env: { CRYO_PID_WAIT_MS: '600000' }, timeoutMs: 60_000 });
    expectRefusal(r, new RegExp(`PID ${t.pid} is in use by a running process ${t.pid} \\(counter`), 'restore while the original runs');
    assert.equal(runningProblem(t), null, 'the original runs on');
  });

  it('-t with a value that is not a PID names the value; a kernel thread is named as one', () => {
    expectRefusal(cryo(['dump', '-t', 'abc', '-D', path.join(t.root, 'x')]), /not a PID: 'abc'/, 'dump -t abc');
    expectRefusal(cryo(['check', '-t', '12x']), /not a PID: '12x'/, 'check -t 12x');
    const k = cryo(['dump', '-t', '2', '-D', path.join(t.root, 'k')]);
    expectRefusal(k, /pid 2 \(kthreadd\) is a kernel thread/, 'dump -t 2');
    assert.doesNotMatch(k.stderr, /namespace/);
  });

  it('a restore as another user names the capability it needs', () => {
    const r = cryoAs(['--reuid=1000', '--regid=1000', '--clear-groups'], ['restore', '-D', pristine, '-d']);
    expectRefusal(r, /restore needs CAP_CHECKPOINT_RESTORE \(or CAP_SYS_ADMIN\) for clone3 with set_tid/, 'restore as uid 1000');
    assert.equal(runningProblem(t), null, 'the original runs on');
  });

  it('a restore that cannot read the image directory says permission denied', () => {
    const d = copyImages('noperm');
    fs.chmodSync(d, 0o000);
    try {
      const r = cryoAs(['--bounding-set=-dac_override,-dac_read_search'], ['restore', '-D', d, '-d']);
      expectRefusal(r, /permission denied/, 'restore from an unreadable dir');
      assert.doesNotMatch(r.stderr, /inventory/);
    } finally {
      fs.chmodSync(d, 0o700);
    }
  });

  it('kill the original (the images below restore it)', async () => {
    killTarget(t);
    assert.ok(await waitPidGone(t.pid), 'original gone');
  });

  it('images owned by another user, writable by others, or with a symlink are refused; --trust-image restores them', async () => {
    const foreign = copyImages('foreign');
    fs.chownSync(foreign, 1000, 1000);
    expectRefusal(cryo(['restore', '-D', foreign, '-d']), /img-foreign: the image directory is owned by uid 1000, not by the restoring user \(uid 0\).*--trust-image/, 'foreign dir');
    const writable = copyImages('writable');
    fs.chmodSync(path.join(writable, 'pstree.img'), 0o666);
    expectRefusal(cryo(['restore', '-D', writable, '-d']), /pstree\.img: is writable by its group \(mode 0666\)/, 'writable file');
    const linked = copyImages('linked');
    const core = fs.readdirSync(linked).find((f) => f.startsWith('core-'))!;
    fs.renameSync(path.join(linked, core), path.join(t.root, 'core-elsewhere'));
    fs.symlinkSync(path.join(t.root, 'core-elsewhere'), path.join(linked, core));
    expectRefusal(cryo(['restore', '-D', linked, '-d']), new RegExp(`${core}: is a symlink`), 'symlinked image');
    assert.equal(pidExists(t.pid), false, 'nothing restored by the refusals');
    await restoreAndCheck(foreign, 'trusted', ['--trust-image']);
  });

  it('--pidfile and -o replace a planted symlink, never write through it, and have modes 0644 / 0600 under umask 000', async () => {
    const pub = makeTempDir('cryo-trust-pub-');
    fs.chmodSync(pub, 0o1777);
    const victims = ['victim-pid', 'victim-log', 'victim-dumplog'].map((n) => path.join(makeTempDir('cryo-trust-root-'), n));
    for (const v of victims) fs.writeFileSync(v, 'root secret\n', { mode: 0o600 });
    const [pidfile, log, dumpLog] = ['pid', 'restore.log', 'dump.log'].map((n) => path.join(pub, n)) as [string, string, string];
    [pidfile, log, dumpLog].forEach((p, i) => {
      fs.symlinkSync(victims[i]!, p);
      fs.lchownSync(p, 1000, 1000); // planted by an unprivileged user
    });
    const mask = process.umask(0);
    let r: CryoResult;
    try {
      r = cryo(['restore', '-D', pristine, '-d', '--pidfile', pidfile, '-v4', '-o', log]);
    } finally {
      process.umask(mask);
    }
    assert.equal(r.code, 0, cryoReport(r));
    for (const v of victims.slice(0, 2)) {
      assert.equal(fs.readFileSync(v, 'utf8'), 'root secret\n', `${v} untouched`);
      assert.equal(fs.statSync(v).mode & 0o777, 0o600);
    }
    for (const [p, mode] of [[pidfile, 0o644], [log, 0o600]] as const) {
      const st = fs.lstatSync(p);
      assert.ok(st.isFile(), `${p} is a regular file now`);
      assert.equal((st.mode & 0o777).toString(8), mode.toString(8), `${p} mode`);
      assert.equal(st.uid, 0);
    }
    assert.equal(fs.readFileSync(pidfile, 'utf8'), `${t.pid}\n`);
    assert.match(fs.readFileSync(log, 'utf8'), /restored pid/);
    assert.deepEqual(fs.readdirSync(pub).sort(), ['dump.log', 'pid', 'restore.log'], 'no temporary file left');
    // The dump's -o too, with the restored target (dumped and killed again).
    const again = path.join(t.root, 'img-again');
    fs.mkdirSync(again, { mode: 0o700 });
    process.umask(0);
    try {
      r = cryo(['dump', '-t', String(t.pid), '-D', again, '-v4', '-o', dumpLog]);
    } finally {
      process.umask(mask);
    }
    assert.equal(r.code, 0, cryoReport(r));
    assert.equal(fs.readFileSync(victims[2]!, 'utf8'), 'root secret\n');
    const st = fs.lstatSync(dumpLog);
    assert.ok(st.isFile() && (st.mode & 0o777) === 0o600, `dump log is a 0600 file (mode 0${(st.mode & 0o777).toString(8)})`);
    assert.ok(await waitPidGone(t.pid));
    await restoreAndCheckThenPass(again);
  });
});

/** The last restore: the target itself checks it kept counting. */
async function restoreAndCheckThenPass(dir: string): Promise<void> {
  const r = restore(t, dir, 'last');
  assert.equal(r.res.code, 0, cryoReport(r.res));
  await expectPass(t);
}
