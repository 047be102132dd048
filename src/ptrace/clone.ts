// Injecting clone3 into a stopped task that we trace with PTRACE_O_TRACEFORK/TRACECLONE: the
// call stops in a fork/clone event (the new task is then auto-attached and starts stopped), and
// completes on the next step.
import { PTRACE, PTRACE_EVENT, PAGE_SIZE, ptrace, getEventMsg, vmWrite, NR } from '../sys/index.js';
import { Tracee, TraceeError } from './tracee.js';
import type { Remote } from './remote.js';

export const CLONE_ARGS_SIZE = 88;

export interface CloneArgs {
  flags: bigint;
  exitSignal: number;
  /**
   * The PID/TID the new task must get (clone3 set_tid): one number in the caller's PID
   * namespace, or one per level, innermost first (a task of a container: [inside, host]).
   */
  setTid: number | number[];
  /**
   * The PID clone3 must return, in the caller's namespace, when the default below does not
   * know it: a caller that joined a child PID namespace (setns) for its children forks there
   * without CLONE_NEWPID and gets the host's PID back.
   */
  returns?: number;
}

const CLONE_NEWPID = 0x20000000n;

/**
 * Runs clone3 in `remote`'s task with the arguments written at `argsAddr` (a writable page in the
 * task) and returns the new task, adopted and stopped. Throws with the kernel's errno on failure.
 */
export function injectClone3(remote: Remote, argsAddr: bigint, a: CloneArgs): Tracee {
  const t = remote.t;
  const tidArray = argsAddr + 128n;
  const tids = typeof a.setTid === 'number' ? [a.setTid] : a.setTid;
  if (128 + 4 * tids.length > PAGE_SIZE) throw new Error('unreachable');
  // clone3 returns the PID in the caller's namespace: the outer one of a new PID namespace's
  // init (set_tid[1]), else the innermost one (set_tid[0]), which a parent inside shares.
  const wanted = a.returns ?? ((a.flags & CLONE_NEWPID) !== 0n ? tids[1] ?? tids[0]! : tids[0]!);
  const args = Buffer.alloc(CLONE_ARGS_SIZE);
  args.writeBigUInt64LE(a.flags, 0);
  args.writeBigUInt64LE(BigInt(a.exitSignal), 32);
  args.writeBigUInt64LE(tidArray, 64); // set_tid
  args.writeBigUInt64LE(BigInt(tids.length), 72); // set_tid_size
  const tid = Buffer.alloc(4 * tids.length);
  tids.forEach((v, i) => tid.writeInt32LE(v, i * 4));
  vmWrite(t.tid, argsAddr, args);
  vmWrite(t.tid, tidArray, tid);

  const regs = remote.originalRegs;
  regs.set('ax', NR.clone3);
  regs.set('orig_ax', -1n);
  regs.set('di', argsAddr);
  regs.set('si', CLONE_ARGS_SIZE);
  regs.set('ip', remote.syscallAt);
  t.setRegs(regs);
  ptrace(PTRACE.SINGLESTEP, t.tid, 0, 0);
  let st = t.wait();
  if (st.stopped && (st.event === PTRACE_EVENT.FORK || st.event === PTRACE_EVENT.CLONE)) {
    const child = Number(getEventMsg(t.tid));
    ptrace(PTRACE.SINGLESTEP, t.tid, 0, 0);
    st = t.wait();
    const ret = t.regs().signed('ax');
    if (ret !== BigInt(wanted)) throw new TraceeError(t.tid, `clone3 returned ${ret}, wanted ${wanted}`);
    const thread = (a.flags & 0x10000n) !== 0n;
    return Tracee.adopt(child, thread ? t.tgid : child, t.options);
  }
  const ret = t.regs().signed('ax');
  throw new CloneError(tids[tids.length - 1]!, Number(-ret), st.raw);
}

export class CloneError extends Error {
  constructor(readonly wanted: number, readonly errno: number, status: number) {
    super(
      errno === 17
        ? `PID ${wanted} is already in use`
        : `clone3 with set_tid ${wanted} failed (errno ${errno}, stop 0x${status.toString(16)})`,
    );
    this.name = 'CloneError';
  }
}
