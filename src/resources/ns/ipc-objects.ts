// SysV semaphore sets and message queues of the IPC namespace the calling thread is in (the ns
// helper calls these after setns: /proc/sysvipc/* and the ipc syscalls answer for the caller's
// namespace). Each object keeps its key, id, owner and mode; a set its values, a queue its
// messages in order with their types. Ids are the old ones again through sem_next_id /
// msg_next_id, which the kernel uses for the next object created and then forgets.
import { readFileSync, writeFileSync } from 'node:fs';
import { sys, sysTry, E } from '../../sys/index.js';
import { parseSysvSem, parseSysvMsg, type SysvPerm } from '../../proc/index.js';
import { UserError } from '../../util/errors.js';

/** CRIU's ipc_desc_entry, as JSON-safe numbers. */
export interface IpcDesc {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  mode: number;
  id: number;
}

export interface SemSet {
  desc: IpcDesc;
  values: number[];
}

export interface MsgQueue {
  desc: IpcDesc;
  qbytes: number;
  /** In queue order; mtype as a decimal string (a long), text base64. */
  messages: { mtype: string; text: string }[];
}

const IPC_CREAT = 0o1000;
const IPC_EXCL = 0o2000;
const IPC_NOWAIT = 0o4000;
const MSG_COPY = 0o40000;
const IPC_RMID = 0;
const IPC_SET = 1;
const IPC_STAT = 2;
const GETALL = 13;
const SETALL = 17;
/** struct ipc64_perm (x86_64): uid at 4, gid at 8, mode at 20; 48 bytes. */
const PERM_UID = 4;
const PERM_GID = 8;
const PERM_MODE = 20;
/** struct msqid64_ds: msg_qbytes after the perm (48) and five longs. */
const MSQ_QBYTES = 88;
const DS_SIZE = 128;

function descOf(p: SysvPerm): IpcDesc {
  return { key: p.key, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid, mode: p.perms, id: p.id };
}

export function dumpSemSets(): SemSet[] {
  return parseSysvSem(readFileSync('/proc/sysvipc/sem', 'utf8')).map((s) => {
    const buf = Buffer.alloc(Math.max(2, s.nsems * 2));
    sys('semctl', [s.id, 0, GETALL, buf], `semaphore set ${s.id}`);
    return { desc: descOf(s), values: Array.from({ length: s.nsems }, (_, i) => buf.readUInt16LE(i * 2)) };
  });
}

/** Every queue with its messages, read with MSG_COPY (by position, leaving them queued). */
export function dumpMsgQueues(): MsgQueue[] {
  const msgmax = Number(readFileSync('/proc/sys/kernel/msgmax', 'utf8'));
  return parseSysvMsg(readFileSync('/proc/sysvipc/msg', 'utf8')).map((q) => {
    const ds = Buffer.alloc(DS_SIZE);
    sys('msgctl', [q.id, IPC_STAT, ds], `message queue ${q.id}`);
    const buf = Buffer.alloc(8 + msgmax);
    const messages: MsgQueue['messages'] = [];
    for (let i = 0; i < q.qnum; i++) {
      const n = sys('msgrcv', [q.id, buf, msgmax, i, IPC_NOWAIT | MSG_COPY], `message ${i} of queue ${q.id}`);
      messages.push({ mtype: buf.readBigInt64LE(0).toString(), text: buf.subarray(8, 8 + n).toString('base64') });
    }
    return { desc: descOf(q), qbytes: Number(ds.readBigUInt64LE(MSQ_QBYTES)), messages };
  });
}

/** Sets the next id the kernel hands out for `kind` (sem, msg, shm); -1 for "any". */
export function setNextId(kind: 'sem' | 'msg' | 'shm', id: number): void {
  try {
    writeFileSync(`/proc/sys/kernel/${kind}_next_id`, String(id));
  } catch (e) {
    throw new UserError(`cannot set kernel.${kind}_next_id to ${id}: ${(e as Error).message}`);
  }
}

function created(what: string, d: IpcDesc, r: { ret: number; errno: number }): number {
  if (r.ret < 0) {
    if (r.errno === E.EEXIST) throw new UserError(`${what} key ${d.key} is taken in the new IPC namespace — cannot restore ${what} ${d.id}`);
    throw new UserError(`cannot create ${what} ${d.id} (key ${d.key}): errno ${r.errno}`);
  }
  if (r.ret !== d.id) throw new UserError(`${what} ${d.id} came back as id ${r.ret}`);
  return r.ret;
}

/** Owner and mode through IPC_SET (the creator stays us: the kernel never lets it change). */
function setPerm(ctl: (cmd: number, ds: Buffer) => void, d: IpcDesc, extra?: (ds: Buffer) => void): void {
  const ds = Buffer.alloc(DS_SIZE);
  ctl(IPC_STAT, ds);
  ds.writeUInt32LE(d.uid, PERM_UID);
  ds.writeUInt32LE(d.gid, PERM_GID);
  ds.writeUInt32LE(d.mode & 0o777, PERM_MODE);
  extra?.(ds);
  ctl(IPC_SET, ds);
}

export function restoreSemSet(s: SemSet): void {
  const d = s.desc;
  setNextId('sem', d.id);
  const id = created('semaphore set', d, sysTry('semget', [d.key, s.values.length, (d.mode & 0o777) | IPC_CREAT | IPC_EXCL]));
  const vals = Buffer.alloc(Math.max(2, s.values.length * 2));
  s.values.forEach((v, i) => vals.writeUInt16LE(v, i * 2));
  sys('semctl', [id, 0, SETALL, vals], `semaphore set ${id} values`);
  setPerm((cmd, ds) => void sys('semctl', [id, 0, cmd, ds], `semaphore set ${id} owner`), d);
}

export function restoreMsgQueue(q: MsgQueue): void {
  const d = q.desc;
  setNextId('msg', d.id);
  const id = created('message queue', d, sysTry('msgget', [d.key, (d.mode & 0o777) | IPC_CREAT | IPC_EXCL]));
  // The queue's size first, so that the messages fit as they did; raising it above msgmnb
  // would need CAP_SYS_RESOURCE, but msgmnb was restored before.
  const ctl = (cmd: number, ds: Buffer) => void sys('msgctl', [id, cmd, ds], `message queue ${id}`);
  const ds = Buffer.alloc(DS_SIZE);
  ctl(IPC_STAT, ds);
  if (Number(ds.readBigUInt64LE(MSQ_QBYTES)) !== q.qbytes) {
    ds.writeBigUInt64LE(BigInt(q.qbytes), MSQ_QBYTES);
    ctl(IPC_SET, ds);
  }
  for (const [i, m] of q.messages.entries()) {
    const text = Buffer.from(m.text, 'base64');
    const buf = Buffer.alloc(8 + text.length);
    buf.writeBigInt64LE(BigInt(m.mtype), 0);
    text.copy(buf, 8);
    sys('msgsnd', [id, buf, text.length, IPC_NOWAIT], `message ${i} of queue ${id}`);
  }
  setPerm(ctl, d);
}

export function removeSemSet(id: number): void {
  sysTry('semctl', [id, 0, IPC_RMID, 0]);
}

export function removeMsgQueue(id: number): void {
  sysTry('msgctl', [id, IPC_RMID, 0]);
}
