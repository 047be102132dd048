// TCP connections in their closing states, checkpointed and restored through the CLI
// (--tcp-established) with both ends in one real program (tcpclose.c), which brought them there
// itself and checks its own state afterwards: the states hold across the restore, each end
// reads the other's whole stream to its EOF, every byte at its position. FIN_WAIT2 with
// CLOSE_WAIT (a half-closed connection with data flowing the other way), FIN_WAIT1 (our FIN
// queued behind unsent bytes), LAST_ACK, CLOSING; IPv4 and IPv6; kill and --leave-running. The
// images decode with crit and hold the states; no lock and no socket in repair mode remains.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  buildTarget, cryoReport, critDecodeAll, dump, restore, goAndWaitResult, startTarget, waitForLine, runningProblem, targetReport, type Target,
} from './lib/index.js';
import { allGone, checkRestore, cleanupTrees } from './lib/tree.js';
import { cryoTables, removeNewTables, socketsInRepair } from './lib/tcp-c-r.js';
import { TCP_STATE } from '../src/sys/index.js';

const tablesBefore = cryoTables();
after(async () => {
  await cleanupTrees();
  removeNewTables(tablesBefore);
});

const TCP = ['--tcp-established'];
type Mode = 'half' | 'fin1' | 'lastack' | 'closing';
/** The states tcpclose.c brings each end to: [a (the client), b (the accepted end)]. */
const NAMES: Record<Mode, string> = { half: 'FIN_WAIT2 / CLOSE_WAIT', fin1: 'FIN_WAIT1 / ESTABLISHED', lastack: 'FIN_WAIT2 / LAST_ACK', closing: 'FIN_WAIT2 / CLOSING' };
const STATES: Record<Mode, [number, number]> = {
  half: [TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSE_WAIT],
  fin1: [TCP_STATE.FIN_WAIT1, TCP_STATE.ESTABLISHED],
  lastack: [TCP_STATE.FIN_WAIT2, TCP_STATE.LAST_ACK],
  closing: [TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSING],
};

async function start(family: '4' | '6', mode: Mode): Promise<Target> {
  const t = await startTarget([buildTarget('tcpclose'), family, mode], { name: `tcpclose${family}${mode}` });
  const ready = await waitForLine(t, 'READY', 60_000);
  assert.match(ready, new RegExp(`a=${STATES[mode][0]} b=${STATES[mode][1]} `), `the program reached its states\n${t.log()}`);
  return t;
}

/** The states of the connections in files.img, each with its tcp-stream image present. */
async function imageStates(dir: string): Promise<number[]> {
  const images = await critDecodeAll(dir);
  const files = (images.get('files.img') as { entries: Array<Record<string, unknown>> }).entries.filter((e) => e.type === 'INETSK');
  const out: number[] = [];
  for (const f of files) {
    const sk = f.isk as { state: number; ino: number };
    assert.ok(images.has(`tcp-stream-${sk.ino.toString(16)}.img`), `tcp-stream image of socket ${sk.ino} (state ${sk.state})`);
    out.push(sk.state);
  }
  return out.sort((x, y) => x - y);
}

function noLeftovers(t: Target): void {
  assert.deepEqual(cryoTables().filter((n) => !tablesBefore.includes(n)), [], 'no network lock of ours left');
  assert.deepEqual(socketsInRepair(t.pid), [], 'no socket left in repair mode');
}

async function passes(t: Target): Promise<void> {
  const r = await goAndWaitResult(t, 120_000);
  assert.ok(r.pass, `${r.line}\n${targetReport(t)}`);
}

async function killAndRestore(family: '4' | '6', mode: Mode): Promise<void> {
  const t = await start(family, mode);
  const d = dump(t, 'kill', { extraArgs: TCP });
  assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
  await allGone([t.pid]);
  assert.deepEqual(await imageStates(d.dir), [...STATES[mode]].sort((x, y) => x - y), 'files.img holds both ends in their states');
  checkRestore(t, restore(t, d.dir, 'kill', { extraArgs: TCP }));
  noLeftovers(t);
  await passes(t);
}

describe('c/r tcp closing states', () => {
  for (const mode of ['half', 'fin1', 'lastack', 'closing'] as const) {
    it(`${mode} (${NAMES[mode]}), v4: dumped, killed, restored; both streams complete`, async () => {
      await killAndRestore('4', mode);
    });
  }

  for (const mode of ['half', 'closing'] as const) {
    it(`${mode}, v6`, async () => {
      await killAndRestore('6', mode);
    });
  }

  for (const mode of ['fin1', 'lastack'] as const) {
    it(`${mode}, --leave-running: the program goes on untouched`, async () => {
      const t = await start('4', mode);
      const d = dump(t, 'lr', { leaveRunning: true, extraArgs: TCP });
      assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}`);
      assert.deepEqual(await imageStates(d.dir), [...STATES[mode]].sort((x, y) => x - y));
      assert.equal(runningProblem(t), null);
      noLeftovers(t);
      await passes(t);
    });
  }
});
