// The progress line of a long dump or restore: drawn on a terminal (a pty), never when stderr is
// a pipe or with --json.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cleanup, cryoOnPty, readyPython, expectPass, waitPidGone, CRYO_BIN } from './lib/index.js';

after(cleanup);

describe('progress line', () => {
  // A python process with 512 MiB of touched memory: the dump and the restore report progress
  // many times. CRYO_PROGRESS_DELAY_MS=0 draws it from the first report, so what is tested does
  // not depend on how fast this machine is (by default the line waits about a second).
  const BIG = ['import os, time', 'b = bytearray(b"\\x5a") * (512 << 20)', 'print("READY", flush=True)', 'while not os.path.exists("go"): time.sleep(0.01)', 'print("PASS" if b[12345] == 0x5a and b[-1] == 0x5a else "FAIL: memory", flush=True)'];
  const bar = /(dump|restore) \[[^\]]*\] +\d+% \| \d+\/\d+ MiB of memory \| tasks \d+\/\d+/;

  it('on a terminal: dump and restore draw it; with stderr a pipe, or with --json, they do not', async () => {
    const { t } = await readyPython('progress', BIG);
    const env = { CRYO_PROGRESS_DELAY_MS: '0' };
    const piped = spawnSync(process.execPath, [CRYO_BIN, 'dump', '-t', String(t.pid), '-D', path.join(t.root, 'img-piped'), '--leave-running'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(piped.status, 0, piped.stderr);
    assert.doesNotMatch(piped.stderr, /MiB of memory/, 'no progress line on a pipe');

    const jsonOnTty = cryoOnPty(['dump', '-t', String(t.pid), '-D', path.join(t.root, 'img-json'), '--leave-running', '--json'], env);
    assert.equal(jsonOnTty.code, 0, jsonOnTty.output);
    assert.equal(JSON.parse(jsonOnTty.output.trim()).verdict, 'done', 'with --json the terminal gets the JSON object alone');

    const dir = path.join(t.root, 'img-tty');
    const d = cryoOnPty(['dump', '-t', String(t.pid), '-D', dir], env);
    assert.equal(d.code, 0, d.output);
    assert.match(d.output, bar, `a progress line on the terminal:\n${JSON.stringify(d.output)}`);
    assert.match(d.output, /dump \[[^\]]*\] +100% \| 5\d\d\/5\d\d MiB of memory \| tasks 1\/1/, `it ends at 100%, 1 task of 1:\n${JSON.stringify(d.output)}`);
    assert.ok(await waitPidGone(t.pid), 'dumped and killed');

    const r = cryoOnPty(['restore', '-D', dir, '-d'], env);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /restore \[[^\]]*\] +100% \| 5\d\d\/5\d\d MiB of memory \| tasks 1\/1/, `restore draws it too:\n${JSON.stringify(r.output)}`);
    await expectPass(t);
  });
});

