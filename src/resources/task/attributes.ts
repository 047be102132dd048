// Small per-task attributes: comm, personality, parent-death signal, child subreaper,
// oom_score_adj, loginuid, scheduling. Read from /proc or by the task; restored by the task.
import { readFileSync, writeFileSync } from 'node:fs';
import { PR, sys, sysTry } from '../../sys/index.js';
import type { CallQueue, DumpTask, ReadQueue, RestoreTask } from '../context.js';
import { mm_entrySchema } from '../../image/gen/mm_pb.js';
import { hasField } from '../../image/presence.js';
import type { TaskResource } from './resource.js';

export interface TaskAttributes {
  comm: string;
  personality: number;
  pdeathSig: number;
  childSubreaper: boolean;
  oomScoreAdj: number;
  loginuid: number;
  schedNice: number;
  schedPolicy: number;
  schedPrio: number;
}

function readProcNumber(pid: number, file: string, radix = 10): number {
  return parseInt(readFileSync(`/proc/${pid}/${file}`, 'utf8').trim(), radix);
}

/** The thread's attributes, once `q` ran. */
export function dumpTaskAttributes(t: DumpTask, q: ReadQueue): () => TaskAttributes {
  const deathBuf = t.scratch.alloc(4);
  const reaperBuf = t.scratch.alloc(4);
  q.add('prctl', [PR.GET_PDEATHSIG, deathBuf, 0, 0, 0]);
  q.add('prctl', [PR.GET_CHILD_SUBREAPER, reaperBuf, 0, 0, 0]);
  return () => attributes(t, t.scratch.read(deathBuf, 4).readInt32LE(0), t.scratch.read(reaperBuf, 4).readInt32LE(0) !== 0);
}

function attributes(t: DumpTask, pdeathSig: number, childSubreaper: boolean): TaskAttributes {
  return {
    comm: readFileSync(`/proc/${t.pid}/comm`, 'utf8').replace(/\n$/, ''),
    personality: readProcNumber(t.pid, 'personality', 16),
    pdeathSig,
    childSubreaper,
    oomScoreAdj: readProcNumber(t.pid, 'oom_score_adj'),
    loginuid: Number(readFileSync(`/proc/${t.pid}/loginuid`, 'utf8').trim()) >>> 0,
    schedNice: t.stat.nice,
    schedPolicy: schedPolicyOf(t.pid, t.stat.policy),
    schedPrio: t.stat.rtPriority,
  };
}

/**
 * The thread's scheduling policy as sched_getscheduler gives it: with SCHED_RESET_ON_FORK
 * (0x40000000: its children start with the default policy and nice), which /proc's stat leaves
 * out. `fallback` (stat's) when the thread is gone.
 */
export function schedPolicyOf(tid: number, fallback: number): number {
  const r = sysTry('sched_getscheduler', [tid]);
  return r.ret >= 0 ? r.ret : fallback;
}

/** Queued on `q` (the caller flushes it; scratch strings stay until then). */
export function restoreTaskAttributes(r: RestoreTask, m: Partial<TaskAttributes>, q: CallQueue): void {
  const call = q.add.bind(q);
  if (m.comm !== undefined) call('prctl', [PR.SET_NAME, r.scratch.putString(m.comm.slice(0, 15)), 0, 0, 0], 'comm');
  if (m.personality !== undefined) call('personality', [m.personality]);
  if (m.pdeathSig) call('prctl', [PR.SET_PDEATHSIG, m.pdeathSig, 0, 0, 0], 'pdeath signal');
  if (m.childSubreaper) call('prctl', [PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0], 'child subreaper');
  if (m.schedPolicy) {
    const param = Buffer.alloc(4);
    param.writeInt32LE(m.schedPrio ?? 0, 0);
    sys('sched_setscheduler', [r.pid, m.schedPolicy, param], `pid ${r.pid} scheduling policy`);
  }
  if (m.schedNice) sys('setpriority', [0 /* PRIO_PROCESS */, r.pid, m.schedNice], `pid ${r.pid} nice`);
  if (m.oomScoreAdj !== undefined) writeFileSync(`/proc/${r.pid}/oom_score_adj`, String(m.oomScoreAdj));
  if (m.loginuid !== undefined && m.loginuid !== 0xffffffff) {
    try {
      writeFileSync(`/proc/${r.pid}/loginuid`, String(m.loginuid));
    } catch (e) {
      r.log.warn(`pid ${r.pid}: loginuid not restored: ${(e as Error).message}`);
    }
  }
}

/**
 * The dumpable flag (mm_entry.dumpable, PR_SET_DUMPABLE), a task resource (resource.ts): it
 * belongs to the address space, and is set again after the credentials, whose change resets it.
 */
export const dumpableResource: TaskResource = {
  name: 'dumpable',
  stage: 'after-creds',
  perMm: true,
  dump(_t, q) {
    const dumpable = q.add('prctl', [PR.GET_DUMPABLE, 0, 0, 0, 0]);
    return () => ({ mm: { dumpable: Number(dumpable()) } });
  },
  restore(r, img) {
    if (hasField(mm_entrySchema, img.mm, 'dumpable')) r.remote.call('prctl', [PR.SET_DUMPABLE, img.mm.dumpable, 0, 0, 0], 'dumpable');
  },
};
