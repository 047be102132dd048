// Helpers for tests that work on whole process trees: what the tree looks like (as ps would
// show it), its memory use, and dumping/restoring it with the checks every such test makes.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { critDecodeAll, cryoReport, dump, restore } from './cryo.js';
import { cleanup, targetReport, startTarget, waitForLine, goAndWaitResult, TARGET_ROOT_PREFIX, type Target } from './target.js';
import { buildTarget } from './build.js';
import { noteShmOf } from './shm-leftovers.js';
import { waitPidGone, readCwd, descendantPids } from './proc.js';

/** Every PID the tests saw in a tree, killed at the end (by PID, only those). */
const seen = new Set<number>();

/** Kills every PID a tree helper has seen (those only), then the usual cleanup. */
export async function cleanupTrees(): Promise<void> {
  noteShmOf([...seen].filter((pid) => readCwd(pid)?.startsWith(TARGET_ROOT_PREFIX)));
  for (const pid of seen) {
    // Only processes of our targets: they all run in a target's temp dir (a PID may have been
    // reused, or a helper may have been shown a process that is not ours).
    if (!readCwd(pid)?.startsWith(TARGET_ROOT_PREFIX)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  seen.clear();
  await cleanup();
}

export interface Row {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  state: string;
  comm: string;
}

/** The processes of session `sid`, as ps would show them. */
export function session(sid: number): Row[] {
  return processes((r) => r.sid === sid);
}

/** The root and all its descendants (recorded for the final cleanup). */
export function descendants(root: number): number[] {
  const out = descendantPids(root);
  for (const pid of out) seen.add(pid);
  return out;
}

/** The root and its children. */
export function family(root: number): Row[] {
  return processes((r) => r.pid === root || r.ppid === root);
}

export function processes(keep: (r: Row) => boolean): Row[] {
  const rows: Row[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = text.lastIndexOf(')');
    const f = text.slice(close + 2).split(' ');
    const row = { pid: Number(name), comm: text.slice(text.indexOf('(') + 1, close), state: f[0]!, ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
    if (keep(row)) rows.push(row);
  }
  rows.sort((a, b) => a.pid - b.pid);
  for (const r of rows) seen.add(r.pid);
  return rows;
}

/** The shape to compare: the root's parent changes on restore (it becomes init's child). */
export function shape(rows: Row[], root: number): string {
  // Running or sleeping is the same state for this purpose: alive and not stopped.
  const state = (s: string) => (s === 'R' ? 'S' : s);
  return rows.map((r) => `${r.pid} ${r.pid === root ? '-' : r.ppid} ${r.pgid} ${r.sid} ${state(r.state)} ${r.comm}`).join('\n');
}

export function pssKb(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      sum += Number(m?.[1] ?? 0);
    } catch {
      /* zombie: no memory */
    }
  }
  return sum;
}

export async function allGone(pids: number[]): Promise<void> {
  for (const pid of pids) assert.ok(await waitPidGone(pid, 20_000), `pid ${pid} still exists after the dump`);
}

/** Dumps the tree (which kills it), checks every image with crit, waits until its PIDs are free. */
export async function dumpTree(t: Target, pids: number[]): Promise<string> {
  return (await dumpAndKill(t, pids)).dir;
}

/** dumpTree, also giving crit's decoding of every image; `extraArgs` go to `cryo dump`. */
export async function dumpAndKill(t: Target, pids: number[], extraArgs: string[] = []): Promise<{ dir: string; images: Map<string, unknown> }> {
  const d = dump(t, '1', { extraArgs });
  assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
  const images = await critDecodeAll(d.dir);
  await allGone(pids);
  return { dir: d.dir, images };
}

export function checkRestore(t: Target, r: ReturnType<typeof restore>): void {
  assert.equal(r.res.code, 0, `restore failed\n${cryoReport(r.res)}\n${targetReport(t)}`);
  assert.equal(r.pidFromFile, t.pid);
}

/** Starts test/targets/NAME.c (built on demand) and waits until it reports READY. */
export async function readyTarget(name: string, args: string[] = []): Promise<Target> {
  const t = await startTarget([buildTarget(name), ...args], { name });
  await waitForLine(t, 'READY', 30_000);
  return t;
}

/** Runs a python3 script (its lines) as a target and waits for its READY line, returned too. */
export async function readyPython(name: string, lines: string[]): Promise<{ t: Target; ready: string }> {
  const t = await startTarget(['/usr/bin/python3', '-c', lines.join('\n')], { name });
  return { t, ready: await waitForLine(t, 'READY', 10_000) };
}

/** Lets the target check its own state (the go file) and asserts it reports PASS. */
export async function expectPass(t: Target): Promise<void> {
  const res = await goAndWaitResult(t);
  assert.ok(res.pass, `${res.line}\n${targetReport(t)}`);
}
