// The snapshot guard's own program (see snapshot-guard.ts): `node snapshot-guard-main.js`,
// commands on stdin. It never touches a task while cryo lives; when its stdin closes without
// "done" (cryo died), each snapshot it was told of that is still a zombie child of its task, the
// same processes by their start times, is reaped by that task (reapIn, as cryo does it).
import { readFileSync } from 'node:fs';
import { serveGuard } from '../sys/index.js';
import { startTimeOf } from '../resources/task/start-time.js';
import { childrenOf } from '../resources/task/children.js';
import { sleepMs } from '../util/sleep.js';

interface Watched {
  pid: number;
  start: string;
  child: number;
  childStart: string;
  inner: number;
}

const watched: Watched[] = [];
/** Tasks about to fork a snapshot cryo has not named yet: their start times and children before. */
const pending = new Map<number, { start: string; before: Set<number> }>();

/** stat fields after the command (state first), or null once gone. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * cryo died between a task's clone and telling us of the child: the child is the task's new one
 * with exit signal 0 (stat field 38; the task is frozen meanwhile and makes none of its own), if
 * the clone was made at all. Its PID in the task's namespace is the last of its NSpid.
 */
function newSnapshot(pid: number, p: { start: string; before: Set<number> }): Watched | null {
  for (let i = 0; i < 30; i++, sleepMs(10)) {
    for (const child of childrenOf(pid)) {
      if (p.before.has(child) || statFields(child)?.[35] !== '0') continue;
      let status = '';
      try {
        status = readFileSync(`/proc/${child}/status`, 'utf8');
      } catch {
        continue; // gone
      }
      const ns = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
      return { pid, start: p.start, child, childStart: startTimeOf(child), inner: Number(ns?.at(-1) ?? child) };
    }
  }
  return null;
}

/** The child's state letter and parent, while it is the process we were told of; null once gone. */
function childState(w: Watched): { state: string; ppid: number } | null {
  const f = statFields(w.child);
  if (!f || startTimeOf(w.child) !== w.childStart) return null;
  return { state: f[0]!, ppid: Number(f[1]) };
}

async function orphaned(): Promise<void> {
  // Loaded only now: the guard must be listening within a moment of its start.
  const [{ reapIn }, { Log }] = await Promise.all([import('./snapshot.js'), import('../util/log.js')]);
  // CRYO_GUARD_LOG=FILE: what the guard does, logged (for debugging it).
  const file = process.env.CRYO_GUARD_LOG;
  const log = new Log(file ? 4 : 0, file ? `${file}.${process.pid}` : undefined);
  log.info(`orphaned: ${watched.length} snapshot(s), ${pending.size} clone(s) unnamed`);
  for (const [pid, p] of pending) {
    if (startTimeOf(pid) !== p.start) continue;
    const w = newSnapshot(pid, p);
    log.info(`unnamed snapshot of ${pid}: ${w ? w.child : 'none'}`);
    if (w) watched.push(w);
  }
  for (const w of watched) {
    // cryo's death kills the snapshot: wait for it to be a zombie.
    let s = childState(w);
    for (let i = 0; i < 300 && s && s.state !== 'Z'; i++, s = childState(w)) sleepMs(10);
    log.info(`snapshot ${w.child} of ${w.pid}: ${s ? `${s.state} ppid ${s.ppid}` : 'gone'}`);
    if (!s || s.state !== 'Z' || s.ppid !== w.pid || startTimeOf(w.pid) !== w.start) continue;
    try {
      reapIn(w.pid, w.inner, log);
      log.info('reaped');
    } catch (e) {
      log.info(`not reaped: ${(e as Error).message}`);
      /* the task is traced by someone else now, or gone: nothing more we can do */
    }
  }
}

await serveGuard((cmd, args) => {
  if (cmd === 'pre') {
    const [pid, start] = args[0]!.split(':');
    pending.set(Number(pid), { start: start!, before: new Set(args[1] === '-' ? [] : args[1]!.split(',').map(Number)) });
    return true;
  }
  if (cmd === 'snap') {
    const [pid, start] = args[0]!.split(':');
    pending.delete(Number(pid));
    const [child, childStart] = args[1]!.split(':');
    watched.push({ pid: Number(pid), start: start!, child: Number(child), childStart: childStart!, inner: Number(args[2]) });
    return true;
  }
  if (cmd === 'hello') return true;
  if (cmd === 'done') return false;
  throw new Error(`unknown command ${cmd}`);
}, orphaned);
