// --shell-job: a job started from a terminal (test/targets/shelljob.c, run by a tiny "shell"
// that makes it the foreground group of a pty this test owns) is refused by check and dump
// without --shell-job, naming the terminal; dumped with it, and restored by `cryo restore
// --shell-job` running on another pty the test owns. The job then reads keys and writes output
// there, checks its terminal itself (foreground group, controlling tty, the settings it made),
// and job control works: ^Z stops it, SIGCONT (fg) lets it go on.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cryo, cryoReport, critDecodeAll, buildTarget, makeTempDir, trackPid, cleanupTrees, OwnedPty, CRYO_BIN } from './lib/index.js';
import { sleep, waitPidGone } from './lib/proc.js';

after(cleanupTrees);

// A shell in miniature: leads a session whose controlling tty is argv[1], runs argv[2:] in a
// group of its own in the foreground (taken by the job itself with SIGTTOU ignored, before it
// execs, as shells do), and waits for it.
const SHELL = `
import os, signal, sys
os.setsid()
fd = os.open(sys.argv[1], os.O_RDWR)
for i in (0, 1, 2): os.dup2(fd, i)
os.close(fd)
job = os.fork()
if job == 0:
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.tcsetpgrp(0, os.getpid())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execv(sys.argv[2], sys.argv[2:])
os.waitpid(job, 0)
`;

// The same session set-up, but the program runs in the session leader itself (cryo restore).
const SESSION = `
import os, sys
os.setsid()
fd = os.open(sys.argv[1], os.O_RDWR)
for i in (0, 1, 2): os.dup2(fd, i)
os.close(fd)
os.execv(sys.argv[2], sys.argv[2:])
`;

function state(pid: number): string {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return 'gone';
  }
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (ok()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', (code) => resolve(code))));
}

describe('c/r --shell-job', () => {
  it('a job dumped from one terminal comes back on the terminal cryo restore runs on, with job control', async () => {
    const dir = makeTempDir('cryo-t-shelljob-');
    const job = buildTarget('shelljob');
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'CRYO_FAIL_AT') env[k] = v;
    const a = new OwnedPty();
    const b = new OwnedPty();
    const started: ChildProcess[] = [];
    let jobPid = 0;
    try {
      const shell = spawn(buildTarget('launch'), ['/usr/bin/python3', '-c', SHELL, a.path, job], { cwd: dir, stdio: 'ignore', env });
      started.push(shell);
      await a.waitFor(/JOB READY/);
      jobPid = Number(fs.readFileSync(path.join(dir, 'job.pid'), 'utf8'));
      trackPid(jobPid, [job], dir);
      a.type('hello\n');
      await a.waitFor(/ECHO hello/);

      // Without --shell-job: refused, naming the terminal; the job runs on.
      const refusedCheck = cryo(['check', '-t', String(jobPid)]);
      assert.equal(refusedCheck.code, 3, cryoReport(refusedCheck));
      assert.match(refusedCheck.stdout, new RegExp(`pid ${jobPid} fd 0: terminal ${a.path} from outside the tree.*--shell-job`), cryoReport(refusedCheck));
      assert.match(refusedCheck.stdout, new RegExp(`pid ${jobPid}: its controlling terminal ${a.path} is from outside the tree`), cryoReport(refusedCheck));
      const img = path.join(dir, 'img');
      fs.mkdirSync(img, { mode: 0o700 });
      const refused = cryo(['dump', '-t', String(jobPid), '-D', img]);
      assert.equal(refused.code, 3, cryoReport(refused));
      assert.match(refused.stderr, new RegExp(`terminal ${a.path} from outside the tree`));
      const from = a.output().length;
      a.type('still here\n');
      await a.waitFor(/ECHO still here/, from);

      const ok = cryo(['check', '-t', String(jobPid), '--shell-job']);
      assert.equal(ok.code, 0, cryoReport(ok));
      const d = cryo(['dump', '-t', String(jobPid), '-D', img, '--shell-job', '-v4', '-o', path.join(dir, 'dump.log')]);
      assert.equal(d.code, 0, cryoReport(d));
      assert.ok(await waitPidGone(jobPid, 20_000), 'the job is gone after the dump');
      await critDecodeAll(img);
      assert.equal(await exited(shell), 0, 'the first shell saw its job end');

      const log = path.join(dir, 'restore.log');
      const restorer = spawn(buildTarget('launch'), ['/usr/bin/python3', '-c', SESSION, b.path, process.execPath, CRYO_BIN, 'restore', '-D', img, '--shell-job', '-v4', '-o', log], { cwd: dir, stdio: 'ignore', env });
      started.push(restorer);
      await until('the restored job', () => state(jobPid) === 'S' || state(jobPid) === 'R' || restorer.exitCode !== null);
      assert.equal(restorer.exitCode, null, `cryo restore ended early:\n${b.output()}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-4000) : ''}`);

      b.type('check\n');
      const checked = await b.waitFor(/CHECK (ok|FAIL.*)/);
      assert.equal(checked[1], 'ok', `the job's own check on the new terminal: ${checked[0]}`);
      b.type('typed after the restore\n');
      await b.waitFor(/ECHO typed after the restore/);
      b.type('conts\n');
      const before = Number((await b.waitFor(/CONTS (\d+)/))[1]);

      // Job control: ^Z on the terminal stops the foreground job, SIGCONT (what fg sends) resumes it.
      b.type('\x1a');
      await until('the job stopped by ^Z', () => state(jobPid) === 'T');
      process.kill(jobPid, 'SIGCONT');
      await until('the job running again', () => state(jobPid) !== 'T');
      const mark = b.output().length;
      b.type('conts\n');
      const after = Number((await b.waitFor(/CONTS (\d+)/, mark))[1]);
      assert.equal(after, before + 1, 'the job got the SIGCONT');
      b.type('quit\n');
      assert.equal(await exited(restorer), 0, `cryo restore exits with the job's status 0:\n${b.output()}`);
    } finally {
      for (const p of started) if (p.exitCode === null && p.pid) p.kill('SIGKILL');
      if (jobPid && fs.existsSync(`/proc/${jobPid}`) && fs.readlinkSync(`/proc/${jobPid}/cwd`) === dir) process.kill(jobPid, 'SIGKILL');
      a.close();
      b.close();
    }
  });
});
