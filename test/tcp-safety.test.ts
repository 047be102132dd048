// A dump with TCP connections never harms them: failing at each failpoint, interrupted by
// SIGTERM, or SIGKILLed at random moments (then cryo's guard process undoes what it left), the
// dump leaves no nftables table of cryo's and no socket in repair mode, and the streams of
// tcpstream.c (both ends in the tree) go on; a SIGKILL after the images were complete and the
// tree killed leaves only the lock the restore adopts. A failed restore leaves no process, no
// lock and no connection half made; the next restore works. The target checks every byte at
// the end (PASS). CRYO_TRIALS=N: SIGKILL trials (default 4).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  CRYO_BIN, cryoReport, dump, noteCryoPid, restore, goAndWaitResult, listFailSteps, runningProblem, targetReport, waitFor, type Target,
} from './lib/index.js';
import { allGone, checkRestore, cleanupTrees } from './lib/tree.js';
import { pidExists } from './lib/proc.js';
import { cryoTables, removeNewTables, socketsInRepair, startPair } from './lib/tcp-c-r.js';

const TRIALS = Number(process.env.CRYO_TRIALS ?? 4);
const TCP = ['--tcp-established'];
const tablesBefore = cryoTables();
after(async () => {
  await cleanupTrees();
  removeNewTables(tablesBefore);
});

/** The tree runs as before: alive, untraced, no lock, no socket in repair mode. */
function untouched(t: Target, client: number, what: string): string | null {
  const p = runningProblem(t);
  if (p) return `${what}: ${p}`;
  if (!pidExists(client)) return `${what}: the client ${client} is gone`;
  const tables = cryoTables().filter((n) => !tablesBefore.includes(n));
  if (tables.length) return `${what}: lock(s) left: ${tables.join(', ')}`;
  for (const pid of [t.pid, client]) {
    const r = socketsInRepair(pid);
    if (r.length) return `${what}: pid ${pid} fds ${r.join(', ')} in repair mode`;
  }
  return null;
}

async function passes(t: Target): Promise<void> {
  const r = await goAndWaitResult(t, 180_000);
  assert.ok(r.pass, `${r.line}\n${targetReport(t)}`);
}

/**
 * Runs a dump and sends it `signal` `delayMs` after its log file appeared (node's own start
 * takes a second here under load: counting from the spawn would mostly kill cryo before it
 * begins); resolves with its exit.
 */
async function dumpKilledAfter(t: Target, dir: string, signal: NodeJS.Signals, delayMs: number): Promise<{ code: number | null; signal: string | null }> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const child = spawn(process.execPath, [CRYO_BIN, 'dump', '-t', String(t.pid), '-D', dir, ...TCP, '-v4', '-o', `${dir}.log`], { stdio: 'ignore' });
  if (child.pid) noteCryoPid(child.pid);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
  let ended = false;
  void exited.then(() => (ended = true));
  await waitFor(() => ended || fs.existsSync(`${dir}.log`), 30_000, 2);
  await new Promise((r) => setTimeout(r, delayMs));
  if (!ended) child.kill(signal);
  return exited;
}

describe('tcp safety', () => {
  it('a dump failing at any step leaves the connections running, no lock, no repair mode', async () => {
    const { t, client } = await startPair('4');
    for (const step of listFailSteps('dump')) {
      const d = dump(t, step.replace(/\W/g, '-'), { leaveRunning: false, extraArgs: TCP, env: { CRYO_FAIL_AT: step } });
      assert.equal(d.res.code, 1, `${step}\n${cryoReport(d.res)}`);
      assert.equal(untouched(t, client, step), null);
    }
    await passes(t);
  });

  it(`SIGTERM and SIGKILL of cryo at random moments (${TRIALS} trials each)`, async () => {
    const { t, client } = await startPair('6');
    const seen: string[] = [];
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      for (let i = 0; i < TRIALS; i++) {
        const delay = Math.floor(Math.random() * 1500);
        const dir = path.join(t.root, `img-${signal}-${i}`);
        const r = await dumpKilledAfter(t, dir, signal, delay);
        const complete = fs.existsSync(path.join(dir, 'inventory.img'));
        // Complete images: the tree may be dying from the dump's kill; or running, when cryo died before it.
        if (complete) await waitFor(() => !pidExists(t.pid) || runningProblem(t) === null, 15_000);
        if (complete && r.code === 0) {
          seen.push(`${signal} after ${delay} ms: too late, dump done`);
        } else if (signal === 'SIGTERM' && r.code !== null) {
          // (Before cryo arms its handlers, SIGTERM ends it as SIGKILL would: the next branch.)
          const log = fs.existsSync(`${dir}.log`) ? fs.readFileSync(`${dir}.log`, 'utf8').slice(-3000) : '';
          assert.equal(r.code, 128 + 15, `SIGTERM after ${delay} ms: exit ${r.code}\n${log}`);
          seen.push(`SIGTERM after ${delay} ms: interrupted`);
        }
        if (complete && !pidExists(t.pid)) {
          // The images are whole and the tree is dead: only the lock for the restore remains.
          await allGone([t.pid, client]);
          assert.equal(cryoTables().filter((n) => n.startsWith('cryoh-') && !tablesBefore.includes(n)).length, 1, 'the lock kept for the restore');
          checkRestore(t, restore(t, dir, `${signal}-${i}`, { extraArgs: TCP }));
          if (r.signal) seen.push(`${signal} after ${delay} ms: images complete, restored`);
        } else if (r.signal) {
          seen.push(`${signal} after ${delay} ms: killed mid-dump`);
        }
        // The guard acts once cryo is gone: give it the time it needs.
        let problem: string | null = null;
        await waitFor(() => (problem = untouched(t, client, `${signal} after ${delay} ms`)) === null, 15_000, 50);
        assert.equal(problem, null, `${problem}\n${targetReport(t)}\n--- dump log ---\n${fs.existsSync(`${dir}.log`) ? fs.readFileSync(`${dir}.log`, 'utf8').slice(-2500) : ''}`);
      }
    }
    console.log(seen.join('\n'));
    await passes(t);
  });

  it('a failed restore leaves no process, no lock and no connection; the next one works', async () => {
    const { t, client } = await startPair('4');
    const d = dump(t, 'kill', { extraArgs: TCP });
    assert.equal(d.res.code, 0, cryoReport(d.res));
    await allGone([t.pid, client]);
    for (const step of ['restore:files', 'restore:task', 'restore:resume']) {
      const r = restore(t, d.dir, step.replace(/\W/g, '-'), { extraArgs: TCP, env: { CRYO_FAIL_AT: step } });
      assert.equal(r.res.code, 1, `${step}\n${cryoReport(r.res)}`);
      await allGone([t.pid, client]);
      assert.deepEqual(cryoTables().filter((n) => !tablesBefore.includes(n)), [], `${step}: no lock left`);
    }
    checkRestore(t, restore(t, d.dir, 'ok', { extraArgs: TCP }));
    assert.deepEqual(cryoTables().filter((n) => !tablesBefore.includes(n)), []);
    await passes(t);
  });
});
