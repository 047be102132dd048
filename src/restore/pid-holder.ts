// Who holds a PID the restore needs: nobody, a task on its way out (worth waiting for), or a
// live task (waiting would not free it).
import { readFileSync } from 'node:fs';
import { pidExists } from '../sys/index.js';
import { parseStat, parseStatus, statusHex, statusNumber } from '../proc/index.js';

const PF_EXITING = 0x4;
const SIGKILL_BIT = 1n << 8n;

export type PidHolder = { kind: 'free' } | { kind: 'ending' } | { kind: 'live'; what: string };

/** Ending: a zombie not reaped yet, a task exiting, or one with SIGKILL pending. */
export function pidHolder(pid: number): PidHolder {
  let stat, status;
  try {
    stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return pidExists(pid) ? { kind: 'ending' } : { kind: 'free' };
  }
  if (stat.state === 'Z' || stat.state === 'X' || stat.flags & PF_EXITING) return { kind: 'ending' };
  const pending = statusHex(status, 'SigPnd') | statusHex(status, 'ShdPnd');
  if (pending & SIGKILL_BIT) return { kind: 'ending' };
  const tgid = statusNumber(status, 'Tgid');
  const who = tgid === pid ? `process ${pid}` : `thread ${pid} of process ${tgid}`;
  return { kind: 'live', what: `${who} (${stat.comm}, state ${stat.state})` };
}
