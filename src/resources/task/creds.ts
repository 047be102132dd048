// Credentials: uids, gids, groups, capabilities and securebits. Read from /proc/PID/status
// (plus securebits, which only the task can ask for); set in the task as the last task step,
// because dropping root would stop the task from doing the rest of its own restore.
import { readFileSync } from 'node:fs';
import { PR } from '../../sys/index.js';
import { statusIds, statusGroups, statusHex, type ProcStatus } from '../../proc/index.js';
import type { DumpTask, RestoreTask } from '../context.js';

export interface CredsData {
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  suid: number;
  sgid: number;
  fsuid: number;
  fsgid: number;
  capInh: number[];
  capPrm: number[];
  capEff: number[];
  capBnd: number[];
  capAmb: number[];
  secbits: number;
  groups: number[];
}

const CAP_VERSION_3 = 0x20080522;
const SECBIT_KEEP_CAPS = 1 << 4;

/** A 64-bit capability set as CRIU stores it: two u32 words, low first. */
function capWords(v: bigint): number[] {
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

function capValue(words: number[]): bigint {
  return BigInt(words[0] ?? 0) | (BigInt(words[1] ?? 0) << 32n);
}

export function credsFromStatus(s: ProcStatus, secbits: number): CredsData {
  const [uid, euid, suid, fsuid] = statusIds(s, 'Uid');
  const [gid, egid, sgid, fsgid] = statusIds(s, 'Gid');
  return {
    uid, gid, euid, egid, suid, sgid, fsuid, fsgid,
    capInh: capWords(statusHex(s, 'CapInh')),
    capPrm: capWords(statusHex(s, 'CapPrm')),
    capEff: capWords(statusHex(s, 'CapEff')),
    capBnd: capWords(statusHex(s, 'CapBnd')),
    capAmb: capWords(statusHex(s, 'CapAmb')),
    secbits,
    groups: statusGroups(s),
  };
}

export function dumpCreds(t: DumpTask): CredsData {
  const secbits = Number(t.remote.call('prctl', [PR.GET_SECUREBITS, 0, 0, 0, 0]));
  return credsFromStatus(t.status, secbits);
}

/** The highest capability number the running kernel knows (cap_last_cap). */
function lastCap(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    return 40;
  }
}


export function restoreCreds(r: RestoreTask, c: CredsData | undefined): void {
  if (!c) return;
  const call = r.remote.call.bind(r.remote);
  r.scratch.reset();
  // Keep capabilities across the uid change, then set the wanted sets explicitly.
  call('prctl', [PR.SET_SECUREBITS, c.secbits | SECBIT_KEEP_CAPS, 0, 0, 0], 'securebits');
  const groups = Buffer.alloc(4 * Math.max(1, c.groups.length));
  c.groups.forEach((g, i) => groups.writeUInt32LE(g, i * 4));
  call('setgroups', [c.groups.length, r.scratch.put(groups)], 'groups');
  call('setresgid', [c.gid, c.egid, c.sgid], 'gids');
  call('setresuid', [c.uid, c.euid, c.suid], 'uids');
  call('setfsgid', [c.fsgid]);
  call('setfsuid', [c.fsuid]);
  const bnd = capValue(c.capBnd);
  const last = lastCap();
  for (let cap = 0; cap <= last; cap++) {
    if (!(bnd & (1n << BigInt(cap)))) call('prctl', [PR.CAPBSET_DROP, cap, 0, 0, 0], `drop cap ${cap}`);
  }
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(CAP_VERSION_3, 0);
  const data = Buffer.alloc(24);
  const eff = capValue(c.capEff), prm = capValue(c.capPrm), inh = capValue(c.capInh);
  for (let i = 0; i < 2; i++) {
    const shift = BigInt(32 * i);
    data.writeUInt32LE(Number((eff >> shift) & 0xffffffffn), i * 12);
    data.writeUInt32LE(Number((prm >> shift) & 0xffffffffn), i * 12 + 4);
    data.writeUInt32LE(Number((inh >> shift) & 0xffffffffn), i * 12 + 8);
  }
  call('capset', [r.scratch.put(hdr), r.scratch.put(data)], 'capabilities');
  const amb = capValue(c.capAmb);
  for (let cap = 0; cap <= last; cap++) {
    if (amb & (1n << BigInt(cap))) call('prctl', [PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap, 0, 0], `ambient cap ${cap}`);
  }
  call('prctl', [PR.SET_SECUREBITS, c.secbits, 0, 0, 0], 'securebits');
}
