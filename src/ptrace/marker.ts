// The signal that ends an injected sequence: the code sends it to its own thread (tgkill) and the
// tracer sees one signal-delivery-stop. It must be one the task ignores (SIG_IGN, or a default
// action of "ignore"): a task whose tracer dies in that stop, or while running the code, gets the
// signal delivered for real, and an ignored signal does nothing. /proc tells without injecting.
import { readFileSync } from 'node:fs';
import { parseStatus, statusHex } from '../proc/index.js';

/** SIGCHLD, SIGURG, SIGWINCH: ignored by default. */
const DEFAULT_IGNORED = [17, 23, 28];

const bit = (sig: number) => 1n << BigInt(sig - 1);

/**
 * An ignored signal for thread `tid` of `tgid`, or 0 if it has none. Preferred: one its mask does
 * not block and that is not pending (a pending one would be taken for our marker and lost).
 */
export function pickMarker(tgid: number, tid: number): number {
  const s = parseStatus(readFileSync(`/proc/${tgid}/task/${tid}/status`, 'utf8'));
  const ign = statusHex(s, 'SigIgn');
  const cgt = statusHex(s, 'SigCgt');
  const blk = statusHex(s, 'SigBlk');
  const pnd = statusHex(s, 'SigPnd') | statusHex(s, 'ShdPnd');
  const ignored: number[] = [];
  for (let sig = 1; sig <= 64; sig++) if (sig !== 9 && sig !== 19 && ign & bit(sig)) ignored.push(sig);
  for (const sig of DEFAULT_IGNORED) if (!((ign | cgt) & bit(sig))) ignored.push(sig);
  const usable = ignored.filter((sig) => !(pnd & bit(sig)));
  return usable.find((sig) => !(blk & bit(sig))) ?? usable[0] ?? 0;
}
