// Credentials: uids, gids, groups, the five capability sets, securebits and no_new_privs. Read
// from /proc/TID/status (plus securebits, which only the thread can ask for); set by each thread
// as its last task step, because dropping root would stop the thread from doing the rest of its
// own restore.
import { readFileSync } from 'node:fs';
import { isFieldSet } from '@bufbuild/protobuf';
import { PR } from '../../sys/index.js';
import { statusIds, statusGroups, statusHex, type ProcStatus } from '../../proc/index.js';
import { creds_entrySchema, type creds_entry } from '../../image/gen/creds_pb.js';
import type { CallQueue, DumpTask, ReadQueue, RestoreTask } from '../context.js';

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
  noNewPrivs: number;
}

const CAP_VERSION_3 = 0x20080522;
/** securebits (linux/securebits.h). */
export const SECBIT = {
  NOROOT: 1 << 0,
  NOROOT_LOCKED: 1 << 1,
  NO_SETUID_FIXUP: 1 << 2,
  NO_SETUID_FIXUP_LOCKED: 1 << 3,
  KEEP_CAPS: 1 << 4,
  KEEP_CAPS_LOCKED: 1 << 5,
  NO_CAP_AMBIENT_RAISE: 1 << 6,
  NO_CAP_AMBIENT_RAISE_LOCKED: 1 << 7,
} as const;

/** A 64-bit capability set as CRIU stores it: two u32 words, low first. */
function capWords(v: bigint): number[] {
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

function capValue(words: readonly number[]): bigint {
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
    // Always recorded (CRIU does too): 0 is a fact, not an absence.
    noNewPrivs: Number(s.get('NoNewPrivs') ?? 0),
  };
}

/** The thread's credentials (from /proc and its securebits), once `q` ran. */
export function dumpCreds(t: DumpTask, q: ReadQueue): () => CredsData {
  const secbits = q.add('prctl', [PR.GET_SECUREBITS, 0, 0, 0, 0]);
  return () => credsFromStatus(t.status, Number(secbits()));
}

/** The highest capability number the running kernel knows (cap_last_cap). */
function lastCap(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    return 40;
  }
}

/** capset(2) data for three 64-bit sets (two 12-byte structs, low words first). */
function capData(eff: bigint, prm: bigint, inh: bigint): Buffer {
  const data = Buffer.alloc(24);
  for (let i = 0; i < 2; i++) {
    const shift = BigInt(32 * i);
    data.writeUInt32LE(Number((eff >> shift) & 0xffffffffn), i * 12);
    data.writeUInt32LE(Number((prm >> shift) & 0xffffffffn), i * 12 + 4);
    data.writeUInt32LE(Number((inh >> shift) & 0xffffffffn), i * 12 + 8);
  }
  return data;
}

function capHeader(): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(CAP_VERSION_3, 0);
  return hdr;
}

/**
 * Sets a thread's credentials to the image's. The thread starts as the restorer made it (root,
 * every capability, no securebits); each step needs a privilege a later step may take away, so
 * the order is fixed:
 *  1. securebits KEEP_CAPS | NO_SETUID_FIXUP (needs CAP_SETPCAP): the uid switch below then keeps
 *     every capability, effective ones included, so steps after it can still use them;
 *  2. groups (unless set already) and gids (CAP_SETGID);
 *  3. the inheritable set, while the bounding set is still full (capset refuses inheritable
 *     capabilities outside the bounding set, and a real process may hold such ones);
 *  4. bounding set drops (CAP_SETPCAP);
 *  5. ambient raises (each needs the capability permitted and inheritable, and must come before
 *     a SECBIT_NO_CAP_AMBIENT_RAISE of the image);
 *  6. uids, then fsuid (CAP_SETUID);
 *  7. the image's securebits, lock bits included (CAP_SETPCAP, still effective);
 *  8. no_new_privs (needs nothing, cannot be undone);
 *  9. capset to the image's sets, last: it may drop every capability.
 * Ambient capabilities survive step 9 because a real thread's ambient set is inside its
 * permitted and inheritable sets (the kernel keeps that invariant).
 */
export function* restoreCreds(r: RestoreTask, c: creds_entry | undefined, q: CallQueue, groupsSet = false): Generator<CallQueue, void, void> {
  if (!c) {
    yield q;
    return;
  }
  // In order, in two batches (a stop each, not one per call): up to the capget whose result the
  // inheritable set needs, then the rest. `q` may hold the thread's calls before these (they
  // go in the first batch); the caller reset the scratch area, whose strings they may use. Each
  // `yield q` hands the queue to the caller, who has it run (with other threads' queues, side by
  // side: restore/thread.ts) before going on.
  const call = q.add.bind(q);
  const hdr = r.scratch.put(capHeader());
  const what = (step: string) => `${step} (credentials of thread ${r.pid})`;

  call('prctl', [PR.SET_SECUREBITS, SECBIT.KEEP_CAPS | SECBIT.NO_SETUID_FIXUP, 0, 0, 0], what('temporary securebits'));
  const groups = Buffer.alloc(4 * Math.max(1, c.groups.length));
  c.groups.forEach((g, i) => groups.writeUInt32LE(g, i * 4));
  // In a user namespace the groups were set before the task joined it (user-restore.ts).
  if (!groupsSet) call('setgroups', [c.groups.length, r.scratch.put(groups)], what('groups'));
  call('setresgid', [c.gid, c.egid, c.sgid], what('gids'));
  call('setfsgid', [c.fsgid]);

  const now = r.scratch.alloc(24);
  call('capget', [hdr, now], what('capget'));
  yield q;
  const held = r.scratch.read(now, 24);
  const heldPrm = BigInt(held.readUInt32LE(4)) | (BigInt(held.readUInt32LE(16)) << 32n);
  const inh = capValue(c.capInh);
  call('capset', [hdr, r.scratch.put(capData(heldPrm, heldPrm, inh))], what('inheritable capabilities'));

  const last = lastCap();
  const bnd = capValue(c.capBnd);
  for (let cap = 0; cap <= last; cap++) {
    if (!(bnd & (1n << BigInt(cap)))) call('prctl', [PR.CAPBSET_DROP, cap, 0, 0, 0], what(`bounding drop of cap ${cap}`));
  }
  const amb = capValue(c.capAmb);
  for (let cap = 0; cap <= last; cap++) {
    if (amb & (1n << BigInt(cap))) call('prctl', [PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap, 0, 0], what(`ambient cap ${cap}`));
  }

  call('setresuid', [c.uid, c.euid, c.suid], what('uids'));
  call('setfsuid', [c.fsuid]);
  call('prctl', [PR.SET_SECUREBITS, c.secbits, 0, 0, 0], what('securebits'));
  if (isFieldSet(c, creds_entrySchema.field.noNewPrivs) && c.noNewPrivs) {
    call('prctl', [PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0], what('no_new_privs'));
  }
  call('capset', [hdr, r.scratch.put(capData(capValue(c.capEff), capValue(c.capPrm), inh))], what('capabilities'));
  yield q;
}
