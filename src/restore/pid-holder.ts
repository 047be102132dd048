// Who holds a PID the restore needs: nobody, a task on its way out (worth waiting for), or a
// live task (waiting would not free it); and the restore's waits for a PID to be free.
import { readFileSync } from 'node:fs';
import { pidExists } from '../sys/index.js';
import { sleepMs } from '../util/sleep.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { isEnding, parseStat, parseStatus, statusHex, statusNumber } from '../proc/index.js';

const SIGKILL_BIT = 1n << 8n;

/** `kernel`: a kernel thread (kthreadd's child), which will not go away. */
export type PidHolder = { kind: 'free' } | { kind: 'ending' } | { kind: 'live'; what: string; kernel: boolean };

/** Ending: a zombie not reaped yet, a task exiting, or one with SIGKILL pending. */
export function pidHolder(pid: number): PidHolder {
  let stat, status;
  try {
    stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return pidExists(pid) ? { kind: 'ending' } : { kind: 'free' };
  }
  if (isEnding(stat)) return { kind: 'ending' };
  const pending = statusHex(status, 'SigPnd') | statusHex(status, 'ShdPnd');
  if (pending & SIGKILL_BIT) return { kind: 'ending' };
  const tgid = statusNumber(status, 'Tgid');
  const who = tgid === pid ? `process ${pid}` : `thread ${pid} of process ${tgid}`;
  return { kind: 'live', what: `${who} (${stat.comm}, state ${stat.state})`, kernel: stat.ppid === 2 && pid !== 2 };
}

/** Waits (bounded) until nothing holds `pid`, zombies included; false if it still does. */
function waitUntilFree(pid: number, ms: number): boolean {
  const deadline = Date.now() + ms;
  while (pidExists(pid)) {
    if (Date.now() > deadline) return false;
    sleepMs(2);
  }
  return true;
}

/**
 * A dumped task's PID is free only once its parent (often init, here slow) has reaped it: wait
 * for a holder that is ending, but fail at once when a live task holds the PID (the checkpointed
 * process still running, or another one that got the PID): waiting would not free it.
 */
export function waitPidFree(pid: number, ms: number): void {
  const deadline = Date.now() + ms;
  for (;;) {
    const h = pidHolder(pid);
    if (h.kind === 'free') return;
    if (h.kind === 'live') {
      throw new UserError(h.kernel
        ? `PID ${pid} is in use by a kernel thread (${h.what}) on this boot — cannot restore with its PID here`
        : `PID ${pid} is in use by a running ${h.what} — cannot restore with its PID (is the checkpointed process still running?)`);
    }
    if (Date.now() > deadline) throw new UserError(`PID ${pid} is still held by an exiting task after ${ms} ms — cannot restore it with its PID`);
    sleepMs(2);
  }
}

/** After a failed detached restore the killed task is init's to reap: wait until it has. */
export function waitPidGone(pid: number, ms: number, log: Log): void {
  if (!waitUntilFree(pid, ms)) log.warn(`pid ${pid}: killed, but not yet reaped by its new parent`);
}
