// Per-thread kernel state the task registered itself: clear-child-tid address (set_tid_address),
// robust futex list, rseq area. Dumped with ptrace/injection, restored by the task itself.
import { PR, RSEQ_FLAG_UNREGISTER, getRobustList, getRseqConfig, vmRead, vmWrite } from '../../sys/index.js';
import type { CallQueue, DumpTask, ReadQueue, RestoreTask } from '../context.js';

export interface ThreadRegsState {
  clearTidAddr: bigint;
  robustHead: bigint;
  robustLen: number;
  rseq: { ptr: bigint; size: number; signature: number } | null;
}

/**
 * A thread frozen inside an rseq critical section must resume at the section's abort handler, as
 * the kernel would make it on its next return to user mode. That return, for a thread we work
 * in, is from our first injected syscall, outside the section: the kernel then just forgets the
 * section (clears rseq_cs). So this must be read right after the freeze, before any injection;
 * the dump saves the abort ip, and the thread is released at it too (--leave-running).
 * Returns the abort ip, or null when the thread is not inside a critical section.
 */
export function rseqAbortIp(tid: number, ip: bigint): bigint | null {
  const rseqPtr = getRseqConfig(tid).ptr;
  if (rseqPtr === 0n) return null;
  const word = Buffer.alloc(8);
  if (vmRead(tid, word, [{ addr: rseqPtr + 8n, len: 8 }]) !== 8) return null;
  const cs = word.readBigUInt64LE(0);
  if (cs === 0n) return null;
  const desc = Buffer.alloc(32);
  if (vmRead(tid, desc, [{ addr: cs, len: 32 }]) !== 32) return null;
  const start = desc.readBigUInt64LE(8);
  const postCommitOffset = desc.readBigUInt64LE(16);
  const abort = desc.readBigUInt64LE(24);
  return ip >= start && ip < start + postCommitOffset ? abort : null;
}

/** The thread's tid address, robust list and rseq registration, once `q` ran. */
export function dumpThreadState(t: DumpTask, q: ReadQueue): () => ThreadRegsState {
  const buf = t.scratch.alloc(8);
  q.add('prctl', [PR.GET_TID_ADDRESS, buf, 0, 0, 0]);
  return () => threadState(t, t.scratch.read(buf, 8).readBigUInt64LE(0));
}

function threadState(t: DumpTask, clearTidAddr: bigint): ThreadRegsState {
  const robust = getRobustList(t.pid);
  const rs = getRseqConfig(t.pid);
  return {
    clearTidAddr,
    robustHead: robust.head,
    robustLen: robust.len,
    rseq: rs.ptr === 0n ? null : { ptr: rs.ptr, size: rs.size, signature: rs.signature },
  };
}

/** Drops the rseq registration a freshly forked task inherited, before its memory goes away. */
export function unregisterInheritedRseq(r: RestoreTask): void {
  const rs = getRseqConfig(r.pid);
  if (rs.ptr !== 0n) r.remote.call('rseq', [rs.ptr, rs.size, RSEQ_FLAG_UNREGISTER, rs.signature], 'unregister stub rseq');
}

/** Queued on `q` (the caller flushes it). */
export function restoreThreadState(r: RestoreTask, s: ThreadRegsState, q: CallQueue): void {
  if (s.rseq) {
    // No critical section is in progress any more (see rseqAbortIp): clear rseq_cs.
    vmWrite(r.pid, s.rseq.ptr + 8n, Buffer.alloc(8));
    q.add('rseq', [s.rseq.ptr, s.rseq.size, 0, s.rseq.signature], 'rseq');
  }
  if (s.robustHead !== 0n) q.add('set_robust_list', [s.robustHead, s.robustLen], 'robust list');
  q.add('set_tid_address', [s.clearTidAddr], 'tid address');
}
