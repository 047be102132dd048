// Signal dispositions (sigactions), the alternate signal stack and the blocked mask.
// Only the task can read its sigactions and sigaltstack: they come from injected syscalls.
import { SIG, NSIG } from '../../sys/index.js';
import { batchIn, type CallQueue, type DumpTask, type ReadQueue, type RestoreTask } from '../context.js';
import type { BatchCall } from '../../ptrace/index.js';
import { skip } from '../../util/skip.js';

export interface SigactionData {
  sigaction: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
  compatSigaction: boolean;
}

export interface SigaltstackData {
  ssSp: bigint;
  ssSize: bigint;
  ssFlags: number;
}

const SS_DISABLE = 2;
const SA_SIZE = 32; // struct kernel_sigaction: handler, flags, restorer, mask

/** The signals that have a disposition, in image order: 1..64 without SIGKILL and SIGSTOP. */
export function sigactionSignals(): number[] {
  const out: number[] = [];
  for (let s = 1; s <= NSIG; s++) if (s !== SIG.KILL && s !== SIG.STOP) out.push(s);
  return out;
}

/** The dispositions, read with the task's other reads (`q`: a stop or two for all, not one per signal). */
export function dumpSigactions(t: DumpTask, q: ReadQueue): () => SigactionData[] {
  const sigs = sigactionSignals();
  const buf = t.scratch.alloc(SA_SIZE * sigs.length);
  sigs.forEach((sig, i) => q.add('rt_sigaction', [sig, 0, buf + BigInt(i * SA_SIZE), 8], { detail: `signal ${sig}` }));
  return () => {
    const raw = t.scratch.read(buf, SA_SIZE * sigs.length);
    return sigs.map((_, i) => ({
      sigaction: raw.readBigUInt64LE(i * SA_SIZE),
      flags: raw.readBigUInt64LE(i * SA_SIZE + 8),
      restorer: raw.readBigUInt64LE(i * SA_SIZE + 16),
      mask: raw.readBigUInt64LE(i * SA_SIZE + 24),
      compatSigaction: false,
    }));
  };
}

function sigactionStruct(sa: SigactionData): Buffer {
  const b = Buffer.alloc(SA_SIZE);
  b.writeBigUInt64LE(sa.sigaction, 0);
  b.writeBigUInt64LE(sa.flags, 8);
  b.writeBigUInt64LE(sa.restorer, 16);
  b.writeBigUInt64LE(sa.mask, 24);
  return b;
}

/** SA_NOCLDWAIT: the kernel reaps exited children, as with SIGCHLD ignored. */
const SA_NOCLDWAIT = 2n;

/**
 * Whether the task's SIGCHLD disposition makes the kernel reap its children as they exit (SIG_IGN
 * or SA_NOCLDWAIT): a zombie it had (exited before the disposition was set) would not stay one
 * if it were made again under it, so SIGCHLD waits at SIG_DFL until its zombies exist.
 */
export function reapsChildren(sas: SigactionData[]): boolean {
  const sa = sas[sigactionSignals().indexOf(SIG.CHLD)];
  return sa !== undefined && (sa.sigaction === 1n || (sa.flags & SA_NOCLDWAIT) !== 0n);
}

const SIG_DFL: SigactionData = { sigaction: 0n, flags: 0n, restorer: 0n, mask: 0n, compatSigaction: false };

/** SIGCHLD's own disposition, once the zombies exist (see reapsChildren). */
export function restoreSigchld(r: RestoreTask, sas: SigactionData[]): void {
  const sa = sas[sigactionSignals().indexOf(SIG.CHLD)];
  if (!sa) return;
  r.scratch.reset();
  r.remote.call('rt_sigaction', [SIG.CHLD, r.scratch.put(sigactionStruct(sa)), 0, 8], 'signal SIGCHLD (after the zombies)');
}

/**
 * Every disposition in one batch of calls (one stop instead of 64); `holdSigchld`: SIGCHLD at
 * SIG_DFL for now (restoreSigchld sets it).
 */
export function restoreSigactions(r: RestoreTask, sas: SigactionData[], holdSigchld = false): void {
  const sigs = sigactionSignals();
  r.scratch.reset();
  const structs = Buffer.concat(sas.map((sa, i) => sigactionStruct(holdSigchld && sigs[i] === SIG.CHLD ? SIG_DFL : sa)));
  const at = r.scratch.put(structs);
  const calls: BatchCall[] = [];
  sas.forEach((sa, i) => {
    const sig = sigs[i];
    // Every signal is set, defaults included: the stub inherited its parent's ignored signals.
    if (sig === undefined || (sa.sigaction > 1n && skip('sigaction'))) return;
    calls.push({ name: 'rt_sigaction', args: [sig, at + BigInt(i * SA_SIZE), 0, 8], detail: `signal ${sig}` });
  });
  batchIn(r, calls);
}

/**
 * An ignored SIGTRAP, set again after the task's (and its threads' and children's) last
 * single step: each step ends in a forced SIGTRAP, which the kernel turns from SIG_IGN into
 * SIG_DFL. Set without a step (Remote.callWithoutStep); nothing to do for any other disposition.
 */
export function restoreIgnoredSigtrap(r: RestoreTask, sas: SigactionData[]): void {
  const sa = sas[sigactionSignals().indexOf(SIG.TRAP)];
  if (!sa || sa.sigaction !== 1n) return;
  r.scratch.reset();
  r.remote.callWithoutStep('rt_sigaction', [SIG.TRAP, r.scratch.put(sigactionStruct(sa)), 0, 8], 'signal SIGTRAP (ignored)');
}

/** The thread's alternate signal stack, once `q` ran. */
export function dumpSigaltstack(t: DumpTask, q: ReadQueue): () => SigaltstackData {
  const buf = t.scratch.alloc(24);
  q.add('sigaltstack', [0, buf]);
  return () => {
    const raw = t.scratch.read(buf, 24);
    return { ssSp: raw.readBigUInt64LE(0), ssFlags: raw.readUInt32LE(8), ssSize: raw.readBigUInt64LE(16) }; // SS_AUTODISARM is bit 31: unsigned
  };
}

export function restoreSigaltstack(r: RestoreTask, sas: SigaltstackData | undefined, q: CallQueue): void {
  if (!sas || sas.ssFlags & SS_DISABLE) return;
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(sas.ssSp, 0);
  // SS_ONSTACK is a report, not a request: the kernel only accepts 0 or SS_AUTODISARM.
  b.writeUInt32LE((sas.ssFlags & ~1) >>> 0, 8);
  b.writeBigUInt64LE(sas.ssSize, 16);
  q.add('sigaltstack', [r.scratch.put(b), 0], 'alternate signal stack');
}
