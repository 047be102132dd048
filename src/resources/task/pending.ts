// Pending signals, with their siginfo: read without dequeuing (PTRACE_PEEKSIGINFO), and queued
// again by the restored task to itself (rt_sigqueueinfo / rt_tgsigqueueinfo accept any si_code
// when a task signals itself), while all signals are still blocked.
import { PTRACE, ptrace } from '../../sys/index.js';
import type { RestoreTask } from '../context.js';

const SIGINFO_SIZE = 128;
const PEEK_SHARED = 1;
const BATCH = 32;

/** Every pending signal of the thread (shared = the process-wide queue), oldest first. */
export function peekPending(tid: number, shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  const buf = Buffer.alloc(SIGINFO_SIZE * BATCH);
  for (;;) {
    const args = Buffer.alloc(16);
    args.writeBigUInt64LE(BigInt(out.length), 0);
    args.writeUInt32LE(shared ? PEEK_SHARED : 0, 8);
    args.writeInt32LE(BATCH, 12);
    const n = ptrace(PTRACE.PEEKSIGINFO, tid, args, buf, `tid ${tid} pending signals`);
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE)));
    if (n < BATCH) return out;
  }
}

/**
 * Queues the signals again, from the task to itself: the process-wide ones with
 * rt_sigqueueinfo, a thread's own with rt_tgsigqueueinfo, which names the thread by its
 * process (`tgid`, the leader's PID) and its TID.
 */
export function queuePending(r: RestoreTask, infos: Uint8Array[], shared: boolean): void {
  // Named as the task sees itself (its own PID namespace).
  const own = r.tracee.ownIds();
  for (const info of infos) {
    const b = Buffer.from(info);
    const sig = b.readInt32LE(0);
    r.scratch.reset();
    const addr = r.scratch.put(b);
    if (shared) r.remote.call('rt_sigqueueinfo', [own.tgid, sig, addr], `pending signal ${sig}`);
    else r.remote.call('rt_tgsigqueueinfo', [own.tgid, own.tid, sig, addr], `pending signal ${sig}`);
  }
}
