// What a restore needs from the kernel, checked before anything is read or created: a restore
// without it would fail deep inside (clone3 with set_tid gives EPERM) with a message that says
// nothing about the cause.
import { readFileSync } from 'node:fs';
import { parseStatus, statusHex } from '../proc/index.js';
import { UserError } from '../util/errors.js';

/** Capability numbers (linux/capability.h) and what the restore uses each for. */
const NEEDED: { cap: number; name: string; why: string; or?: { cap: number; name: string } }[] = [
  { cap: 40, name: 'CAP_CHECKPOINT_RESTORE', or: { cap: 21, name: 'CAP_SYS_ADMIN' }, why: 'clone3 with set_tid, to give the processes their PIDs back' },
  { cap: 6, name: 'CAP_SETGID', why: 'to give the processes their groups back' },
  { cap: 7, name: 'CAP_SETUID', why: 'to give the processes their uids back' },
  { cap: 8, name: 'CAP_SETPCAP', why: 'to give the processes their capabilities and securebits back' },
];

/** Throws a one-line error naming the first missing capability (and why it is needed). */
export function checkRestorePrivileges(status = readFileSync('/proc/self/status', 'utf8')): void {
  const eff = statusHex(parseStatus(status), 'CapEff');
  const has = (c: number) => (eff & (1n << BigInt(c))) !== 0n;
  for (const n of NEEDED) {
    if (has(n.cap) || (n.or && has(n.or.cap))) continue;
    const which = n.or ? `${n.name} (or ${n.or.name})` : n.name;
    const who = process.geteuid?.() === 0 ? 'this root process lacks it' : 'run the restore as root';
    throw new UserError(`restore needs ${which} for ${n.why}: ${who}`);
  }
}
