// The snapshot guard's own program (see snapshot-guard.ts): `node snapshot-guard-main.js`,
// commands on stdin. It never touches a task while cryo lives; when its stdin closes without
// "done" (cryo died), each snapshot it was told of that is still a zombie child of its task, the
// same processes by their start times, is reaped by that task (reapIn, as cryo does it).
import { readFileSync } from 'node:fs';
import { serveGuard } from '../sys/index.js';
import { startTimeOf } from '../resources/task/start-time.js';
import { sleepMs } from '../util/sleep.js';

interface Watched {
  pid: number;
  start: string;
  child: number;
  childStart: string;
  inner: number;
}

const watched: Watched[] = [];

/** The child's state letter and parent, while it is the process we were told of; null once gone. */
function childState(w: Watched): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${w.child}/stat`, 'utf8');
    if (startTimeOf(w.child) !== w.childStart) return null;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0]!, ppid: Number(f[1]) };
  } catch {
    return null;
  }
}

async function orphaned(): Promise<void> {
  // Loaded only now: the guard must be listening within a moment of its start.
  const [{ reapIn }, { Log }] = await Promise.all([import('./snapshot.js'), import('../util/log.js')]);
  // CRYO_GUARD_LOG=FILE: what the guard does, logged (for debugging it).
  const file = process.env.CRYO_GUARD_LOG;
  const log = new Log(file ? 4 : 0, file ? `${file}.${process.pid}` : undefined);
  log.info(`orphaned: ${watched.length} snapshot(s)`);
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
  if (cmd === 'snap') {
    const [pid, start] = args[0]!.split(':');
    const [child, childStart] = args[1]!.split(':');
    watched.push({ pid: Number(pid), start: start!, child: Number(child), childStart: childStart!, inner: Number(args[2]) });
    return true;
  }
  if (cmd === 'hello') return true;
  if (cmd === 'done') return false;
  throw new Error(`unknown command ${cmd}`);
}, orphaned);
