// Per-thread kernel state the task registered itself: clear-child-tid address (set_tid_address),
// robust futex list, rseq area. Dumped with ptrace/injection, restored by the task itself.
import { PR, RSEQ_FLAG_UNREGISTER, getRobustList, getRseqConfig } from '../../sys/index.js';
import type { DumpTask, RestoreTask } from '../context.js';

export interface ThreadRegsState {
  clearTidAddr: bigint;
  robustHead: bigint;
  robustLen: number;
  rseq: { ptr: bigint; size: number; signature: number } | null;
}

export function dumpThreadState(t: DumpTask): ThreadRegsState {
  const buf = t.scratch.alloc(8);
  t.remote.call('prctl', [PR.GET_TID_ADDRESS, buf, 0, 0, 0]);
  const clearTidAddr = t.scratch.read(buf, 8).readBigUInt64LE(0);
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

export function restoreThreadState(r: RestoreTask, s: ThreadRegsState): void {
  if (s.rseq) r.remote.call('rseq', [s.rseq.ptr, s.rseq.size, 0, s.rseq.signature], 'rseq');
  if (s.robustHead !== 0n) r.remote.call('set_robust_list', [s.robustHead, s.robustLen], 'robust list');
  r.remote.call('set_tid_address', [s.clearTidAddr]);
}
